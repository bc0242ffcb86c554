/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status_view.c: the status page's view model, built once per
 * request.  The handler holds none of the balancers' mutexes: members are
 * read from the worker slots in shared memory (whose pointers are copied
 * under the balancer's thread and global mutexes), each balancer's
 * settings from the <Proxy> sections matching it (affinity_config_balancer,
 * the one answer to that question), route IDs computed afresh from the live
 * routes and the salt.  The lookups (?id=, ?host=) are asked of each
 * balancer's mode, which takes the locks its answer needs: the page never
 * re-implements a choice.  It never writes shared state and never shows
 * the salt.  The renderers read only what is built here.
 */

#include "apr_hash.h"

#include "http_core.h"

#include "affinity_status.h"

/* ---- Members ---------------------------------------------------------------- */

/* As mod_proxy would judge it now, without changing anything: a member in
 * error counts as usable once its retry time has passed. */
static int affinity_usable_now(const proxy_worker_shared *s)
{
    unsigned int st = s->status;

    if (!(st & PROXY_WORKER_INITIALIZED)) {
        return 0;
    }
    if ((st & PROXY_WORKER_IN_ERROR) && !(st & PROXY_WORKER_STOPPED)
        && ((st & PROXY_WORKER_IGNORE_ERRORS)
            || apr_time_now() > s->error_time + s->retry)) {
        st &= ~PROXY_WORKER_IN_ERROR;
    }
    return !(st & PROXY_WORKER_NOT_USABLE_BITMAP);
}

/* balancer-manager's Status column */
static const char *affinity_state_text(apr_pool_t *p, const proxy_worker_shared *s)
{
    static const struct {
        unsigned int bit;
        const char *name;
    } flags[] = {
        {PROXY_WORKER_INITIALIZED, "Init "}, {PROXY_WORKER_IGNORE_ERRORS, "Ign "},
        {PROXY_WORKER_DRAIN, "Drn "}, {PROXY_WORKER_GENERIC, "Gen "},
        {PROXY_WORKER_IN_SHUTDOWN, "Shut "}, {PROXY_WORKER_DISABLED, "Dis "},
        {PROXY_WORKER_STOPPED, "Stop "}, {PROXY_WORKER_IN_ERROR, "Err "},
        {PROXY_WORKER_HOT_STANDBY, "Stby "}, {PROXY_WORKER_HOT_SPARE, "Spar "},
        {PROXY_WORKER_FREE, "Free "}, {PROXY_WORKER_HC_FAIL, "HcFl "}
    };
    const char *out = "";
    apr_size_t i;

    for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (s->status & flags[i].bit) {
            out = apr_pstrcat(p, out, flags[i].name, NULL);
        }
    }
    if (!*out) {
        out = "??? ";
    }
    if (!(s->status & PROXY_WORKER_NOT_USABLE_BITMAP)
        && (s->status & PROXY_WORKER_INITIALIZED)) {
        out = apr_pstrcat(p, out, "Ok ", NULL);
    }
    return apr_pstrndup(p, out, strlen(out) - 1);
}

