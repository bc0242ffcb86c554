/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_mode_learn.c: learn mode ("AffinityMode learn NAME", HAProxy's stick
 * table on a response cookie, NGINX's "sticky learn").  The application's
 * cookie NAME is never touched: every Set-Cookie of NAME a member sends is
 * remembered in the store (affinity_store.c) as key(value) -> route ID of
 * that member, and a request's NAME values are looked up there.
 *
 * Choice: the first value whose entry names a usable member wins (valid); an
 * entry naming a member that is not usable follows the session rules
 * (affinity_session.c) and the entry is then rewritten to the member that
 * served; a value without an entry goes where weighted rendezvous hashing of
 * the value sends it (the same member on every front end even with the
 * store down), and that choice is NOT stored (unknown): only a member's
 * Set-Cookie creates an entry, so a client sending values of its own
 * cannot fill the store and evict learned sessions; no NAME: a new session
 * chosen as byrequests does.
 *
 * Writes happen once the member answered (output filter), never in the
 * finder: the finder may run several times for one request, and only the
 * member that served is worth remembering.  A hit writes the entry again
 * only when it is older than a quarter of the timeout.
 */

#include "http_request.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

extern const affinity_mode affinity_mode_learn;

/* Store lookups per request: a client cannot make us do more */
#define AFFINITY_LEARN_MAX_VALUES 4

typedef struct {
    const char *value;
    apr_size_t len;
    unsigned char key[AFFINITY_LEARN_KEY_LEN];
    int found;                          /* an entry, not expired */
    int old;                            /* found under the 0.1.0 key */
    int refresh;                        /* older than timeout / 4 */
    unsigned char id[AFFINITY_ID_LEN];
} affinity_learn_value;

typedef struct affinity_learn_state {
    apr_array_header_t *values;         /* affinity_learn_value, header order */
    int header;                         /* NAME is a header (header:NAME) */
    int looked_up;
    const char *balancer;               /* the name keys are made with */
    const char *salt;
    apr_size_t salt_len;
    const affinity_learn_secret *secret;    /* of the salt */
    int timeout;
    /* the choice (finder) */
    int session;                        /* values[] slot of the session, -1 */
    int write;                          /* store session -> served */
    unsigned char served[AFFINITY_ID_LEN];
    int served_set;
    int done;                           /* the response was looked at */
} affinity_learn_state;

/* ---- The request --------------------------------------------------------- */

typedef struct {
    request_rec *r;
    affinity_learn_state *st;
} affinity_learn_baton;

static int affinity_learn_collect(void *baton, const char *value,
                                  apr_size_t len)
{
    affinity_learn_baton *b = baton;
    affinity_learn_value *v;

    /* an empty value is no session */
    if (!len || b->st->values->nelts >= AFFINITY_LEARN_MAX_VALUES) {
        return 0;
    }
    v = apr_array_push(b->st->values);
    memset(v, 0, sizeof(*v));
    v->value = apr_pstrmemdup(b->r->pool, value, len);
    v->len = len;
    return 0;
}

/* The elements of one header value, a comma-separated list (RFC 9110
 * 5.6.1; httpd joins a request's repeated header lines with commas), each
 * without the white space around it, to fn; returns how many. */
typedef int affinity_learn_value_fn(void *baton, const char *value,
                                    apr_size_t len);

static int affinity_learn_elements(const char *v, affinity_learn_value_fn *fn,
                                   void *baton)
{
    int n = 0;

    while (*v) {
        const char *end = strchr(v, ',');
        const char *e = end ? end : v + strlen(v);
        const char *b = v;

        while (b < e && (*b == ' ' || *b == '\t')) {
            b++;
        }
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        if (e > b) {
            n++;
            fn(baton, b, (apr_size_t)(e - b));
        }
        if (!end) {
            break;
        }
        v = end + 1;
    }
    return n;
}

typedef struct {
    affinity_learn_value_fn *fn;
    void *baton;
    int seen;
} affinity_learn_header_baton;

static int affinity_learn_header_line(void *baton, const char *key,
                                      const char *value)
{
    affinity_learn_header_baton *hb = baton;

    (void)key;
    hb->seen += affinity_learn_elements(value, hb->fn, hb->baton);
    return 1;
}

/* Every value of header name in t (every line, every list element). */
static int affinity_learn_header_values(apr_table_t *t, const char *name,
                                        affinity_learn_value_fn *fn,
                                        void *baton)
{
    affinity_learn_header_baton hb;

    hb.fn = fn;
    hb.baton = baton;
    hb.seen = 0;
    apr_table_do(affinity_learn_header_line, &hb, t, name, NULL);
    return hb.seen;
}

/* A state holding NAME's values as the request carries them (cookie NAME,
 * or header NAME); the headers are left exactly as sent.  *seen: how many
 * values there were. */
static affinity_learn_state *affinity_learn_state_make(request_rec *r,
                                                       const affinity_dir_conf *conf,
                                                       int *seen)
{
    affinity_learn_baton b;
    affinity_learn_state *st = apr_pcalloc(r->pool, sizeof(*st));

    st->values = apr_array_make(r->pool, 1, sizeof(affinity_learn_value));
    st->session = -1;
    st->header = conf->mode_header != NULL;
    b.r = r;
    b.st = st;
    *seen = st->header
            ? affinity_learn_header_values(r->headers_in, conf->mode_cookie,
                                           affinity_learn_collect, &b)
            : affinity_request_cookies(r, conf->mode_cookie,
                                       affinity_learn_collect, &b);
    return st;
}

/* "cookie" or "header", for messages */
static const char *affinity_learn_kind(const affinity_dir_conf *conf)
{
    return conf->mode_header ? "header" : "cookie";
}

/* The secret of no salt (AffinitySalt unset), made once at startup. */
static affinity_learn_secret affinity_learn_nosalt;

static void affinity_learn_make_key(const affinity_learn_state *st,
                                    const char *value, apr_size_t len,
                                    unsigned char *key)
{
    affinity_learn_key_kind(key, st->secret, st->balancer,
                            st->header ? "header" : NULL, value, len);
}

/* The entry of v: under its key, or, when the store answers that there is
 * none, under the key versions up to 0.1.0 wrote it with (HMAC-SHA1 with
 * the salt's states made once: two SHA1 blocks, only misses pay them).  An
 * entry found under the old key is marked for a rewrite, which the response
 * does under the new key (writes use only the new key; the old entry
 * expires by itself, and front ends still on the old version keep finding
 * it until then). */
static apr_status_t affinity_learn_get(request_rec *r,
                                       const affinity_learn_state *st,
                                       affinity_learn_value *v,
                                       apr_int64_t *written, int *old)
{
    unsigned char k[AFFINITY_LEARN_OLD_KEY_LEN];
    apr_status_t rv;

    *old = 0;
    rv = affinity_store_get(r, v->key, v->id, written, st->timeout);
    if (rv != APR_NOTFOUND) {
        return rv;                      /* found, or the store failed */
    }
    affinity_learn_old_key_kind(k, st->secret, st->balancer,
                                st->header ? "header" : NULL, v->value,
                                v->len);
    rv = affinity_store_get_old(r, k, v->id, written, st->timeout);
    *old = rv == APR_SUCCESS;
    return rv;
}

/* Makes the keys (balancer name and salt of conf) and looks the values up
 * in the store: every one, or the first max when max > 0. */
static void affinity_learn_lookup_all(request_rec *r, affinity_learn_state *st,
                                      const char *balancer,
                                      const affinity_dir_conf *conf, int max)
{
    apr_int64_t now = apr_time_sec(r->request_time);
    int i;

    st->looked_up = 1;
    st->balancer = apr_pstrdup(r->pool, balancer);
    st->salt = conf->salt ? conf->salt : "";
    st->salt_len = conf->salt ? conf->salt_len : 0;
    st->secret = conf->learn_secret ? conf->learn_secret
                                    : &affinity_learn_nosalt;
    st->timeout = conf->store_timeout > 0 ? conf->store_timeout
                                          : AFFINITY_STORE_TIMEOUT_DEFAULT;
    for (i = 0; i < st->values->nelts; i++) {
        affinity_learn_value *v = &APR_ARRAY_IDX(st->values, i,
                                                 affinity_learn_value);
        apr_int64_t written;
        int age, old;

        /* the values may be fixups' (affinity_learn_read): looked up anew */
        v->found = v->old = v->refresh = 0;
        affinity_learn_make_key(st, v->value, v->len, v->key);
        if ((max > 0 && i >= max)
            || affinity_learn_get(r, st, v, &written, &old) != APR_SUCCESS) {
            continue;
        }
        age = affinity_learn_entry_age(written, now, st->timeout);
        if (age < 0) {
            continue;
        }
        v->found = 1;
        v->old = old;
        /* an entry under the old key: rewritten under the new one */
        v->refresh = old ? 1 : age;
    }
}

/* ---- Looking up before the finder ---------------------------------------- */

/* mod_proxy_balancer calls the finder with the balancer's per-process thread
 * mutex held: a store round trip there holds up every request of that
 * balancer in the child, and a hung memcached or Redis all of them.  So the
 * lookups are done in a fixups hook, outside that lock, and the finder only
 * takes their results.  They are kept apart from the request's state
 * (whose presence tells the response side that the finder ran) until the
 * finder adopts them, and only when they were made for this very request,
 * balancer, salt, timeout and values: otherwise (a subrequest, a balancer
 * reached another way, a Cookie header changed since) the finder looks up
 * as it always did.  An internal redirect is a new request_rec that passes
 * fixups again and is looked up for itself. */

/* The slot of httpd's per-request notes (core's request config) that holds
 * them: a pointer in an array every request_rec has, where pool userdata
 * cost a hash table made in each request's pool (about 750 instructions a
 * learn hit).  Registered with the hooks, as httpd asks. */
static apr_size_t affinity_learn_early_note;

/* The header lines the values were read from: how many, and each line's
 * value pointer.  Table values are replaced, never written in place, so
 * the same pointers in the same order mean the same values. */
#define AFFINITY_LEARN_CARRIERS 4

typedef struct {
    const request_rec *r;               /* whose lookups these are */
    const char *name;                   /* NAME */
    int header;                         /* of a header */
    affinity_learn_state *st;
    int seen;                           /* values carried (read's *seen) */
    int carriers;                       /* lines, -1: too many to check */
    const char *carrier[AFFINITY_LEARN_CARRIERS];
} affinity_learn_early;

/* The lines that carry NAME's values (Cookie, or header NAME) into
 * carrier[]; their number, or -1 when there are more than it holds. */
static int affinity_learn_carriers(const request_rec *r, int header,
                                   const char *name, const char **carrier)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    const char *line = header ? name : "Cookie";
    int i, n = 0;

    for (i = 0; i < arr->nelts; i++) {
        if (affinity_header_is(e[i].key, line)) {
            if (n == AFFINITY_LEARN_CARRIERS) {
                return -1;
            }
            carrier[n++] = e[i].val;
        }
    }
    return n;
}

