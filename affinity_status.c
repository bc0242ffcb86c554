/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status.c: the affinity-status handler and its counters.
 *
 * Counters.  One record per (balancer, member) in shared memory, holding one
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
 *
 * The handler reads everything it shows from shared memory: members from
 * the balancer's worker slots (so members added live appear in every child,
 * synced or not), each balancer's affinity settings from the <Proxy>
 * sections matching it, route IDs computed afresh from the live routes and
 * the salt.  It never writes shared state and never shows the salt.
 */

#include "apr_atomic.h"
#include "apr_hash.h"
#include "apr_shm.h"
#include "apr_version.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_slotmem.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

#define AFFINITY_STATUS_HANDLER "affinity-status"
#define AFFINITY_STATUS_JSON_VERSION 1

/* ---- AFFINITY_STATUS values ---------------------------------------------- */

/* Index = counter slot; append new values, never reorder (the slots are in
 * shared memory that outlives a graceful restart to a newer build). */
#define AFFINITY_NSTATUS 16
#define AFFINITY_STATUS_OTHER (AFFINITY_NSTATUS - 1)
static const char *const affinity_status_names[] = {
    "valid", "new", "invalid", "down", "domain", "unknown", "expired", "legacy"
};
#define AFFINITY_NAMED (int)(sizeof(affinity_status_names) \
                             / sizeof(affinity_status_names[0]))

static int affinity_status_index(const char *status)
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
static const char *affinity_status_name(int i)
{
    return i < AFFINITY_NAMED ? affinity_status_names[i] : "other";
}

#define AFFINITY_SHOWN (AFFINITY_NAMED + 1)
static int affinity_shown_index(int k)
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

static void affinity_counters_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
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
static int affinity_status_count(request_rec *r)
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
    }
    return DECLINED;
}

static int affinity_counting(void)
{
    return affinity_counters_store && affinity_counters_store->segs->nelts;
}

/* Sums of every READY record, by "bkey\nmember". */
static apr_hash_t *affinity_counts_snapshot(apr_pool_t *p)
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

/* ---- What the handler shows --------------------------------------------------- */

typedef struct {
    proxy_worker_shared *s;
    const char *name;
    const char *route;
    const char *redirect;
    const char *identity;
    char id_hex[AFFINITY_ID_HEX_LEN + 1];
    const char *id_shown;           /* id_hex, or its prefix */
    apr_uint64_t seed;
    apr_uint64_t count[AFFINITY_NSTATUS];
    apr_uint64_t total;
    apr_uint64_t started;           /* requests that started a session here */
    int usable;                     /* now, as the finder would see it */
} affinity_view_member;

typedef struct {
    proxy_balancer *balancer;
    const char *name;
    const affinity_dir_conf *conf;
    const char *salt;
    apr_size_t salt_len;
    apr_array_header_t *members;    /* affinity_view_member */
    apr_uint64_t unrouted[AFFINITY_NSTATUS];
    apr_uint64_t started;
} affinity_view_balancer;

typedef struct {
    request_rec *r;
    apr_array_header_t *balancers;  /* affinity_view_balancer */
    const char *id_query;
    const char *host_query;
    int ids_prefix;                 /* AffinityStatusShowIds prefix */
} affinity_view;

/* Digits of a route ID shown under AffinityStatusShowIds prefix: enough to
 * tell members apart and match a cookie by eye, far from forging one. */
#define AFFINITY_SHOWN_ID_DIGITS 8

/* As mod_proxy would judge it now, without changing anything: a member in
 * error counts as usable once its retry time has passed. */
static int affinity_usable_now(const proxy_worker_shared *s)
{
    unsigned int st = s->status;

    if (!(st & PROXY_WORKER_INITIALIZED)) {
        return 0;
    }
    if ((st & PROXY_WORKER_IN_ERROR) && !(st & PROXY_WORKER_STOPPED)
        && ((st & PROXY_WORKER_IGNORE_ERRORS)
            || apr_time_now() > s->error_time + s->retry)) {
        st &= ~PROXY_WORKER_IN_ERROR;
    }
    return !(st & PROXY_WORKER_NOT_USABLE_BITMAP);
}

/* balancer-manager's Status column */
static const char *affinity_state_text(apr_pool_t *p, const proxy_worker_shared *s)
{
    static const struct {
        unsigned int bit;
        const char *name;
    } flags[] = {
        {PROXY_WORKER_INITIALIZED, "Init "}, {PROXY_WORKER_IGNORE_ERRORS, "Ign "},
        {PROXY_WORKER_DRAIN, "Drn "}, {PROXY_WORKER_GENERIC, "Gen "},
        {PROXY_WORKER_IN_SHUTDOWN, "Shut "}, {PROXY_WORKER_DISABLED, "Dis "},
        {PROXY_WORKER_STOPPED, "Stop "}, {PROXY_WORKER_IN_ERROR, "Err "},
        {PROXY_WORKER_HOT_STANDBY, "Stby "}, {PROXY_WORKER_HOT_SPARE, "Spar "},
        {PROXY_WORKER_FREE, "Free "}, {PROXY_WORKER_HC_FAIL, "HcFl "}
    };
    const char *out = "";
    apr_size_t i;

    for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (s->status & flags[i].bit) {
            out = apr_pstrcat(p, out, flags[i].name, NULL);
        }
    }
    if (!*out) {
        out = "??? ";
    }
    if (!(s->status & PROXY_WORKER_NOT_USABLE_BITMAP)
        && (s->status & PROXY_WORKER_INITIALIZED)) {
        out = apr_pstrcat(p, out, "Ok ", NULL);
    }
    return apr_pstrndup(p, out, strlen(out) - 1);
}

static const char *affinity_mode_name(affinity_mode_e mode)
{
    switch (mode) {
    case AFFINITY_MODE_UNSET:
    case AFFINITY_MODE_COOKIE:
        return "cookie";
    case AFFINITY_MODE_DOMAIN:
        return "domain";
    case AFFINITY_MODE_PREFIX:
        return "prefix";
    case AFFINITY_MODE_LEARN:
        return "learn";
    }
    return "unknown";
}

static int affinity_is_domain(const affinity_view_balancer *vb)
{
    return vb->conf->mode == AFFINITY_MODE_DOMAIN;
}

/* The cookie the balancer reads: ours, or in prefix mode the application's
 * (whose value the module prefixes with the route ID; attributes NULL). */