/* Does the balancer's mode choose by host (?host= lookups)? */
static void affinity_add_member(affinity_view *v, affinity_view_balancer *vb,
                                apr_hash_t *counts, proxy_worker_shared *s)
{
    apr_pool_t *p = v->r->pool;
    affinity_view_member *m = apr_array_push(vb->members);
    proxy_worker fake;
    unsigned char id[AFFINITY_ID_LEN];
    const affinity_mode *mode = affinity_mode_of(vb->conf);
    const apr_uint64_t *sum;
    int k;

    memset(m, 0, sizeof(*m));
    m->s = s;
    m->name = apr_pstrndup(p, s->name_ex, sizeof(s->name_ex));
    /* balancer-manager strcpy()s routes in place: copy with bounds */
    m->route = apr_pstrndup(p, s->route, sizeof(s->route));
    m->redirect = apr_pstrndup(p, s->redirect, sizeof(s->redirect));
    memset(&fake, 0, sizeof(fake));
    fake.s = s;
    m->identity = affinity_identity(p, &fake, m->route);
    affinity_route_id(id, vb->salt, vb->salt_len, m->identity, strlen(m->identity));
    affinity_id_to_hex(m->id_hex, id);
    m->id_shown = v->ids_prefix ? apr_pstrndup(p, m->id_hex,
                                               AFFINITY_SHOWN_ID_DIGITS)
                                : m->id_hex;
    m->usable = affinity_usable_now(s);
    m->state = affinity_state_text(p, s);
    /* balancer-manager shows lbfactor / 100 */
    m->lbfactor = s->lbfactor / 100.0;
    m->lbset = s->lbset;
    m->draining = (s->status & PROXY_WORKER_DRAIN) != 0;
    /* the page sees changes too, as a finder would (a new session then
     * finds the same "usable since") */
    m->ramp = affinity_slow_start_ramp(vb->balancer, &fake, vb->slow_start,
                                       apr_time_now(), v->r, &m->ramp_left);
    {
        affinity_member_life life;
        apr_uint32_t now = (apr_uint32_t)apr_time_sec(v->r->request_time);

        affinity_life_view(vb->balancer->s->sname, m->name, s->status, now,
                           &life);
        m->draining_since = m->draining ? life.draining_since : 0;
        m->last_session = life.last_session;
        m->sessions_minute = affinity_life_last_minute(&life, now);
        m->drain_timeout = vb->conf && vb->conf->drain_timeout > 0
                           ? vb->conf->drain_timeout : 0;
        if (m->draining_since) {
            apr_uint32_t from = m->last_session > m->draining_since
                                ? m->last_session : m->draining_since;

            m->quiet = now > from ? now - from : 0;
            m->safe_to_stop = m->quiet >= AFFINITY_DRAIN_QUIET;
        }
    }
    sum = apr_hash_get(counts, apr_pstrcat(p, vb->balancer->s->sname, "\n",
                                           m->name, NULL),
                       APR_HASH_KEY_STRING);
    for (k = 0; sum && k < AFFINITY_NSTATUS; k++) {
        m->count[k] = sum[k];
        if (k != AFFINITY_COUNT_BOUNDED) {
            m->total += sum[k];
        }
    }
    for (k = 0; mode->started[k]; k++) {
        m->started += m->count[affinity_status_index(mode->started[k])];
    }
    vb->started += m->started;
}

/* Members from the worker slots in shared memory, in the order a synced
 * child holds them: configured ones first, then those added live. */
static void affinity_add_members(affinity_view *v, affinity_view_balancer *vb,
                                 apr_hash_t *counts)
{
    proxy_balancer *balancer = vb->balancer;
    apr_hash_t *seen = apr_hash_make(v->r->pool);
    apr_array_header_t *shared = apr_array_make(v->r->pool, 8,
                                                sizeof(proxy_worker_shared *));
    int i, locked;

    /* This handler holds none of the balancer's mutexes, and the list
     * changes under it: request threads append members other processes
     * added (thread mutex), balancer-manager appends the one it adds
     * (global mutex), both filling the slot after counting it.  Hold both
     * just to copy the shared-data pointers of the complete members. */
    if (PROXY_THREAD_LOCK(balancer) != APR_SUCCESS) {
        return;
    }
    locked = affinity_members_lock(balancer);
    for (i = 0; i < balancer->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

        if (affinity_worker_ready(w)) {
            APR_ARRAY_PUSH(shared, proxy_worker_shared *) = w->s;
        }
    }
    affinity_members_unlock(balancer, locked);
    PROXY_THREAD_UNLOCK(balancer);

    for (i = 0; i < shared->nelts; i++) {
        proxy_worker_shared *s = APR_ARRAY_IDX(shared, i, proxy_worker_shared *);

        /* by name, not by address: a virtual host's copy of a server-level
         * balancer may hold its members in other slots, which
         * balancer-manager edits of this server never reach */
        apr_hash_set(seen, apr_pstrndup(v->r->pool, s->name_ex,
                                        sizeof(s->name_ex)),
                     APR_HASH_KEY_STRING, "");
        affinity_add_member(v, vb, counts, s);
    }
    if (!balancer->storage || !balancer->wslot) {
        return;
    }
    for (i = 0; i < balancer->max_workers; i++) {
        proxy_worker_shared *s;

        if (balancer->storage->dptr(balancer->wslot, (unsigned int)i,
                                    (void *)&s) != APR_SUCCESS) {
            break;
        }
        if (!s->hash.def || !s->hash.fnv
            || apr_hash_get(seen, apr_pstrndup(v->r->pool, s->name_ex,
                                               sizeof(s->name_ex)),
                            APR_HASH_KEY_STRING)) {
            continue;
        }
        affinity_add_member(v, vb, counts, s);
    }
}