static module *affinity_proxy_module;

/* The balancer mod_proxy_balancer will use for the proxy URL url
 * ("balancer://NAME..."), as ap_proxy_get_balancer finds it (lowercased
 * name without the path, active balancers only); mod_proxy's own symbols
 * are not ours to link to. */
static proxy_balancer *affinity_learn_balancer_of(request_rec *r,
                                                  const char *url)
{
    proxy_server_conf *sconf;
    const char *slash = strchr(url + sizeof(BALANCER_PREFIX) - 1, '/');
    apr_size_t len = slash ? (apr_size_t)(slash - url) : strlen(url);
    int i;

    if (!affinity_proxy_module
        || !(sconf = ap_get_module_config(r->server->module_config,
                                          affinity_proxy_module))
        || !sconf->balancers) {
        return NULL;
    }
    for (i = 0; i < sconf->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(sconf->balancers, i,
                                           proxy_balancer);

        /* the length first: a string compare only for names as long */
        if (len < sizeof(b->s->name) && b->s && b->s->name[len] == '\0'
            && !b->s->inactive && !strncasecmp(b->s->name, url, len)) {
            return b;
        }
    }
    return NULL;
}

/* Did httpd's directory walk run for r?  Then its proxy walk did not: a
 * request is mapped to storage one way or the other. */