static const char *affinity_view_cookie(const affinity_dir_conf *c,
                                        const char **attrs)
{
    if ((c->mode == AFFINITY_MODE_PREFIX || c->mode == AFFINITY_MODE_LEARN)
        && c->mode_cookie) {
        *attrs = NULL;
        return c->mode_cookie;
    }
    *attrs = affinity_cookie_attrs_of(c);
    return affinity_cookie_name_of(c);
}

static void affinity_add_member(affinity_view *v, affinity_view_balancer *vb,
                                apr_hash_t *counts, proxy_worker_shared *s)
{
    apr_pool_t *p = v->r->pool;
    affinity_view_member *m = apr_array_push(vb->members);
    proxy_worker fake;
    unsigned char id[AFFINITY_ID_LEN];
    const apr_uint64_t *sum;
    int k;

    memset(m, 0, sizeof(*m));
    m->s = s;
    m->name = apr_pstrndup(p, s->name_ex, sizeof(s->name_ex));
    /* balancer-manager strcpy()s routes in place: copy with bounds */
    m->route = apr_pstrndup(p, s->route, sizeof(s->route));
    m->redirect = apr_pstrndup(p, s->redirect, sizeof(s->redirect));
    memset(&fake, 0, sizeof(fake));
    fake.s = s;
    m->identity = affinity_identity(p, &fake, m->route);
    affinity_route_id(id, vb->salt, vb->salt_len, m->identity, strlen(m->identity));
    affinity_id_to_hex(m->id_hex, id);
    m->id_shown = v->ids_prefix ? apr_pstrndup(p, m->id_hex,
                                               AFFINITY_SHOWN_ID_DIGITS)
                                : m->id_hex;
    m->seed = affinity_member_seed(vb->salt, vb->salt_len, m->identity,
                                   strlen(m->identity));
    m->usable = affinity_usable_now(s);
    sum = apr_hash_get(counts, apr_pstrcat(p, vb->balancer->s->sname, "\n",
                                           m->name, NULL),
                       APR_HASH_KEY_STRING);
    for (k = 0; sum && k < AFFINITY_NSTATUS; k++) {
        m->count[k] = sum[k];
        m->total += sum[k];
    }
    m->started = affinity_is_domain(vb)
                 ? m->count[affinity_status_index("domain")]
                 : m->count[affinity_status_index("new")]
                   + m->count[affinity_status_index("invalid")]
                   + m->count[affinity_status_index("down")]
                   + m->count[affinity_status_index("unknown")]
                   + m->count[affinity_status_index("expired")];
    vb->started += m->started;
}

/* Members from the worker slots in shared memory, in the order a synced
 * child holds them: configured ones first, then those added live. */
static void affinity_add_members(affinity_view *v, affinity_view_balancer *vb,
                                 apr_hash_t *counts)
{
    proxy_balancer *balancer = vb->balancer;
    apr_hash_t *seen = apr_hash_make(v->r->pool);
    apr_array_header_t *shared = apr_array_make(v->r->pool, 8,
                                                sizeof(proxy_worker_shared *));
    int i, locked;

    /* This handler holds none of the balancer's mutexes, and the list
     * changes under it: request threads append members other processes
     * added (thread mutex), balancer-manager appends the one it adds
     * (global mutex), both filling the slot after counting it.  Hold both
     * just to copy the shared-data pointers of the complete members. */
    if (PROXY_THREAD_LOCK(balancer) != APR_SUCCESS) {
        return;
    }
    locked = affinity_members_lock(balancer);
    for (i = 0; i < balancer->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

        if (affinity_worker_ready(w)) {
            APR_ARRAY_PUSH(shared, proxy_worker_shared *) = w->s;
        }
    }
    affinity_members_unlock(balancer, locked);
    PROXY_THREAD_UNLOCK(balancer);

    for (i = 0; i < shared->nelts; i++) {
        proxy_worker_shared *s = APR_ARRAY_IDX(shared, i, proxy_worker_shared *);

        /* by name, not by address: a virtual host's copy of a server-level
         * balancer may hold its members in other slots, which
         * balancer-manager edits of this server never reach */
        apr_hash_set(seen, apr_pstrndup(v->r->pool, s->name_ex,
                                        sizeof(s->name_ex)),
                     APR_HASH_KEY_STRING, "");
        affinity_add_member(v, vb, counts, s);
    }
    if (!balancer->storage || !balancer->wslot) {
        return;
    }
    for (i = 0; i < balancer->max_workers; i++) {
        proxy_worker_shared *s;

        if (balancer->storage->dptr(balancer->wslot, (unsigned int)i,
                                    (void *)&s) != APR_SUCCESS) {
            break;
        }
        if (!s->hash.def || !s->hash.fnv
            || apr_hash_get(seen, apr_pstrndup(v->r->pool, s->name_ex,
                                               sizeof(s->name_ex)),
                            APR_HASH_KEY_STRING)) {
            continue;
        }
        affinity_add_member(v, vb, counts, s);
    }
}

static affinity_view *affinity_build_view(request_rec *r)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    proxy_server_conf *sconf = proxy ? ap_get_module_config(r->server->module_config,
                                                            proxy) : NULL;
    affinity_view *v = apr_pcalloc(r->pool, sizeof(*v));
    apr_hash_t *counts = affinity_counts_snapshot(r->pool);
    apr_hash_t *seen = apr_hash_make(r->pool);
    const affinity_dir_conf *here = ap_get_module_config(r->per_dir_config,
                                                         &affinity_module);
    int b, k;

    v->r = r;
    v->ids_prefix = here && here->status_ids == 0;
    v->balancers = apr_array_make(r->pool, 4, sizeof(affinity_view_balancer));
    if (!sconf || !sconf->balancers) {
        return v;
    }
    for (b = 0; b < sconf->balancers->nelts; b++) {
        proxy_balancer *balancer = &APR_ARRAY_IDX(sconf->balancers, b,
                                                  proxy_balancer);
        affinity_view_balancer *vb;
        const apr_uint64_t *sum;

        /* lbpname is the live choice (balancer-manager may switch it) */
        if (!balancer->s || strncmp(balancer->s->lbpname, "affinity",
                                    sizeof(balancer->s->lbpname))
            || apr_hash_get(seen, &balancer->s, sizeof(balancer->s))) {
            continue;
        }
        apr_hash_set(seen, &balancer->s, sizeof(balancer->s), "");
        vb = apr_array_push(v->balancers);
        memset(vb, 0, sizeof(*vb));
        vb->balancer = balancer;
        vb->name = apr_pstrndup(r->pool, balancer->s->name, sizeof(balancer->s->name));
        /* what a request to its root gets, whichever way it comes
         * (ProxyPass, SetHandler): settings made in <Location> and
         * <Directory> are not seen */
        vb->conf = affinity_config_balancer(r->pool, r->server, balancer);
        vb->salt = vb->conf->salt ? vb->conf->salt : "";
        vb->salt_len = vb->conf->salt ? vb->conf->salt_len : 0;
        vb->members = apr_array_make(r->pool, 4, sizeof(affinity_view_member));
        affinity_add_members(v, vb, counts);
        sum = apr_hash_get(counts, apr_pstrcat(r->pool, balancer->s->sname, "\n",
                                               NULL), APR_HASH_KEY_STRING);
        for (k = 0; sum && k < AFFINITY_NSTATUS; k++) {
            vb->unrouted[k] = sum[k];
        }
    }
    return v;
}

