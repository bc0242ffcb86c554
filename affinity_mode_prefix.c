/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_mode_prefix.c: prefix mode ("AffinityMode prefix NAME", HAProxy's
 * "cookie NAME prefix").  The route ID rides on the application's own
 * session cookie as "ID~value": the member's Set-Cookie of NAME is given the
 * prefix on the way out, and the prefix is cut off every NAME value on the
 * way in, so the application only ever sees the values it set.  The module
 * sets no cookie of its own.
 *
 * Choice: the first prefix naming a usable member wins; a member that is not
 * usable follows the session rules (affinity_session.c), and a session
 * moves, like a NAME without a usable prefix, to the member that weighted
 * rendezvous hashing of the value (prefix cut) picks: every request of that
 * session, in every child and on every front end, lands on the same member
 * even when the application keeps its session ID.  No NAME: a new session,
 * chosen as byrequests does.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* ---- The request --------------------------------------------------------- */

typedef struct {
    request_rec *r;
    affinity_request *req;
    const char *name;
} affinity_prefix_baton;

static int affinity_prefix_collect(void *baton, const char *value,
                                   apr_size_t len)
{
    affinity_prefix_baton *b = baton;
    unsigned char id[AFFINITY_ID_LEN];

    if (affinity_prefix_parse(id, value, len)) {
        const char *rest = affinity_prefix_skip(value + AFFINITY_PREFIX_LEN,
                                                len - AFFINITY_PREFIX_LEN);

        /* the outermost prefix routes; the value is what follows all */
        memcpy(apr_array_push(b->req->ids), id, AFFINITY_ID_LEN);
        len -= (apr_size_t)(rest - value);
        value = rest;
    }
    if (!b->req->key) {
        b->req->key = apr_pstrmemdup(b->r->pool, value, len);
        b->req->key_len = len;
    }
    return 0;
}

/* Reads NAME's values (IDs into req->ids, the first value into req->key)
 * and cuts the prefixes out of the Cookie headers in the same pass over
 * each, in place in the table, so that their order and every other byte
 * stay as the client sent them. */
static void affinity_prefix_read(request_rec *r, const affinity_dir_conf *conf,
                          affinity_request *req)
{
    affinity_prefix_baton b;
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    apr_table_entry_t *e = (apr_table_entry_t *)arr->elts;
    int i, cut = 0;

    b.r = r;
    b.req = req;
    b.name = conf->mode_cookie;
    for (i = 0; i < arr->nelts; i++) {
        int seen, n;

        if (!affinity_header_is(e[i].key, "Cookie")) {
            continue;
        }
        e[i].val = (char *)affinity_prefix_strip(r->pool, e[i].val, b.name,
                                                 affinity_prefix_collect, &b,
                                                 &seen, &n);
        req->cookie_seen += seen;
        cut += n;
    }
    if (cut) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE3, 0, r,
                      "AFF0070: route prefixes cut from %d value(s) of cookie "
                      "%s before the request goes to the member", cut, b.name);
    }
}

/* ---- The finder ---------------------------------------------------------- */

/* A session whose member is not usable, and a value without a prefix
 * naming a member, go where the value hashes to: the same member on every
 * request (and every front end) until the application sets a new value. */
static proxy_worker *affinity_prefix_hashed(proxy_balancer *balancer,
                                            request_rec *r, affinity_table **t,
                                            const affinity_request *req,
                                            const affinity_member *down,
                                            void *baton)
{
    (void)down;
    (void)baton;
    return affinity_pick_hashed(balancer, r, t, req,
                                affinity_hash64(req->key, req->key_len));
}

