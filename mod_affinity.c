/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * mod_affinity: the "affinity" lbmethod for mod_proxy_balancer.
 *
 * Cookie mode: every member has a route ID, SHA1(salt . identity), where the
 * identity is the member's route= or else its host:port.  A request whose
 * affinity cookie names a usable member goes there; anything else gets a new
 * member, chosen by lbfactor exactly like byrequests, and a cookie naming it.
 * Domain mode: the member is picked by weighted rendezvous hashing of the
 * request's host; no cookie is involved.
 *
 * Nothing is cached that balancer-manager can change behind our back: each
 * process keeps, per balancer, a table of the members' IDs built from the
 * shared memory, and checks it against the shared memory on use (member
 * count and salt on every request, a member's route whenever that member is
 * about to be used).  See affinity_table_get().
 */

#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_file_io.h"

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_provider.h"
#include "ap_mmn.h"
#include "util_filter.h"

#include "mod_proxy.h"

#include "mod_affinity.h"
#include "affinity_version.h"

#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 82)
#error "mod_affinity needs httpd 2.4.35 or later (proxy_balancer_get_best_worker)"
#endif

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 124)
#define AFFINITY_WORKER_NAME(w) ((w)->s->name_ex)
#else
#define AFFINITY_WORKER_NAME(w) ((w)->s->name)
#endif

static void *affinity_create_dir_config(apr_pool_t *p, char *dir);
static void *affinity_merge_dir_config(apr_pool_t *p, void *basev, void *addv);
static const command_rec affinity_cmds[];
static void affinity_register_hooks(apr_pool_t *p);

/* declared first: it also sets up APLOG_USE_MODULE for this file */
AP_DECLARE_MODULE(affinity) = {
    STANDARD20_MODULE_STUFF,
    affinity_create_dir_config,     /* create per-directory config */
    affinity_merge_dir_config,      /* merge per-directory config */
    NULL,                           /* create per-server config */
    NULL,                           /* merge per-server config */
    affinity_cmds,                  /* directives */
    affinity_register_hooks         /* register hooks */
};

#define AFFINITY_RANDOM_SALT_KEY "mod_affinity.random_salt"
#define AFFINITY_RANDOM_SALT_LEN 32
#define AFFINITY_SALT_FILE_MAX   65536

static APR_OPTIONAL_FN_TYPE(proxy_balancer_get_best_worker)
                            *affinity_get_best_worker = NULL;
static APR_OPTIONAL_FN_TYPE(ap_proxy_retry_worker) *affinity_retry_worker = NULL;

static ap_filter_rec_t *affinity_cookie_filter_handle;

/* ---- Configuration ------------------------------------------------------- */

typedef enum {
    AFFINITY_MODE_UNSET = -1,
    AFFINITY_MODE_COOKIE = 0,
    AFFINITY_MODE_DOMAIN = 1
} affinity_mode_e;

typedef struct {
    const char *cookie_name;        /* NULL: unset */
    const char *cookie_attrs;       /* as sent, Path always present */
    const char *salt;               /* NULL: unset; may hold any bytes */
    apr_size_t salt_len;
    int remove;                     /* -1: unset */
    int nocache;                    /* -1: unset */
    affinity_mode_e mode;
} affinity_dir_conf;

/* Set when this configuration cycle uses AffinitySalt random, so that
 * post_config can say whether the salt is new or kept. */
static int affinity_random_salt_used;

static void *affinity_create_dir_config(apr_pool_t *p, char *dir)
{
    affinity_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)dir;
    conf->remove = -1;
    conf->nocache = -1;
    conf->mode = AFFINITY_MODE_UNSET;
    return conf;
}

static void *affinity_merge_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    affinity_dir_conf *base = basev, *add = addv;
    affinity_dir_conf *conf = apr_palloc(p, sizeof(*conf));

    if (add->cookie_name) {
        conf->cookie_name = add->cookie_name;
        conf->cookie_attrs = add->cookie_attrs;
    }
    else {
        conf->cookie_name = base->cookie_name;
        conf->cookie_attrs = base->cookie_attrs;
    }
    if (add->salt) {
        conf->salt = add->salt;
        conf->salt_len = add->salt_len;
    }
    else {
        conf->salt = base->salt;
        conf->salt_len = base->salt_len;
    }
    conf->remove = add->remove != -1 ? add->remove : base->remove;
    conf->nocache = add->nocache != -1 ? add->nocache : base->nocache;
    conf->mode = add->mode != AFFINITY_MODE_UNSET ? add->mode : base->mode;
    return conf;
}

static const char *affinity_cookie_name_of(const affinity_dir_conf *conf)
{
    return conf->cookie_name ? conf->cookie_name : AFFINITY_DEFAULT_COOKIE;
}