/* ---- Lookups ------------------------------------------------------------------ */

typedef struct {
    const char *error;              /* why no ID could be read */
    char hex[AFFINITY_ID_HEX_LEN + 1];
    const char *form;               /* id, id+suffix, prefixed */
    const char *cookie_name;        /* NAME= given before the value */
    const char *suffix;             /* after the ID */
    const char *value;              /* as a cookie would carry it */
    apr_size_t value_len;
    int uppercase;
} affinity_id_query;

static int affinity_hexdigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}

/* An ID, an ID with a suffix (expiry fields: ID.dates.mac), a prefixed
 * application cookie (ID~value), each optionally as NAME=VALUE and quoted. */
static void affinity_parse_id_query(apr_pool_t *p, const char *in,
                                    affinity_id_query *q)
{
    const char *v = in, *eq;
    apr_size_t len;
    int i;

    memset(q, 0, sizeof(*q));
    while (apr_isspace(*v)) {
        v++;
    }
    /* NAME=VALUE as pasted from a Cookie header; a prefixed value may
     * itself hold '=' after its '~' */
    eq = strchr(v, '=');
    if (eq && (!strchr(v, '~') || eq < strchr(v, '~'))) {
        q->cookie_name = apr_pstrndup(p, v, eq - v);
        v = eq + 1;
    }
    len = strlen(v);
    while (len && apr_isspace(v[len - 1])) {
        len--;
    }
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    q->value = v;
    q->value_len = len;
    if (len < AFFINITY_ID_HEX_LEN) {
        q->error = "the value is shorter than a route ID (40 hex digits)";
        return;
    }
    for (i = 0; i < AFFINITY_ID_HEX_LEN; i++) {
        if (!affinity_hexdigit(v[i])) {
            q->error = "the value does not start with a route ID (40 hex digits)";
            return;
        }
        q->uppercase |= apr_isupper(v[i]);
        q->hex[i] = apr_tolower(v[i]);
    }
    q->hex[AFFINITY_ID_HEX_LEN] = '\0';
    if (len == AFFINITY_ID_HEX_LEN) {
        q->form = "id";
    }
    else if (v[AFFINITY_ID_HEX_LEN] == '~') {
        q->form = "prefixed";
        q->suffix = apr_pstrndup(p, v + AFFINITY_ID_HEX_LEN, len - AFFINITY_ID_HEX_LEN);
    }
    else if (v[AFFINITY_ID_HEX_LEN] == '.') {
        q->form = "id+suffix";
        q->suffix = apr_pstrndup(p, v + AFFINITY_ID_HEX_LEN, len - AFFINITY_ID_HEX_LEN);
    }
    else {
        q->error = "40 hex digits followed by something that is neither "
                   "'.' (expiry fields) nor '~' (prefixed value)";
    }
}

typedef struct {
    const affinity_view_balancer *vb;
    const affinity_view_member *m;
    int honoured;
    const char *outcome;
} affinity_id_match;

static const affinity_view_member *affinity_by_route(const affinity_view_balancer *vb,
                                                     const char *route)
{
    int i;

    for (i = 0; *route && i < vb->members->nelts; i++) {
        const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                       affinity_view_member);
        if (!strcmp(m->route, route) && m->usable) {
            return m;
        }
    }
    return NULL;
}

/* The mode's own answer for the value (see affinity_answer). */
static void affinity_ask_mode(request_rec *r, const affinity_view_balancer *vb,
                              const affinity_id_query *q, affinity_answer *a)
{
    switch (vb->conf->mode) {
    case AFFINITY_MODE_DOMAIN:
        affinity_domain_answer(a);
        break;
    case AFFINITY_MODE_PREFIX:
        affinity_prefix_answer(r, vb->conf, q->value, q->value_len, a);
        break;
    case AFFINITY_MODE_LEARN:
        affinity_learn_answer(r, vb->conf, a);
        break;
    default:
        affinity_cookie_answer(vb->balancer, r, vb->conf, q->value,
                               q->value_len, a);
    }
}

static int affinity_answer_has(const affinity_answer *a, const char *hex)
{
    unsigned char id[AFFINITY_ID_LEN];
    int i;

    if (!a->ids || !affinity_id_from_hex(id, hex, AFFINITY_ID_HEX_LEN)) {
        return 0;
    }
    for (i = 0; i < a->ids->nelts; i++) {
        if (!memcmp(a->ids->elts + i * AFFINITY_ID_LEN, id, AFFINITY_ID_LEN)) {
            return 1;
        }
    }
    return 0;
}

static apr_array_header_t *affinity_lookup_id(affinity_view *v,
                                              const affinity_id_query *q)
{
    apr_pool_t *p = v->r->pool;
    apr_array_header_t *out = apr_array_make(p, 1, sizeof(affinity_id_match));
    int b, i;

    if (q->error) {
        return out;
    }
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        affinity_answer a;
        int asked = 0;

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            affinity_id_match *match;
            const affinity_view_member *to;

            if (strcmp(m->id_hex, q->hex)) {
                continue;
            }
            if (!asked++) {
                affinity_ask_mode(v->r, vb, q, &a);
            }
            match = apr_array_push(out);
            match->vb = vb;
            match->m = m;
            match->honoured = 0;
            if (q->cookie_name && a.carrier && strcmp(q->cookie_name, a.carrier)) {
                match->outcome = apr_pstrcat(p, "not read: this balancer reads "
                                             "cookie ", a.carrier, ", not ",
                                             q->cookie_name, NULL);
            }
            else if (!affinity_answer_has(&a, m->id_hex)) {
                match->outcome = apr_pstrcat(p, "not honoured: ", a.why,
                                             "; a request carrying it gets ",
                                             a.status, NULL);
            }
            else if (m->usable) {
                match->honoured = 1;
                match->outcome = "honoured: the request goes to this member";
            }
            else if ((to = affinity_by_route(vb, m->redirect))) {
                match->outcome = apr_pstrcat(p, "not honoured: the member is "
                                             "not usable; its Route Redirect "
                                             "sends the session to ", to->name,
                                             NULL);
            }
            else if (vb->balancer->s->sticky_force) {
                match->outcome = "not honoured: the member is not usable and "
                                 "nofailover is On: the request gets 503";
            }
            else {
                match->outcome = apr_pstrcat(p, "not honoured: the member is "
                                             "not usable; ", a.moves, NULL);
            }
        }
    }
    return out;
}