/* ---- Lookups: the modes answer --------------------------------------------- */

static int affinity_hexdigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}

/* An ID, an ID with a suffix (expiry fields: ID.dates.mac), a prefixed
 * application cookie (ID~value), each optionally as NAME=VALUE and quoted. */
static void affinity_parse_id_query(apr_pool_t *p, const char *in,
                                    affinity_id_query *q)
{
    const char *v = in, *eq;
    apr_size_t len;
    int i;

    memset(q, 0, sizeof(*q));
    while (apr_isspace(*v)) {
        v++;
    }
    /* NAME=VALUE as pasted from a Cookie header; a prefixed value may
     * itself hold '=' after its '~' */
    eq = strchr(v, '=');
    if (eq && (!strchr(v, '~') || eq < strchr(v, '~'))) {
        q->cookie_name = apr_pstrndup(p, v, eq - v);
        v = eq + 1;
    }
    len = strlen(v);
    while (len && apr_isspace(v[len - 1])) {
        len--;
    }
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    q->value = v;
    q->value_len = len;
    if (len < AFFINITY_ID_HEX_LEN) {
        q->error = "the value is shorter than a route ID (40 hex digits)";
        return;
    }
    for (i = 0; i < AFFINITY_ID_HEX_LEN; i++) {
        if (!affinity_hexdigit(v[i])) {
            q->error = "the value does not start with a route ID (40 hex digits)";
            return;
        }
        q->uppercase |= apr_isupper(v[i]);
        q->hex[i] = apr_tolower(v[i]);
    }
    q->hex[AFFINITY_ID_HEX_LEN] = '\0';
    if (len == AFFINITY_ID_HEX_LEN) {
        q->form = "id";
    }
    else if (v[AFFINITY_ID_HEX_LEN] == '~') {
        q->form = "prefixed";
        q->suffix = apr_pstrndup(p, v + AFFINITY_ID_HEX_LEN, len - AFFINITY_ID_HEX_LEN);
    }
    else if (v[AFFINITY_ID_HEX_LEN] == '.') {
        q->form = "id+suffix";
        q->suffix = apr_pstrndup(p, v + AFFINITY_ID_HEX_LEN, len - AFFINITY_ID_HEX_LEN);
    }
    else {
        q->error = "40 hex digits followed by something that is neither "
                   "'.' (expiry fields) nor '~' (prefixed value)";
    }
}

static const affinity_view_member *affinity_by_route(const affinity_view_balancer *vb,
                                                     const char *route)
{
    int i;

    for (i = 0; *route && i < vb->members->nelts; i++) {
        const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                       affinity_view_member);
        if (!strcmp(m->route, route) && m->usable) {
            return m;
        }
    }
    return NULL;
}

/* The mode's own answer for the value (see affinity_answer). */
static void affinity_ask_mode(request_rec *r, const affinity_view_balancer *vb,
                              const affinity_id_query *q, affinity_answer *a)
{
    affinity_mode_of(vb->conf)->answer(vb->balancer, r, vb->conf, q->value,
                                       q->value_len, a);
}

static int affinity_answer_has(const affinity_answer *a, const char *hex)
{
    unsigned char id[AFFINITY_ID_LEN];
    int i;

    if (!a->ids || !affinity_id_from_hex(id, hex, AFFINITY_ID_HEX_LEN)) {
        return 0;
    }
    for (i = 0; i < a->ids->nelts; i++) {
        if (!memcmp(a->ids->elts + i * AFFINITY_ID_LEN, id, AFFINITY_ID_LEN)) {
            return 1;
        }
    }
    return 0;
}