static const char *affinity_cookie_attrs_of(const affinity_dir_conf *conf)
{
    return conf->cookie_name ? conf->cookie_attrs : AFFINITY_DEFAULT_ATTRS;
}

static const char *affinity_set_cookie(cmd_parms *cmd, void *dconf,
                                       const char *name, const char *attrs)
{
    affinity_dir_conf *conf = dconf;
    const char *err;

    if (!affinity_cookie_name_valid(name)) {
        return apr_psprintf(cmd->pool, "AffinityCookie: \"%s\" is not a valid "
                            "cookie name; use an RFC 6265 token (letters, "
                            "digits and !#$%%&'*+-.^_`|~, no spaces)", name);
    }
    conf->cookie_attrs = affinity_cookie_attrs(cmd->pool,
                                               attrs ? attrs : AFFINITY_DEFAULT_ATTRS,
                                               &err);
    if (!conf->cookie_attrs) {
        return apr_psprintf(cmd->pool, "AffinityCookie: cookie attributes "
                            "rejected: %s; write them on one line, e.g. "
                            "\"Path=/; HttpOnly; Secure\"", err);
    }
    conf->cookie_name = name;
    return NULL;
}

/* The random salt belongs to the parent process, not to one configuration
 * cycle: it lives in the process pool, so graceful restarts keep it and
 * every child inherits the same bytes. */
static const char *affinity_random_salt(cmd_parms *cmd, apr_size_t *len)
{
    apr_pool_t *pp = cmd->server->process->pool;
    void *salt = NULL;
    apr_status_t rv;

    apr_pool_userdata_get(&salt, AFFINITY_RANDOM_SALT_KEY, pp);
    if (!salt) {
        salt = apr_palloc(pp, AFFINITY_RANDOM_SALT_LEN);
        rv = apr_generate_random_bytes(salt, AFFINITY_RANDOM_SALT_LEN);
        if (rv != APR_SUCCESS) {
            return NULL;
        }
        apr_pool_userdata_setn(salt, AFFINITY_RANDOM_SALT_KEY, NULL, pp);
        /* post_config announces a fresh salt once */
        apr_pool_userdata_setn("1", AFFINITY_RANDOM_SALT_KEY ".new", NULL, pp);
    }
    affinity_random_salt_used = 1;
    *len = AFFINITY_RANDOM_SALT_LEN;
    return salt;
}

static const char *affinity_file_salt(cmd_parms *cmd, const char *path,
                                      apr_size_t *len, const char **err)
{
    const char *full = ap_server_root_relative(cmd->temp_pool, path);
    apr_file_t *f;
    char *buf, *eol;
    apr_size_t n = AFFINITY_SALT_FILE_MAX;
    apr_status_t rv;
    char ebuf[120];

    if (!full) {
        *err = apr_psprintf(cmd->pool, "AffinitySalt: invalid path "
                            "\"file:%s\"", path);
        return NULL;
    }
    rv = apr_file_open(&f, full, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                       cmd->temp_pool);
    if (rv == APR_SUCCESS) {
        buf = apr_palloc(cmd->temp_pool, n + 1);
        rv = apr_file_read_full(f, buf, n, &n);
        apr_file_close(f);
        if (rv == APR_EOF) {
            rv = APR_SUCCESS;
        }
    }
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(cmd->pool, "AffinitySalt: cannot read salt file "
                            "%s: %s; create it with the salt on its first line "
                            "(readable by the user that starts httpd), or use "
                            "AffinitySalt random", full,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
        return NULL;
    }
    buf[n] = '\0';
    eol = memchr(buf, '\n', n);
    n = eol ? (apr_size_t)(eol - buf) : n;
    if (n && buf[n - 1] == '\r') {
        n--;
    }
    if (!n) {
        *err = apr_psprintf(cmd->pool, "AffinitySalt: the first line of %s is "
                            "empty; write the salt on it, or use "
                            "AffinitySalt none for no salt", full);
        return NULL;
    }
    *len = n;
    return apr_pmemdup(cmd->pool, buf, n);
}

static const char *affinity_set_salt(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    affinity_dir_conf *conf = dconf;
    const char *err = NULL;

    if (!strcasecmp(arg, "none")) {
        conf->salt = "";
        conf->salt_len = 0;
    }
    else if (!strcasecmp(arg, "random")) {
        conf->salt = affinity_random_salt(cmd, &conf->salt_len);
        if (!conf->salt) {
            return "AffinitySalt: random: the system random source failed; "
                   "use AffinitySalt file:PATH instead";
        }
    }
    else if (!strncmp(arg, "file:", 5)) {
        conf->salt = affinity_file_salt(cmd, arg + 5, &conf->salt_len, &err);
        if (!conf->salt) {
            return err;
        }
    }
    else if (!*arg) {
        return "AffinitySalt: empty salt; use AffinitySalt none for no salt";
    }
    else {
        conf->salt = arg;
        conf->salt_len = strlen(arg);
    }
    return NULL;
}

