/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_pick.c: the pickers the modes share: a member for a new session
 * (byrequests' weighting) and a member for a key (weighted rendezvous
 * hashing, see affinity_rendezvous_cost()).  Both walk the members with
 * affinity_walk(), which keeps mod_proxy's get_best_worker rules (lbsets,
 * drain, spares, standbys) but reads only the slots a table build counted.
 */

#include "affinity_private.h"

/* For the is_best callbacks, called once per member of a walk: inlined
 * there, where gcc would otherwise call them (about 25 instructions a
 * member, 6,400 for a new session at 256 members, in callgrind). */
#if defined(__GNUC__)
#define AFFINITY_HOT_INLINE APR_INLINE __attribute__((always_inline))
#else
#define AFFINITY_HOT_INLINE APR_INLINE
#endif

/* ---- The walk: lbsets, drain, spares, standbys ---------------------------- */

/* Decides between two candidates, as httpd's is_best callbacks do: may
 * keep state in baton (byrequests' lbstatus accounting). */
typedef int affinity_is_best_fn(proxy_worker *current, proxy_worker *prev_best,
                                void *baton);

/* A member's kind for the walk below: HOT_SPARE, HOT_STANDBY (a spare
 * when both are set, as in httpd) or 0. */
static APR_INLINE unsigned int affinity_reserve_of(unsigned int status)
{
    return (status & PROXY_WORKER_HOT_SPARE) ? PROXY_WORKER_HOT_SPARE
           : status & PROXY_WORKER_HOT_STANDBY;
}

/* affinity_walk()'s second look, for a set with spares standing in or
 * standbys: offers is_best the usable members of one kind (HOT_SPARE or
 * HOT_STANDBY) in lbset, in slot order, at most limit of them. */
static proxy_worker *affinity_walk_reserves(proxy_worker *const *slots, int n,
                                            int lbset, unsigned int kind,
                                            int limit,
                                            const affinity_request *req,
                                            affinity_is_best_fn *is_best,
                                            void *baton, proxy_worker *best)
{
    int i;

    for (i = 0; i < n && limit > 0; i++) {
        proxy_worker *w = slots[i];

        if (!affinity_worker_ready(w) || w->s->lbset != lbset
            || PROXY_WORKER_IS_DRAINING(w)
            || affinity_reserve_of(w->s->status) != kind
            || !PROXY_WORKER_IS_USABLE(w) || affinity_was_tried(req, w)) {
            continue;
        }
        limit--;
        if (is_best(w, best, baton)) {
            best = w;
        }
    }
    return best;
}

/* The member is_best prefers among those proxy_balancer_get_best_worker()
 * would offer it, by its rules: lbset 0, 1, ... until one yields a member;
 * within a set a draining member is skipped, and counts as unusable unless
 * it is a spare or a standby; an unusable one gets httpd's retry check
 * first; the others are offered to is_best, then as many usable spares as
 * there were unusable members, then, if none won, the usable standbys.
 * NULL when none is usable.
 *
 * Only over the slots a table build counted (affinity_members_settled),
 * each checked complete: httpd's own walk reads every slot, one that
 * balancer-manager is adding in this process too, and that crashed the
 * child.  A member that already failed this request counts as unusable (a
 * spare may stand in for it) even when retry=0 has revived it.
 *
 * Inline, so that each caller's is_best is inlined into its own copy; no
 * allocation (spares and standbys are found again by a second look at the
 * slots, which only a set that has them pays). */