/* The host as httpd keeps r->hostname: no port, no brackets kept apart. */
static const char *affinity_host_of(apr_pool_t *p, const char *in)
{
    char *h = apr_pstrdup(p, in);
    char *colon;

    while (apr_isspace(*h)) {
        h++;
    }
    if (*h == '[') {
        char *end = strchr(h, ']');
        if (end) {
            end[1] = '\0';
        }
    }
    else if ((colon = strchr(h, ':'))) {
        *colon = '\0';
    }
    ap_str_tolower(h);
    return h;
}

/* Domain mode's choice for a host, made by the mode (lbsets, drain,
 * standby and spare members as mod_proxy walks them). */
static const affinity_view_member *affinity_lookup_host(request_rec *r,
                                                        const affinity_view_balancer *vb,
                                                        const char *host)
{
    proxy_worker_shared *s = affinity_domain_answer_host(vb->balancer, r,
                                                         vb->conf, host);
    int i;

    for (i = 0; s && i < vb->members->nelts; i++) {
        const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                       affinity_view_member);
        if (m->s == s) {
            return m;
        }
    }
    return NULL;
}

/* ---- Escaping ------------------------------------------------------------------ */

/* JSON string contents: quotes, backslashes and controls escaped, also <, >
 * and & (harmless if a browser is tricked into reading JSON as HTML);
 * invalid UTF-8 bytes become U+FFFD. */