static const char *affinity_set_mode(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    affinity_dir_conf *conf = dconf;

    if (!strcasecmp(arg, "cookie")) {
        conf->mode = AFFINITY_MODE_COOKIE;
    }
    else if (!strcasecmp(arg, "domain")) {
        conf->mode = AFFINITY_MODE_DOMAIN;
    }
    else {
        return apr_psprintf(cmd->pool, "AffinityMode: unknown mode \"%s\"; "
                            "use cookie or domain", arg);
    }
    return NULL;
}

static const command_rec affinity_cmds[] = {
    AP_INIT_TAKE12("AffinityCookie", affinity_set_cookie, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "cookie name and optional attributes, e.g. "
                   "ROUTEID \"Path=/; HttpOnly\""),
    AP_INIT_TAKE1("AffinitySalt", affinity_set_salt, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "none, random, file:PATH or a salt string"),
    AP_INIT_FLAG("AffinityCookieRemove", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(affinity_dir_conf, remove),
                 RSRC_CONF | ACCESS_CONF,
                 "On: do not pass the affinity cookie to the member"),
    AP_INIT_FLAG("AffinityNoCache", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(affinity_dir_conf, nocache),
                 RSRC_CONF | ACCESS_CONF,
                 "On: mark responses that set the cookie Cache-Control: private"),
    AP_INIT_TAKE1("AffinityMode", affinity_set_mode, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "cookie (default) or domain"),
    {NULL}
};

/* ---- Member table -------------------------------------------------------- */

typedef struct {
    proxy_worker *worker;
    char route[PROXY_WORKER_MAX_ROUTE_SIZE];    /* s->route when built */
    char id_hex[AFFINITY_ID_HEX_LEN + 1];
    apr_uint64_t seed;                          /* domain-mode hash seed */
} affinity_member;

/* One per balancer and process, hung on balancer->context (unused by httpd
 * 2.4) and only touched with the balancer's thread mutex held, as the finder
 * always is. */
typedef struct {
    apr_pool_t *pool;               /* the table's own; dropped on rebuild */
    const char *salt;               /* the salt the IDs were made with */
    apr_size_t salt_len;
    int nelts;
    affinity_member *members;       /* parallel to balancer->workers */
    affinity_index *index;          /* route ID -> members[] slot */
} affinity_table;

static const char *affinity_identity(apr_pool_t *p, const proxy_worker *w)
{
    if (*w->s->route) {
        return w->s->route;
    }
    return apr_psprintf(p, "%s:%u", w->s->hostname_ex, (unsigned)w->s->port);
}

static affinity_table *affinity_table_build(proxy_balancer *balancer,
                                            const affinity_dir_conf *conf,
                                            request_rec *r)
{
    apr_pool_t *p;
    affinity_table *t;
    int i;

    /* parent NULL: the global pool, safe to create from any thread */
    apr_pool_create(&p, NULL);
    apr_pool_tag(p, "affinity_table");
    t = apr_pcalloc(p, sizeof(*t));
    t->pool = p;
    t->salt = conf->salt ? conf->salt : "";
    t->salt_len = conf->salt ? conf->salt_len : 0;
    t->nelts = balancer->workers->nelts;
    t->members = apr_pcalloc(p, (t->nelts ? t->nelts : 1) * sizeof(*t->members));
    t->index = affinity_index_make(p, t->nelts);

    for (i = 0; i < t->nelts; i++) {
        affinity_member *m = &t->members[i];
        unsigned char id[AFFINITY_ID_LEN];
        const char *identity;

        m->worker = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);
        /* copy with bounds: balancer-manager strcpy()s routes in place */
        apr_cpystrn(m->route, m->worker->s->route, sizeof(m->route));
        identity = *m->route ? m->route
                             : affinity_identity(p, m->worker);
        affinity_route_id(id, t->salt, t->salt_len, identity, strlen(identity));
        affinity_id_to_hex(m->id_hex, id);
        m->seed = affinity_member_seed(t->salt, t->salt_len, identity,
                                       strlen(identity));
        affinity_index_put(t->index, id, i);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0011: %s: route table built for %d member(s)",
                  balancer->s->name, t->nelts);
    return t;
}

/* Does the member's live route still match the one its ID was made from?
 * Runs per member in domain mode and for unknown IDs: most members have no
 * route, and one byte settles those. */
