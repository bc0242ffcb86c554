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

/* Here, not with the sessions: the key pickers below ask it too. */
affinity_drain_e affinity_drain_state(proxy_balancer *balancer,
                                      request_rec *r, proxy_worker *w,
                                      int timeout)
{
    affinity_member_life *l;
    apr_uint32_t now, since;

    if (!(w->s->status & PROXY_WORKER_DRAIN) || timeout <= 0
        || !(l = affinity_life_of(balancer, w, r))) {
        return AFFINITY_DRAIN_NONE;
    }
    now = (apr_uint32_t)apr_time_sec(r->request_time);
    since = affinity_life_drain_note(l, w->s->status, now);
    if (!since) {
        return AFFINITY_DRAIN_NONE;
    }
    /* whole seconds: the start may have been late in its second, so only
     * a full second more is surely past the deadline (never early) */
    return now - since > (apr_uint32_t)timeout ? AFFINITY_DRAIN_PAST
                                               : AFFINITY_DRAIN_KEEP;
}

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

/* AffinityDrainTimeout for keys (hash, domain: no session value to move
 * once, so the walk itself keeps a draining member until its deadline).
 * NULL for new sessions, which a draining member never takes. */
#define AFFINITY_PAST_MAX 4
typedef struct {
    int timeout;                    /* seconds, > 0 */
    int npast;                      /* past[]: draining past the deadline, */
    proxy_worker *past[AFFINITY_PAST_MAX];  /* the first few the walk saw */
} affinity_drain_keys;

/* May the draining member w (status st) still take its keys?  Before its
 * deadline, if it is otherwise usable: one in error, disabled or stopped
 * is gone, and its keys move at once as without a deadline.  With record,
 * a member past its deadline is noted in keys->past. */