static apr_array_header_t *affinity_lookup_id(const affinity_view *v,
                                              const affinity_id_query *q)
{
    apr_pool_t *p = v->r->pool;
    apr_array_header_t *out = apr_array_make(p, 1, sizeof(affinity_id_match));
    int b, i;

    if (q->error) {
        return out;
    }
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        affinity_answer a;
        int asked = 0;

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            affinity_id_match *match;
            const affinity_view_member *to;

            if (strcmp(m->id_hex, q->hex)) {
                continue;
            }
            if (!asked++) {
                affinity_ask_mode(v->r, vb, q, &a);
            }
            match = apr_array_push(out);
            match->vb = vb;
            match->m = m;
            match->honoured = 0;
            if (q->cookie_name && a.carrier && strcmp(q->cookie_name, a.carrier)) {
                /* a carrier "header NAME" says its kind itself */
                match->outcome = apr_pstrcat(p, "not read: this balancer reads ",
                                             strncmp(a.carrier, "header ", 7)
                                             ? "cookie " : "", a.carrier,
                                             ", not cookie ", q->cookie_name,
                                             NULL);
            }
            else if (!affinity_answer_has(&a, m->id_hex)) {
                match->outcome = apr_pstrcat(p, "not honoured: ", a.why,
                                             "; a request carrying it gets ",
                                             a.status, NULL);
            }
            else if (m->usable) {
                match->honoured = 1;
                match->outcome = "honoured: the request goes to this member";
            }
            else if ((to = affinity_by_route(vb, m->redirect))) {
                match->outcome = apr_pstrcat(p, "not honoured: the member is "
                                             "not usable; its Route Redirect "
                                             "sends the session to ", to->name,
                                             NULL);
            }
            else if (vb->balancer->s->sticky_force) {
                match->outcome = "not honoured: the member is not usable and "
                                 "nofailover is On: the request gets 503";
            }
            else {
                match->outcome = apr_pstrcat(p, "not honoured: the member is "
                                             "not usable; ", a.moves, NULL);
            }
        }
    }
    return out;
}

/* The host as httpd keeps r->hostname: no port, no brackets kept apart. */
static const char *affinity_host_of(apr_pool_t *p, const char *in)
{
    char *h = apr_pstrdup(p, in);
    char *colon;

    while (apr_isspace(*h)) {
        h++;
    }
    if (*h == '[') {
        char *end = strchr(h, ']');
        if (end) {
            end[1] = '\0';
        }
    }
    else if ((colon = strchr(h, ':'))) {
        *colon = '\0';
    }
    ap_str_tolower(h);
    return h;
}

/* The mode's choice for a host, made by the mode (lbsets, drain, standby
 * and spare members as mod_proxy walks them). */
static const affinity_view_member *affinity_lookup_host(request_rec *r,
                                                        const affinity_view_balancer *vb,
                                                        const char *host,
                                                        int by_key)
{
    const affinity_mode *mode = affinity_mode_of(vb->conf);
    proxy_worker_shared *s = by_key
        ? mode->answer_key(vb->balancer, r, vb->conf, host)
        : mode->answer_host(vb->balancer, r, vb->conf, host);
    int i;

    for (i = 0; s && i < vb->members->nelts; i++) {
        const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                       affinity_view_member);
        if (m->s == s) {
            return m;
        }
    }
    return NULL;
}

/* Every balancer whose mode chooses by host (by_key: by a key), asked for
 * host (the key). */
static apr_array_header_t *affinity_lookup_hosts(const affinity_view *v,
                                                 const char *host, int by_key)
{
    apr_array_header_t *out = apr_array_make(v->r->pool, 1,
                                             sizeof(affinity_host_match));
    int i;

    for (i = 0; i < v->balancers->nelts; i++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, i,
                                                          affinity_view_balancer);
        affinity_host_match *hm;

        if (by_key ? !vb->by_key : !vb->by_host) {
            continue;
        }
        hm = apr_array_push(out);
        hm->vb = vb;
        hm->m = affinity_lookup_host(v->r, vb, host, by_key);
    }
    return out;
}


/* ---- The view -------------------------------------------------------------- */