static APR_INLINE int affinity_member_current(const affinity_member *m)
{
    const char *live = m->worker->s->route;

    if (m->route[0] != live[0]) {
        return 0;
    }
    return !m->route[0]
           || !strncmp(m->route + 1, live + 1, sizeof(m->route) - 1);
}

static affinity_table *affinity_table_rebuild(proxy_balancer *balancer,
                                              const affinity_dir_conf *conf,
                                              request_rec *r)
{
    affinity_table *old = balancer->context;

    balancer->context = affinity_table_build(balancer, conf, r);
    if (old) {
        apr_pool_destroy(old->pool);
    }
    return balancer->context;
}

/* The cheap checks, on every request: members added (growth) and the salt in
 * force.  Route edits are caught per member by affinity_member_current(). */
static affinity_table *affinity_table_get(proxy_balancer *balancer,
                                          const affinity_dir_conf *conf,
                                          request_rec *r)
{
    affinity_table *t = balancer->context;
    const char *salt = conf->salt ? conf->salt : "";

    if (t && t->nelts == balancer->workers->nelts && t->salt == salt) {
        return t;
    }
    return affinity_table_rebuild(balancer, conf, r);
}

/* Every member's route as built, or rebuilt if any has changed. */
static affinity_table *affinity_table_verify_all(proxy_balancer *balancer,
                                                 const affinity_dir_conf *conf,
                                                 affinity_table *t,
                                                 request_rec *r, int *rebuilt)
{
    int i;

    for (i = 0; i < t->nelts; i++) {
        if (!affinity_member_current(&t->members[i])) {
            *rebuilt = 1;
            return affinity_table_rebuild(balancer, conf, r);
        }
    }
    *rebuilt = 0;
    return t;
}

static affinity_member *affinity_table_member(affinity_table *t,
                                              const proxy_worker *w)
{
    int i = w->s->index;

    /* s->index is the shm slot, which is the array position unless the
     * slotmem has holes */
    if (i >= 0 && i < t->nelts && t->members[i].worker == w) {
        return &t->members[i];
    }
    for (i = 0; i < t->nelts; i++) {
        if (t->members[i].worker == w) {
            return &t->members[i];
        }
    }
    return NULL;
}

/* The member for a worker, with its ID checked against the live route. */
static affinity_member *affinity_member_of(proxy_balancer *balancer,
                                           const affinity_dir_conf *conf,
                                           affinity_table **t,
                                           proxy_worker *w, request_rec *r)
{
    affinity_member *m = affinity_table_member(*t, w);

    if (!m || !affinity_member_current(m)) {
        *t = affinity_table_rebuild(balancer, conf, r);
        m = affinity_table_member(*t, w);
    }
    return m;
}

/* ---- Per-request state --------------------------------------------------- */

/* The finder runs again for the same request after a member fails, and the
 * cookie may have been stripped from headers_in by then: what was read and
 * tried is kept here, in r->request_config. */
typedef struct {
    int cookie_seen;                /* our cookie name was present */
    apr_array_header_t *ids;        /* well-formed IDs, header order */
    apr_array_header_t *tried;      /* proxy_worker *: failed this request */
    proxy_worker *chosen;
    const char *set_cookie;         /* Set-Cookie value to send, or NULL */
    int nocache;
    int filter_added;
} affinity_request;

static int affinity_collect_id(void *baton, const char *value, apr_size_t len)
{
    apr_array_header_t *ids = baton;
    unsigned char id[AFFINITY_ID_LEN];

    if (affinity_id_from_hex(id, value, len)) {
        memcpy(apr_array_push(ids), id, AFFINITY_ID_LEN);
    }
    return 0;
}

typedef struct {
    const char *name;
    affinity_request *req;
} affinity_read_baton;

static int affinity_read_header(void *baton, const char *key, const char *value)
{
    affinity_read_baton *rb = baton;

    (void)key;
    rb->req->cookie_seen += affinity_cookie_scan(value, rb->name,
                                                 affinity_collect_id,
                                                 rb->req->ids);
    return 1;
}

static void affinity_strip_cookie(request_rec *r, const char *name)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    apr_array_header_t *keep = apr_array_make(r->pool, 2, sizeof(const char *));
    int i, removed_any = 0;

    for (i = 0; i < arr->nelts; i++) {
        int removed;
        const char *rest;

        if (!e[i].key || strcasecmp(e[i].key, "Cookie")) {
            continue;
        }
        rest = affinity_cookie_strip(r->pool, e[i].val, name, &removed);
        removed_any |= removed;
        if (rest) {
            APR_ARRAY_PUSH(keep, const char *) = rest;
        }
    }
    if (!removed_any) {
        return;
    }
    apr_table_unset(r->headers_in, "Cookie");
    for (i = 0; i < keep->nelts; i++) {
        apr_table_addn(r->headers_in, "Cookie", APR_ARRAY_IDX(keep, i, const char *));
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE3, 0, r,
                  "AFF0013: cookie %s removed from the request to the member",
                  name);
}

