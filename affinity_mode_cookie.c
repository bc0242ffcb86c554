/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_mode_cookie.c: cookie mode, the default.  Every member has a
 * route ID, SHA1(salt . identity), where the identity is the member's
 * route= or else its host:port.  A request whose affinity cookie names a
 * usable member goes there; anything else gets a new member, chosen by
 * lbfactor exactly like byrequests, and a cookie naming it.  Everything
 * cookie mode does is here: reading the cookie (dated, bare and stock
 * values), the choice, issuing the cookie, the response's work on
 * Set-Cookie, and the status page's answer for a value.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* ---- The request ------------------------------------------------------- */

typedef struct {
    const char *name;
    affinity_request *req;
    apr_pool_t *pool;
    int legacy;                     /* AffinityLegacyRoutes On */
} affinity_read_baton;

/* Keeps the values that may name a member; they are checked later, against
 * the member table (affinity_cookie_resolve).  Dated values are kept even
 * with expiry off, so that turning it off loses no session either. */
static int affinity_collect_value(void *baton, const char *value, apr_size_t len)
{
    affinity_read_baton *rb = baton;
    affinity_value v;
    const char *route;
    apr_size_t route_len;

    v.text = value;
    if (affinity_id_from_hex(v.st.id, value, len)) {
        v.kind = AFFINITY_VALUE_BARE;
    }
    else if (affinity_stamp_parse(&v.st, value, len)) {
        v.kind = AFFINITY_VALUE_DATED;
    }
    else if (rb->legacy && affinity_legacy_route(value, len, &route, &route_len)
             && route_len < PROXY_WORKER_MAX_ROUTE_SIZE) {
        v.kind = AFFINITY_VALUE_LEGACY;
        v.route = apr_pstrmemdup(rb->pool, route, route_len);
        v.text = NULL;
    }
    else {
        rb->req->malformed++;   /* for AFF0007: malformed, not unknown */
        return 0;
    }
    *(affinity_value *)apr_array_push(rb->req->values) = v;
    return 0;
}

/* AffinityCookieRemove: the member gets one Cookie header holding every
 * other pair, the lines joined with "; " (RFC 6265, as HTTP/2 joins them);
 * httpd has already joined an HTTP/1.1 request's lines into one with ", ",
 * which affinity_cookie_strip() reads as a separator too. */
static void affinity_strip_cookie(request_rec *r, const char *name)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    const char *joined = NULL;
    int i, removed_any = 0;

    for (i = 0; i < arr->nelts; i++) {
        int removed;
        const char *rest;

        if (!affinity_header_is(e[i].key, "Cookie")) {
            continue;
        }
        rest = affinity_cookie_strip(r->pool, e[i].val, name, &removed);
        removed_any |= removed;
        if (rest) {
            joined = joined ? apr_pstrcat(r->pool, joined, "; ", rest, NULL)
                            : rest;
        }
    }
    if (!removed_any) {
        return;
    }
    apr_table_unset(r->headers_in, "Cookie");
    if (joined) {
        apr_table_setn(r->headers_in, "Cookie", joined);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE3, 0, r,
                  "AFF0013: cookie %s removed from the request to the member",
                  name);
}

/* Cookie mode reads its own cookie: every value that may name a member is
 * kept for the finder (affinity_cookie_resolve). */
static void affinity_cookie_read(request_rec *r, const affinity_dir_conf *conf,
                                 affinity_request *req)
{
    affinity_read_baton rb;

    rb.name = req->cookie_name = affinity_cookie_name_of(conf);
    rb.req = req;
    rb.pool = r->pool;
    rb.legacy = conf->legacy_routes == 1;
    req->cookie_seen = affinity_request_cookies(r, rb.name,
                                                affinity_collect_value, &rb);
    if (req->cookie_seen && conf->remove == 1) {
        affinity_strip_cookie(r, rb.name);
    }
}

