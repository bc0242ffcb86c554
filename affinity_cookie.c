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
        *t = affinity_table_verify_all(balancer, *t, r, &rebuilt);
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

proxy_worker *affinity_find_cookie(proxy_balancer *balancer,
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
            apr_uint32_t more = 0;
            /* one line per balancer every 10 s at most: a flood of such
             * requests must not flood the log; trace1 shows each one */
            int loud = affinity_warning_on(conf, 9)
                       && affinity_log_allowed(balancer, AFFINITY_LOG_NOFAILOVER,
                                               r->request_time, &more);

            ap_log_rerror(APLOG_MARK, loud ? APLOG_WARNING : APLOG_TRACE1, 0, r,
                          "AFF0009: %s: member %s of this session is not "
                          "usable and nofailover is On: refusing to move the "
                          "session (503)%s", balancer->s->name,
                          AFFINITY_WORKER_NAME(down->worker),
                          more ? apr_psprintf(r->pool, "; %u more such "
                                              "request(s) since the last "
                                              "such line", more) : "");
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
