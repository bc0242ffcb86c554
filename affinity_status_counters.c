/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status_counters.c: the status page's counters, in shared
 * memory.  One record per (balancer, member) in shared memory, holding one
 * 64-bit counter per AFFINITY_STATUS value, bumped with an atomic add when
 * the request is logged: no lock on the request path.  What is counted is
 * the finder's last decision for the request (after any failover): the
 * member it chose (req->chosen) and the AFFINITY_STATUS it left, or, when no
 * member could be chosen, the balancer's "unrouted" record.
 *
 * The segments live in the process pool: made on the first real post_config
 * pass and kept by the parent across graceful restarts (the children of each
 * generation inherit them), so counters survive a graceful restart and start
 * at zero on a full start.  A record is labelled with the balancer's sname
 * (httpd's own unique name for it, per virtual host) and the member's name,
 * and found again by that label after a restart: reordered members or an
 * edited route never inherit another member's counts.  Each generation
 * reserves, per balancer, a record for every free member slot (growth=N),
 * which the first child to serve a member added live claims with a
 * compare-and-swap.  When a new generation needs more records than are free,
 * a further segment is made; old ones are never unmapped, since children of
 * the old generation may still be counting into them.  Should two records
 * ever carry one label (a race the CAS makes rare), the handler sums them.
 */

#include "apr_atomic.h"
#include "apr_hash.h"
#include "apr_shm.h"
#include "apr_version.h"

#include "ap_slotmem.h"

#include "affinity_status.h"

APLOG_USE_MODULE(affinity);

/* ---- AFFINITY_STATUS values ---------------------------------------------- */

/* Index = counter slot; append new values, never reorder (the slots are in
 * shared memory that outlives a graceful restart to a newer build). */
static const char *const affinity_status_names[] = {
    "valid", "new", "invalid", "down", "domain", "unknown", "expired", "legacy",
    "hash"
};
/* AFFINITY_NAMED (affinity_status.h) is the length of that list */
typedef char affinity_named_matches[(sizeof(affinity_status_names)
                                     / sizeof(affinity_status_names[0])
                                     == AFFINITY_NAMED) ? 1 : -1];

int affinity_status_index(const char *status)
{
    int i;

    if (status) {
        for (i = 0; i < AFFINITY_NAMED; i++) {
            if (!strcmp(status, affinity_status_names[i])) {
                return i;
            }
        }
    }
    return AFFINITY_STATUS_OTHER;
}

/* the shown statuses: the named ones, then "other" */
const char *affinity_status_name(int i)
{
    return i < AFFINITY_NAMED ? affinity_status_names[i] : "other";
}

int affinity_shown_index(int k)
{
    return k < AFFINITY_NAMED ? k : AFFINITY_STATUS_OTHER;
}

/* ---- Counters in shared memory --------------------------------------------- */

#define AFFINITY_REC_FREE         0u
#define AFFINITY_REC_CLAIMING     1u
#define AFFINITY_REC_READY        2u
#define AFFINITY_REC_RESERVED(g)  (3u | ((apr_uint32_t)(g) << 2))
#define AFFINITY_REC_IS_RESERVED(st) (((st) & 3u) == 3u)

typedef struct {
    volatile apr_uint32_t state;
    apr_uint32_t seen;              /* last generation configuring it */
    char balancer[PROXY_BALANCER_MAX_NAME_SIZE];    /* balancer->s->sname */
    char member[PROXY_WORKER_EXT_NAME_SIZE];        /* "" for no member */
    volatile apr_uint64_t count[AFFINITY_NSTATUS];
} affinity_counter;

typedef struct {
    affinity_counter *recs;
    apr_uint32_t n;
} affinity_segment;

/* In the process pool: outlives generations. */
typedef struct {
    apr_array_header_t *segs;       /* affinity_segment */
    apr_time_t since;               /* when counting started (full start) */
} affinity_store;

#define AFFINITY_STORE_KEY "mod_affinity.status_counters"

/* Per process and generation, in pconf, read-only after post_config except
 * for the published record pointers. */
typedef struct {
    affinity_counter *volatile ready;   /* checked for this slot's member */
    affinity_counter *reserved;         /* assigned by the parent */
} affinity_slot;

typedef struct {
    const proxy_balancer_shared *s;     /* the hash key */
    const char *bkey;
    int n;                              /* balancer->max_workers */
    affinity_slot *slots;               /* by worker->s->index */
    affinity_counter *unrouted;
} affinity_bcounters;

static affinity_store *affinity_counters_store;
static apr_hash_t *affinity_counters_map;
static apr_uint32_t affinity_counters_gen;
static volatile apr_uint32_t affinity_counters_warned;

#if APR_MAJOR_VERSION > 1 || (APR_MAJOR_VERSION == 1 && APR_MINOR_VERSION >= 7)
#define AFFINITY_INC64(p)  apr_atomic_inc64(p)
#define AFFINITY_READ64(p) apr_atomic_read64(p)
#else
#define AFFINITY_INC64(p)  __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)
#define AFFINITY_READ64(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#endif

/* A full barrier before the label is read. */
static int affinity_rec_ready(affinity_counter *rec)
{
    return apr_atomic_cas32(&rec->state, AFFINITY_REC_READY,
                            AFFINITY_REC_READY) == AFFINITY_REC_READY;
}

static int affinity_rec_is(affinity_counter *rec, const char *bkey,
                           const char *member)
{
    return affinity_rec_ready(rec)
           && !strncmp(rec->balancer, bkey, sizeof(rec->balancer))
           && !strncmp(rec->member, member, sizeof(rec->member));
}

/* At post_config: READY records by label, so that finding the records of
 * many members is not quadratic. */
static apr_hash_t *affinity_rec_index;

static const char *affinity_rec_key(apr_pool_t *p, const char *bkey,
                                    const char *member)
{
    return apr_pstrcat(p, bkey, "\n", member, NULL);
}

static affinity_counter *affinity_rec_find(const char *bkey, const char *member)
{
    apr_array_header_t *segs = affinity_counters_store->segs;
    int i;
    apr_uint32_t j;

    if (affinity_rec_index) {
        apr_pool_t *p = apr_hash_pool_get(affinity_rec_index);
        return apr_hash_get(affinity_rec_index, affinity_rec_key(p, bkey, member),
                            APR_HASH_KEY_STRING);
    }
    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            if (affinity_rec_is(&seg->recs[j], bkey, member)) {
                return &seg->recs[j];
            }
        }
    }
    return NULL;
}