/* ---- Session lifetime and stock values ------------------------------------ */

static void affinity_accept_id(affinity_request *req, const unsigned char *id,
                               const char *hex, affinity_value_kind kind,
                               int checked, apr_uint32_t first,
                               apr_uint32_t last)
{
    affinity_id_info *info;

    memcpy(apr_array_push(req->ids), id, AFFINITY_ID_LEN);
    info = apr_array_push(req->info);
    info->kind = kind;
    info->checked = checked;
    info->first = first;
    info->last = last;
    info->hex = hex;
}

/* The member whose live route is the stock value's route: balancer-manager
 * edits count at once.  Only with AffinityLegacyRoutes On, and only for
 * values of the stock form: one string compare per member. */
static affinity_member *affinity_legacy_member(proxy_balancer *balancer,
                                               request_rec *r,
                                               affinity_table **t,
                                               const char *route)
{
    char live[PROXY_WORKER_MAX_ROUTE_SIZE];
    int i;

    for (i = 0; i < (*t)->nelts; i++) {
        proxy_worker *w = (*t)->members[i].worker;

        if (!w) {
            continue;
        }
        /* copy with bounds: balancer-manager strcpy()s routes in place */
        apr_cpystrn(live, w->s->route, sizeof(live));
        if (*live && !strcmp(live, route)) {
            /* its ID as of the live route (rebuilds when it was edited) */
            return affinity_member_of(balancer, t, w, r);
        }
    }
    return NULL;
}

/* A value without signed dates where expiry is on and no migration is
 * declared (AffinityCookieUpgrade Off): its age cannot be known, so it is
 * as good as expired.  Honouring it would let a client keep its member for
 * ever by cutting the dates off a value it was given. */
static void affinity_undated(request_rec *r, const char *name,
                             const char *what, affinity_request *req)
{
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0066: %s: cookie value without dates (%s) where "
                  "expiry is on: expired (AffinityCookieUpgrade On honours "
                  "such values during a migration)", name, what);
    req->expired++;
}

/* Expiry in force with no salt: a configuration the startup check could not
 * see (AFF0060).  Said at most once per balancer and process every
 * AFFINITY_LOG_INTERVAL. */
static void affinity_no_salt(proxy_balancer *balancer, request_rec *r)
{
    apr_uint32_t suppressed;

    if (affinity_log_allowed(balancer, AFFINITY_LOG_NOSALT, r->request_time,
                             &suppressed)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "AFF0067: %s: AffinityCookieMaxIdle/MaxLife in force for "
                      "%s without a salt: no dated cookie value is honoured "
                      "(%lu more since the last such line); give the section "
                      "that serves it an AffinitySalt", balancer->s->name,
                      r->uri, (unsigned long)suppressed);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0067: %s: expiry without a salt: dated value "
                      "ignored", balancer->s->name);
    }
}