static const char *affinity_json_esc(apr_pool_t *p, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    const unsigned char *end = s + strlen(in);
    char *out = apr_palloc(p, strlen(in) * 6 + 1), *o = out;

    while (*s) {
        int n = affinity_utf8_len(s, (apr_size_t)(end - s));

        if (!n) {
            o += sprintf(o, "\\ufffd");
            s++;
        }
        else if (n > 1) {
            memcpy(o, s, n);
            o += n;
            s += n;
        }
        else if (*s == '"' || *s == '\\') {
            *o++ = '\\';
            *o++ = *s++;
        }
        else if (*s < 0x20 || *s == 0x7f || *s == '<' || *s == '>' || *s == '&') {
            o += sprintf(o, "\\u%04x", *s++);
        }
        else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* Prometheus label values: \, " and newline escaped; other controls and
 * invalid UTF-8 replaced, as the text format must be UTF-8. */
static const char *affinity_prom_esc(apr_pool_t *p, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    const unsigned char *end = s + strlen(in);
    char *out = apr_palloc(p, strlen(in) * 3 + 1), *o = out;

    while (*s) {
        int n = affinity_utf8_len(s, (apr_size_t)(end - s));

        if (!n) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            s++;
        }
        else if (n > 1) {
            memcpy(o, s, n);
            o += n;
            s += n;
        }
        else if (*s == '"' || *s == '\\') {
            *o++ = '\\';
            *o++ = *s++;
        }
        else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
            s++;
        }
        else if (*s < 0x20 || *s == 0x7f) {
            *o++ = '?';
            s++;
        }
        else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* HTML text: markup escaped, and bytes that are not well-formed UTF-8
 * replaced, so that the rest (the page is UTF-8) is shown as it is. */
#define H(s) ap_escape_html2(r->pool, affinity_utf8_clean(r->pool, (s)), 0)
#define J(s) affinity_json_esc(r->pool, (s))

static const char *affinity_time_text(apr_pool_t *p, apr_time_t t)
{
    char *buf = apr_palloc(p, APR_RFC822_DATE_LEN);

    apr_rfc822_date(buf, t);
    return buf;
}

/* ---- HTML --------------------------------------------------------------------- */

static void affinity_html_lookups(request_rec *r, affinity_view *v)
{
    int i;

    ap_rvputs(r, "<form method=\"get\" action=\"", H(r->uri), "\">"
              "<label>Cookie value <input name=\"id\" size=\"50\" value=\"",
              v->id_query ? H(v->id_query) : "", "\"></label> "
              "<label>Host <input name=\"host\" size=\"30\" value=\"",
              v->host_query ? H(v->host_query) : "", "\"></label> "
              "<input type=\"submit\" value=\"Look up\"></form>\n", NULL);

    if (v->id_query) {
        affinity_id_query q;
        apr_array_header_t *matches;

        affinity_parse_id_query(r->pool, v->id_query, &q);
        matches = affinity_lookup_id(v, &q);
        ap_rvputs(r, "<h2>Cookie value <code>", H(v->id_query), "</code></h2>\n",
                  NULL);
        if (q.error) {
            ap_rvputs(r, "<p class=\"bad\">", H(q.error), "</p>\n", NULL);
        }
        else {
            ap_rvputs(r, "<p>Route ID <code>", q.hex, "</code>", NULL);
            if (q.suffix) {
                ap_rvputs(r, " followed by <code>", H(q.suffix), "</code> (",
                          !strcmp(q.form, "prefixed") ? "prefixed value"
                          : "expiry fields, not checked here", ")", NULL);
            }
            ap_rputs(".</p>\n", r);
            if (!matches->nelts) {
                ap_rputs("<p class=\"bad\">It names no member of any balancer "
                         "here: a request carrying it counts as "
                         "<code>invalid</code> and gets a new member.</p>\n", r);
            }
            else {
                ap_rputs("<table><tr><th>Balancer</th><th>Member</th><th>Route</th>"
                         "<th>Status</th><th>Now</th></tr>\n", r);
                for (i = 0; i < matches->nelts; i++) {
                    const affinity_id_match *mt = &APR_ARRAY_IDX(matches, i,
                                                                 affinity_id_match);
                    ap_rvputs(r, "<tr><td>", H(mt->vb->name), "</td><td>",
                              H(mt->m->name), "</td><td>", H(mt->m->route),
                              "</td><td>", affinity_state_text(r->pool, mt->m->s),
                              "</td><td class=\"", mt->honoured ? "ok" : "bad",
                              "\">", H(mt->outcome), "</td></tr>\n", NULL);
                }
                ap_rputs("</table>\n", r);
            }
        }
    }

    if (v->host_query) {
        const char *host = affinity_host_of(r->pool, v->host_query);
        int any = 0;

        ap_rvputs(r, "<h2>Host <code>", H(host), "</code></h2>\n", NULL);
        for (i = 0; i < v->balancers->nelts; i++) {
            const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, i,
                                                              affinity_view_balancer);
            const affinity_view_member *m;

            if (!affinity_is_domain(vb)) {
                continue;
            }
            if (!any++) {
                ap_rputs("<table><tr><th>Balancer</th><th>Member</th><th>Route</th>"
                         "<th>Route ID</th></tr>\n", r);
            }
            m = affinity_lookup_host(r, vb, host);
            ap_rvputs(r, "<tr><td>", H(vb->name), "</td><td>",
                      m ? H(m->name) : "(no usable member: 503)", "</td><td>",
                      m ? H(m->route) : "", "</td><td><code>", m ? m->id_shown : "",
                      m && v->ids_prefix ? "&hellip;" : "",
                      "</code></td></tr>\n", NULL);
        }
        ap_rputs(any ? "</table>\n" : "<p>No balancer here is in domain mode.</p>\n",
                 r);
    }
}

/* Learn mode's store: its state and counts (every child's). */
static void affinity_html_store(request_rec *r)
{
    affinity_store_health h;
    const char *state;

    if (!affinity_store_health_get(&h)) {
        return;
    }
    if (h.up) {
        state = "<td class=\"ok\">up: its last call succeeded";
    }
    else {
        state = apr_pstrcat(r->pool, "<td class=\"bad\">down",
                            h.outage ? " since " : "",
                            h.outage ? affinity_time_text(r->pool, h.outage)
                                     : "",
                            h.backing_off ? " (skipped for now)" : "",
                            ": sessions are hashed",
                            h.local_size ? " unless the local tier knows them"
                                         : "", NULL);
    }
    ap_rvputs(r, "<h2>Learn-mode store</h2>\n<table><tr><th>Store</th>"
              "<th>State</th><th>Lookups</th><th>Writes</th><th>Removals</th>"
              "<th>Errors</th><th>Skipped</th><th>Last error</th>"
              "<th>Local tier</th><th>Local hits</th><th>Written back</th>"
              "</tr>\n<tr><td><code>", H(h.spec), "</code></td>", state,
              "</td>", NULL);
    ap_rprintf(r, "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>",
               h.count[AFFINITY_STORE_LOOKUPS], h.count[AFFINITY_STORE_WRITES],
               h.count[AFFINITY_STORE_REMOVALS], h.count[AFFINITY_STORE_ERRORS],
               h.count[AFFINITY_STORE_SKIPPED]);
    ap_rvputs(r, "<td>", h.last_error ? affinity_time_text(r->pool, h.last_error)
                                      : "none", "</td>", NULL);
    if (h.local_size) {
        ap_rprintf(r, "<td class=\"n\">%" APR_SIZE_T_FMT " bytes</td>"
                   "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
                   "<td class=\"n\">%" APR_UINT64_T_FMT "</td></tr></table>\n",
                   h.local_size, h.count[AFFINITY_STORE_LOCAL_HITS],
                   h.count[AFFINITY_STORE_WRITEBACKS]);
    }
    else {
        ap_rputs("<td>none</td><td></td><td></td></tr></table>\n", r);
    }
}

static void affinity_html(request_rec *r, affinity_view *v)
{
    int b, i, k;

    ap_set_content_type(r, "text/html; charset=utf-8");
    if (r->header_only) {
        return;
    }
    ap_rputs(DOCTYPE_HTML_4_01
             "<html><head><meta charset=\"utf-8\">\n"
             "<title>mod_affinity status</title>\n<style>\n"
             "body{font-family:sans-serif;margin:1em}"
             "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
             /* fits 1280 px with 9 counter columns: names, routes and
              * attributes wrap, an ID takes two lines of 20 digits */
             "th,td{border:1px solid #bbb;padding:.2em .3em;text-align:left}"
             "td{max-width:22em;overflow-wrap:anywhere}"
             "td>code{display:inline-block;width:20ch;word-break:break-all}"
             "td:first-child{min-width:10em}"
             "th{background:#eee}td.n,td.ok,td.bad,td.share{white-space:nowrap}"
             "td.n{text-align:right;font-variant-numeric:tabular-nums}"
             "code{font-size:.95em}.bad{color:#a00}.ok{color:#060}"
             ".bar{display:inline-block;height:.8em;background:#4a7ab5;"
             "vertical-align:middle}\n"
             "</style></head><body>\n<h1>mod_affinity status for ", r);
    ap_rvputs(r, H(ap_get_server_name(r)), "</h1>\n<dl><dt>Server Version: ",
              H(ap_get_server_description()), "</dt>\n<dt>Counting since: ",
              affinity_counting()
              ? affinity_time_text(r->pool, affinity_counters_store->since)
              : "(counters unavailable)", " (kept across graceful restarts)</dt>\n",
              NULL);
    ap_rprintf(r, "<dt>Configuration generation: %d</dt></dl>\n",
               ap_state_query(AP_SQ_CONFIG_GEN));
    affinity_html_lookups(r, v);
    affinity_html_store(r);

    if (!v->balancers->nelts) {
        ap_rputs("<p>No balancer of this server uses <code>lbmethod=affinity"
                 "</code>.</p>\n", r);
    }
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const affinity_dir_conf *c = vb->conf;
        apr_uint64_t unrouted = 0;
        const char *attrs, *cookie = affinity_view_cookie(c, &attrs);

        ap_rvputs(r, "<hr>\n<h2>", H(vb->name), "</h2>\n<table><tr><th>Mode</th>"
                  "<th>Cookie</th><th>Cookie attributes</th><th>Salt</th>"
                  "<th>No failover</th><th>Max members</th></tr>\n<tr><td>",
                  affinity_mode_name(c->mode), "</td><td>", H(cookie), "</td><td>",
                  attrs ? H(attrs) : "(the application's)", "</td><td>",
                  c->salt_kind ? c->salt_kind : "none", "</td><td>",
                  vb->balancer->s->sticky_force ? "On" : "Off", "</td>", NULL);
        ap_rprintf(r, "<td class=\"n\">%d</td></tr></table>\n",
                   vb->balancer->max_workers);

        ap_rputs("<table><tr><th>Member</th><th>Route</th><th>Route ID</th>"
                 "<th>Status</th><th>Factor</th><th>Set</th>", r);
        for (k = 0; k < AFFINITY_SHOWN; k++) {
            ap_rvputs(r, "<th>", affinity_status_name(affinity_shown_index(k)),
                      "</th>", NULL);
        }
        ap_rvputs(r, "<th>Total</th><th>",
                  affinity_is_domain(vb) ? "Share of requests"
                                         : "Share of new sessions",
                  "</th></tr>\n", NULL);
        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            double share = vb->started ? (double)m->started / vb->started : 0;

            ap_rvputs(r, "<tr><td>", H(m->name), "</td><td>", H(m->route),
                      "</td><td><code>", m->id_shown,
                      v->ids_prefix ? "&hellip;" : "", "</code></td><td class=\"",
                      m->usable ? "ok" : "bad", "\">",
                      affinity_state_text(r->pool, m->s), "</td>", NULL);
            /* balancer-manager shows lbfactor / 100 */
            ap_rprintf(r, "<td class=\"n\">%.2f</td><td class=\"n\">%d</td>",
                       m->s->lbfactor / 100.0, m->s->lbset);
            for (k = 0; k < AFFINITY_SHOWN; k++) {
                ap_rprintf(r, "<td class=\"n\">%" APR_UINT64_T_FMT "</td>",
                           m->count[affinity_shown_index(k)]);
            }
            ap_rprintf(r, "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
                       "<td class=\"share\"><span class=\"bar\" style=\"width:%dpx\"></span> "
                       "%.1f%%</td></tr>\n", m->total, (int)(share * 60 + 0.5),
                       share * 100);
        }
        ap_rputs("</table>\n", r);
        for (k = 0; k < AFFINITY_NSTATUS; k++) {
            unrouted += vb->unrouted[k];
        }
        if (unrouted) {
            ap_rputs("<p>Requests no member could take (503):", r);
            for (k = 0; k < AFFINITY_SHOWN; k++) {
                ap_rprintf(r, " %s %" APR_UINT64_T_FMT,
                           affinity_status_name(affinity_shown_index(k)),
                           vb->unrouted[affinity_shown_index(k)]);
            }
            ap_rputs("</p>\n", r);
        }
    }
    ap_rputs("<hr>\n<p>Also as <a href=\"?format=json\">JSON</a> and "
             "<a href=\"?format=prometheus\">Prometheus metrics</a>.</p>\n"
             "</body></html>\n", r);
}