static APR_INLINE proxy_worker *affinity_walk(proxy_balancer *balancer,
                                              request_rec *r,
                                              const affinity_request *req,
                                              affinity_is_best_fn *is_best,
                                              void *baton)
{
    int n = affinity_members_settled(balancer);
    /* read after n: any later version of the list holds those n slots */
    proxy_worker *const *slots = (proxy_worker *const *)balancer->workers->elts;
    const unsigned int skip = PROXY_WORKER_NOT_USABLE_BITMAP | PROXY_WORKER_DRAIN
                              | PROXY_WORKER_HOT_SPARE | PROXY_WORKER_HOT_STANDBY;
    int tried = req->tried->nelts > 0;
    proxy_worker *best = NULL;
    int lbset, max_lbset = 0;

    for (lbset = 0; !best && lbset <= max_lbset; lbset++) {
        int i, unusable = 0, spares = 0, standbys = 0;

        for (i = 0; i < n; i++) {
            proxy_worker *w = slots[i];
            proxy_worker_shared *s;
            unsigned int st, kind;

            if (!w || !(s = w->s)
                || !((st = s->status) & PROXY_WORKER_INITIALIZED)) {
                continue;           /* an add that failed half way */
            }
            if (s->lbset != lbset) {
                if (s->lbset > max_lbset) {
                    max_lbset = s->lbset;
                }
                continue;
            }
            if (!(st & skip) && !(tried && affinity_was_tried(req, w))) {
                if (is_best(w, best, baton)) {
                    best = w;
                }
                continue;
            }
            kind = affinity_reserve_of(st);
            if (st & PROXY_WORKER_DRAIN) {
                unusable += !kind;
            }
            else if (!affinity_usable(req, w, r)) {
                unusable += !kind;
            }
            else if (kind == PROXY_WORKER_HOT_SPARE) {
                spares++;
            }
            else if (kind) {
                standbys++;
            }
            else if (is_best(w, best, baton)) {
                best = w;           /* revived by the retry check */
            }
        }
        if (spares && unusable) {
            best = affinity_walk_reserves(slots, n, lbset, PROXY_WORKER_HOT_SPARE,
                                          unusable, req, is_best, baton, best);
        }
        if (!best && standbys) {
            best = affinity_walk_reserves(slots, n, lbset,
                                          PROXY_WORKER_HOT_STANDBY, standbys,
                                          req, is_best, baton, best);
        }
    }
    return best;
}

/* ---- A new session -------------------------------------------------------- */

typedef struct {
    proxy_balancer *balancer;
    request_rec *r;
    const affinity_request *req;
    apr_time_t now;                 /* slow start on: the time of the pick */
    int total_factor;
} affinity_byrequests_baton;

/* byrequests' weighting, so that new sessions spread by lbfactor as
 * operators expect: every member offered earns its lbfactor, the one most
 * behind wins and pays back what all earned (mod_lbmethod_byrequests).
 * Under AffinitySlowStart a member that became usable lately counts with
 * its lbfactor times its ramp. */
static AFFINITY_HOT_INLINE int affinity_is_best_new(proxy_worker *current,
                                                    proxy_worker *prev_best,
                                                    void *baton)
{
    affinity_byrequests_baton *b = baton;
    int factor = current->s->lbfactor;

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

    b.balancer = balancer;
    b.r = r;
    b.req = req;
    b.now = 0;
    b.total_factor = 0;
    if (req->slow_start) {
        int i, n = affinity_members_settled(balancer);

        /* the members taking no new sessions are seen here (the walk
         * offers only the others), so that their return is a change;
         * only the slots a table build counted, as the walk reads them */
        b.now = apr_time_now();
        for (i = 0; i < n; i++) {
            proxy_worker *m = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

            if (affinity_worker_ready(m)) {
                affinity_slow_start_observe(balancer, m, b.now);
            }
        }
    }
    w = affinity_walk(balancer, r, req, affinity_is_best_new, &b);
    if (w) {
        w->s->lbstatus -= b.total_factor;
    }
    return w;
}

/* ---- A key ---------------------------------------------------------------- */

/* affinity_walk() offers, in order, exactly the candidates of the first
 * lbset (then spares, or standbys) that has any, none that failed this
 * request: the baton collects them in affinity_rv, which makes the plain
 * walk's choice with one log per weight, and the callback only has to say
 * "there is a candidate" (the first).  Per member: the member's seed, one
 * fmix64.  affinity_offer_hashed() does the same over the table's compact
 * array whenever lbset 0 settles it without a spare or standby, which is
 * nearly always; the walk is the fallback.
 *
 * Bounded loads (factor > 0; HAProxy's hash-balance-factor, after Mirrokni,
 * Thorup and Zadimoghaddam): the first walk also sums the candidates'
 * requests in progress (s->busy, shared by every child) and weights; a
 * member may take the request while busy * 100 * weights < factor * (busy
 * sum + 1) * its weight, i.e. while it is below factor% of its share of
 * the load this request makes: taking it, it may reach the next whole
 * request above that, as HAProxy's rounded-up slots allow.  Some member
 * always can (factor > 100).
 * When the key's member cannot, a second walk offers only those that can:
 * the next member in that key's rendezvous order. */