static void affinity_cookie_resolve(proxy_balancer *balancer, request_rec *r,
                             const affinity_dir_conf *conf, affinity_table **t,
                             affinity_request *req)
{
    apr_int64_t now = apr_time_sec(r->request_time);
    const char *name = balancer->s->name;
    int i;

    if (req->resolved) {
        return;
    }
    req->resolved = 1;
    for (i = 0; i < req->values->nelts; i++) {
        const affinity_value *v = &APR_ARRAY_IDX(req->values, i, affinity_value);
        affinity_stamp_state state;
        affinity_member *m;
        unsigned char id[AFFINITY_ID_LEN];

        switch (v->kind) {
        case AFFINITY_VALUE_BARE:
            if (affinity_expiry_on(conf) && !affinity_upgrade_on(conf)) {
                affinity_undated(r, name, "bare ID", req);
                break;
            }
            affinity_accept_id(req, v->st.id, v->text, v->kind, 0, 0, 0);
            break;

        case AFFINITY_VALUE_DATED:
            if (!affinity_expiry_on(conf)) {
                /* expiry was turned off: the ID still counts */
                affinity_accept_id(req, v->st.id, v->text, v->kind, 0, 0, 0);
                break;
            }
            if (!conf->salt_len) {
                /* the key is public: nothing signed with it is worth
                 * anything (the startup check refuses the configurations
                 * it can see; this is for the ones it cannot) */
                affinity_no_salt(balancer, r);
                break;
            }
            if (!(*t)->verified) {
                /* once per table, and only for a balancer with expiry */
                (*t)->verified = apr_pcalloc((*t)->pool,
                                             sizeof(*(*t)->verified));
            }
            if (!affinity_stamp_verify_cached(&v->st, v->text, &(*t)->mac,
                                              (*t)->verified)) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0061: %s: cookie value's signature does not "
                              "verify (forged, or another salt or balancer): "
                              "ignored", name);
                break;
            }
            state = affinity_stamp_check(&v->st, now, affinity_max_idle_of(conf),
                                         affinity_max_life_of(conf));
            if (state == AFFINITY_STAMP_FUTURE) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0062: %s: cookie value dated more than %d s "
                              "ahead (first %lu, last %lu, now %" APR_INT64_T_FMT
                              "): ignored; check the front ends' clocks", name,
                              AFFINITY_CLOCK_SKEW, (unsigned long)v->st.first,
                              (unsigned long)v->st.last, now);
                break;
            }
            if (state == AFFINITY_STAMP_EXPIRED) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0063: %s: session expired (first issued "
                              "%" APR_INT64_T_FMT " s ago, last %" APR_INT64_T_FMT
                              " s ago)", name, now - (apr_int64_t)v->st.first,
                              now - (apr_int64_t)v->st.last);
                req->expired++;
                break;
            }
            affinity_accept_id(req, v->st.id, v->text, v->kind, 1,
                               v->st.first, v->st.last);
            break;

        case AFFINITY_VALUE_LEGACY:
            m = affinity_legacy_member(balancer, r, t, v->route);
            if (m && affinity_expiry_on(conf) && !affinity_upgrade_on(conf)) {
                affinity_undated(r, name, "stock value", req);
            }
            else if (m && affinity_id_from_hex(id, m->id_hex,
                                               AFFINITY_ID_HEX_LEN)) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0064: %s: stock cookie value for route %s "
                              "names member %s", name, v->route,
                              AFFINITY_WORKER_NAME(m->worker));
                affinity_accept_id(req, id, NULL, v->kind, 0, 0, 0);
            }
            break;
        }
    }
}

/* Does a kept session's cookie need sending again?  Bare IDs and stock
 * values are upgraded to the configured form, dated values are refreshed
 * past a quarter of MaxIdle, and with expiry off a dated value goes back to
 * the bare ID.  *first: the first date to keep. */
static int affinity_reissue_due(const affinity_dir_conf *conf,
                                const affinity_id_info *info, apr_int64_t now,
                                apr_uint32_t *first)
{
    *first = affinity_stamp_date(now);
    if (!affinity_expiry_on(conf)) {
        return info->kind != AFFINITY_VALUE_BARE;
    }
    if (info->kind != AFFINITY_VALUE_DATED || !info->checked) {
        return 1;
    }
    *first = info->first;
    return affinity_stamp_refresh_due(info->last, now, affinity_max_idle_of(conf));
}

/* "NAME=VALUE; ATTRS" in p: one allocation, as every new session makes it */
static const char *affinity_cookie_line(apr_pool_t *p, const char *name,
                                        const char *value, const char *attrs)
{
    apr_size_t n = strlen(name), v = strlen(value), a = strlen(attrs);
    char *out = apr_palloc(p, n + v + a + 4), *o = out;

    memcpy(o, name, n);
    o += n;
    *o++ = '=';
    memcpy(o, value, v);
    o += v;
    *o++ = ';';
    *o++ = ' ';
    memcpy(o, attrs, a + 1);
    return out;
}