/* ---- JSON ----------------------------------------------------------------------- */

static void affinity_json_counts(request_rec *r, const apr_uint64_t *count)
{
    int k;

    ap_rputs("{", r);
    for (k = 0; k < AFFINITY_SHOWN; k++) {
        ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, k ? "," : "",
                   affinity_status_name(affinity_shown_index(k)),
                   count[affinity_shown_index(k)]);
    }
    ap_rputs("}", r);
}

static void affinity_json_lookups(request_rec *r, affinity_view *v)
{
    int i;

    if (!v->id_query && !v->host_query) {
        return;
    }
    ap_rputs(",\"lookup\":{", r);
    if (v->id_query) {
        affinity_id_query q;
        apr_array_header_t *matches;

        affinity_parse_id_query(r->pool, v->id_query, &q);
        matches = affinity_lookup_id(v, &q);
        ap_rvputs(r, "\"id\":{\"query\":\"", J(v->id_query), "\"", NULL);
        if (q.error) {
            ap_rvputs(r, ",\"error\":\"", J(q.error), "\"}", NULL);
        }
        else {
            ap_rvputs(r, ",\"route_id\":\"", q.hex, "\",\"form\":\"", q.form, "\"",
                      NULL);
            if (q.suffix) {
                ap_rvputs(r, ",\"suffix\":\"", J(q.suffix), "\"", NULL);
            }
            if (q.cookie_name) {
                ap_rvputs(r, ",\"cookie_name\":\"", J(q.cookie_name), "\"", NULL);
            }
            ap_rputs(",\"matches\":[", r);
            for (i = 0; i < matches->nelts; i++) {
                const affinity_id_match *mt = &APR_ARRAY_IDX(matches, i,
                                                             affinity_id_match);
                ap_rvputs(r, i ? "," : "", "{\"balancer\":\"", J(mt->vb->name),
                          "\",\"member\":\"", J(mt->m->name), "\",\"route\":\"",
                          J(mt->m->route), "\",\"status\":\"",
                          J(affinity_state_text(r->pool, mt->m->s)),
                          "\",\"usable\":", mt->m->usable ? "true" : "false",
                          ",\"honoured\":", mt->honoured ? "true" : "false",
                          ",\"outcome\":\"", J(mt->outcome), "\"}", NULL);
            }
            ap_rputs("]}", r);
        }
    }
    if (v->host_query) {
        const char *host = affinity_host_of(r->pool, v->host_query);
        int any = 0;

        ap_rvputs(r, v->id_query ? "," : "", "\"host\":{\"query\":\"",
                  J(v->host_query), "\",\"host\":\"", J(host),
                  "\",\"balancers\":[", NULL);
        for (i = 0; i < v->balancers->nelts; i++) {
            const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, i,
                                                              affinity_view_balancer);
            const affinity_view_member *m;

            if (!affinity_is_domain(vb)) {
                continue;
            }
            m = affinity_lookup_host(r, vb, host);
            ap_rvputs(r, any++ ? "," : "", "{\"balancer\":\"", J(vb->name), "\"",
                      NULL);
            if (m) {
                ap_rvputs(r, ",\"member\":\"", J(m->name), "\",\"route\":\"",
                          J(m->route), "\",\"route_id\":\"", m->id_shown, "\"}", NULL);
            }
            else {
                ap_rputs(",\"member\":null}", r);
            }
        }
        ap_rputs("]}", r);
    }
    ap_rputs("}", r);
}