static proxy_worker *affinity_find_prefix(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          affinity_request *req)
{
    affinity_session_choice c;
    affinity_member *m;
    const char *status, *served_id;
    proxy_worker *w;

    /* set by the response side for a member an earlier try of this
     * request chose: for that try only */
    if (req->tried->nelts) {
        apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
    }
    req->served_id = NULL;

    affinity_session_choose(balancer, r, &t, req, affinity_prefix_hashed,
                            req->cookie_seen ? affinity_prefix_hashed : NULL,
                            NULL, &c);
    m = c.member;
    w = c.worker;
    switch (c.kind) {
    case AFFINITY_SESSION_KEPT:
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0071: %s: prefix %s on cookie %s names usable "
                      "member %s: kept", balancer->s->name, m->id_hex,
                      conf->mode_cookie, AFFINITY_WORKER_NAME(m->worker));
        status = "valid";
        break;
    case AFFINITY_SESSION_DOWN:
        status = c.drained ? "drained" : "down";
        break;
    case AFFINITY_SESSION_UNKNOWN:
        status = "invalid";
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0072: %s: cookie %s has no prefix naming a "
                      "member, session hashed to %s", balancer->s->name,
                      conf->mode_cookie,
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
        break;
    default:
        status = "new";
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0073: %s: no cookie %s, new session on %s",
                      balancer->s->name, conf->mode_cookie,
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
        break;
    }
    if (!m) {
        m = w ? affinity_member_of(balancer, &t, w, r) : NULL;
    }

    /* the request's own copy of the ID: the table may be rebuilt by another
     * thread before the response goes out */
    served_id = affinity_set_env(r, m, status);
    /* the first prefix's ID: when it names the kept member (the usual
     * hit), its hex is the one just copied */
    if (c.kind == AFFINITY_SESSION_KEPT
        && affinity_index_get(t->index, (const unsigned char *)req->ids->elts)
           == (int)(m - t->members)) {
        affinity_set_session_env_hex(r, conf->mode_cookie, served_id);
    }
    else {
        req->carried_id = affinity_set_session_env(r, req, conf->mode_cookie);
    }
    if (!m) {
        return NULL;
    }
    if (c.kind == AFFINITY_SESSION_KEPT) {
        req->carried_id = served_id;
    }
    req->served_id = served_id;
    return m->worker;
}

/* ---- The response ------------------------------------------------------- */

typedef struct {
    request_rec *r;
    const char *id_hex;
    int n;
} affinity_prefix_rewrite_baton;

static int affinity_prefix_rewrite(void *baton, const char **v,
                                   const affinity_set_cookie_t *sc)
{
    affinity_prefix_rewrite_baton *b = baton;

    if (sc && !sc->deletion) {
        *v = affinity_set_cookie_prefix_parsed(b->r->pool, *v, sc, b->id_hex);
        b->n++;
    }
    return 0;
}

/* The member's Set-Cookie of NAME, in both tables, gets the prefix of the
 * member that served (Cache-Control is affinity_response_fixup()'s). */
static int affinity_prefix_response(request_rec *r, const affinity_request *req)
{
    const char *name = req->mode_cookie;
    affinity_prefix_rewrite_baton b;
    int n;

    if (!name || !req->served_id) {
        return 0;
    }
    b.r = r;
    b.id_hex = req->served_id;
    b.n = 0;
    affinity_set_cookie_walk(r, r->headers_out, name, affinity_prefix_rewrite,
                             &b);
    affinity_set_cookie_walk(r, r->err_headers_out, name,
                             affinity_prefix_rewrite, &b);
    n = b.n;
    if (!n) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0074: %d Set-Cookie of %s given the prefix %s", n, name,
                  req->served_id);
    if (!req->carried_id || strcmp(req->carried_id, req->served_id)) {
        apr_table_setn(r->subprocess_env, "BALANCER_ROUTE_CHANGED", "1");
    }
    return n;
}

/* ---- What the status page is told --------------------------------------- */