static affinity_request *affinity_request_get(request_rec *r,
                                              const affinity_dir_conf *conf)
{
    affinity_request *req = ap_get_module_config(r->request_config,
                                                 &affinity_module);

    if (req) {
        /* called again: the member chosen last time failed */
        if (req->chosen) {
            APR_ARRAY_PUSH(req->tried, proxy_worker *) = req->chosen;
            req->chosen = NULL;
        }
        return req;
    }

    req = apr_pcalloc(r->pool, sizeof(*req));
    req->ids = apr_array_make(r->pool, 1, AFFINITY_ID_LEN);
    req->tried = apr_array_make(r->pool, 1, sizeof(proxy_worker *));
    req->nocache = conf->nocache == 1;
    if (conf->mode != AFFINITY_MODE_DOMAIN) {
        affinity_read_baton rb;

        rb.name = affinity_cookie_name_of(conf);
        rb.req = req;
        apr_table_do(affinity_read_header, &rb, r->headers_in, "Cookie", NULL);
        if (req->cookie_seen && conf->remove == 1) {
            affinity_strip_cookie(r, rb.name);
        }
    }
    ap_set_module_config(r->request_config, &affinity_module, req);
    return req;
}

static APR_INLINE int affinity_was_tried(const affinity_request *req,
                                         const proxy_worker *w)
{
    int i;

    for (i = 0; i < req->tried->nelts; i++) {
        if (APR_ARRAY_IDX(req->tried, i, proxy_worker *) == w) {
            return 1;
        }
    }
    return 0;
}

/* Usable as mod_proxy_balancer defines it, after httpd's own retry check,
 * and not already failed for this request (even when retry=0 revives it). */
static int affinity_usable(const affinity_request *req, proxy_worker *w,
                           request_rec *r)
{
    if (affinity_was_tried(req, w)) {
        return 0;
    }
    if (!PROXY_WORKER_IS_USABLE(w)) {
        affinity_retry_worker("BALANCER", w, r->server);
    }
    return PROXY_WORKER_IS_USABLE(w);
}

/* ---- Choosing a member for a new session --------------------------------- */

typedef struct {
    const affinity_request *req;
    int total_factor;
} affinity_byrequests_baton;

/* byrequests' weighting, so new sessions spread by lbfactor as operators
 * expect; members that failed for this request are skipped */
static int affinity_is_best_new(proxy_worker *current, proxy_worker *prev_best,
                                void *baton)
{
    affinity_byrequests_baton *b = baton;

    if (affinity_was_tried(b->req, current)) {
        return 0;
    }
    current->s->lbstatus += current->s->lbfactor;
    b->total_factor += current->s->lbfactor;
    return !prev_best || current->s->lbstatus > prev_best->s->lbstatus;
}

static proxy_worker *affinity_pick_new(proxy_balancer *balancer,
                                       request_rec *r,
                                       const affinity_request *req)
{
    affinity_byrequests_baton b;
    proxy_worker *w;

    b.req = req;
    b.total_factor = 0;
    w = affinity_get_best_worker(balancer, r, affinity_is_best_new, &b);
    if (w) {
        w->s->lbstatus -= b.total_factor;
    }
    return w;
}

typedef struct {
    proxy_balancer *balancer;
    const affinity_dir_conf *conf;
    affinity_table *table;
    const affinity_request *req;
    request_rec *r;
    apr_uint64_t key;
    apr_uint64_t best_cost;
    apr_uint64_t best_weight;
} affinity_domain_baton;

static int affinity_is_best_domain(proxy_worker *current, proxy_worker *prev_best,
                                   void *baton)
{
    affinity_domain_baton *b = baton;
    affinity_member *m;
    apr_uint64_t weight, cost;

    if (affinity_was_tried(b->req, current)) {
        return 0;
    }
    m = affinity_member_of(b->balancer, b->conf, &b->table, current, b->r);
    if (!m) {
        return 0;
    }
    weight = current->s->lbfactor > 0 ? (apr_uint64_t)current->s->lbfactor : 1;
    cost = affinity_rendezvous_cost(b->key, m->seed);
    if (prev_best && !affinity_rendezvous_beats(weight, cost, b->best_weight,
                                                b->best_cost)) {
        return 0;
    }
    b->best_weight = weight;
    b->best_cost = cost;
    return 1;
}

/* ---- The finder ---------------------------------------------------------- */