static int affinity_learn_dir_walked(request_rec *r)
{
    void **note = ap_get_request_note(r, AP_NOTE_DIRECTORY_WALK);

    return note && *note;
}

/* Every way a request reaches a balancer ends here, in fixups, after
 * mod_rewrite's per-directory [P] and the core's SetHandler:
 *  - r->filename "proxy:balancer://..." (ProxyPass, ProxyPassMatch,
 *    <Location> + ProxyPass, RewriteRule [P]), which mod_proxy uses as is;
 *  - otherwise a handler "proxy:balancer://NAME" (SetHandler), to which
 *    mod_proxy's handler appends r->filename.
 * When httpd's proxy walk did not run (SetHandler, per-directory [P]), the
 * balancer's <Proxy> sections are merged in first
 * (affinity_config_proxy_sections): only those requests pay for it.  Then
 * learn mode's lookups, outside the balancer's lock. */
static int affinity_learn_fixups(request_rec *r)
{
    const affinity_dir_conf *conf;
    affinity_learn_early *early;
    proxy_balancer *balancer;
    affinity_learn_state *st;
    const char *url;
    void **note;
    int seen, walked;

    if (r->proxyreq && r->filename && !strncmp(r->filename, "proxy:", 6)) {
        url = r->filename + 6;
        walked = !affinity_learn_dir_walked(r);
    }
    else if (r->handler && !strncmp(r->handler, "proxy:", 6)) {
        url = r->handler + 6;
        walked = 0;
    }
    else {
        return DECLINED;
    }
    /* httpd's proxy walk merged the balancer's sections already: a request
     * not in learn mode (every request of the other modes) is done here,
     * before any string is compared */
    if (walked) {
        conf = ap_get_module_config(r->per_dir_config, &affinity_module);
        if (!conf || conf->mode != &affinity_mode_learn || !conf->mode_cookie) {
            return DECLINED;
        }
    }
    if (strncasecmp(url, BALANCER_PREFIX, sizeof(BALANCER_PREFIX) - 1)) {
        return DECLINED;
    }
    balancer = affinity_learn_balancer_of(r, url);
    if (!balancer || strcmp(balancer->s->lbpname, AFFINITY_LBMETHOD)) {
        return DECLINED;
    }
    if (!walked) {
        /* matched as mod_proxy's handler will name it */
        affinity_config_proxy_sections(r, url == r->filename + 6 ? url
                                          : apr_pstrcat(r->pool, url,
                                                        r->filename, NULL));
    }
    /* a subrequest may only be looked ahead at, never run */
    if (r->main) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &affinity_module);
    if (!conf || conf->mode != &affinity_mode_learn || !conf->mode_cookie) {
        return DECLINED;
    }
    st = affinity_learn_state_make(r, conf, &seen);
    if (!st->values->nelts) {
        return DECLINED;
    }
    affinity_learn_lookup_all(r, st, balancer->s->name, conf, 0);
    early = apr_palloc(r->pool, sizeof(*early));
    early->r = r;
    early->name = conf->mode_cookie;
    early->header = conf->mode_header != NULL;
    early->st = st;
    early->seen = seen;
    early->carriers = affinity_learn_carriers(r, early->header, early->name,
                                              early->carrier);
    /* each request_rec (an internal redirect's too) has notes of its own;
     * early->r is checked all the same */
    note = ap_get_request_note(r, affinity_learn_early_note);
    if (note) {
        *note = early;
    }
    return DECLINED;
}