/* The value read as affinity_prefix_read() reads each value of NAME. */
static void affinity_prefix_answer(proxy_balancer *balancer, request_rec *r,
                                   const affinity_dir_conf *conf,
                                   const char *value, apr_size_t len,
                                   affinity_answer *a)
{
    affinity_prefix_baton b;

    memset(a, 0, sizeof(*a));
    b.r = r;
    b.req = affinity_request_new(r->pool);
    b.name = conf->mode_cookie;
    affinity_prefix_collect(&b, value, len);
    a->carrier = conf->mode_cookie;
    a->ids = b.req->ids;
    a->moves = "the session moves to the member its value hashes to";
    if (!a->ids->nelts) {
        a->status = "invalid";
        a->why = apr_pstrcat(r->pool, "in prefix mode the ID rides in front of "
                             "the value of cookie ", conf->mode_cookie,
                             " as ID~value; a value without that prefix "
                             "is hashed to a member", NULL);
    }
}

/* ---- The mode ------------------------------------------------------------ */

static const char *affinity_prefix_configure(cmd_parms *cmd,
                                             affinity_dir_conf *conf,
                                             const char *arg)
{
    return affinity_mode_cookie_arg(cmd, conf, "prefix", arg);
}

static int affinity_prefix_response_wanted(const affinity_request *req)
{
    return req->mode_cookie != NULL;
}

/* The application's cookie now names a member: kept out of shared caches
 * (AffinityNoCache). */
static void affinity_prefix_response_fixup(request_rec *r,
                                           const affinity_request *req,
                                           apr_table_t *target)
{
    if (affinity_prefix_response(r, req) && req->nocache) {
        affinity_cache_control_fix(r, target);
    }
}

static const char *affinity_prefix_cookie(const affinity_dir_conf *conf,
                                          const char **attrs)
{
    *attrs = NULL;
    return conf->mode_cookie;
}

static const char *const affinity_prefix_started[] = {
    "new", "invalid", "down", "unknown", "expired", "drained", NULL
};

/* The try link: the module sets no cookie of its own here; the tester
 * prefixes the application's session cookie with the member's ID. */
static const char *affinity_prefix_try(proxy_balancer *balancer, request_rec *r,
                                       const affinity_dir_conf *conf,
                                       const proxy_worker_shared *s,
                                       const char **instead)
{
    affinity_member *m = NULL;
    affinity_table *t;

    *instead = apr_psprintf(r->pool, "prefix mode sets no cookie of its own: "
                            "in the tester's browser, put the member's route "
                            "ID and ~ in front of the value of the "
                            "application's cookie %s (%s=ROUTEID~value); the "
                            "member's responses keep the prefix",
                            conf->mode_cookie, conf->mode_cookie);
    if (s && PROXY_THREAD_LOCK(balancer) == APR_SUCCESS) {
        t = affinity_table_get(balancer, conf, r);
        m = affinity_member_by_shared(balancer, &t, s, r);
        if (m) {
            *instead = apr_psprintf(r->pool, "prefix mode sets no cookie of "
                                    "its own: in the tester's browser, put "
                                    "%s~ in front of the value of the "
                                    "application's cookie %s (%s=%s~value); "
                                    "the member's responses keep the prefix",
                                    m->id_hex, conf->mode_cookie,
                                    conf->mode_cookie, m->id_hex);
        }
        PROXY_THREAD_UNLOCK(balancer);
        if (!m) {
            *instead = NULL;
        }
    }
    return NULL;
}

const affinity_mode affinity_mode_prefix = {
    "prefix", "prefix NAME",
    AFFINITY_CARRIES_SESSION,
    affinity_prefix_configure,
    affinity_prefix_read,
    affinity_find_prefix,
    affinity_prefix_response_wanted,
    affinity_prefix_response_fixup,
    affinity_prefix_cookie,
    affinity_prefix_answer,
    NULL,
    affinity_prefix_started,
    /* AffinityNoCache still applies to the application's cookie */
    (1u << AFFINITY_DIRECTIVE_COOKIE) | (1u << AFFINITY_DIRECTIVE_REMOVE),
    NULL,
    NULL,
    affinity_prefix_try
};
