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
    int total_factor;
} affinity_byrequests_baton;

/* byrequests' weighting, so new sessions spread by lbfactor as operators
 * expect; members that failed for this request are skipped */
static int affinity_is_best_new(proxy_worker *current, proxy_worker *prev_best,
                                void *baton)
{
    affinity_byrequests_baton *b = baton;

    if (affinity_was_tried(b->req, current)) {
        return 0;
    }
    current->s->lbstatus += current->s->lbfactor;
    b->total_factor += current->s->lbfactor;
    return !prev_best || current->s->lbstatus > prev_best->s->lbstatus;
}

proxy_worker *affinity_pick_new(proxy_balancer *balancer,
                                       request_rec *r,
                                       const affinity_request *req)
{
    affinity_byrequests_baton b;
    proxy_worker *w;

    b.req = req;
    b.total_factor = 0;
    affinity_members_settle(balancer);
    w = affinity_get_best_worker(balancer, r, affinity_is_best_new, &b);
    if (w) {
        w->s->lbstatus -= b.total_factor;
    }
    return w;
}

/* ---- A key ---------------------------------------------------------------- */

/* get_best_worker offers, in order, exactly the candidates of the first
 * lbset (then spares, or standbys) that has any: the baton collects them in
 * affinity_rv, which makes the plain walk's choice with one log per weight,
 * and the callback only has to say "there is a candidate" (the first).
 * Per member: the tried check, the member's seed, one fmix64.
 *
 * Bounded loads (factor > 0; HAProxy's hash-balance-factor, after Mirrokni,
 * Thorup and Zadimoghaddam): the first walk also sums the candidates'
 * requests in progress (s->busy, shared by every child) and weights; a
 * member may take the request while busy * 100 * weights < factor * (busy
 * sum + 1) * its weight, i.e. while it stays within factor% of its share of
 * the load this request makes.  Some member always can (factor > 100).
 * When the key's member cannot, a second walk offers only those that can:
 * the next member in that key's rendezvous order. */
typedef struct {
    proxy_balancer *balancer;
    affinity_table *table;
    const affinity_request *req;
    request_rec *r;
    int ntried;                     /* members failed for this request */
    int factor;                     /* 0: no bound */
    int second;                     /* the second walk: the bound filters */
    apr_uint64_t busy, weights;     /* first walk: sums over the candidates */
    affinity_rv rv;
} affinity_domain_baton;

static int affinity_within_bound(const affinity_domain_baton *b,
                                 const proxy_worker *w, apr_uint64_t weight)
{
    return (apr_uint64_t)w->s->busy * 100 * b->weights
           < (apr_uint64_t)b->factor * (b->busy + 1) * weight;
}

static int affinity_is_best_domain(proxy_worker *current, proxy_worker *prev_best,
                                   void *baton)
{
    affinity_domain_baton *b = baton;
    const proxy_worker_shared *s = current->s;
    affinity_member *m;
    apr_uint64_t weight;
    int i;

    if (b->ntried && affinity_was_tried(b->req, current)) {
        return 0;
    }
    /* affinity_member_of()'s fast case, inline: the slot is the shm index */
    i = s->index;
    m = i >= 0 && i < b->table->nelts ? &b->table->members[i] : NULL;
    if (!m || m->worker != current || !affinity_member_current(m)) {
        m = affinity_member_of(b->balancer, &b->table, current, b->r);
        if (!m) {
            return 0;
        }
        i = (int)(m - b->table->members);
    }
    weight = s->lbfactor > 0 ? (apr_uint64_t)s->lbfactor : 1;
    if (b->factor) {
        if (b->second) {
            if (!affinity_within_bound(b, current, weight)) {
                return !prev_best;
            }
        }
        else {
            b->busy += s->busy;
            b->weights += weight;
        }
    }
    affinity_rv_offer(&b->rv, m->seed, weight, i);
    return !prev_best;
}

proxy_worker *affinity_pick_bounded(proxy_balancer *balancer, request_rec *r,
                                    affinity_table **t,
                                    const affinity_request *req,
                                    apr_uint64_t key, int factor, int *bounded)
{
    affinity_domain_baton b;
    proxy_worker *w, *first;
    int slot;

    b.balancer = balancer;
    b.table = *t;
    b.req = req;
    b.r = r;
    b.ntried = req->tried->nelts;
    b.factor = factor;
    b.second = 0;
    b.busy = b.weights = 0;
    affinity_rv_init(&b.rv, key);
    if (bounded) {
        *bounded = 0;
    }
    affinity_members_settle(balancer);
    w = affinity_get_best_worker(balancer, r, affinity_is_best_domain, &b);
    if (!w) {
        *t = b.table;
        return NULL;
    }
    /* slots index balancer->workers, which a rebuild keeps */
    slot = affinity_rv_best(&b.rv);
    first = slot >= 0 ? b.table->members[slot].worker : w;
    if (!factor || affinity_within_bound(&b, first,
                                         first->s->lbfactor > 0
                                         ? (apr_uint64_t)first->s->lbfactor : 1)) {
        *t = b.table;
        return first;
    }
    b.second = 1;
    affinity_rv_init(&b.rv, key);
    w = affinity_get_best_worker(balancer, r, affinity_is_best_domain, &b);
    *t = b.table;
    slot = w ? affinity_rv_best(&b.rv) : -1;
    if (slot < 0) {
        return first;               /* the loads moved meanwhile */
    }
    if (bounded) {
        *bounded = 1;
    }
    return b.table->members[slot].worker;
}

proxy_worker *affinity_pick_hashed(proxy_balancer *balancer, request_rec *r,
                                   affinity_table **t,
                                   const affinity_request *req,
                                   apr_uint64_t key)
{
    return affinity_pick_bounded(balancer, r, t, req, key, 0, NULL);
}