static void affinity_rec_index_build(apr_pool_t *p)
{
    apr_array_header_t *segs = affinity_counters_store->segs;
    int i;
    apr_uint32_t j;

    affinity_rec_index = apr_hash_make(p);
    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            affinity_counter *rec = &seg->recs[j];
            const char *key;

            if (rec->state != AFFINITY_REC_READY) {
                continue;
            }
            key = affinity_rec_key(p, apr_pstrndup(p, rec->balancer,
                                                   sizeof(rec->balancer)),
                                   apr_pstrndup(p, rec->member, sizeof(rec->member)));
            /* the first of duplicates, as a linear search would find */
            if (!apr_hash_get(affinity_rec_index, key, APR_HASH_KEY_STRING)) {
                apr_hash_set(affinity_rec_index, key, APR_HASH_KEY_STRING, rec);
            }
        }
    }
}

/* Takes a free record and leaves it in state to (READY: labelled). */
static affinity_counter *affinity_rec_take(apr_uint32_t to, const char *bkey,
                                           const char *member)
{
    apr_array_header_t *segs = affinity_counters_store->segs;
    int i;
    apr_uint32_t j;

    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            affinity_counter *rec = &seg->recs[j];
            if (rec->state != AFFINITY_REC_FREE
                || apr_atomic_cas32(&rec->state, AFFINITY_REC_CLAIMING,
                                    AFFINITY_REC_FREE) != AFFINITY_REC_FREE) {
                continue;
            }
            memset(rec->balancer, 0, sizeof(rec->balancer));
            memset(rec->member, 0, sizeof(rec->member));
            apr_cpystrn(rec->balancer, bkey, sizeof(rec->balancer));
            rec->seen = affinity_counters_gen;
            if (to == AFFINITY_REC_READY) {
                apr_cpystrn(rec->member, member, sizeof(rec->member));
            }
            apr_atomic_xchg32(&rec->state, to);
            if (to == AFFINITY_REC_READY && affinity_rec_index) {
                apr_pool_t *p = apr_hash_pool_get(affinity_rec_index);
                apr_hash_set(affinity_rec_index, affinity_rec_key(p, bkey, member),
                             APR_HASH_KEY_STRING, rec);
            }
            return rec;
        }
    }
    return NULL;
}

static apr_uint32_t affinity_free_records(void)
{
    apr_array_header_t *segs = affinity_counters_store->segs;
    apr_uint32_t j, n = 0;
    int i;

    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            n += seg->recs[j].state == AFFINITY_REC_FREE;
        }
    }
    return n;
}

