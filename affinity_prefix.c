/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_prefix.c: prefix mode ("AffinityMode prefix NAME", HAProxy's
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

#include "http_request.h"
#include "util_filter.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

static ap_filter_rec_t *affinity_prefix_filter_handle;

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
        const char *rest = affinity_prefix_skip(value, len);

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

static int affinity_prefix_read_header(void *baton, const char *key,
                                       const char *value)
{
    affinity_prefix_baton *b = baton;

    (void)key;
    b->req->cookie_seen += affinity_cookie_scan(value, b->name,
                                                affinity_prefix_collect, b);
    return 1;
}

/* Reads NAME's values (IDs into req->ids, the first value into req->key),
 * then cuts the prefixes out of the Cookie headers in place, so that their
 * order and every other byte stay as the client sent them. */
void affinity_prefix_read(request_rec *r, const affinity_dir_conf *conf,
                          affinity_request *req)
{
    affinity_prefix_baton b;
    const apr_array_header_t *arr;
    apr_table_entry_t *e;
    int i, cut = 0;

    b.r = r;
    b.req = req;
    b.name = conf->mode_cookie;
    apr_table_do(affinity_prefix_read_header, &b, r->headers_in, "Cookie",
                 NULL);
    if (!req->ids->nelts) {
        return;
    }
    arr = apr_table_elts(r->headers_in);
    e = (apr_table_entry_t *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
        int n;

        if (e[i].key && !strcasecmp(e[i].key, "Cookie")) {
            e[i].val = (char *)affinity_prefix_strip(r->pool, e[i].val,
                                                     b.name, &n);
            cut += n;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE3, 0, r,
                  "AFF0070: route prefixes cut from %d value(s) of cookie %s "
                  "before the request goes to the member", cut, b.name);
}

/* ---- The finder ---------------------------------------------------------- */

typedef struct {
    affinity_table *t;
} affinity_prefix_move_baton;

static proxy_worker *affinity_prefix_hashed(proxy_balancer *balancer,
                                            request_rec *r,
                                            affinity_table **t,
                                            const affinity_request *req)
{
    return affinity_pick_hashed(balancer, r, t, req,
                                affinity_hash64(req->key, req->key_len));
}

/* A session whose member is not usable goes where its value hashes to: the
 * same member on every request until the application sets a new value. */
static proxy_worker *affinity_prefix_move(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_request *req,
                                          void *baton)
{
    affinity_prefix_move_baton *b = baton;

    return affinity_prefix_hashed(balancer, r, &b->t, req);
}

static const char *affinity_prefix_hex(request_rec *r, const unsigned char *id)
{
    char *hex = apr_palloc(r->pool, AFFINITY_ID_HEX_LEN + 1);

    affinity_id_to_hex(hex, id);
    return hex;
}

proxy_worker *affinity_find_prefix(proxy_balancer *balancer, request_rec *r,
                                   const affinity_dir_conf *conf,
                                   affinity_table *t, affinity_request *req)
{
    affinity_member *m, *down = NULL;
    const char *status;
    proxy_worker *w;

    /* set by the response filter, for this try only */
    apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
    req->served_id = NULL;

    m = affinity_session_find(balancer, r, &t, req, &down);
    if (m) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0071: %s: prefix %s on cookie %s names usable "
                      "member %s: kept", balancer->s->name, m->id_hex,
                      conf->mode_cookie, AFFINITY_WORKER_NAME(m->worker));
        status = "valid";
        w = m->worker;
        /* the request's own copy: the table may be rebuilt by another
         * thread before the response goes out */
        req->carried_id = apr_pstrmemdup(r->pool, m->id_hex,
                                         AFFINITY_ID_HEX_LEN);
    }
    else {
        req->carried_id = req->ids->nelts
                          ? affinity_prefix_hex(r, (const unsigned char *)
                                                   req->ids->elts)
                          : NULL;
        if (down) {
            affinity_prefix_move_baton mb;

            status = "down";
            mb.t = t;
            w = affinity_session_move(balancer, r, t, req, down,
                                      affinity_prefix_move, &mb);
            t = mb.t;
        }
        else if (req->cookie_seen) {
            status = "invalid";
            w = affinity_prefix_hashed(balancer, r, &t, req);
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "AFF0072: %s: cookie %s has no prefix naming a "
                          "member, session hashed to %s", balancer->s->name,
                          conf->mode_cookie,
                          w ? AFFINITY_WORKER_NAME(w) : "no member");
        }
        else {
            status = "new";
            w = affinity_pick_new(balancer, r, req);
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "AFF0073: %s: no cookie %s, new session on %s",
                          balancer->s->name, conf->mode_cookie,
                          w ? AFFINITY_WORKER_NAME(w) : "no member");
        }
        m = w ? affinity_member_of(balancer, &t, w, r) : NULL;
    }

    affinity_set_env(r, m, status);
    if (!m) {
        return NULL;
    }
    req->served_id = req->carried_id && !strcmp(req->carried_id, m->id_hex)
                     ? req->carried_id
                     : apr_pstrmemdup(r->pool, m->id_hex, AFFINITY_ID_HEX_LEN);
    if (!req->filter_added) {
        ap_add_output_filter_handle(affinity_prefix_filter_handle, NULL, r,
                                    r->connection);
        req->filter_added = 1;
    }
    return m->worker;
}