/* The early lookups of this request, if they hold for the finder's
 * balancer and configuration: copied into st (found, IDs). */
/* This request's early lookups, or NULL. */
static const affinity_learn_early *affinity_learn_early_of(request_rec *r)
{
    void **note = ap_get_request_note(r, affinity_learn_early_note);
    const affinity_learn_early *early = note ? *note : NULL;

    return early && early->r == r ? early : NULL;
}

static int affinity_learn_adopt(proxy_balancer *balancer, request_rec *r,
                                const affinity_dir_conf *conf,
                                affinity_learn_state *st)
{
    const affinity_learn_early *early = affinity_learn_early_of(r);
    const affinity_learn_state *e;
    const char *salt = conf->salt ? conf->salt : "";
    apr_size_t salt_len = conf->salt ? conf->salt_len : 0;
    int timeout = conf->store_timeout > 0 ? conf->store_timeout
                                          : AFFINITY_STORE_TIMEOUT_DEFAULT;
    int i;

    if (!early) {
        return 0;
    }
    e = early->st;
    if (strcmp(early->name, conf->mode_cookie)
        || early->header != (conf->mode_header != NULL)
        || strcmp(e->balancer, balancer->s->name)
        || e->salt_len != salt_len || memcmp(e->salt, salt, salt_len)
        || e->timeout != timeout
        || e->values->nelts != st->values->nelts) {
        return 0;
    }
    /* the same list when the finder took fixups' values (learn_read) */
    for (i = 0; st->values != e->values && i < st->values->nelts; i++) {
        const affinity_learn_value *a = &APR_ARRAY_IDX(e->values, i,
                                                       affinity_learn_value);
        const affinity_learn_value *b = &APR_ARRAY_IDX(st->values, i,
                                                       affinity_learn_value);

        if (a->len != b->len || memcmp(a->value, b->value, a->len)) {
            return 0;
        }
    }
    for (i = 0; st->values != e->values && i < st->values->nelts; i++) {
        APR_ARRAY_IDX(st->values, i, affinity_learn_value)
            = APR_ARRAY_IDX(e->values, i, affinity_learn_value);
    }
    st->looked_up = 1;
    st->balancer = e->balancer;
    st->salt = e->salt;
    st->salt_len = e->salt_len;
    st->secret = e->secret;
    st->timeout = e->timeout;
    return 1;
}

/* The values fixups read, when the lines they came from are still there
 * as they were (the same NAME, the same lines): a second pass over the
 * Cookie header would find the same (it cost about 900 instructions a
 * hit).  A copy of that state, not yet adopted: affinity_learn_adopt()
 * still checks the balancer, salt and timeout before the lookups count. */