/* Config churn: records of members (and balancers) that neither this
 * generation nor the one before configured go back to the free list, their
 * counts dropped, so that renaming members at every graceful restart reuses
 * records instead of adding segments.  A child two generations old could
 * still count into one, once, if it is still finishing a request. */
static apr_uint32_t affinity_reclaim_records(void)
{
    apr_array_header_t *segs = affinity_counters_store->segs;
    apr_uint32_t j, n = 0;
    int i, k;

    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            affinity_counter *rec = &seg->recs[j];

            if (rec->state != AFFINITY_REC_READY
                || rec->seen + 1 >= affinity_counters_gen
                || apr_atomic_cas32(&rec->state, AFFINITY_REC_CLAIMING,
                                    AFFINITY_REC_READY) != AFFINITY_REC_READY) {
                continue;
            }
            for (k = 0; k < AFFINITY_NSTATUS; k++) {
                rec->count[k] = 0;
            }
            memset(rec->balancer, 0, sizeof(rec->balancer));
            memset(rec->member, 0, sizeof(rec->member));
            apr_atomic_xchg32(&rec->state, AFFINITY_REC_FREE);
            n++;
        }
    }
    return n;
}

static apr_status_t affinity_add_segment(server_rec *s, apr_uint32_t n)
{
    apr_shm_t *shm;
    apr_size_t size = (apr_size_t)n * sizeof(affinity_counter);
    affinity_segment *seg;
    apr_status_t rv;

    /* anonymous: inherited by every child forked after this */
    rv = apr_shm_create(&shm, size, NULL, s->process->pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "AFF0080: affinity-status: cannot create %" APR_SIZE_T_FMT
                     " bytes of shared memory for %u counter records; "
                     "requests to members without a record are not counted",
                     size, n);
        return rv;
    }
    seg = apr_array_push(affinity_counters_store->segs);
    seg->recs = apr_shm_baseaddr_get(shm);
    seg->n = n;
    memset(seg->recs, 0, size);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "AFF0082: affinity-status: %u counter records (%" APR_SIZE_T_FMT
                 " bytes) added to shared memory, %d segment(s) in all",
                 n, size, affinity_counters_store->segs->nelts);
    return APR_SUCCESS;
}

typedef struct {
    proxy_balancer *balancer;
    const char *bkey;
} affinity_bal_ref;

/* Every balancer of every server, each once (virtual hosts may share). */
static apr_array_header_t *affinity_all_balancers(apr_pool_t *p,
                                                  server_rec *main_s)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(affinity_bal_ref));
    apr_hash_t *seen = apr_hash_make(p);
    server_rec *s;
    int b;

    if (!proxy) {
        return out;
    }
    for (s = main_s; s; s = s->next) {
        proxy_server_conf *sconf = ap_get_module_config(s->module_config, proxy);
        if (!sconf || !sconf->balancers) {
            continue;
        }
        for (b = 0; b < sconf->balancers->nelts; b++) {
            proxy_balancer *balancer = &APR_ARRAY_IDX(sconf->balancers, b,
                                                      proxy_balancer);
            affinity_bal_ref *ref;

            if (!balancer->s
                || apr_hash_get(seen, &balancer->s, sizeof(balancer->s))) {
                continue;
            }
            apr_hash_set(seen, &balancer->s, sizeof(balancer->s), "");
            ref = apr_array_push(out);
            ref->balancer = balancer;
            ref->bkey = apr_pstrndup(p, balancer->s->sname,
                                     sizeof(balancer->s->sname));
        }
    }
    return out;
}

