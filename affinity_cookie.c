/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_cookie.c: cookie mode.  A request whose affinity cookie names a
 * usable member goes there; anything else gets a new member, chosen by
 * lbfactor exactly like byrequests, and a cookie naming it.
 */

#include "http_request.h"
#include "util_filter.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

static ap_filter_rec_t *affinity_cookie_filter_handle;

static apr_status_t affinity_cookie_filter(ap_filter_t *f,
                                           apr_bucket_brigade *bb);

/* A session whose member is not usable starts over on a new member, and
 * the cookie then names that one. */
static proxy_worker *affinity_cookie_move(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_request *req,
                                          void *baton)
{
    (void)baton;
    return affinity_pick_new(balancer, r, req);
}

proxy_worker *affinity_find_cookie(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          affinity_request *req)
{
    affinity_member *m, *down = NULL;
    const char *status;
    proxy_worker *w;

    m = affinity_session_find(balancer, r, &t, req, &down);
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
        w = affinity_session_move(balancer, r, t, req, down,
                                  affinity_cookie_move, NULL);
        if (!w) {
            affinity_set_env(r, NULL, status);
            req->set_cookie = NULL;
            return NULL;
        }
    }
    else {
        status = req->cookie_seen ? "invalid" : "new";
        w = affinity_pick_new(balancer, r, req);
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0007: %s: %s, new session on %s", balancer->s->name,
                      !req->cookie_seen ? "no cookie"
                      : !req->ids->nelts ? apr_psprintf(r->pool,
                            "cookie %s malformed (not 40 lowercase hex "
                            "digits)", affinity_cookie_name_of(conf))
                      : apr_psprintf(r->pool, "cookie %s names no member "
                            "(%d unknown ID(s), %d malformed value(s))",
                            affinity_cookie_name_of(conf), req->ids->nelts,
                            req->malformed),
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
    }

    m = w ? affinity_member_of(balancer, &t, w, r) : NULL;
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

/* ---- The response ------------------------------------------------------- */

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

void affinity_cookie_register_hooks(apr_pool_t *p)
{
    ap_hook_insert_error_filter(affinity_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    affinity_cookie_filter_handle =
        ap_register_output_filter("AFFINITY_COOKIE", affinity_cookie_filter,
                                  NULL, AP_FTYPE_CONTENT_SET);
}
