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

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

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
                      req->cookie_seen ? "cookie names no member" : "no cookie",
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
    return m->worker;
}