void affinity_counters_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                          server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    apr_array_header_t *bals = affinity_all_balancers(ptemp, s);
    apr_uint32_t need = 0, nfree;
    void *data = NULL;
    int b, i;

    affinity_counters_map = apr_hash_make(pconf);
    affinity_counters_gen = (apr_uint32_t)ap_state_query(AP_SQ_CONFIG_GEN);

    apr_pool_userdata_get(&data, AFFINITY_STORE_KEY, pp);
    affinity_counters_store = data;
    if (!affinity_counters_store) {
        affinity_counters_store = apr_pcalloc(pp, sizeof(affinity_store));
        affinity_counters_store->segs = apr_array_make(pp, 2,
                                                       sizeof(affinity_segment));
        affinity_counters_store->since = apr_time_now();
        apr_pool_userdata_set(affinity_counters_store, AFFINITY_STORE_KEY,
                              apr_pool_cleanup_null, pp);
    }
    else {
        /* growth slots a former generation reserved but never used */
        apr_array_header_t *segs = affinity_counters_store->segs;
        apr_uint32_t j;

        for (i = 0; i < segs->nelts; i++) {
            affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
            for (j = 0; j < seg->n; j++) {
                apr_uint32_t st = seg->recs[j].state;
                if (AFFINITY_REC_IS_RESERVED(st)) {
                    apr_atomic_cas32(&seg->recs[j].state, AFFINITY_REC_FREE, st);
                }
            }
        }
    }

    /* records this generation needs that no earlier one made; the others
     * are marked as configured now */
    affinity_rec_index_build(ptemp);
    for (b = 0; b < bals->nelts; b++) {
        affinity_bal_ref *ref = &APR_ARRAY_IDX(bals, b, affinity_bal_ref);
        proxy_balancer *balancer = ref->balancer;
        affinity_counter *rec;

        if ((rec = affinity_rec_find(ref->bkey, ""))) {
            rec->seen = affinity_counters_gen;
        }
        else {
            need++;
        }
        need += balancer->max_workers > balancer->workers->nelts
                ? balancer->max_workers - balancer->workers->nelts : 0;
        for (i = 0; i < balancer->workers->nelts; i++) {
            proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

            if ((rec = affinity_rec_find(ref->bkey, AFFINITY_WORKER_NAME(w)))) {
                rec->seen = affinity_counters_gen;
            }
            else {
                need++;
            }
        }
        /* members added live that the balancer's slots still hold */
        for (i = 0; balancer->storage && balancer->wslot
                    && i < balancer->max_workers; i++) {
            proxy_worker_shared *ws;

            if (balancer->storage->dptr(balancer->wslot, (unsigned int)i,
                                        (void *)&ws) != APR_SUCCESS) {
                break;
            }
            if (ws->hash.def && ws->hash.fnv
                && (rec = affinity_rec_find(ref->bkey,
                                            apr_pstrndup(ptemp, ws->name_ex,
                                                         sizeof(ws->name_ex))))) {
                rec->seen = affinity_counters_gen;
            }
        }
    }
    nfree = affinity_free_records();
    if (need > nfree) {
        nfree += affinity_reclaim_records();
        /* ptemp's index still names what was reclaimed */
        affinity_rec_index_build(ptemp);
    }
    if (need > nfree) {
        /* room to grow over a few graceful restarts without a new segment */
        affinity_add_segment(s, need - nfree + need / 2 + 16);
    }

    for (b = 0; b < bals->nelts; b++) {
        affinity_bal_ref *ref = &APR_ARRAY_IDX(bals, b, affinity_bal_ref);
        proxy_balancer *balancer = ref->balancer;
        affinity_bcounters *bc = apr_pcalloc(pconf, sizeof(*bc));

        bc->s = balancer->s;
        bc->bkey = apr_pstrdup(pconf, ref->bkey);
        bc->n = balancer->max_workers > balancer->workers->nelts
                ? balancer->max_workers : balancer->workers->nelts;
        bc->slots = apr_pcalloc(pconf, (bc->n ? bc->n : 1) * sizeof(affinity_slot));
        bc->unrouted = affinity_rec_find(bc->bkey, "");
        if (!bc->unrouted) {
            bc->unrouted = affinity_rec_take(AFFINITY_REC_READY, bc->bkey, "");
        }
        for (i = 0; i < balancer->workers->nelts; i++) {
            proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);
            const char *name = AFFINITY_WORKER_NAME(w);
            affinity_counter *rec;

            if (w->s->index < 0 || w->s->index >= bc->n) {
                continue;
            }
            rec = affinity_rec_find(bc->bkey, name);
            if (!rec) {
                rec = affinity_rec_take(AFFINITY_REC_READY, bc->bkey, name);
            }
            bc->slots[w->s->index].ready = rec;
            bc->slots[w->s->index].reserved = rec;
        }
        for (i = 0; i < bc->n; i++) {
            if (!bc->slots[i].reserved) {
                bc->slots[i].reserved =
                    affinity_rec_take(AFFINITY_REC_RESERVED(affinity_counters_gen),
                                      bc->bkey, NULL);
            }
        }
        apr_hash_set(affinity_counters_map, &bc->s, sizeof(bc->s), bc);
    }
    /* ptemp's: children find records by a linear search */
    affinity_rec_index = NULL;
}

/* First use, in this process, of a member added live: claim the record the
 * parent reserved for its slot, or find or take one. */