/* "store": learn mode's store (absent when no balancer learns). */
static void affinity_json_store(request_rec *r)
{
    affinity_store_health h;

    if (!affinity_store_health_get(&h)) {
        return;
    }
    ap_rvputs(r, ",\"store\":{\"spec\":\"", J(h.spec), "\",\"up\":",
              h.up ? "true" : "false", ",\"backing_off\":",
              h.backing_off ? "true" : "false", NULL);
    ap_rprintf(r, ",\"lookups\":%" APR_UINT64_T_FMT ",\"writes\":%"
               APR_UINT64_T_FMT ",\"removals\":%" APR_UINT64_T_FMT
               ",\"errors\":%" APR_UINT64_T_FMT ",\"skipped\":%"
               APR_UINT64_T_FMT, h.count[AFFINITY_STORE_LOOKUPS],
               h.count[AFFINITY_STORE_WRITES], h.count[AFFINITY_STORE_REMOVALS],
               h.count[AFFINITY_STORE_ERRORS], h.count[AFFINITY_STORE_SKIPPED]);
    if (h.last_error) {
        ap_rprintf(r, ",\"last_error\":%" APR_TIME_T_FMT,
                   apr_time_sec(h.last_error));
    }
    else {
        ap_rputs(",\"last_error\":null", r);
    }
    if (h.outage) {
        ap_rprintf(r, ",\"down_since\":%" APR_TIME_T_FMT,
                   apr_time_sec(h.outage));
    }
    else {
        ap_rputs(",\"down_since\":null", r);
    }
    if (h.local_size) {
        ap_rprintf(r, ",\"local\":{\"size\":%" APR_SIZE_T_FMT ",\"hits\":%"
                   APR_UINT64_T_FMT ",\"written_back\":%" APR_UINT64_T_FMT
                   "}}", h.local_size, h.count[AFFINITY_STORE_LOCAL_HITS],
                   h.count[AFFINITY_STORE_WRITEBACKS]);
    }
    else {
        ap_rputs(",\"local\":null}", r);
    }
}

static void affinity_json(request_rec *r, affinity_view *v)
{
    int b, i, k;

    ap_set_content_type(r, "application/json");
    if (r->header_only) {
        return;
    }
    ap_rprintf(r, "{\"version\":%d,\"server\":{\"name\":\"%s\",\"generation\":%d,"
               "\"counting\":%s", AFFINITY_STATUS_JSON_VERSION,
               J(ap_get_server_name(r)), ap_state_query(AP_SQ_CONFIG_GEN),
               affinity_counting() ? "true" : "false");
    if (affinity_counting()) {
        ap_rprintf(r, ",\"counting_since\":%" APR_TIME_T_FMT,
                   apr_time_sec(affinity_counters_store->since));
    }
    ap_rvputs(r, ",\"route_ids\":\"", v->ids_prefix ? "prefix" : "full",
              "\"},\"statuses\":[", NULL);
    for (k = 0; k < AFFINITY_SHOWN; k++) {
        ap_rprintf(r, "%s\"%s\"", k ? "," : "",
                   affinity_status_name(affinity_shown_index(k)));
    }
    ap_rputs("],\"balancers\":[", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const affinity_dir_conf *c = vb->conf;
        const char *attrs, *cookie = affinity_view_cookie(c, &attrs);

        ap_rvputs(r, b ? "," : "", "{\"name\":\"", J(vb->name), "\",\"mode\":\"",
                  affinity_mode_name(c->mode), "\",\"cookie\":{\"name\":\"",
                  J(cookie), "\",\"attributes\":",
                  attrs ? apr_pstrcat(r->pool, "\"", J(attrs), "\"", NULL) : "null",
                  "},\"salt\":\"",
                  c->salt_kind ? c->salt_kind : "none", "\",\"nofailover\":",
                  vb->balancer->s->sticky_force ? "true" : "false", NULL);
        ap_rprintf(r, ",\"max_members\":%d,\"members\":[", vb->balancer->max_workers);
        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rvputs(r, i ? "," : "", "{\"name\":\"", J(m->name),
                      "\",\"route\":\"", J(m->route), "\",\"route_id\":\"",
                      m->id_shown, "\",\"redirect\":\"", J(m->redirect),
                      "\",\"status\":\"", J(affinity_state_text(r->pool, m->s)),
                      "\",\"usable\":", m->usable ? "true" : "false",
                      ",\"draining\":",
                      (m->s->status & PROXY_WORKER_DRAIN) ? "true" : "false", NULL);
            ap_rprintf(r, ",\"lbfactor\":%.2f,\"lbset\":%d,\"requests\":",
                       m->s->lbfactor / 100.0, m->s->lbset);
            affinity_json_counts(r, m->count);
            ap_rprintf(r, ",\"requests_total\":%" APR_UINT64_T_FMT
                       ",\"sessions_started\":%" APR_UINT64_T_FMT
                       ",\"share\":%.4f}", m->total, m->started,
                       vb->started ? (double)m->started / vb->started : 0.0);
        }
        ap_rputs("],\"unrouted\":", r);
        affinity_json_counts(r, vb->unrouted);
        ap_rputs("}", r);
    }
    ap_rputs("]", r);
    affinity_json_store(r);
    affinity_json_lookups(r, v);
    ap_rputs("}\n", r);
}

/* ---- Prometheus text format (0.0.4) --------------------------------------------- */

static void affinity_prometheus_store(request_rec *r);

static void affinity_prometheus(request_rec *r, affinity_view *v)
{
    int b, i, k;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (r->header_only) {
        return;
    }
    ap_rputs("# HELP affinity_requests_total Requests mod_affinity routed to a "
             "member, by AFFINITY_STATUS.\n"
             "# TYPE affinity_requests_total counter\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            const char *mn = affinity_prom_esc(r->pool, m->name);

            for (k = 0; k < AFFINITY_SHOWN; k++) {
                ap_rprintf(r, "affinity_requests_total{balancer=\"%s\",member=\"%s\","
                           "status=\"%s\"} %" APR_UINT64_T_FMT "\n", bn, mn,
                           affinity_status_name(affinity_shown_index(k)),
                           m->count[affinity_shown_index(k)]);
            }
        }
    }
    ap_rputs("# HELP affinity_unrouted_requests_total Requests for which "
             "mod_affinity found no usable member, by AFFINITY_STATUS.\n"
             "# TYPE affinity_unrouted_requests_total counter\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (k = 0; k < AFFINITY_SHOWN; k++) {
            ap_rprintf(r, "affinity_unrouted_requests_total{balancer=\"%s\","
                       "status=\"%s\"} %" APR_UINT64_T_FMT "\n", bn,
                       affinity_status_name(affinity_shown_index(k)),
                       vb->unrouted[affinity_shown_index(k)]);
        }
    }
    ap_rputs("# HELP affinity_member_info A balancer member, its route and "
             "route ID.\n# TYPE affinity_member_info gauge\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rprintf(r, "affinity_member_info{balancer=\"%s\",member=\"%s\","
                       "route=\"%s\",route_id=\"%s\"} 1\n", bn,
                       affinity_prom_esc(r->pool, m->name),
                       affinity_prom_esc(r->pool, m->route), m->id_shown);
        }
    }
    ap_rputs("# HELP affinity_member_usable 1 when the member can take requests "
             "now (balancer-manager's Ok).\n# TYPE affinity_member_usable gauge\n",
             r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rprintf(r, "affinity_member_usable{balancer=\"%s\",member=\"%s\"} %d\n",
                       bn, affinity_prom_esc(r->pool, m->name), m->usable);
        }
    }
    affinity_prometheus_store(r);
}