typedef struct {
    proxy_balancer *balancer;
    affinity_table *table;
    request_rec *r;
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

static AFFINITY_HOT_INLINE int affinity_is_best_domain(proxy_worker *current,
                                                       proxy_worker *prev_best,
                                                       void *baton)
{
    affinity_domain_baton *b = baton;
    const proxy_worker_shared *s = current->s;
    affinity_member *m;
    apr_uint64_t weight;
    int i;

    /* affinity_walk() offers no member that failed this request;
     * affinity_member_of()'s fast case, inline: the slot is the shm index */
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

/* Is h's live route still the one its seed was made from?  The same
 * answer as affinity_member_current(). */
static APR_INLINE int affinity_hash_member_current(const affinity_table *t,
                                                   const affinity_hash_member *h)
{
    return affinity_route_head_same(&h->route, t->members[h->slot].route,
                                    h->s->route, PROXY_WORKER_MAX_ROUTE_SIZE);
}

/* The first walk of affinity_pick_bounded(), over the table's compact
 * array instead of affinity_walk() and affinity_is_best_domain(): the same
 * candidates, offered in the same (slot) order, when the answer is settled
 * by lbset 0 with no spare or standby called on.  Members that are not
 * plainly usable get the walk's treatment (drain skipped, httpd's retry
 * check for the others).  Returns 0 when the walk must decide instead (a
 * request that already failed over, a route changed, reserves or other
 * lbsets needed), with b->rv to be started again; else 1, *offered saying
 * whether any member was a candidate. */
static int affinity_offer_hashed(affinity_domain_baton *b, request_rec *r,
                                 const affinity_request *req, int *offered)
{
    const affinity_table *t = b->table;
    const affinity_hash_member *h = t->hashed, *end = h + t->nhashed;
    const unsigned int skip = PROXY_WORKER_NOT_USABLE_BITMAP | PROXY_WORKER_DRAIN
                              | PROXY_WORKER_HOT_SPARE | PROXY_WORKER_HOT_STANDBY
                              | PROXY_WORKER_INITIALIZED;
    int any = 0, unusable = 0, reserves = 0, other_sets = 0;

    if (req->tried->nelts) {
        return 0;
    }
    for (; h < end; h++) {
        const proxy_worker_shared *s = h->s;
        unsigned int st = s->status;
        apr_uint64_t weight;

        if ((st & skip) != PROXY_WORKER_INITIALIZED || s->lbset
            || !affinity_hash_member_current(t, h)) {
            if (!(st & PROXY_WORKER_INITIALIZED)) {
                continue;
            }
            if (s->lbset) {
                other_sets = 1;
                continue;
            }
            if (!(st & skip & ~PROXY_WORKER_INITIALIZED)) {
                return 0;           /* its route changed: the walk rebuilds */
            }
            if (affinity_reserve_of(st)) {
                reserves = 1;
                continue;
            }
            if ((st & PROXY_WORKER_DRAIN) || !affinity_usable(req, h->worker, r)) {
                unusable = 1;
                continue;
            }
            if (!affinity_hash_member_current(t, h)) {
                return 0;           /* revived by the retry check */
            }
        }
        weight = s->lbfactor > 0 ? (apr_uint64_t)s->lbfactor : 1;
        if (b->factor) {
            b->busy += s->busy;
            b->weights += weight;
        }
        affinity_rv_offer(&b->rv, h->seed, weight, h->slot);
        any = 1;
    }
    /* the walk would call on spares (unusable members) or standbys (no
     * candidate), or go on to the next lbset (no candidate) */
    if ((reserves && (unusable || !any)) || (!any && other_sets)) {
        return 0;
    }
    *offered = any;
    return 1;
}

proxy_worker *affinity_pick_bounded(proxy_balancer *balancer, request_rec *r,
                                    affinity_table **t,
                                    const affinity_request *req,
                                    apr_uint64_t key, int factor, int *bounded)
{
    affinity_domain_baton b;
    proxy_worker *w, *first;
    int slot, offered;

    b.balancer = balancer;
    b.table = *t;
    b.r = r;
    b.factor = factor;
    b.second = 0;
    b.busy = b.weights = 0;
    affinity_rv_init(&b.rv, key);
    if (bounded) {
        *bounded = 0;
    }
    if (affinity_offer_hashed(&b, r, req, &offered)) {
        w = offered ? b.table->members[affinity_rv_best(&b.rv)].worker : NULL;
    }
    else {
        b.busy = b.weights = 0;
        affinity_rv_init(&b.rv, key);
        w = affinity_walk(balancer, r, req, affinity_is_best_domain, &b);
    }
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
    w = affinity_walk(balancer, r, req, affinity_is_best_domain, &b);
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