static void affinity_learn_read(request_rec *r, const affinity_dir_conf *conf,
                                affinity_request *req)
{
    const affinity_learn_early *early = affinity_learn_early_of(r);
    const char *now[AFFINITY_LEARN_CARRIERS];
    int header = conf->mode_header != NULL, i;

    if (early && early->carriers >= 0 && early->header == header
        && conf->mode_cookie && !strcmp(early->name, conf->mode_cookie)
        && affinity_learn_carriers(r, header, early->name, now)
           == early->carriers) {
        for (i = 0; i < early->carriers && now[i] == early->carrier[i]; i++) {
        }
        if (i == early->carriers) {
            affinity_learn_state *st = apr_pmemdup(r->pool, early->st,
                                                   sizeof(*st));
            st->looked_up = 0;
            req->learn = st;
            req->cookie_seen = early->seen;
            return;
        }
    }
    req->learn = affinity_learn_state_make(r, conf, &req->cookie_seen);
}

static void affinity_learn_register_hooks(apr_pool_t *p)
{
    /* after mod_rewrite's per-directory [P], mod_proxy's canonicalisation
     * and RequestHeader edits */
    static const char *const pre[] = { "mod_rewrite.c", "mod_proxy.c",
                                       "mod_headers.c", NULL };

    (void)p;
    affinity_learn_early_note = ap_register_request_note();
    ap_hook_fixups(affinity_learn_fixups, pre, NULL, APR_HOOK_LAST);
    affinity_learn_secret_init(&affinity_learn_nosalt, "", 0);
}

static void affinity_learn_post_config(server_rec *s)
{
    affinity_proxy_module = ap_find_linked_module("mod_proxy.c");
}

/* Looks every value up once per request (the finder may run again), or
 * takes the early lookups; the IDs of the entries found go to req->ids for
 * the shared session rules. */
static void affinity_learn_lookup(proxy_balancer *balancer, request_rec *r,
                                  const affinity_dir_conf *conf,
                                  affinity_request *req)
{
    affinity_learn_state *st = req->learn;
    int i;

    if (st->looked_up) {
        return;
    }
    if (!affinity_learn_adopt(balancer, r, conf, st)) {
        /* not looked up before the lock (a subrequest that runs, a Cookie
         * or NAME header changed since fixups): under it, one round trip at most,
         * whatever the client sends */
        affinity_learn_lookup_all(r, st, balancer->s->name, conf, 1);
    }
    for (i = 0; i < st->values->nelts; i++) {
        const affinity_learn_value *v = &APR_ARRAY_IDX(st->values, i,
                                                       affinity_learn_value);
        if (v->found) {
            memcpy(apr_array_push(req->ids), v->id, AFFINITY_ID_LEN);
        }
    }
}

/* The values[] slot of the first value whose entry names the member of
 * ID id. */
static int affinity_learn_slot_of_id(const affinity_learn_state *st,
                                     const unsigned char *id)
{
    int i;

    for (i = 0; i < st->values->nelts; i++) {
        const affinity_learn_value *v = &APR_ARRAY_IDX(st->values, i,
                                                       affinity_learn_value);
        if (v->found && !memcmp(v->id, id, AFFINITY_ID_LEN)) {
            return i;
        }
    }
    return -1;
}

/* The same for member m. */
static int affinity_learn_slot_of(const affinity_learn_state *st,
                                  const affinity_member *m)
{
    unsigned char id[AFFINITY_ID_LEN];

    affinity_id_from_hex(id, m->id_hex, AFFINITY_ID_HEX_LEN);
    return affinity_learn_slot_of_id(st, id);
}

/* ---- The finder ---------------------------------------------------------- */

static proxy_worker *affinity_learn_hashed(proxy_balancer *balancer,
                                           request_rec *r, affinity_table **t,
                                           const affinity_request *req,
                                           const affinity_learn_value *v)
{
    return affinity_pick_hashed(balancer, r, t, req,
                                affinity_hash64(v->value, v->len));
}

/* A session whose member is not usable goes where its value hashes to, as
 * a value without an entry would: the same member on every front end. */
static proxy_worker *affinity_learn_move(proxy_balancer *balancer,
                                         request_rec *r, affinity_table **t,
                                         const affinity_request *req,
                                         const affinity_member *down,
                                         void *baton)
{
    affinity_learn_state *st = baton;
    int session = affinity_learn_slot_of(st, down);

    return affinity_learn_hashed(balancer, r, t, req,
                                 &APR_ARRAY_IDX(st->values,
                                                session < 0 ? 0 : session,
                                                affinity_learn_value));
}

/* Values whose entries name no member.  One whose entry names no member any
 * more (a route edited live) is the session: its entry is rewritten to the
 * member that serves.  A value without an entry is not stored: only what a
 * member issued creates an entry, or any client could fill the store with
 * values of its choosing and evict the sessions learned. */