static void affinity_set_env(request_rec *r, const affinity_member *m,
                             const char *status)
{
    if (m) {
        apr_table_setn(r->subprocess_env, "AFFINITY_ROUTE", m->id_hex);
    }
    else {
        apr_table_unset(r->subprocess_env, "AFFINITY_ROUTE");
    }
    apr_table_setn(r->subprocess_env, "AFFINITY_STATUS", status);
}

static proxy_worker *affinity_find_domain(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          const affinity_request *req)
{
    affinity_domain_baton b;
    affinity_member *m = NULL;
    proxy_worker *w;
    const char *host = r->hostname ? r->hostname : r->server->server_hostname;

    memset(&b, 0, sizeof(b));
    b.balancer = balancer;
    b.conf = conf;
    b.table = t;
    b.req = req;
    b.r = r;
    b.key = affinity_host_key(host ? host : "");
    w = affinity_get_best_worker(balancer, r, affinity_is_best_domain, &b);
    if (w) {
        m = affinity_member_of(balancer, conf, &b.table, w, r);
    }
    affinity_set_env(r, m, "domain");
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0012: %s: host %s maps to %s", balancer->s->name,
                  host ? host : "(none)", w ? AFFINITY_WORKER_NAME(w) : "no member");
    return w;
}

/* One pass over the request's IDs: the first usable member named, or NULL.
 * *down: the first named member that is not usable; *known: some ID names a
 * member; *stale: a named member's route no longer matches its ID. */
static affinity_member *affinity_scan_ids(affinity_table *t,
                                          const affinity_request *req,
                                          request_rec *r, affinity_member **down,
                                          int *known, int *stale)
{
    int i;

    *down = NULL;
    *known = *stale = 0;
    for (i = 0; i < req->ids->nelts; i++) {
        int slot = affinity_index_get(t->index, (const unsigned char *)req->ids->elts
                                                + i * AFFINITY_ID_LEN);
        affinity_member *m;

        if (slot < 0) {
            continue;
        }
        m = &t->members[slot];
        if (!affinity_member_current(m)) {
            *stale = 1;
            continue;
        }
        *known = 1;
        if (affinity_usable(req, m->worker, r)) {
            return m;
        }
        if (!*down) {
            *down = m;
        }
    }
    return NULL;
}

/* The member named by the first of the request's IDs that names a usable
 * member, or NULL; *down as above.  When a named member's route was edited,
 * or no ID is known (maybe a route was just edited to match one), every
 * member's route is compared with the table, one string compare each and no
 * hashing unless one changed, and the IDs are looked up once more. */
static affinity_member *affinity_find_named(proxy_balancer *balancer,
                                            request_rec *r,
                                            const affinity_dir_conf *conf,
                                            affinity_table **t,
                                            const affinity_request *req,
                                            affinity_member **down)
{
    int known, stale, rebuilt;
    affinity_member *m = affinity_scan_ids(*t, req, r, down, &known, &stale);

    if (stale || (!m && !known && req->ids->nelts)) {
        *t = affinity_table_verify_all(balancer, conf, *t, r, &rebuilt);
        if (rebuilt) {
            m = affinity_scan_ids(*t, req, r, down, &known, &stale);
        }
    }
    return m;
}

static affinity_member *affinity_find_redirect(affinity_table *t,
                                               const affinity_member *from,
                                               const affinity_request *req,
                                               request_rec *r)
{
    char redirect[PROXY_WORKER_MAX_ROUTE_SIZE];
    int i;

    apr_cpystrn(redirect, from->worker->s->redirect, sizeof(redirect));
    if (!*redirect) {
        return NULL;
    }
    /* the live routes, not the table's: the target's route may have been
     * edited since the table was built (its ID is checked by the caller) */
    for (i = 0; i < t->nelts; i++) {
        affinity_member *m = &t->members[i];
        const char *live = m->worker->s->route;
        if (!strncmp(live, redirect, sizeof(redirect))
            && affinity_usable(req, m->worker, r)) {
            return m;
        }
    }
    return NULL;
}

static apr_status_t affinity_cookie_filter(ap_filter_t *f,
                                           apr_bucket_brigade *bb);