/* ---- The response ------------------------------------------------------- */

static int affinity_prefix_rewrite(request_rec *r, const char *name,
                                   const char *id_hex, apr_table_t *headers)
{
    const apr_array_header_t *arr = apr_table_elts(headers);
    apr_table_entry_t *e = (apr_table_entry_t *)arr->elts;
    int i, n = 0;

    /* in place: the headers keep their order */
    for (i = 0; i < arr->nelts; i++) {
        const char *v;

        if (!e[i].key || strcasecmp(e[i].key, "Set-Cookie")) {
            continue;
        }
        v = affinity_set_cookie_prefix(r->pool, e[i].val, name, id_hex,
                                       r->request_time);
        if (v) {
            e[i].val = (char *)v;
            n++;
        }
    }
    return n;
}

/* Gives the member's Set-Cookie of NAME the prefix of the member that
 * served; Cache-Control for AffinityNoCache goes to cc_headers.  Running it
 * twice changes nothing more. */
static void affinity_prefix_response(request_rec *r,
                                     const affinity_request *req,
                                     apr_table_t *cc_headers)
{
    const affinity_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                         &affinity_module);
    const char *name = conf->mode_cookie;
    int n;

    if (conf->mode != AFFINITY_MODE_PREFIX || !name) {
        return;
    }
    n = affinity_prefix_rewrite(r, name, req->served_id, r->headers_out)
        + affinity_prefix_rewrite(r, name, req->served_id, r->err_headers_out);
    if (!n) {
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0074: %d Set-Cookie of %s given the prefix %s", n, name,
                  req->served_id);
    if (!req->carried_id || strcmp(req->carried_id, req->served_id)) {
        apr_table_setn(r->subprocess_env, "BALANCER_ROUTE_CHANGED", "1");
    }
    if (req->nocache) {
        const char *cc = apr_table_getm(r->pool, r->headers_out,
                                        "Cache-Control");

        if (!cc) {
            cc = apr_table_getm(r->pool, r->err_headers_out, "Cache-Control");
        }
        apr_table_unset(r->headers_out, "Cache-Control");
        apr_table_unset(r->err_headers_out, "Cache-Control");
        apr_table_setn(cc_headers, "Cache-Control",
                       affinity_cache_control_private(r->pool, cc));
    }
}

/* Added by the finder; runs once mod_proxy has put the member's headers in
 * place, before the headers go out. */
static apr_status_t affinity_prefix_filter(ap_filter_t *f,
                                           apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    const affinity_request *req = ap_get_module_config(r->request_config,
                                                       &affinity_module);

    if (req && req->served_id && req->chosen) {
        affinity_prefix_response(r, req, r->headers_out);
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* An error page after a member answered (ProxyErrorOverride) starts a new
 * filter chain without our filter: its cookies get the prefix here. */
static void affinity_prefix_insert_error_filter(request_rec *r)
{
    const affinity_request *req = ap_get_module_config(r->request_config,
                                                       &affinity_module);

    if (req && req->served_id && req->chosen
        && apr_table_get(r->notes, "proxy-status")) {
        affinity_prefix_response(r, req, r->err_headers_out);
    }
}

void affinity_prefix_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_insert_error_filter(affinity_prefix_insert_error_filter, NULL,
                                NULL, APR_HOOK_MIDDLE);
    affinity_prefix_filter_handle =
        ap_register_output_filter("AFFINITY_PREFIX", affinity_prefix_filter,
                                  NULL, AP_FTYPE_CONTENT_SET);
}