static proxy_worker *affinity_learn_unknown(proxy_balancer *balancer,
                                            request_rec *r, affinity_table **t,
                                            const affinity_request *req,
                                            const affinity_member *down,
                                            void *baton)
{
    affinity_learn_state *st = baton;

    (void)down;
    for (st->session = 0; st->session < st->values->nelts; st->session++) {
        if (APR_ARRAY_IDX(st->values, st->session, affinity_learn_value).found) {
            break;
        }
    }
    if (st->session == st->values->nelts) {
        st->session = 0;
    }
    return affinity_learn_hashed(balancer, r, t, req,
                                 &APR_ARRAY_IDX(st->values, st->session,
                                                affinity_learn_value));
}

static proxy_worker *affinity_find_learn(proxy_balancer *balancer,
                                         request_rec *r,
                                         const affinity_dir_conf *conf,
                                         affinity_table *t,
                                         affinity_request *req)
{
    affinity_learn_state *st = req->learn;
    affinity_session_choice c;
    const affinity_learn_value *v;
    affinity_member *m;
    const char *status, *route;
    proxy_worker *w;

    affinity_learn_lookup(balancer, r, conf, req);
    st->served_set = 0;
    st->write = 0;
    st->session = -1;

    affinity_session_choose(balancer, r, &t, req, affinity_learn_move,
                            st->values->nelts ? affinity_learn_unknown : NULL,
                            st, &c);
    m = c.member;
    w = c.worker;
    switch (c.kind) {
    case AFFINITY_SESSION_KEPT:
        status = "valid";
        /* the member's ID, in binary once: the slot, then what served */
        affinity_id_from_hex(st->served, m->id_hex, AFFINITY_ID_HEX_LEN);
        st->served_set = 1;
        st->session = affinity_learn_slot_of_id(st, st->served);
        v = st->session >= 0 ? &APR_ARRAY_IDX(st->values, st->session,
                                               affinity_learn_value) : NULL;
        st->write = v && v->refresh;
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0095: %s: %s %s (value #%d) was learned on "
                      "usable member %s: kept%s", balancer->s->name,
                      affinity_learn_kind(conf), conf->mode_cookie, st->session + 1,
                      AFFINITY_WORKER_NAME(w),
                      st->write ? ", entry to be refreshed" : "");
        break;
    case AFFINITY_SESSION_DOWN:
        status = c.drained ? "drained" : "down";
        st->session = affinity_learn_slot_of(st, c.down);
        st->write = st->session >= 0;    /* the entry exists: rewrite it */
        break;
    case AFFINITY_SESSION_UNKNOWN:
        status = "unknown";
        st->write = APR_ARRAY_IDX(st->values, st->session,
                                  affinity_learn_value).found;
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0096: %s: %s %s has no entry naming a member, "
                      "session hashed to %s", balancer->s->name,
                      affinity_learn_kind(conf), conf->mode_cookie,
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
        break;
    default:
        status = "new";
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0097: %s: no %s %s, new session on %s",
                      balancer->s->name, affinity_learn_kind(conf),
                      conf->mode_cookie,
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
        break;
    }
    if (w && !m) {
        m = affinity_member_of(balancer, &t, w, r);
    }
    route = affinity_set_env(r, m, status);
    if (!m) {
        affinity_set_session_env(r, req, conf->mode_cookie);
        return NULL;
    }
    if (!st->served_set) {
        affinity_id_from_hex(st->served, m->id_hex, AFFINITY_ID_HEX_LEN);
        st->served_set = 1;
    }
    /* the IDs were looked up in this finder; the first is mostly the
     * member's, whose hex set_env has just copied */
    if (req->ids->nelts && !memcmp(req->ids->elts, st->served,
                                   AFFINITY_ID_LEN)) {
        affinity_set_session_env_hex(r, conf->mode_cookie, route);
    }
    else {
        affinity_set_session_env(r, req, conf->mode_cookie);
    }
    return m->worker;
}

/* ---- The response ------------------------------------------------------- */

typedef struct {
    request_rec *r;
    affinity_learn_state *st;
    const char *name;
    int session_done;                   /* the session's entry was written */
    int learned, removed;
} affinity_learn_resp;

static int affinity_learn_is_session(const affinity_learn_resp *lr,
                                     const char *value, apr_size_t len)
{
    const affinity_learn_value *v;

    if (lr->st->session < 0) {
        return 0;
    }
    v = &APR_ARRAY_IDX(lr->st->values, lr->st->session, affinity_learn_value);
    return v->len == len && !memcmp(v->value, value, len);
}

