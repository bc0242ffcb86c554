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
 *
 * Each record also keeps when its member last became usable for new
 * sessions (AffinitySlowStart's ramp, at the end of this file): there, every
 * child and every generation sees one time.
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
    "drained", "hash"
};
/* AFFINITY_NAMED (affinity_status.h) is the length of that list */
typedef char affinity_named_matches[(sizeof(affinity_status_names)
                                     / sizeof(affinity_status_names[0])
                                     == AFFINITY_NAMED) ? 1 : -1];

int affinity_status_index(const char *status)
{
    int i;

    if (status) {
        /* every request counts: no strcmp() call where the first letter
         * already differs */
        for (i = 0; i < AFFINITY_NAMED; i++) {
            if (*status == *affinity_status_names[i]
                && !strcmp(status, affinity_status_names[i])) {
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
    affinity_member_life life;      /* slow start, drain, progress */
} affinity_counter;

#define AFFINITY_SINCE_UNSEEN   0u      /* never looked at: a new record */
#define AFFINITY_SINCE_UNUSABLE 1u      /* last seen taking no new sessions */
#define AFFINITY_SINCE_START    2u      /* usable since the full start */

typedef struct {
    affinity_counter *recs;
    apr_uint32_t n;
} affinity_segment;

/* In the process pool: outlives generations. */
typedef struct {
    apr_array_header_t *segs;       /* affinity_segment */
    apr_time_t since;               /* when counting started (full start) */
} affinity_store;

/* .N: the record's layout.  A graceful restart into a build whose
 * affinity_counter differs (2: the member's life, with slow start's usable
 * since, was added) must not
 * read the old segments with the new layout: it starts its own, and the
 * counts start over once. */
#define AFFINITY_STORE_KEY "mod_affinity.status_counters.2"

/* Per process and generation, in pconf, read-only after post_config except
 * for the published record pointers. */
typedef struct {
    affinity_counter *volatile ready;   /* checked for this slot's member */
    affinity_counter *reserved;         /* assigned by the parent */
    apr_uint32_t residual;              /* slow start: thousandths of an
                                         * lbfactor not yet counted */
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
            /* a fresh or reclaimed record: nothing of a former member's
             * life, and slow start's "never looked at" */
            memset((void *)&rec->life, 0, sizeof(rec->life));
            rec->life.usable_since = AFFINITY_SINCE_UNSEEN;
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
            memset((void *)&rec->life, 0, sizeof(rec->life));
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
    int b, i, full_start;

    affinity_counters_map = apr_hash_make(pconf);
    affinity_counters_gen = (apr_uint32_t)ap_state_query(AP_SQ_CONFIG_GEN);

    apr_pool_userdata_get(&data, AFFINITY_STORE_KEY, pp);
    affinity_counters_store = data;
    full_start = !affinity_counters_store;
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
                /* members there from the full start are not ramped; one
                 * added to the configuration at a graceful restart is */
                if (rec && full_start) {
                    rec->life.usable_since = AFFINITY_SINCE_START;
                }
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

void *affinity_status_counters_of(const proxy_balancer *balancer)
{
    return affinity_counters_map
           ? apr_hash_get(affinity_counters_map, &balancer->s,
                          sizeof(balancer->s))
           : NULL;
}

/* log_transaction: count the finder's final decision for this request.  The
 * finder left the status it set and the balancer's counters in the request
 * state: no hash lookup and no environment lookup here. */
int affinity_status_count(request_rec *r)
{
    const affinity_request *req = NULL;
    const request_rec *rr;
    affinity_bcounters *bc;
    affinity_counter *rec;
    int st;

    /* the proxy may have run in an internal redirect */
    for (rr = r; rr; rr = rr->next) {
        const affinity_request *x = ap_get_module_config(rr->request_config,
                                                         &affinity_module);
        if (x) {
            req = x;
        }
    }
    if (!req || !req->balancer || !(bc = req->counters)) {
        return DECLINED;
    }
    st = affinity_status_index(req->status);
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
        if (req->chosen) {
            apr_uint32_t now = (apr_uint32_t)apr_time_sec(r->request_time);

            affinity_life_drain_note(&rec->life, req->chosen->s->status, now);
            /* a session kept here (valid, legacy), or in domain and hash
             * mode a key a draining member keeps under AffinityDrainTimeout
             * (domain, hash; only then, as only the drain progress reads
             * it): the drain progress */
            if (st == 0 || st == 7
                || ((st == 4 || st == 9)
                    && (req->chosen->s->status & PROXY_WORKER_DRAIN))) {
                affinity_life_sticky(&rec->life, now);
            }
        }
    }
    return DECLINED;
}

/* ---- A member's life: drain start and progress ------------------------- */

/* The drain start follows the DRAIN flag lazily: the first process that
 * sees the flag set and no start stores now, one that sees it clear clears
 * the start (a compare-and-swap each, so exactly one start per period).
 * Returns the start in force, 0 when not draining. */
apr_uint32_t affinity_life_drain_note(affinity_member_life *l,
                                      unsigned int status, apr_uint32_t now)
{
    apr_uint32_t since = apr_atomic_read32(&l->draining_since);

    if (status & PROXY_WORKER_DRAIN) {
        if (!since) {
            since = apr_atomic_cas32(&l->draining_since, now ? now : 1, 0);
            if (!since) {
                since = now ? now : 1;
            }
        }
        return since;
    }
    if (since) {
        apr_atomic_cas32(&l->draining_since, 0, since);
    }
    return 0;
}

/* One sticky request at second now: the last time, and a ring of
 * AFFINITY_LIFE_RING buckets of AFFINITY_LIFE_BUCKET seconds.  A bucket
 * from a lap ago is reset by whoever gets it first; a count lost in that
 * race is one request in a figure that is "about". */
void affinity_life_sticky(affinity_member_life *l, apr_uint32_t now)
{
    apr_uint32_t at = now / AFFINITY_LIFE_BUCKET;
    int i = (int)(at % AFFINITY_LIFE_RING);
    apr_uint32_t was = apr_atomic_read32(&l->bucket_at[i]);

    if (was != at
        && apr_atomic_cas32(&l->bucket_at[i], at, was) == was) {
        apr_atomic_set32(&l->bucket_n[i], 0);
    }
    apr_atomic_inc32(&l->bucket_n[i]);
    if (apr_atomic_read32(&l->last_session) < now) {
        apr_atomic_set32(&l->last_session, now);
    }
}

apr_uint32_t affinity_life_last_minute(const affinity_member_life *l,
                                       apr_uint32_t now)
{
    apr_uint32_t at = now / AFFINITY_LIFE_BUCKET, n = 0;
    int i;

    for (i = 0; i < AFFINITY_LIFE_RING; i++) {
        apr_uint32_t b = l->bucket_at[i];

        /* the current bucket and the five before it: 50 to 60 s */
        if (b <= at && at - b < AFFINITY_LIFE_RING) {
            n += l->bucket_n[i];
        }
    }
    return n;
}

/* The finder's question, on the path of a request whose session names a
 * draining member only: the member's record, claimed if this process has
 * not used it yet. */
affinity_member_life *affinity_life_of(proxy_balancer *balancer,
                                       proxy_worker *w, request_rec *r)
{
    affinity_bcounters *bc;
    affinity_counter *rec;
    int i = w->s->index;

    if (!affinity_counters_map) {
        return NULL;
    }
    bc = apr_hash_get(affinity_counters_map, &balancer->s,
                      sizeof(balancer->s));
    if (!bc || i < 0 || i >= bc->n) {
        return NULL;
    }
    rec = bc->slots[i].ready;
    if (!rec) {
        rec = affinity_counter_claim(bc, &bc->slots[i], w, r);
    }
    return rec ? &rec->life : NULL;
}

/* The status page: the first READY record of a label, its drain start
 * brought up to date with status, copied to out (zeros: none). */
void affinity_life_view(const char *bkey, const char *member,
                        unsigned int status, apr_uint32_t now,
                        affinity_member_life *out)
{
    apr_array_header_t *segs;
    apr_uint32_t j;
    int i;

    memset(out, 0, sizeof(*out));
    if (!affinity_counters_store) {
        return;
    }
    segs = affinity_counters_store->segs;
    for (i = 0; i < segs->nelts; i++) {
        affinity_segment *seg = &APR_ARRAY_IDX(segs, i, affinity_segment);
        for (j = 0; j < seg->n; j++) {
            affinity_counter *rec = &seg->recs[j];

            if (affinity_rec_is(rec, bkey, member)) {
                affinity_life_drain_note(&rec->life, status, now);
                memcpy(out, (const void *)&rec->life, sizeof(*out));
                return;
            }
        }
    }
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

/* ---- Slow start ------------------------------------------------------------ */

/* Does the member take new sessions now?  mod_proxy's usability, less
 * standbys, spares and drain, which only keep the sessions they have. */
static int affinity_takes_new(const proxy_worker *w)
{
    return PROXY_WORKER_IS_USABLE(w)
           && !(w->s->status & (PROXY_WORKER_HOT_STANDBY | PROXY_WORKER_HOT_SPARE
                                | PROXY_WORKER_DRAIN));
}

static affinity_slot *affinity_slot_of(const proxy_balancer *balancer,
                                       const proxy_worker *w,
                                       affinity_bcounters **bcp)
{
    affinity_bcounters *bc;
    int i = w->s->index;

    if (!affinity_counters_map) {
        return NULL;
    }
    bc = apr_hash_get(affinity_counters_map, &balancer->s, sizeof(balancer->s));
    if (!bc || i < 0 || i >= bc->n) {
        return NULL;
    }
    *bcp = bc;
    return &bc->slots[i];
}

/* The member's "usable since", brought up to date: a change seen first by
 * any child (usable with none recorded, or recorded as unusable; or the
 * reverse) is stored with a compare-and-swap, so that every child and
 * every generation agrees on one time. */
static apr_uint64_t affinity_usable_since(const proxy_balancer *balancer,
                                          const proxy_worker *w,
                                          apr_time_t now, request_rec *r,
                                          int ramping, affinity_slot **slotp)
{
    affinity_bcounters *bc = NULL;
    affinity_slot *slot = affinity_slot_of(balancer, w, &bc);
    affinity_counter *rec;
    apr_uint64_t v;

    *slotp = slot;
    if (!slot) {
        return AFFINITY_SINCE_START;
    }
    rec = slot->ready;
    if (!rec && r) {
        rec = affinity_counter_claim(bc, slot, w, r);
    }
    if (!rec) {
        return AFFINITY_SINCE_START;
    }
    v = __atomic_load_n(&rec->life.usable_since, __ATOMIC_ACQUIRE);
    if (affinity_takes_new(w)) {
        if (v == AFFINITY_SINCE_UNSEEN || v == AFFINITY_SINCE_UNUSABLE) {
            apr_uint64_t want = v;

            if (!__atomic_compare_exchange_n(&rec->life.usable_since, &want,
                                             (apr_uint64_t)now, 0,
                                             __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE)) {
                return want;            /* another child stored it first */
            }
            /* byrequests' credit the member kept while it took no new
             * sessions would send it a burst of them: the ramp starts from
             * none (a plain store, as byrequests' own updates are) */
            if (ramping && w->s->lbstatus > 0) {
                w->s->lbstatus = 0;
            }
            return (apr_uint64_t)now;
        }
    }
    else if (v != AFFINITY_SINCE_UNUSABLE) {
        __atomic_compare_exchange_n(&rec->life.usable_since, &v,
                                    AFFINITY_SINCE_UNUSABLE, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return AFFINITY_SINCE_UNUSABLE;
    }
    return v;
}

int affinity_slow_start_ramp(const proxy_balancer *balancer,
                             const proxy_worker *w, int seconds,
                             apr_time_t now, request_rec *r,
                             apr_time_t *left)
{
    affinity_slot *slot;
    apr_uint64_t since = affinity_usable_since(balancer, w, now, r,
                                               seconds > 0, &slot);
    apr_time_t span = apr_time_from_sec(seconds), gone;

    if (left) {
        *left = 0;
    }
    if (seconds <= 0 || since <= AFFINITY_SINCE_START) {
        return AFFINITY_RAMP_FULL;
    }
    gone = now - (apr_time_t)since;
    if (gone >= span) {
        return AFFINITY_RAMP_FULL;
    }
    if (gone < 0) {
        gone = 0;               /* another child's clock read a bit later */
    }
    if (left) {
        *left = span - gone;
    }
    return AFFINITY_RAMP_FLOOR
           + (int)((AFFINITY_RAMP_FULL - AFFINITY_RAMP_FLOOR) * gone / span);
}

int affinity_slow_start_weight(const proxy_balancer *balancer,
                               const proxy_worker *w, int seconds,
                               apr_time_t now, request_rec *r)
{
    int ramp = affinity_slow_start_ramp(balancer, w, seconds, now, r, NULL);
    affinity_bcounters *bc;
    affinity_slot *slot;
    apr_uint32_t sum;

    if (ramp >= AFFINITY_RAMP_FULL) {
        return w->s->lbfactor;
    }
    slot = affinity_slot_of(balancer, w, &bc);
    if (!slot) {
        return w->s->lbfactor;
    }
    /* lbfactor x ramp in whole lbfactor units, as byrequests counts; the
     * thousandths carry over to the next pick, so that no share is lost
     * to rounding (under the balancer's thread mutex, per process) */
    sum = slot->residual + (apr_uint32_t)(w->s->lbfactor > 0 ? w->s->lbfactor : 0)
                           * (apr_uint32_t)ramp;
    slot->residual = sum % AFFINITY_RAMP_FULL;
    return (int)(sum / AFFINITY_RAMP_FULL);
}

void affinity_slow_start_observe(const proxy_balancer *balancer,
                                 const proxy_worker *w, apr_time_t now)
{
    affinity_slot *slot;

    (void)affinity_usable_since(balancer, w, now, NULL, 1, &slot);
}