/* The Set-Cookie value naming m, in r->pool. */
static const char *affinity_cookie_header(request_rec *r,
                                          const affinity_dir_conf *conf,
                                          const affinity_table *t,
                                          const affinity_member *m,
                                          apr_uint32_t first)
{
    const char *value = m->id_hex;

    if (affinity_expiry_on(conf)) {
        unsigned char id[AFFINITY_ID_LEN];
        char *buf = apr_palloc(r->pool, AFFINITY_STAMPED_LEN + 1);

        affinity_id_from_hex(id, m->id_hex, AFFINITY_ID_HEX_LEN);
        affinity_stamp_format(buf, &t->mac, id, first,
                              affinity_stamp_date(apr_time_sec(r->request_time)));
        value = buf;
    }
    return affinity_cookie_line(r->pool, affinity_cookie_name_of(conf), value,
                                affinity_cookie_attrs_of(conf));
}

/* Records the Set-Cookie naming m; the response side sends it. */
static void affinity_issue_cookie(proxy_balancer *balancer, request_rec *r,
                                  const affinity_dir_conf *conf,
                                  const affinity_table *t, affinity_request *req,
                                  const affinity_member *m, apr_uint32_t first)
{
    /* the response side (affinity_response.c) sends it */
    req->set_cookie = affinity_cookie_header(r, conf, t, m, first);
}

/* Cookie mode's session rules are the shared ones as they stand: a session
 * whose member is not usable starts over on a new member (the cookie then
 * names that one), and a cookie naming no member is a new session. */
static proxy_worker *affinity_find_cookie(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          affinity_request *req)
{
    affinity_session_choice c;
    affinity_member *m;
    const char *status;
    proxy_worker *w;
    int at = 0;

    /* what the cookie's values are worth (dates, stock routes) */
    affinity_cookie_resolve(balancer, r, conf, &t, req);

    affinity_session_choose(balancer, r, &t, req, NULL, NULL, NULL, &c);
    if (c.kind == AFFINITY_SESSION_KEPT) {
        const affinity_id_info *info;
        const char *id_hex;
        apr_uint32_t first;

        m = c.member;

        /* which of the IDs named it: the first that names this member */
        while (at < req->ids->nelts - 1
               && affinity_index_get(t->index, (const unsigned char *)req->ids->elts
                                               + at * AFFINITY_ID_LEN)
                  != (int)(m - t->members)) {
            at++;
        }
        info = &APR_ARRAY_IDX(req->info, at, affinity_id_info);

        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0006: %s: cookie %s names usable member %s: kept",
                      balancer->s->name, m->id_hex, AFFINITY_WORKER_NAME(m->worker));
        id_hex = affinity_set_env(r, m, info->kind == AFFINITY_VALUE_LEGACY
                                        ? "legacy" : "valid");
        /* the first ID names m (the usual hit): its hex is m's, copied
         * once for both variables */
        req->carried_id = at == 0
            ? affinity_set_session_env_hex(r, affinity_cookie_name_of(conf),
                                           id_hex)
            : affinity_set_session_env(r, req, affinity_cookie_name_of(conf));
        /* the member did not change, even when the cookie is re-issued
         * (only an earlier try of this request can have said it did) */
        if (req->tried->nelts) {
            apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
        }
        req->set_cookie = NULL;
        if (affinity_reissue_due(conf, info, apr_time_sec(r->request_time),
                                 &first)) {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                          "AFF0065: %s: cookie for member %s re-issued (%s)",
                          balancer->s->name, AFFINITY_WORKER_NAME(m->worker),
                          info->kind == AFFINITY_VALUE_DATED && info->checked
                          ? "refresh" : "new form");
            affinity_issue_cookie(balancer, r, conf, t, req, m, first);
        }
        return m->worker;
    }

    req->carried_id = affinity_set_session_env(r, req,
                                               affinity_cookie_name_of(conf));
    w = c.worker;
    if (c.kind == AFFINITY_SESSION_DOWN) {
        status = c.drained ? "drained" : "down";
        if (!w) {
            affinity_set_env(r, NULL, status);
            req->set_cookie = NULL;
            return NULL;
        }
    }
    else {
        status = req->expired ? "expired" : req->cookie_seen ? "invalid" : "new";
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0007: %s: %s, new session on %s", balancer->s->name,
                      req->expired ? "session expired"
                      : !req->cookie_seen ? "no cookie"
                      : !req->values->nelts ? apr_psprintf(r->pool,
                            "cookie %s malformed (not an ID, a dated ID or a "
                            "stock route)", affinity_cookie_name_of(conf))
                      : apr_psprintf(r->pool, "cookie %s names no member "
                            "(%d unknown value(s), %d malformed value(s))",
                            affinity_cookie_name_of(conf), req->values->nelts,
                            req->malformed),
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
    }

    m = w ? affinity_member_of(balancer, &t, w, r) : NULL;
    affinity_set_env(r, m, status);
    if (!m) {
        req->set_cookie = NULL;
        return NULL;
    }
    /* a new member: a new session, with new dates */
    affinity_issue_cookie(balancer, r, conf, t, req, m,
                          affinity_stamp_date(apr_time_sec(r->request_time)));
    apr_table_setn(r->subprocess_env, "BALANCER_ROUTE_CHANGED", "1");
    return m->worker;
}