static void affinity_add_balancers(affinity_view *v, proxy_server_conf *sconf,
                                   apr_hash_t *counts)
{
    request_rec *r = v->r;
    apr_hash_t *seen = apr_hash_make(r->pool);
    int b, k;

    for (b = 0; b < sconf->balancers->nelts; b++) {
        proxy_balancer *balancer = &APR_ARRAY_IDX(sconf->balancers, b,
                                                  proxy_balancer);
        affinity_view_balancer *vb;
        const affinity_mode *mode;
        const apr_uint64_t *sum;

        /* lbpname is the live choice (balancer-manager may switch it) */
        if (!balancer->s || strncmp(balancer->s->lbpname, AFFINITY_LBMETHOD,
                                    sizeof(balancer->s->lbpname))
            || apr_hash_get(seen, &balancer->s, sizeof(balancer->s))) {
            continue;
        }
        apr_hash_set(seen, &balancer->s, sizeof(balancer->s), "");
        vb = apr_array_push(v->balancers);
        memset(vb, 0, sizeof(*vb));
        vb->balancer = balancer;
        vb->name = apr_pstrndup(r->pool, balancer->s->name, sizeof(balancer->s->name));
        /* what a request to its root gets, whichever way it comes
         * (ProxyPass, SetHandler): settings made in <Location> and
         * <Directory> are not seen */
        vb->conf = affinity_config_balancer(r->pool, r->server, balancer);
        mode = affinity_mode_of(vb->conf);
        vb->mode = mode->name;
        vb->cookie = mode->cookie(vb->conf, &vb->cookie_attrs);
        vb->sessions = (mode->flags & AFFINITY_CARRIES_SESSION) != 0;
        vb->by_host = mode->answer_host != NULL;
        vb->by_key = mode->answer_key != NULL;
        vb->salt_kind = vb->conf->salt_kind ? vb->conf->salt_kind : "none";
        vb->nofailover = balancer->s->sticky_force != 0;
        vb->max_members = balancer->max_workers;
        /* the ramp counts for new sessions (hash mode's empty keys too)
         * and, in the key modes, for the bounded load */
        vb->slow_start = (vb->sessions || vb->by_key
                          || affinity_balance_factor_of(vb->conf))
                         && vb->conf->slow_start > 0
                         ? vb->conf->slow_start : 0;
        if (mode->try_cookie) {
            vb->can_try = 1;
            mode->try_cookie(balancer, r, vb->conf, NULL, &vb->try_instead);
        }
        vb->salt = vb->conf->salt ? vb->conf->salt : "";
        vb->salt_len = vb->conf->salt ? vb->conf->salt_len : 0;
        vb->members = apr_array_make(r->pool, 4, sizeof(affinity_view_member));
        affinity_add_members(v, vb, counts);
        sum = apr_hash_get(counts, apr_pstrcat(r->pool, balancer->s->sname, "\n",
                                               NULL), APR_HASH_KEY_STRING);
        for (k = 0; sum && k < AFFINITY_NSTATUS; k++) {
            vb->unrouted[k] = sum[k];
        }
    }
}

affinity_view *affinity_view_build(request_rec *r, const char *key,
                                   const char *id,
                                   const char *host)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    proxy_server_conf *sconf = proxy ? ap_get_module_config(r->server->module_config,
                                                            proxy) : NULL;
    affinity_view *v = apr_pcalloc(r->pool, sizeof(*v));
    apr_hash_t *counts = affinity_counts_snapshot(r->pool);
    const affinity_dir_conf *here = ap_get_module_config(r->per_dir_config,
                                                         &affinity_module);

    v->r = r;
    v->ids_prefix = here && here->status_ids == 0;
    v->counting = affinity_counting();
    v->since = affinity_counting_since();
    v->generation = ap_state_query(AP_SQ_CONFIG_GEN);
    v->store = affinity_store_health_get(&v->store_health);
    v->balancers = apr_array_make(r->pool, 4, sizeof(affinity_view_balancer));
    if (sconf && sconf->balancers) {
        affinity_add_balancers(v, sconf, counts);
    }
    /* the lookups, after the members: the modes answer them */
    if (id) {
        v->id_query = id;
        affinity_parse_id_query(r->pool, id, &v->id);
        v->id_matches = affinity_lookup_id(v, &v->id);
    }
    if (host) {
        v->host_query = host;
        v->host = affinity_host_of(r->pool, host);
        v->host_matches = affinity_lookup_hosts(v, v->host, 0);
    }
    if (key) {
        v->key_asked = 1;
        v->key_matches = affinity_lookup_hosts(v, key, 1);
    }
    return v;
}