/* Has the value the request was routed by an entry? */
static int affinity_learn_session_found(const affinity_learn_resp *lr)
{
    return lr->st->session >= 0
           && APR_ARRAY_IDX(lr->st->values, lr->st->session,
                            affinity_learn_value).found;
}

/* A value the member issued (Set-Cookie or response header NAME). */
static int affinity_learn_issued(affinity_learn_resp *lr, const char *value,
                                 apr_size_t len)
{
    affinity_learn_state *st = lr->st;
    unsigned char k[AFFINITY_LEARN_KEY_LEN];

    if (affinity_learn_is_session(lr, value, len)) {
        /* the application sets the session's own value again: a write only
         * when the entry is not already right and fresh, or when there was
         * none (the member issued the value the client came with) */
        if (!lr->session_done
            && (st->write || !affinity_learn_session_found(lr))) {
            affinity_store_put(lr->r, APR_ARRAY_IDX(st->values, st->session,
                                                    affinity_learn_value).key,
                               st->served, st->timeout);
            lr->learned++;
        }
        lr->session_done = 1;
        return 0;
    }
    affinity_learn_make_key(st, value, len, k);
    affinity_store_put(lr->r, k, st->served, st->timeout);
    lr->learned++;
    return 0;
}

static int affinity_learn_set_cookie(void *baton, const char **header,
                                     const affinity_set_cookie_t *sc)
{
    affinity_learn_resp *lr = baton;
    affinity_learn_state *st = lr->st;
    unsigned char k[AFFINITY_LEARN_KEY_LEN];
    unsigned char k_old[AFFINITY_LEARN_OLD_KEY_LEN];
    const char *value;
    apr_size_t len;

    if (!sc) {
        return 0;
    }
    /* the value as the client will send it back: cookie scans drop the
     * quotes, so must we */
    value = *header + sc->value_off;
    len = sc->value_len;
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value++;
        len -= 2;
    }
    if (sc->deletion) {
        /* the client's session ends: forget the entry it was routed by
         * (only one that exists: a value without one costs no store call),
         * and the one named in the deletion if that differs */
        if (affinity_learn_session_found(lr) && !lr->session_done) {
            const affinity_learn_value *v = &APR_ARRAY_IDX(st->values,
                                                           st->session,
                                                           affinity_learn_value);

            affinity_store_remove(lr->r, v->key);
            if (v->old) {
                /* found under the 0.1.0 key and not rewritten yet: that
                 * entry is the one to end */
                affinity_learn_old_key_kind(k_old, st->secret, st->balancer,
                                            st->header ? "header" : NULL,
                                            v->value, v->len);
                affinity_store_remove_old(lr->r, k_old);
            }
            lr->session_done = 1;
            lr->removed++;
        }
        if (len && !affinity_learn_is_session(lr, value, len)) {
            affinity_learn_make_key(st, value, len, k);
            affinity_store_remove(lr->r, k);
            lr->removed++;
        }
        return 0;
    }
    return affinity_learn_issued(lr, value, len);
}

/* A header NAME of the member's response: every value is learned as a
 * Set-Cookie's is.  A header has no deletion. */
static int affinity_learn_header_issued(void *baton, const char *value,
                                        apr_size_t len)
{
    return affinity_learn_issued(baton, value, len);
}

/* Learns from the member's Set-Cookie of NAME (both tables, any status),
 * then stores the finder's choice if nothing above already did.  The
 * headers are only read.  Runs once per request. */
static void affinity_learn_response(request_rec *r, const affinity_request *req)
{
    affinity_learn_state *st = req->learn;
    affinity_learn_resp lr;

    if (!st || st->done || !st->served_set || !req->mode_cookie) {
        return;
    }
    st->done = 1;
    lr.r = r;
    lr.st = st;
    lr.name = req->mode_cookie;
    lr.session_done = 0;
    lr.learned = lr.removed = 0;
    if (st->header) {
        affinity_learn_header_values(r->headers_out, lr.name,
                                     affinity_learn_header_issued, &lr);
        affinity_learn_header_values(r->err_headers_out, lr.name,
                                     affinity_learn_header_issued, &lr);
    }
    else {
        affinity_set_cookie_walk(r, r->headers_out, lr.name,
                                 affinity_learn_set_cookie, &lr);
        affinity_set_cookie_walk(r, r->err_headers_out, lr.name,
                                 affinity_learn_set_cookie, &lr);
    }
    if (!lr.session_done && st->write && st->session >= 0) {
        affinity_store_put(r, APR_ARRAY_IDX(st->values, st->session,
                                            affinity_learn_value).key,
                           st->served, st->timeout);
        lr.learned++;
    }
    if (lr.learned || lr.removed) {
        char hex[AFFINITY_ID_HEX_LEN + 1];

        affinity_id_to_hex(hex, st->served);
        ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                      "AFF0098: %s %s: %d entr%s written (member %s), "
                      "%d removed", st->header ? "header" : "cookie", lr.name, lr.learned,
                      lr.learned == 1 ? "y" : "ies", hex, lr.removed);
    }
}