static proxy_worker *affinity_find_cookie(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          affinity_request *req)
{
    affinity_member *m, *down = NULL;
    const char *status;
    proxy_worker *w;

    m = affinity_find_named(balancer, r, conf, &t, req, &down);
    if (m) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0006: %s: cookie %s names usable member %s: kept",
                      balancer->s->name, m->id_hex, AFFINITY_WORKER_NAME(m->worker));
        affinity_set_env(r, m, "valid");
        apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
        req->set_cookie = NULL;
        return m->worker;
    }

    if (down) {
        status = "down";
        m = affinity_find_redirect(t, down, req, r);
        if (m) {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "AFF0010: %s: member %s is not usable, session "
                          "redirected to %s (route %.*s)", balancer->s->name,
                          AFFINITY_WORKER_NAME(down->worker),
                          AFFINITY_WORKER_NAME(m->worker),
                          (int)sizeof(down->worker->s->redirect),
                          down->worker->s->redirect);
            w = m->worker;
        }
        else if (balancer->s->sticky_force) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "AFF0009: %s: member %s of this session is not "
                          "usable and nofailover is On: refusing to move the "
                          "session", balancer->s->name,
                          AFFINITY_WORKER_NAME(down->worker));
            affinity_set_env(r, NULL, status);
            req->set_cookie = NULL;
            return NULL;
        }
        else {
            w = affinity_pick_new(balancer, r, req);
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "AFF0008: %s: member %s of this session is not "
                          "usable, session moves to %s", balancer->s->name,
                          AFFINITY_WORKER_NAME(down->worker),
                          w ? AFFINITY_WORKER_NAME(w) : "no member");
        }
    }
    else {
        status = req->cookie_seen ? "invalid" : "new";
        w = affinity_pick_new(balancer, r, req);
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0007: %s: %s, new session on %s", balancer->s->name,
                      req->cookie_seen ? "cookie names no member" : "no cookie",
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
    }

    m = w ? affinity_member_of(balancer, conf, &t, w, r) : NULL;
    affinity_set_env(r, m, status);
    if (!m) {
        req->set_cookie = NULL;
        return NULL;
    }
    req->set_cookie = apr_pstrcat(r->pool, affinity_cookie_name_of(conf), "=",
                                  m->id_hex, "; ",
                                  affinity_cookie_attrs_of(conf), NULL);
    apr_table_setn(r->subprocess_env, "BALANCER_ROUTE_CHANGED", "1");
    if (!req->filter_added) {
        ap_add_output_filter_handle(affinity_cookie_filter_handle, NULL, r,
                                    r->connection);
        req->filter_added = 1;
    }
    return m->worker;
}

static proxy_worker *affinity_finder(proxy_balancer *balancer, request_rec *r)
{
    const affinity_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                         &affinity_module);
    affinity_request *req = affinity_request_get(r, conf);
    affinity_table *t = affinity_table_get(balancer, conf, r);
    proxy_worker *w;

    if (req->ids->nelts) {
        char hex[AFFINITY_ID_HEX_LEN + 1];

        affinity_id_to_hex(hex, (const unsigned char *)req->ids->elts);
        apr_table_set(r->subprocess_env, "BALANCER_SESSION_STICKY",
                      affinity_cookie_name_of(conf));
        apr_table_set(r->subprocess_env, "BALANCER_SESSION_ROUTE", hex);
    }

    if (conf->mode == AFFINITY_MODE_DOMAIN) {
        w = affinity_find_domain(balancer, r, conf, t, req);
    }
    else {
        w = affinity_find_cookie(balancer, r, conf, t, req);
    }
    req->chosen = w;
    return w;
}

/* Zero byrequests-style counters when balancer-manager switches to us. */
static apr_status_t affinity_reset(proxy_balancer *balancer, server_rec *s)
{
    int i;

    (void)s;
    for (i = 0; i < balancer->workers->nelts; i++) {
        APR_ARRAY_IDX(balancer->workers, i, proxy_worker *)->s->lbstatus = 0;
    }
    return APR_SUCCESS;
}

static apr_status_t affinity_age(proxy_balancer *balancer, server_rec *s)
{
    (void)balancer;
    (void)s;
    return APR_SUCCESS;
}

static const proxy_balancer_method affinity_method = {
    "affinity",
    &affinity_finder,
    NULL,
    &affinity_reset,
    &affinity_age,
    NULL
};

/* ---- Response headers ---------------------------------------------------- */

static void affinity_add_cookie(request_rec *r, const affinity_request *req,
                                apr_table_t *headers)
{
    apr_table_addn(headers, "Set-Cookie", req->set_cookie);
    if (req->nocache) {
        const char *cc = apr_table_get(r->headers_out, "Cache-Control");
        apr_table_unset(r->headers_out, "Cache-Control");
        apr_table_setn(headers, "Cache-Control",
                       affinity_cache_control_private(r->pool, cc));
    }
}

/* Added by the finder once a cookie must be set; runs after mod_proxy has
 * put the member's headers in place, so the cookie names the member that
 * served.  A response httpd made itself (member unreachable) never reaches
 * this filter: error pages start a new filter chain. */