static int affinity_drain_keeps(proxy_balancer *balancer, request_rec *r,
                                proxy_worker *w, unsigned int st,
                                affinity_drain_keys *keys, int record)
{
    if (st & PROXY_WORKER_NOT_USABLE_BITMAP) {
        return 0;
    }
    switch (affinity_drain_state(balancer, r, w, keys->timeout)) {
    case AFFINITY_DRAIN_KEEP:
        return 1;
    case AFFINITY_DRAIN_PAST:
        if (record && keys->npast < AFFINITY_PAST_MAX) {
            keys->past[keys->npast++] = w;
        }
        return 0;
    default:
        return 0;
    }
}



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
static proxy_worker *affinity_walk_reserves(proxy_balancer *balancer,
                                            request_rec *r,
                                            proxy_worker *const *slots, int n,
                                            int lbset, unsigned int kind,
                                            int limit,
                                            const affinity_request *req,
                                            affinity_drain_keys *keys,
                                            affinity_is_best_fn *is_best,
                                            void *baton, proxy_worker *best)
{
    int i;

    for (i = 0; i < n && limit > 0; i++) {
        proxy_worker *w = slots[i];

        if (!affinity_worker_ready(w) || w->s->lbset != lbset
            || (PROXY_WORKER_IS_DRAINING(w)
                && !(keys && affinity_drain_keeps(balancer, r, w, w->s->status,
                                                  keys, 0)))
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
 * slots, which only a set that has them pays).
 *
 * keys (NULL for new sessions): a draining member before its deadline
 * counts as if it were not draining, so that the keys it has stay. */
static AFFINITY_HOT_INLINE proxy_worker *
affinity_walk(proxy_balancer *balancer, request_rec *r,
              const affinity_request *req, affinity_drain_keys *keys,
              affinity_is_best_fn *is_best, void *baton)
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
            if (keys && (st & PROXY_WORKER_DRAIN)
                && affinity_drain_keeps(balancer, r, w, st, keys, 1)) {
                st &= ~PROXY_WORKER_DRAIN;
                if (!(st & skip) && !(tried && affinity_was_tried(req, w))) {
                    if (is_best(w, best, baton)) {
                        best = w;
                    }
                    continue;
                }
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
            best = affinity_walk_reserves(balancer, r, slots, n, lbset,
                                          PROXY_WORKER_HOT_SPARE, unusable,
                                          req, keys, is_best, baton, best);
        }
        if (!best && standbys) {
            best = affinity_walk_reserves(balancer, r, slots, n, lbset,
                                          PROXY_WORKER_HOT_STANDBY, standbys,
                                          req, keys, is_best, baton, best);
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

/* AffinitySlowStart: the members taking no new sessions are seen here (the
 * walk offers only the others), so that their return is a change; only
 * the slots a table build counted, as the walk reads them. */
static void affinity_slow_start_look(proxy_balancer *balancer, apr_time_t now)
{
    int i, n = affinity_members_settled(balancer);

    for (i = 0; i < n; i++) {
        proxy_worker *m = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

        if (affinity_worker_ready(m)) {
            affinity_slow_start_observe(balancer, m, now);
        }
    }
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
        b.now = apr_time_now();
        affinity_slow_start_look(balancer, b.now);
    }
    w = affinity_walk(balancer, r, req, NULL, affinity_is_best_new, &b);
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
 * member may take the request while (busy + 1) * 100 * weights <= factor *
 * (busy sum + 1) * its weight, i.e. while taking it keeps it within
 * factor% of its share of the load this request makes (the rule;
 * HAProxy rounds its slots up, a request more).  At low load none may
 * (three members, one request: a share of a third): the key stays.
 * When the key's member cannot, a second walk offers only those that can:
 * the next member in that key's rendezvous order.  Under AffinitySlowStart
 * a member's allowance is also times its ramp (from AFFINITY_RAMP_FLOOR, as
 * for new sessions); its weight in the order is not, so no key moves for
 * the ramp itself.  Should no member be within its bound then, the key's
 * own member takes the request. */
typedef struct {
    proxy_balancer *balancer;
    affinity_table *table;
    request_rec *r;
    int factor;                     /* 0: no bound */
    int second;                     /* the second walk: the bound filters */
    int slow_start;                 /* seconds, 0: off (with factor only) */
    apr_time_t now;                 /* slow start on: the time of the pick */
    apr_uint64_t busy, weights;     /* first walk: sums over the candidates */
    apr_uint64_t heaviest;          /* and the largest weight */
    affinity_rv rv;
} affinity_domain_baton;

/* affinity_within_bound() under AffinitySlowStart: out of line, so that
 * the callback the walk calls per member stays as small as without it. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int affinity_within_ramped_bound(const affinity_domain_baton *b,
                                        const proxy_worker *w,
                                        apr_uint64_t weight)
{
    apr_uint64_t ramp = (apr_uint64_t)affinity_slow_start_ramp(
                            b->balancer, w, b->slow_start, b->now, b->r, NULL);

    return ((apr_uint64_t)w->s->busy + 1) * 100 * b->weights * AFFINITY_RAMP_FULL
           <= (apr_uint64_t)b->factor * (b->busy + 1) * weight * ramp;
}

static int affinity_within_bound(const affinity_domain_baton *b,
                                 const proxy_worker *w, apr_uint64_t weight)
{
    if (b->slow_start) {
        return affinity_within_ramped_bound(b, w, weight);
    }
    return ((apr_uint64_t)w->s->busy + 1) * 100 * b->weights
           <= (apr_uint64_t)b->factor * (b->busy + 1) * weight;
}

/* Was the key's first member one draining past its deadline, i.e. did the
 * key move for the deadline?  first is the walk's choice without those
 * members (before any bound); past[] the ones the walk saw.  A past member
 * of a lower lbset held every key of its set; of the same kind and set, the
 * order decides; a member that is not a spare or standby beats one that
 * is. */
static int affinity_key_drained(affinity_domain_baton *b,
                                const affinity_drain_keys *keys,
                                proxy_worker *first, apr_uint64_t key)
{
    unsigned int reserve = affinity_reserve_of(first->s->status);
    affinity_member *m;
    int i, slot;

    m = affinity_member_of(b->balancer, &b->table, first, b->r);
    if (!m) {
        return 0;
    }
    affinity_rv_init(&b->rv, key);
    affinity_rv_offer(&b->rv, m->seed, first->s->lbfactor > 0
                                       ? (apr_uint64_t)first->s->lbfactor : 1,
                      (int)(m - b->table->members));
    for (i = 0; i < keys->npast; i++) {
        proxy_worker *p = keys->past[i];

        if (p->s->lbset > first->s->lbset
            || (!reserve && affinity_reserve_of(p->s->status))) {
            continue;
        }
        if (p->s->lbset < first->s->lbset
            || (reserve && !affinity_reserve_of(p->s->status))) {
            return 1;
        }
        m = affinity_member_of(b->balancer, &b->table, p, b->r);
        if (m) {
            affinity_rv_offer(&b->rv, m->seed, p->s->lbfactor > 0
                                               ? (apr_uint64_t)p->s->lbfactor
                                               : 1,
                              (int)(m - b->table->members));
        }
    }
    slot = affinity_rv_best(&b->rv);
    return slot >= 0 && b->table->members[slot].worker != first;
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
            if (weight > b->heaviest) {
                b->heaviest = weight;
            }
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
 * lbsets needed, a draining member under a drain deadline: keys), with
 * b->rv to be started again; else 1, *offered saying whether any member
 * was a candidate. */
static int affinity_offer_hashed(affinity_domain_baton *b, request_rec *r,
                                 const affinity_request *req,
                                 const affinity_drain_keys *keys, int *offered)
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
            if ((st & PROXY_WORKER_DRAIN) && keys) {
                return 0;           /* its deadline: the walk decides */
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
            if (weight > b->heaviest) {
                b->heaviest = weight;
            }
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

/* pick_bounded's work; keys: NULL, or AffinityDrainTimeout's view. */
static AFFINITY_HOT_INLINE proxy_worker *
affinity_pick_keyed(proxy_balancer *balancer, request_rec *r,
                    affinity_table **t, const affinity_request *req,
                    apr_uint64_t key, int factor, affinity_drain_keys *keys,
                    int *bounded, int *drained)
{
    affinity_domain_baton b;
    proxy_worker *w, *first;
    int slot, offered;

    b.balancer = balancer;
    b.table = *t;
    b.r = r;
    b.factor = factor;
    b.second = 0;
    b.slow_start = 0;
    b.now = 0;
    b.busy = b.weights = b.heaviest = 0;
    if (factor && req->slow_start) {
        b.slow_start = req->slow_start;
        b.now = apr_time_now();
        affinity_slow_start_look(balancer, b.now);
    }
    affinity_rv_init(&b.rv, key);
    if (bounded) {
        *bounded = 0;
    }
    if (drained) {
        *drained = 0;
    }
    if (affinity_offer_hashed(&b, r, req, keys, &offered)) {
        w = offered ? b.table->members[affinity_rv_best(&b.rv)].worker : NULL;
    }
    else {
        b.busy = b.weights = b.heaviest = 0;
        affinity_rv_init(&b.rv, key);
        w = affinity_walk(balancer, r, req, keys, affinity_is_best_domain, &b);
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
                                         ? (apr_uint64_t)first->s->lbfactor : 1)
        /* not even an idle member of the largest weight would be (low
         * load): no second walk, the key stays */
        || 100 * b.weights > (apr_uint64_t)factor * (b.busy + 1) * b.heaviest) {
        w = first;
    }
    else {
        b.second = 1;
        affinity_rv_init(&b.rv, key);
        if (keys) {
            keys->npast = 0;
        }
        w = affinity_walk(balancer, r, req, keys, affinity_is_best_domain, &b);
        slot = w ? affinity_rv_best(&b.rv) : -1;
        if (slot < 0) {
            w = first;              /* none within its bound */
        }
        else {
            if (bounded) {
                *bounded = 1;
            }
            w = b.table->members[slot].worker;
        }
    }
    if (drained && keys && keys->npast) {
        *drained = affinity_key_drained(&b, keys, first, key);
    }
    *t = b.table;
    return w;
}

/* pick_bounded under AffinityDrainTimeout: out of line, so that the plain
 * case's loop in pick_bounded stays as it was. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static proxy_worker *affinity_pick_draining(proxy_balancer *balancer,
                                            request_rec *r, affinity_table **t,
                                            const affinity_request *req,
                                            apr_uint64_t key, int factor,
                                            int *bounded, int *drained)
{
    affinity_drain_keys keys;

    keys.timeout = req->drain_timeout;
    keys.npast = 0;
    return affinity_pick_keyed(balancer, r, t, req, key, factor, &keys,
                               bounded, drained);
}

proxy_worker *affinity_pick_bounded(proxy_balancer *balancer, request_rec *r,
                                    affinity_table **t,
                                    const affinity_request *req,
                                    apr_uint64_t key, int factor, int *bounded,
                                    int *drained)
{
    if (req->drain_timeout > 0) {
        return affinity_pick_draining(balancer, r, t, req, key, factor,
                                      bounded, drained);
    }
    if (drained) {
        *drained = 0;
    }
    return affinity_pick_keyed(balancer, r, t, req, key, factor, NULL,
                               bounded, NULL);
}

/* Prefix and learn mode move a session by hashing: never onto a draining
 * member, whatever its deadline. */
proxy_worker *affinity_pick_hashed(proxy_balancer *balancer, request_rec *r,
                                   affinity_table **t,
                                   const affinity_request *req,
                                   apr_uint64_t key)
{
    return affinity_pick_keyed(balancer, r, t, req, key, 0, NULL, NULL, NULL);
}