/* ---- What the status page is told --------------------------------------- */

/* A request carries no route ID in learn mode: the store is asked by the
 * NAME value's key, which the page cannot reverse. */
static void affinity_learn_answer(proxy_balancer *balancer, request_rec *r,
                                  const affinity_dir_conf *conf,
                                  const char *value, apr_size_t len,
                                  affinity_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->carrier = conf->mode_header ? conf->mode_header : conf->mode_cookie;
    a->status = "unknown";
    a->why = apr_pstrcat(r->pool, "in learn mode requests carry no route ID: "
                         "the value of ", affinity_learn_kind(conf), " ",
                         conf->mode_cookie,
                         " is looked up in the store, and a value no member "
                         "issued is hashed to a member", NULL);
}

/* ---- The mode ------------------------------------------------------------ */

static const char *affinity_learn_configure(cmd_parms *cmd,
                                            affinity_dir_conf *conf,
                                            const char *arg)
{
    const char *colon = arg ? strchr(arg, ':') : NULL;
    const char *err;

    if (colon && !strncasecmp(arg, "header:", 7)) {
        if (!arg[7] || !affinity_cookie_name_valid(arg + 7)) {
            return apr_psprintf(cmd->pool, "AffinityMode learn: \"%s\" does "
                                "not name a header; use header:NAME with an "
                                "RFC 9110 field name (letters, digits and "
                                "!#$%%&'*+-.^_`|~), e.g. AffinityMode learn "
                                "header:Mcp-Session-Id", arg);
        }
        conf->mode_cookie = arg + 7;
        conf->mode_header = apr_pstrcat(cmd->pool, "header ", arg + 7, NULL);
        err = NULL;
    }
    else if (colon && !strncasecmp(arg, "cookie:", 7)) {
        err = affinity_mode_cookie_arg(cmd, conf, "learn", arg + 7);
    }
    else if (colon) {
        return apr_psprintf(cmd->pool, "AffinityMode learn: \"%.*s\" is not "
                            "a carrier; use cookie:NAME, header:NAME or a bare "
                            "cookie NAME", (int)(colon - arg + 1), arg);
    }
    else {
        err = affinity_mode_cookie_arg(cmd, conf, "learn", arg);
    }
    if (!err) {
        /* post_config sets up the store */
        affinity_store_learn_used();
    }
    return err;
}

static int affinity_learn_response_wanted(const affinity_request *req)
{
    return req->mode_cookie && req->learn;
}

static void affinity_learn_response_fixup(request_rec *r,
                                          const affinity_request *req,
                                          apr_table_t *target)
{
    (void)target;
    affinity_learn_response(r, req);
}

/* The status page's carrier: the cookie NAME, or "header NAME" */
static const char *affinity_learn_cookie(const affinity_dir_conf *conf,
                                         const char **attrs)
{
    *attrs = NULL;
    return conf->mode_header ? conf->mode_header : conf->mode_cookie;
}

static const char *const affinity_learn_started[] = {
    "new", "invalid", "down", "unknown", "expired", "drained", NULL
};

/* The try link: a learned session exists only once the member itself
 * issued the application's session value, and a member in standby gets no
 * new session to issue one in. */
static const char *affinity_learn_try(proxy_balancer *balancer, request_rec *r,
                                      const affinity_dir_conf *conf,
                                      const proxy_worker_shared *s,
                                      const char **instead)
{
    *instead = apr_psprintf(r->pool, "learn mode cannot send a tester to one "
                            "member: a session is the value of %s that a "
                            "member issued, and a member in standby issues "
                            "none; enable it (with AffinitySlowStart, new "
                            "sessions reach it slowly) or test it directly, "
                            "not through the balancer", conf->mode_cookie);
    return NULL;
}

const affinity_mode affinity_mode_learn = {
    "learn", "learn [cookie:|header:]NAME",
    AFFINITY_CARRIES_SESSION,
    affinity_learn_configure,
    affinity_learn_read,
    affinity_find_learn,
    affinity_learn_response_wanted,
    affinity_learn_response_fixup,
    affinity_learn_cookie,
    affinity_learn_answer,
    NULL,
    affinity_learn_started,
    /* AffinityCookie and AffinityCookieRemove do nothing here either, but
     * AFF0045 has never been said for learn mode: a new warning would be
     * a change of behaviour, left to its own issue */
    0,
    affinity_learn_register_hooks,
    affinity_learn_post_config,
    affinity_learn_try
};
