/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_session.c: the session rules every mode whose requests carry a
 * session shares (cookie mode's own cookie, prefix mode's prefix, learn
 * mode's learned values), written once: kept, down, unknown or new; which
 * member the request's IDs name, and what happens when that member is not
 * usable (Route Redirect, nofailover, or the session moves).
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
static affinity_member *affinity_session_find(proxy_balancer *balancer,
                                       request_rec *r,
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
        const char *live;

        if (!m->worker) {
            continue;
        }
        live = m->worker->s->route;
        if (!strncmp(live, redirect, sizeof(redirect))
            && affinity_usable(req, m->worker, r)) {
            return m;
        }
    }
    return NULL;
}

/* The session's member down is not usable: its Route Redirect if that is
 * usable; else NULL when nofailover is On (the client gets 503); else the
 * member move() picks (NULL: a new one). */
static proxy_worker *affinity_session_move(proxy_balancer *balancer,
                                           request_rec *r, affinity_table **t,
                                           const affinity_request *req,
                                           const affinity_member *down,
                                           int drained,
                                           affinity_move_fn *move, void *baton)
{
    affinity_member *m = affinity_find_redirect(*t, down, req, r);
    proxy_worker *w;

    if (m) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0010: %s: member %s is not usable, session "
                      "redirected to %s (route %.*s)", balancer->s->name,
                      AFFINITY_WORKER_NAME(down->worker),
                      AFFINITY_WORKER_NAME(m->worker),
                      (int)sizeof(down->worker->s->redirect),
                      down->worker->s->redirect);
        return m->worker;
    }
    if (balancer->s->sticky_force && !drained) {
        const affinity_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                             &affinity_module);
        apr_uint32_t more = 0;
        /* one line per balancer every 10 s at most: a flood of such
         * requests must not flood the log; trace1 shows each one */
        int loud = (!conf || affinity_warning_on(conf, 9))
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
        return NULL;
    }
    w = move ? move(balancer, r, t, req, down, baton)
             : affinity_pick_new(balancer, r, req);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0008: %s: member %s of this session is not "
                  "usable, session moves to %s", balancer->s->name,
                  AFFINITY_WORKER_NAME(down->worker),
                  w ? AFFINITY_WORKER_NAME(w) : "no member");
    return w;
}

/* Has the kept member m been draining for longer than AffinityDrainTimeout?
 * Only a request whose session names a draining member asks the shared
 * record; the start is recorded here if no process has yet. */
static int affinity_drain_over(proxy_balancer *balancer, request_rec *r,
                               const affinity_member *m)
{
    const affinity_dir_conf *conf;

    if (!(m->worker->s->status & PROXY_WORKER_DRAIN)) {
        return 0;
    }
    conf = ap_get_module_config(r->per_dir_config, &affinity_module);
    return conf && affinity_drain_state(balancer, r, m->worker,
                                        conf->drain_timeout)
                   == AFFINITY_DRAIN_PAST;
}

void affinity_session_choose(proxy_balancer *balancer, request_rec *r,
                             affinity_table **t, const affinity_request *req,
                             affinity_move_fn *move, affinity_move_fn *unknown,
                             void *baton, affinity_session_choice *c)
{
    c->down = NULL;
    c->drained = 0;
    c->member = affinity_session_find(balancer, r, t, req, &c->down);
    if (c->member && affinity_drain_over(balancer, r, c->member)) {
        /* past the deadline: the session goes where a new one would, as
         * if its member were down, once (the new value names another) */
        c->kind = AFFINITY_SESSION_DOWN;
        c->drained = 1;
        c->down = c->member;
        c->member = NULL;
        c->worker = affinity_session_move(balancer, r, t, req, c->down, 1,
                                          move, baton);
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0130: %s: member %s has been draining for longer "
                      "than AffinityDrainTimeout: session moves to %s",
                      balancer->s->name, AFFINITY_WORKER_NAME(c->down->worker),
                      c->worker ? AFFINITY_WORKER_NAME(c->worker)
                                : "no member");
    }
    else if (c->member) {
        c->kind = AFFINITY_SESSION_KEPT;
        c->worker = c->member->worker;
    }
    else if (c->down) {
        c->kind = AFFINITY_SESSION_DOWN;
        c->worker = affinity_session_move(balancer, r, t, req, c->down, 0,
                                          move, baton);
    }
    else if (unknown) {
        c->kind = AFFINITY_SESSION_UNKNOWN;
        c->worker = unknown(balancer, r, t, req, NULL, baton);
    }
    else {
        c->kind = AFFINITY_SESSION_NEW;
        c->worker = affinity_pick_new(balancer, r, req);
    }
}