/* Learn mode's store: one series each, labelled with the store. */
static void affinity_prometheus_store(request_rec *r)
{
    static const struct {
        const char *name, *type, *help;
        int index;
    } series[] = {
        { "affinity_store_lookups_total", "counter",
          "Lookups learn mode made in its store (every child).",
          AFFINITY_STORE_LOOKUPS },
        { "affinity_store_writes_total", "counter",
          "Writes learn mode made to its store.", AFFINITY_STORE_WRITES },
        { "affinity_store_removals_total", "counter",
          "Removals learn mode made in its store.", AFFINITY_STORE_REMOVALS },
        { "affinity_store_errors_total", "counter",
          "Calls to the store that failed (after one retry on a fresh "
          "connection).", AFFINITY_STORE_ERRORS },
        { "affinity_store_skipped_total", "counter",
          "Calls not made because the store failed moments ago.",
          AFFINITY_STORE_SKIPPED },
        { "affinity_store_local_hits_total", "counter",
          "Lookups the local tier answered after the store missed or "
          "failed.", AFFINITY_STORE_LOCAL_HITS },
        { "affinity_store_local_writebacks_total", "counter",
          "Entries of the local tier written back to a store that had "
          "lost them.", AFFINITY_STORE_WRITEBACKS },
    };
    affinity_store_health h;
    const char *st;
    apr_size_t i;

    if (!affinity_store_health_get(&h)) {
        return;
    }
    st = affinity_prom_esc(r->pool, h.spec);
    for (i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n%s{store=\"%s\"} %"
                   APR_UINT64_T_FMT "\n", series[i].name, series[i].help,
                   series[i].name, series[i].type, series[i].name, st,
                   h.count[series[i].index]);
    }
    ap_rprintf(r, "# HELP affinity_store_up 1 when the store's last call "
               "succeeded, 0 when it failed.\n# TYPE affinity_store_up gauge\n"
               "affinity_store_up{store=\"%s\"} %d\n"
               "# HELP affinity_store_last_error_timestamp_seconds When a call "
               "to the store last failed (0: not since the start).\n"
               "# TYPE affinity_store_last_error_timestamp_seconds gauge\n"
               "affinity_store_last_error_timestamp_seconds{store=\"%s\"} %"
               APR_TIME_T_FMT "\n"
               "# HELP affinity_store_local_size_bytes Shared memory of the "
               "local tier in front of the store (0: none).\n"
               "# TYPE affinity_store_local_size_bytes gauge\n"
               "affinity_store_local_size_bytes{store=\"%s\"} %"
               APR_SIZE_T_FMT "\n", st, h.up, st, apr_time_sec(h.last_error),
               st, h.local_size);
}

/* ---- The handler ------------------------------------------------------------------ */

typedef enum {
    AFFINITY_FMT_HTML,
    AFFINITY_FMT_JSON,
    AFFINITY_FMT_PROMETHEUS
} affinity_format_e;

static int affinity_bad_request(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "AFF0083: affinity-status: bad query: %s", why);
    r->status = HTTP_BAD_REQUEST;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    if (!r->header_only) {
        ap_rvputs(r, "affinity-status: ", why, "\n", NULL);
    }
    return OK;
}

static int affinity_wants_prometheus(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    return accept && (ap_strcasestr(accept, "openmetrics-text")
                      || ap_strcasestr(accept, "version=0.0.4"));
}

static int affinity_status_handler(request_rec *r)
{
    affinity_format_e fmt;
    const char *format = NULL;
    affinity_view *v;
    char *args, *pair, *state;
    const char *id = NULL, *host = NULL;

    if (!r->handler || strcmp(r->handler, AFFINITY_STATUS_HANDLER)) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }

    args = apr_pstrdup(r->pool, r->args ? r->args : "");
    for (pair = apr_strtok(args, "&", &state); pair;
         pair = apr_strtok(NULL, "&", &state)) {
        char *val = strchr(pair, '=');

        if (val) {
            *val++ = '\0';
        }
        else {
            val = "";
        }
        if (ap_unescape_urlencoded(pair) != OK
            || ap_unescape_urlencoded(val) != OK) {
            return affinity_bad_request(r, "malformed %-escape in the query");
        }
        if (!strcmp(pair, "format") && !format) {
            format = val;
        }
        else if (!strcmp(pair, "id") && !id) {
            id = val;
        }
        else if (!strcmp(pair, "host") && !host) {
            host = val;
        }
    }

    if (!format) {
        fmt = affinity_wants_prometheus(r) ? AFFINITY_FMT_PROMETHEUS
                                           : AFFINITY_FMT_HTML;
    }
    else if (!strcmp(format, "html")) {
        fmt = AFFINITY_FMT_HTML;
    }
    else if (!strcmp(format, "json")) {
        fmt = AFFINITY_FMT_JSON;
    }
    else if (!strcmp(format, "prometheus")) {
        fmt = AFFINITY_FMT_PROMETHEUS;
    }
    else {
        return affinity_bad_request(r, "format must be html, json or prometheus");
    }

    v = affinity_build_view(r);
    v->id_query = id && *id ? id : NULL;
    v->host_query = host && *host ? host : NULL;

    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (!format) {
        apr_table_mergen(r->headers_out, "Vary", "Accept");
    }
    switch (fmt) {
    case AFFINITY_FMT_JSON:
        affinity_json(r, v);
        break;
    case AFFINITY_FMT_PROMETHEUS:
        affinity_prometheus(r, v);
        break;
    default:
        affinity_html(r, v);
    }
    return OK;
}

static int affinity_status_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                       apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    affinity_counters_post_config(pconf, ptemp, s);
    return OK;
}

void affinity_status_register_hooks(apr_pool_t *p)
{
    /* after mod_proxy_balancer's: it sets max_workers, sname and the slots */
    static const char *const pre[] = {"mod_proxy_balancer.c", NULL};

    (void)p;
    ap_hook_post_config(affinity_status_post_config, pre, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(affinity_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(affinity_status_count, NULL, NULL,
                            APR_HOOK_REALLY_FIRST);
}
