/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_pick.c: the pickers the modes share: a member for a new session
 * (byrequests' weighting) and a member for a key (weighted rendezvous
 * hashing, see affinity_rendezvous_cost()).  Both walk the members through
 * mod_proxy's get_best_worker, so lbsets, drain, spares and standbys are
 * mod_proxy's own.
 */

#include "affinity_private.h"

/* ---- A new session -------------------------------------------------------- */

typedef struct {
    const affinity_request *req;
    proxy_balancer *balancer;
    request_rec *r;
    apr_time_t now;                 /* slow start on: the time of the pick */
    int total_factor;
} affinity_byrequests_baton;

/* byrequests' weighting, so new sessions spread by lbfactor as operators
 * expect; members that failed for this request are skipped.  Under
 * AffinitySlowStart a member that became usable lately counts with its
 * lbfactor times its ramp. */
static int affinity_is_best_new(proxy_worker *current, proxy_worker *prev_best,
                                void *baton)
{
    affinity_byrequests_baton *b = baton;
    int factor = current->s->lbfactor;

    if (affinity_was_tried(b->req, current)) {
        return 0;
    }
    if (b->now) {
        factor = affinity_slow_start_weight(b->balancer, current,
                                            b->req->slow_start, b->now, b->r);
    }
    current->s->lbstatus += factor;
    b->total_factor += factor;
    return !prev_best || current->s->lbstatus > prev_best->s->lbstatus;
}

proxy_worker *affinity_pick_new(proxy_balancer *balancer,
                                       request_rec *r,
                                       const affinity_request *req)
{
    affinity_byrequests_baton b;
    proxy_worker *w;

    b.req = req;
    b.balancer = balancer;
    b.r = r;
    b.now = 0;
    b.total_factor = 0;
    if (req->slow_start) {
        int i;

        /* the members taking no new sessions are seen here (get_best_worker
         * shows only the others), so that their return is a change */
        b.now = apr_time_now();
        for (i = 0; i < balancer->workers->nelts; i++) {
            proxy_worker *m = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

            if (affinity_worker_ready(m)) {
                affinity_slow_start_observe(balancer, m, b.now);
            }
        }
    }
    affinity_members_settle(balancer);
    w = affinity_get_best_worker(balancer, r, affinity_is_best_new, &b);
    if (w) {
        w->s->lbstatus -= b.total_factor;
    }
    return w;
}

/* ---- A key ---------------------------------------------------------------- */

typedef struct {
    proxy_balancer *balancer;
    affinity_table *table;
    const affinity_request *req;
    request_rec *r;
    apr_uint64_t key;
    apr_uint64_t best_cost;
    apr_uint64_t best_weight;
} affinity_domain_baton;

static int affinity_is_best_domain(proxy_worker *current, proxy_worker *prev_best,
                                   void *baton)
{
    affinity_domain_baton *b = baton;
    affinity_member *m;
    apr_uint64_t weight, cost;

    if (affinity_was_tried(b->req, current)) {
        return 0;
    }
    m = affinity_member_of(b->balancer, &b->table, current, b->r);
    if (!m) {
        return 0;
    }
    weight = current->s->lbfactor > 0 ? (apr_uint64_t)current->s->lbfactor : 1;
    cost = affinity_rendezvous_cost(b->key, m->seed);
    if (prev_best && !affinity_rendezvous_beats(weight, cost, b->best_weight,
                                                b->best_cost)) {
        return 0;
    }
    b->best_weight = weight;
    b->best_cost = cost;
    return 1;
}

proxy_worker *affinity_pick_hashed(proxy_balancer *balancer, request_rec *r,
                                   affinity_table **t,
                                   const affinity_request *req,
                                   apr_uint64_t key)
{
    affinity_domain_baton b;
    proxy_worker *w;

    memset(&b, 0, sizeof(b));
    b.balancer = balancer;
    b.table = *t;
    b.req = req;
    b.r = r;
    b.key = key;
    affinity_members_settle(balancer);
    w = affinity_get_best_worker(balancer, r, affinity_is_best_domain, &b);
    *t = b.table;
    return w;
}