/* ---- The response ---------------------------------------------------------- */

typedef struct {
    request_rec *r;
    const affinity_request *req;
    int ours;                       /* ours seen so far (both tables) */
} affinity_cookie_walk;

static int affinity_is_ours(const affinity_request *req, const char *v)
{
    return req->set_cookie
           && (v == req->set_cookie || !strcmp(v, req->set_cookie));
}

/* Drops a second copy of ours, and the member's own cookie of our name
 * unless it deletes it. */
static int affinity_cookie_drops(void *baton, const char **v,
                                 const affinity_set_cookie_t *sc)
{
    affinity_cookie_walk *w = baton;

    if (affinity_is_ours(w->req, *v)) {
        return w->ours++ > 0;
    }
    if (!sc) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, w->r, sc->deletion
                  ? "AFF0031: the member deletes cookie %s: passed on"
                  : "AFF0030: the member's own Set-Cookie of %s dropped: "
                    "the balancer owns that cookie (only a deletion "
                    "passes)", w->req->cookie_name);
    return !sc->deletion;
}

/* The member's cookies of our name out of one table (ours kept once);
 * other cookies keep their order. */
static void affinity_fix_cookies(request_rec *r, const affinity_request *req,
                                 apr_table_t *t, int *ours)
{
    affinity_cookie_walk w;

    w.r = r;
    w.req = req;
    w.ours = *ours;
    affinity_set_cookie_walk(r, t, req->cookie_name, affinity_cookie_drops, &w);
    *ours = w.ours;
}

/* Cookie mode's part: the member's cookies of our name, ours once. */
static void affinity_cookie_response(request_rec *r,
                                     const affinity_request *req,
                                     apr_table_t *target)
{
    int ours = 0;

    if (!req->cookie_name) {
        return;
    }
    affinity_fix_cookies(r, req, r->headers_out, &ours);
    affinity_fix_cookies(r, req, r->err_headers_out, &ours);
    if (!req->set_cookie) {
        return;
    }
    if (!ours) {
        apr_table_addn(target, "Set-Cookie", req->set_cookie);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0032: the response sets cookie %s (in %s)",
                  req->cookie_name,
                  target == r->headers_out ? "headers_out" : "err_headers_out");
    if (req->nocache) {
        affinity_cache_control_fix(r, target);
    }
}

/* ---- What the status page is told --------------------------------------- */

/* The value goes through the reader and the resolver the finder uses; only
 * the member table is needed, under the lock the finder holds. */