static affinity_counter *affinity_counter_claim(affinity_bcounters *bc,
                                                affinity_slot *slot,
                                                const proxy_worker *w,
                                                request_rec *r)
{
    const char *name = AFFINITY_WORKER_NAME(w);
    affinity_counter *rec = slot->reserved;

    if (rec) {
        apr_uint32_t want = AFFINITY_REC_RESERVED(affinity_counters_gen);
        int tries;

        if (apr_atomic_cas32(&rec->state, AFFINITY_REC_CLAIMING, want) == want) {
            apr_cpystrn(rec->member, name, sizeof(rec->member));
            apr_atomic_xchg32(&rec->state, AFFINITY_REC_READY);
        }
        /* another child is labelling it: a few bytes, so wait briefly */
        for (tries = 0; tries < 1000
                        && apr_atomic_read32(&rec->state) == AFFINITY_REC_CLAIMING;
             tries++) {
            apr_sleep(100);
        }
        if (!affinity_rec_is(rec, bc->bkey, name)) {
            rec = NULL;
        }
    }
    if (!rec) {
        rec = affinity_rec_find(bc->bkey, name);
    }
    if (!rec) {
        rec = affinity_rec_take(AFFINITY_REC_READY, bc->bkey, name);
    }
    if (!rec) {
        if (apr_atomic_cas32(&affinity_counters_warned, 1, 0) == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "AFF0081: affinity-status: no free counter record "
                          "for member %s of %s: its requests are not counted "
                          "until the next restart", name, bc->bkey);
        }
        return NULL;
    }
    slot->ready = rec;
    return rec;
}

/* log_transaction: count the finder's final decision for this request. */
int affinity_status_count(request_rec *r)
{
    const affinity_request *req = NULL;
    const request_rec *from = r;
    const request_rec *rr;
    affinity_bcounters *bc;
    affinity_counter *rec;
    int st;

    if (!affinity_counters_map) {
        return DECLINED;
    }
    /* the proxy may have run in an internal redirect */
    for (rr = r; rr; rr = rr->next) {
        const affinity_request *x = ap_get_module_config(rr->request_config,
                                                         &affinity_module);
        if (x) {
            req = x;
            from = rr;
        }
    }
    if (!req || !req->balancer) {
        return DECLINED;
    }
    bc = apr_hash_get(affinity_counters_map, &req->balancer->s,
                      sizeof(req->balancer->s));
    if (!bc) {
        return DECLINED;
    }
    st = affinity_status_index(apr_table_get(from->subprocess_env,
                                             "AFFINITY_STATUS"));
    if (req->chosen) {
        int i = req->chosen->s->index;

        if (i < 0 || i >= bc->n) {
            return DECLINED;
        }
        rec = bc->slots[i].ready;
        if (!rec) {
            rec = affinity_counter_claim(bc, &bc->slots[i], req->chosen, r);
        }
    }
    else {
        rec = bc->unrouted;
    }
    if (rec) {
        AFFINITY_INC64(&rec->count[st]);
        if (req->bounded) {
            AFFINITY_INC64(&rec->count[AFFINITY_COUNT_BOUNDED]);
        }
    }
    return DECLINED;
}

int affinity_counting(void)
{
    return affinity_counters_store && affinity_counters_store->segs->nelts;
}

/* Sums of every READY record, by "bkey\nmember". */
apr_hash_t *affinity_counts_snapshot(apr_pool_t *p)
{
    apr_hash_t *h = apr_hash_make(p);
    apr_array_header_t *segs;
    apr_uint32_t j;
    int i, k;

    if (!affinity_counters_store) {
        return h;
    }
    segs = affinity_counters_store->segs;
    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            affinity_counter *rec = &seg->recs[j];
            const char *key;
            apr_uint64_t *sum;

            if (!affinity_rec_ready(rec)) {
                continue;
            }
            key = apr_pstrcat(p, apr_pstrndup(p, rec->balancer, sizeof(rec->balancer)),
                              "\n", apr_pstrndup(p, rec->member, sizeof(rec->member)),
                              NULL);
            sum = apr_hash_get(h, key, APR_HASH_KEY_STRING);
            if (!sum) {
                sum = apr_pcalloc(p, AFFINITY_NSTATUS * sizeof(*sum));
                apr_hash_set(h, key, APR_HASH_KEY_STRING, sum);
            }
            for (k = 0; k < AFFINITY_NSTATUS; k++) {
                sum[k] += AFFINITY_READ64(&rec->count[k]);
            }
        }
    }
    return h;
}

apr_time_t affinity_counting_since(void)
{
    return affinity_counting() ? affinity_counters_store->since : 0;
}