static apr_status_t affinity_cookie_filter(ap_filter_t *f,
                                           apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    const affinity_request *req = ap_get_module_config(r->request_config,
                                                       &affinity_module);

    if (req && req->set_cookie && req->chosen) {
        affinity_add_cookie(r, req, r->headers_out);
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* An error page after a member did answer (ProxyErrorOverride) still sets
 * the cookie; one after no member answered (503, 502) does not, and then the
 * log must not name a member either. */
static void affinity_insert_error_filter(request_rec *r)
{
    const affinity_request *req = ap_get_module_config(r->request_config,
                                                       &affinity_module);

    if (!req) {
        return;
    }
    if (req->chosen && apr_table_get(r->notes, "proxy-status")) {
        if (req->set_cookie) {
            affinity_add_cookie(r, req, r->err_headers_out);
        }
        return;
    }
    apr_table_unset(r->subprocess_env, "AFFINITY_ROUTE");
    apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
}

/* ---- Startup ------------------------------------------------------------- */

/* Warnings about balancers that use us: stickysession set (core stickiness
 * would bypass the finder) and members that share an identity. */
static void affinity_check_balancers(apr_pool_t *ptemp, server_rec *main_s)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    apr_hash_t *seen = apr_hash_make(ptemp);
    server_rec *s;

    if (!proxy) {
        return;
    }
    for (s = main_s; s; s = s->next) {
        proxy_server_conf *psf = ap_get_module_config(s->module_config, proxy);
        int b;

        if (!psf || !psf->balancers) {
            continue;
        }
        for (b = 0; b < psf->balancers->nelts; b++) {
            proxy_balancer *balancer = &APR_ARRAY_IDX(psf->balancers, b,
                                                      proxy_balancer);
            apr_hash_t *identities;
            int i;

            /* virtual hosts hold copies of the main server's balancers;
             * the copies share the shared-data pointer: key on its value */
            if (balancer->lbmethod != &affinity_method
                || apr_hash_get(seen, &balancer->s, sizeof(balancer->s))) {
                continue;
            }
            apr_hash_set(seen, &balancer->s, sizeof(balancer->s), "");

            if (*balancer->s->sticky) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             "AFF0002: %s uses lbmethod=affinity together with "
                             "stickysession=%s: httpd's own stickiness then "
                             "bypasses mod_affinity for matching routes; "
                             "remove stickysession", balancer->s->name,
                             balancer->s->sticky);
            }

            identities = apr_hash_make(ptemp);
            for (i = 0; i < balancer->workers->nelts; i++) {
                proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i,
                                                proxy_worker *);
                const char *identity = affinity_identity(ptemp, w);
                proxy_worker *other = apr_hash_get(identities, identity,
                                                   APR_HASH_KEY_STRING);
                if (other) {
                    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                                 "AFF0003: %s: members %s and %s share the "
                                 "identity \"%s\" and so one route ID; "
                                 "give them distinct route= values",
                                 balancer->s->name, AFFINITY_WORKER_NAME(other),
                                 AFFINITY_WORKER_NAME(w), identity);
                }
                else {
                    apr_hash_set(identities, identity, APR_HASH_KEY_STRING, w);
                }
            }
        }
    }
}

static int affinity_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    void *fresh = NULL;

    (void)pconf;
    (void)plog;
    /* the first of the two startup passes only checks the syntax */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }

    affinity_get_best_worker = APR_RETRIEVE_OPTIONAL_FN(proxy_balancer_get_best_worker);
    affinity_retry_worker = APR_RETRIEVE_OPTIONAL_FN(ap_proxy_retry_worker);
    if (!affinity_get_best_worker || !affinity_retry_worker) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0001: mod_proxy and mod_proxy_balancer (httpd 2.4.35 "
                     "or later) must be loaded for mod_affinity");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    if (affinity_random_salt_used) {
        apr_pool_userdata_get(&fresh, AFFINITY_RANDOM_SALT_KEY ".new", pp);
        if (fresh) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "AFF0004: AffinitySalt random: made a new random "
                         "salt; route cookies issued before this start no "
                         "longer match and those sessions start over (use "
                         "AffinitySalt file:PATH to keep them)");
            apr_pool_userdata_setn(NULL, AFFINITY_RANDOM_SALT_KEY ".new", NULL,
                                   pp);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "AFF0005: AffinitySalt random: kept the random salt "
                         "of the running server across this restart");
        }
    }
    affinity_random_salt_used = 0;

    /* once per (re)start, so the log says which build is running */
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "AFF0020: mod_affinity " AFFINITY_VERSION " loaded");

    affinity_check_balancers(ptemp, s);
    return OK;
}

static void affinity_register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, PROXY_LBMETHOD, "affinity", "0", &affinity_method);
    ap_hook_post_config(affinity_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(affinity_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    affinity_cookie_filter_handle =
        ap_register_output_filter("AFFINITY_COOKIE", affinity_cookie_filter,
                                  NULL, AP_FTYPE_CONTENT_SET);
}