static void affinity_cookie_answer(proxy_balancer *balancer, request_rec *r,
                            const affinity_dir_conf *conf, const char *value,
                            apr_size_t len, affinity_answer *a)
{
    affinity_request *req = affinity_request_new(r->pool);
    affinity_read_baton rb;
    affinity_table *t;

    memset(a, 0, sizeof(*a));
    a->carrier = affinity_cookie_name_of(conf);
    a->ids = req->ids;
    a->moves = "the session moves to a member chosen as for a new session";
    rb.name = a->carrier;
    rb.req = req;
    rb.pool = r->pool;
    rb.legacy = conf->legacy_routes == 1;
    affinity_collect_value(&rb, value, len);
    req->cookie_seen = 1;
    if (req->values->nelts && PROXY_THREAD_LOCK(balancer) == APR_SUCCESS) {
        t = affinity_table_get(balancer, conf, r);
        affinity_cookie_resolve(balancer, r, conf, &t, req);
        PROXY_THREAD_UNLOCK(balancer);
    }
    if (req->ids->nelts) {
        return;
    }
    /* the finder's statuses for a cookie naming no member */
    a->status = req->expired ? "expired" : "invalid";
    a->why = req->expired
             ? "its dates are past AffinityCookieMaxIdle or AffinityCookieMaxLife"
             : !req->values->nelts
             ? "it is not a value the module reads as a route ID (only "
               "lowercase 40-hex IDs, dated IDs with expiry fields, and stock "
               "values with AffinityLegacyRoutes On)"
             : "the module does not accept it (a signature that does not "
               "verify, dates in the future, or a stock route no member has)";
}

/* The try link: the cookie a new session on the member gets, made by the
 * code the finder uses, under the lock it holds. */
static const char *affinity_cookie_try(proxy_balancer *balancer, request_rec *r,
                                       const affinity_dir_conf *conf,
                                       const proxy_worker_shared *s,
                                       const char **instead)
{
    const char *out = NULL;
    affinity_member *m;
    affinity_table *t;

    *instead = NULL;
    if (!s || PROXY_THREAD_LOCK(balancer) != APR_SUCCESS) {
        return NULL;
    }
    t = affinity_table_get(balancer, conf, r);
    m = affinity_member_by_shared(balancer, &t, s, r);
    if (m) {
        out = affinity_cookie_header(r, conf, t, m,
                                     affinity_stamp_date(apr_time_sec(r->request_time)));
    }
    PROXY_THREAD_UNLOCK(balancer);
    return out;
}

/* ---- The mode ------------------------------------------------------------ */

static const char *affinity_cookie_configure(cmd_parms *cmd,
                                             affinity_dir_conf *conf,
                                             const char *arg)
{
    return affinity_mode_no_arg(cmd, conf, "cookie", arg);
}

static int affinity_cookie_response_wanted(const affinity_request *req)
{
    return req->cookie_name != NULL;
}

static const char *affinity_cookie_of(const affinity_dir_conf *conf,
                                      const char **attrs)
{
    *attrs = affinity_cookie_attrs_of(conf);
    return affinity_cookie_name_of(conf);
}

static const char *const affinity_cookie_started[] = {
    "new", "invalid", "down", "unknown", "expired", "drained", NULL
};

const affinity_mode affinity_mode_cookie = {
    "cookie", "cookie",
    AFFINITY_SETS_ROUTE_COOKIE | AFFINITY_CARRIES_SESSION,
    affinity_cookie_configure,
    affinity_cookie_read,
    affinity_find_cookie,
    affinity_cookie_response_wanted,
    affinity_cookie_response,
    affinity_cookie_of,
    affinity_cookie_answer,
    NULL,                           /* the host chooses nothing */
    affinity_cookie_started,
    0,                              /* every route-cookie directive counts */
    NULL,
    NULL,
    affinity_cookie_try
};
