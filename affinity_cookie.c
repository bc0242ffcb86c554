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
    return m->worker;
}
