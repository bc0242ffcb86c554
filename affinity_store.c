/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_store.c: learn mode's table of sessions, kept in a mod_socache
 * provider (AffinityStore: shmcb by default, memcache or redis to share it
 * between front ends).  No store of our own.
 *
 * Lifetime: the instance is created and initialised once per parent process,
 * in s->process->pool, on the first real post_config pass, and found again
 * by its spec on every later generation.  httpd's own users of shmcb create
 * theirs in pconf and so lose it at every graceful restart; ours keeps its
 * shared memory (children of every generation inherit the mapping) and dies
 * with the parent on a full stop.  The provider's functions are looked up
 * each generation: its DSO is unloaded and loaded again at every restart.
 *
 * Faults: a store that fails slowly (a call that took longer than
 * AFFINITY_STORE_SLOW) is left alone by every child for
 * AFFINITY_STORE_BACKOFF, so requests fall back to rendezvous hashing at
 * once instead of each waiting for the provider's timeout; then one call
 * (one for all children) tries it again while the others still skip it,
 * and the first call that works ends the backoff.
 *
 * A fast failure (connection refused, a pooled connection that a restarted
 * store closed) backs off nothing, but APR's memcache and redis clients
 * (APR-util 1.6) remember it: any failed call marks the server dead in that
 * child, and a dead server is only tried again 5 s later, with one ping on
 * a pooled connection that may be just as stale (another 5 s each).  Until
 * then every lookup answers "not found", which cannot be told from a miss.
 * So each child runs its memcache or redis calls through a client of its
 * own: the provider instance it inherited at first, and after a failure a
 * fresh one (create and init in a pool of its own: no pooled connection,
 * server alive).  A call that fails fast on a client that had worked is
 * tried once more on a fresh client at once (the restarted store answers
 * it); a failed client is never used again and is destroyed by the last
 * call still using it; while the store is down, a child makes a fresh
 * client at most every AFFINITY_STORE_FRESH_EVERY and skips the store in
 * between.  Failures are logged at most once a minute for all children
 * together (timestamps in a small shared segment, swapped atomically).
 *
 * Cache: each child keeps the store's recent answers (key -> member route
 * ID and when it was written) for AffinityStoreCacheTime (500 ms by
 * default), so a session's requests do not each wait for a round trip.
 * See "This process's cache" below for the bound and what is cached.
 */

#include "apr_atomic.h"
#include "apr_shm.h"

#include "ap_provider.h"
#include "ap_socache.h"
#include "util_mutex.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

#define AFFINITY_STORE_DEFAULT_SIZE 4194304  /* ~58,000 sessions */
#define AFFINITY_STORE_CNAME        "affinity"
#define AFFINITY_STORE_MUTEX        "affinity-store"
#define AFFINITY_STORE_BACKOFF      1000    /* milliseconds */
#define AFFINITY_STORE_LOG_EVERY    60      /* seconds */
#define AFFINITY_STORE_SLOW         apr_time_from_msec(250)
#define AFFINITY_STORE_FRESH_EVERY  apr_time_from_msec(200)

#define AFFINITY_STORE_LOCAL_DEFAULT 4194304 /* ~58,000 sessions */
#define AFFINITY_STORE_LOCAL_CNAME   "affinity-local"

#define AFFINITY_STORE_CACHE_DEFAULT 500     /* milliseconds */
#define AFFINITY_STORE_CACHE_MAX     60000
#define AFFINITY_STORE_CACHE_SLOTS   4096    /* a power of two */

#if APR_MAJOR_VERSION > 1 || (APR_MAJOR_VERSION == 1 && APR_MINOR_VERSION >= 7)
#define AFFINITY_STORE_INC64(p)  apr_atomic_inc64(p)
#define AFFINITY_STORE_READ64(p) apr_atomic_read64(p)
#else
#define AFFINITY_STORE_INC64(p)  __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)
#define AFFINITY_STORE_READ64(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#endif

typedef struct {
    /* milliseconds, wrapping (0: none): when a slow failure started the
     * backoff, or when the one call trying the store again set out */
    volatile apr_uint32_t down_at;
    volatile apr_uint32_t logged;       /* seconds: last AFF0091 */
    /* health, for the status page: every child adds to these */
    volatile apr_uint32_t outage;       /* seconds: first failure of the
                                         * outage going on (0: none) */
    volatile apr_uint32_t last_error;   /* seconds (0: never) */
    volatile apr_uint32_t last_ok;      /* the last call succeeded */
    volatile apr_uint32_t called;       /* a call has been made */
    volatile apr_uint64_t count[AFFINITY_STORE_NCOUNT];
} affinity_store_shared;

/* One per parent process and spec, in the process pool. */
typedef struct {
    const char *spec;                   /* as configured */
    const char *provider_name;
    const char *args;                   /* the provider's part of spec */
    int renewable;                      /* memcache, redis: see above */
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;          /* NOTMPSAFE providers only */
    affinity_store_shared *shared;
    /* the local tier (memcache, redis): a shmcb of this front end's own */
    apr_size_t local_size;              /* 0: none */
    ap_socache_instance_t *local;
    apr_global_mutex_t *local_mutex;
} affinity_store_rec;

/* This generation's: the directive, and the store in use. */
static const char *affinity_store_spec;
static const char *affinity_store_where;    /* file:line of AffinityStore */
static int affinity_learn_used;
static const ap_socache_provider_t *affinity_store_provider;
static affinity_store_rec *affinity_store;
static apr_int64_t affinity_store_local_size;   /* -1: unset */
static const char *affinity_store_local_where;
static const ap_socache_provider_t *affinity_local_provider;
static apr_int64_t affinity_store_cache_ms;     /* -1: unset */
/* the cache's generations, one per slot, shared by the children (see
 * "This process's cache") */
static volatile apr_uint32_t *affinity_store_gens;

const char *affinity_set_store_local(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end;
    apr_int64_t v;

    (void)dconf;
    if (err) {
        return err;
    }
    v = apr_strtoi64(arg, &end, 10);
    if (end == arg || *end || v < 0 || (v > 0 && v < 65536)
        || v > APR_INT64_C(4294967295)) {
        return apr_psprintf(cmd->pool, "AffinityStoreLocal: \"%s\" is not a "
                            "size in bytes from 65536 to 4294967295, or 0 "
                            "for no local tier; e.g. AffinityStoreLocal "
                            "4194304", arg);
    }
    affinity_store_local_size = v;
    affinity_store_local_where = apr_psprintf(cmd->pool, "%s:%d",
                                              cmd->directive->filename,
                                              cmd->directive->line_num);
    return NULL;
}

const char *affinity_set_store_cache_time(cmd_parms *cmd, void *dconf,
                                          const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end;
    apr_int64_t v;

    (void)dconf;
    if (err) {
        return err;
    }
    v = apr_strtoi64(arg, &end, 10);
    if (end == arg || *end || !apr_isdigit(*arg)
        || v > AFFINITY_STORE_CACHE_MAX) {
        return apr_psprintf(cmd->pool, "AffinityStoreCacheTime: \"%s\" is "
                            "not a number of milliseconds from 0 (no cache) "
                            "to %d; e.g. AffinityStoreCacheTime 500", arg,
                            AFFINITY_STORE_CACHE_MAX);
    }
    affinity_store_cache_ms = v;
    return NULL;
}

const char *affinity_set_store(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *colon;

    (void)dconf;
    if (err) {
        return err;
    }
    colon = strchr(arg, ':');
    if (!*arg || colon == arg) {
        return "AffinityStore: name a mod_socache provider, e.g. shmcb, "
               "memcache:HOST:PORT or redis:HOST:PORT";
    }
    affinity_store_spec = arg;
    affinity_store_where = cmd->directive
                           ? apr_psprintf(cmd->pool, "%s:%d",
                                          cmd->directive->filename,
                                          cmd->directive->line_num)
                           : "";
    return NULL;
}

void affinity_store_learn_used(void)
{
    affinity_learn_used = 1;
}

int affinity_store_pre_config(apr_pool_t *pconf)
{
    affinity_store_spec = NULL;
    affinity_store_where = NULL;
    affinity_learn_used = 0;
    affinity_store_provider = NULL;
    affinity_store = NULL;
    affinity_store_local_size = -1;
    affinity_store_local_where = NULL;
    affinity_local_provider = NULL;
    affinity_store_cache_ms = -1;
    affinity_store_gens = NULL;
    return ap_mutex_register(pconf, AFFINITY_STORE_MUTEX, NULL,
                             APR_LOCK_DEFAULT, 0) == APR_SUCCESS
           ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

static const char *affinity_store_default(apr_pool_t *p)
{
    /* the path is only used where anonymous shared memory is not */
    return apr_psprintf(p, "shmcb:%s(%d)",
                        ap_runtime_dir_relative(p, "affinity-store"),
                        AFFINITY_STORE_DEFAULT_SIZE);
}

static void affinity_store_hints(struct ap_socache_hints *hints)
{
    /* shmcb sizes its index from these: an entry is a 16-byte key and
     * 28 bytes of data, and the index should not eat the data area */
    memset(hints, 0, sizeof(*hints));
    hints->avg_id_len = AFFINITY_LEARN_KEY_LEN;
    hints->avg_obj_size = 52;
    hints->expiry_interval = apr_time_from_sec(30);
}

/* The local tier: a shmcb of this front end's own, in the process pool
 * like the store, with its own mutex (shmcb is not thread-safe). */
static int affinity_store_local_make(server_rec *s, apr_pool_t *ptemp,
                                     affinity_store_rec *st)
{
    apr_pool_t *pp = s->process->pool;
    const ap_socache_provider_t *prov = affinity_local_provider;
    struct ap_socache_hints hints;
    apr_size_t size = affinity_store_local_size > 0
                      ? (apr_size_t)affinity_store_local_size
                      : AFFINITY_STORE_LOCAL_DEFAULT;
    const char *args, *err;
    apr_status_t rv;

    /* the path is only used where anonymous shared memory is not */
    args = apr_psprintf(ptemp, "%s(%" APR_SIZE_T_FMT ")",
                        ap_runtime_dir_relative(ptemp, "affinity-local"),
                        size);
    err = prov->create(&st->local, args, ptemp, pp);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0093: AffinityStoreLocal: %s", err);
        return 0;
    }
    affinity_store_hints(&hints);
    rv = prov->init(st->local, AFFINITY_STORE_LOCAL_CNAME, &hints, s, pp);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&st->local_mutex, NULL,
                                    AFFINITY_STORE_MUTEX, "local", s, pp, 0);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "AFF0093: AffinityStoreLocal: the local tier (%"
                     APR_SIZE_T_FMT " bytes of shared memory) could not be "
                     "set up; lower it, or AffinityStoreLocal 0 for none",
                     size);
        return 0;
    }
    st->local_size = size;
    return 1;
}

static affinity_store_rec *affinity_store_make(server_rec *s, apr_pool_t *ptemp,
                                               const char *spec,
                                               const char *name,
                                               const char *args)
{
    apr_pool_t *pp = s->process->pool;
    const ap_socache_provider_t *prov = affinity_store_provider;
    struct ap_socache_hints hints;
    affinity_store_rec *st = apr_pcalloc(pp, sizeof(*st));
    apr_shm_t *shm;
    const char *err;
    apr_status_t rv;

    st->spec = apr_pstrdup(pp, spec);
    st->provider_name = apr_pstrdup(pp, name);
    st->args = apr_pstrdup(pp, args);
    /* only these two are known to hold nothing but per-process client
     * state: a fresh instance of shmcb would be a new, empty store */
    st->renewable = !strcmp(name, "memcache") || !strcmp(name, "redis");
    err = prov->create(&st->instance, args, ptemp, pp);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0093: AffinityStore %s: %s", spec, err);
        return NULL;
    }
    affinity_store_hints(&hints);
    rv = prov->init(st->instance, AFFINITY_STORE_CNAME, &hints, s, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "AFF0093: AffinityStore %s: the store could not be "
                     "set up", spec);
        return NULL;
    }
    if (prov->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&st->mutex, NULL, AFFINITY_STORE_MUTEX,
                                    NULL, s, pp, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         "AFF0093: AffinityStore %s: cannot create its "
                         "mutex", spec);
            return NULL;
        }
    }
    rv = apr_shm_create(&shm, sizeof(affinity_store_shared), NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "AFF0093: AffinityStore %s: cannot create its shared "
                     "state", spec);
        return NULL;
    }
    st->shared = apr_shm_baseaddr_get(shm);
    memset((void *)st->shared, 0, sizeof(*st->shared));
    st->shared->last_ok = 1;            /* nothing has failed yet */
    if (st->renewable && affinity_local_provider
        && affinity_store_local_size != 0
        && !affinity_store_local_make(s, ptemp, st)) {
        return NULL;
    }
    return st;
}

/* The provider named by the spec, or NULL after AFF0090 (the fix named). */
static const ap_socache_provider_t *affinity_store_lookup(server_rec *s,
                                                          const char *name)
{
    const ap_socache_provider_t *prov;

    prov = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                              AP_SOCACHE_PROVIDER_VERSION);
    if (!prov) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0090: AffinityStore%s%s: the mod_socache provider "
                     "\"%s\" is not loaded and learn mode needs it; add "
                     "\"LoadModule socache_%s_module modules/mod_socache_%s.so\" "
                     "(Debian: a2enmod socache_%s)",
                     affinity_store_where ? " at " : " (default)",
                     affinity_store_where ? affinity_store_where : "",
                     name, name, name, name);
    }
    return prov;
}

/* The local tier's provider (shmcb), needed in front of memcache and
 * redis unless AffinityStoreLocal 0.  Missing: an error when the directive
 * asks for the tier, else a warning (once, at -t or startup) and no tier. */
static int affinity_store_local_lookup(server_rec *s, const char *name,
                                       int say)
{
    affinity_local_provider = NULL;
    if (affinity_store_local_size == 0
        || (strcmp(name, "memcache") && strcmp(name, "redis"))) {
        return OK;
    }
    affinity_local_provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP,
                                                 "shmcb",
                                                 AP_SOCACHE_PROVIDER_VERSION);
    if (affinity_local_provider) {
        return OK;
    }
    if (affinity_store_local_where) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0090: AffinityStoreLocal at %s: the local tier is "
                     "kept by the mod_socache provider \"shmcb\", which is "
                     "not loaded; add \"LoadModule socache_shmcb_module "
                     "modules/mod_socache_shmcb.so\" (Debian: a2enmod "
                     "socache_shmcb), or AffinityStoreLocal 0 for no local "
                     "tier", affinity_store_local_where);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* once at -t, once per start or reload (not in the dry-run pass) */
    if (say && (ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST
                || ap_state_query(AP_SQ_MAIN_STATE)
                   != AP_SQ_MS_CREATE_PRE_CONFIG)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "AFF0111: AffinityStore %s: no local tier, as "
                     "mod_socache_shmcb is not loaded: sessions learned "
                     "through this front end are hashed (and may change "
                     "member) while the store is down or after it restarts "
                     "empty; add \"LoadModule socache_shmcb_module "
                     "modules/mod_socache_shmcb.so\" (Debian: a2enmod "
                     "socache_shmcb), or set AffinityStoreLocal 0 to say "
                     "that none is wanted", name);
    }
    return OK;
}

static const char *affinity_store_spec_of(apr_pool_t *p, const char **name,
                                          const char **args)
{
    const char *spec = affinity_store_spec ? affinity_store_spec
                                           : affinity_store_default(p);
    const char *colon = strchr(spec, ':');

    *name = colon ? apr_pstrmemdup(p, spec, colon - spec) : spec;
    *args = colon ? colon + 1 : "";
    return spec;
}

/* check_config: runs for apache2ctl -t too, so a missing provider is
 * caught there and not only at the next start. */
int affinity_store_check_config(apr_pool_t *ptemp, server_rec *s)
{
    const char *name, *args;

    if (!affinity_learn_used) {
        return OK;
    }
    affinity_store_spec_of(ptemp, &name, &args);
    if (!affinity_store_lookup(s, name)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return affinity_store_local_lookup(s, name, 1);
}

int affinity_store_post_config(apr_pool_t *ptemp, server_rec *s)
{
    const char *name, *args;
    const char *spec = affinity_store_spec_of(ptemp, &name, &args);
    const char *ukey;
    void *found = NULL;

    if (!affinity_learn_used) {
        return OK;
    }
    /* one store per parent: a changed spec waits for a full restart, so
     * that graceful restarts never pile up stores in the parent */
    ukey = "mod_affinity.store";
    apr_pool_userdata_get(&found, ukey, s->process->pool);
    if (found && strcmp(((affinity_store_rec *)found)->spec, spec)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "AFF0089: AffinityStore %s: not used until a full "
                     "restart (apache2ctl stop, then start); learn mode "
                     "keeps the store it started with, %s",
                     spec, ((affinity_store_rec *)found)->spec);
        spec = ((affinity_store_rec *)found)->spec;
    }
    /* the provider of the store kept (its DSO was loaded again) */
    affinity_store_provider = affinity_store_lookup(s, found
        ? ((affinity_store_rec *)found)->provider_name : name);
    if (!affinity_store_provider) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* the tier's provider too (its DSO was loaded again); a tier made at
     * the first start stays as it was until a full restart */
    if (affinity_store_local_lookup(s, found
            ? ((affinity_store_rec *)found)->provider_name : name, 0) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (found) {
        affinity_store_rec *f = found;
        apr_size_t want = !affinity_local_provider ? 0
                          : affinity_store_local_size > 0
                          ? (apr_size_t)affinity_store_local_size
                          : AFFINITY_STORE_LOCAL_DEFAULT;

        if (want != f->local_size) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "AFF0089: AffinityStoreLocal: the local tier keeps "
                         "its size (%" APR_SIZE_T_FMT " bytes, 0: none) "
                         "until a full restart (apache2ctl stop, then "
                         "start)", f->local_size);
        }
        if (f->local) {
            /* the tier in use, whatever the directive says now */
            affinity_local_provider = ap_lookup_provider(
                AP_SOCACHE_PROVIDER_GROUP, "shmcb",
                AP_SOCACHE_PROVIDER_VERSION);
            if (!affinity_local_provider) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                             "AFF0090: the local tier of AffinityStore %s "
                             "needs mod_socache_shmcb, which is no longer "
                             "loaded; load it again, or stop and start "
                             "httpd", f->spec);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }
    if (!found) {
        found = affinity_store_make(s, ptemp, spec, name, args);
        if (!found) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_userdata_set(found, ukey, NULL, s->process->pool);
    }
    affinity_store = found;
    /* the cache's generations: a segment of their own, also kept in the
     * parent across generations (a store rec made by an older build of
     * the module, without them, stays usable) */
    found = NULL;
    apr_pool_userdata_get(&found, "mod_affinity.store-gens",
                          s->process->pool);
    if (!found) {
        apr_shm_t *shm;
        apr_size_t size = AFFINITY_STORE_CACHE_SLOTS * sizeof(apr_uint32_t);

        if (apr_shm_create(&shm, size, NULL, s->process->pool)
            != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "AFF0093: AffinityStore %s: cannot create the "
                         "shared state of its cache", spec);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        found = apr_shm_baseaddr_get(shm);
        memset(found, 0, size);
        apr_pool_userdata_set(found, "mod_affinity.store-gens", NULL,
                              s->process->pool);
    }
    affinity_store_gens = found;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "AFF0094: learn mode stores sessions in %s", spec);
    return OK;
}

/* ---- This process's cache ------------------------------------------------
 * The store's answers, kept by each child for a short bound (B,
 * AffinityStoreCacheTime, 500 ms by default; 0: none), so that a session's
 * requests do not each wait for a round trip to memcached or Redis, nor
 * each take shmcb's global mutex.
 *
 * Within a front end nothing is stale: every write or removal by any of
 * its children bumps a generation in shared memory (affinity_store_gens,
 * one per cache slot), before its store call
 * and again after it, and a kept answer is only used while its slot's
 * generation is the one read before the lookup that fetched it set out.
 * So with shmcb (one front end) the cache never answers what the store
 * would not; a moved, learned or forgotten session is seen by every child
 * at its next request.
 *
 * Between front ends (memcache, redis), the bound: an answer is used for
 * requests received less than B after the lookup that fetched it set out,
 * so a change another front end makes in the store is followed by every
 * request received more than B after it.  With B at most ~900 ms, two
 * front ends agree on every learned or moved session within 1 s.
 *
 * Only answers that found an entry are kept, never "no entry": values no
 * member issued (a flood of made-up cookies) pass straight to the store as
 * before and can neither fill the cache nor evict what it holds, and a
 * session learned by another front end is seen at its first request.
 * Answers of the local tier (store down or missing the entry) are not
 * kept either.
 *
 * A fixed table, allocated once per child: AFFINITY_STORE_CACHE_SLOTS
 * slots of 64 bytes, direct-mapped by the key's first bytes (keys are
 * keyed hashes, uniform); a newer answer replaces whatever its slot held.
 * Readers take no lock: each slot has a sequence number, odd while it is
 * written, read before and after the copy (a seqlock); a copy that raced
 * with a writer is a miss.  Writers hold the child's mutex. */

typedef struct {
    apr_uint32_t seq;                   /* odd: being written */
    apr_uint32_t gen;                   /* the slot's generation, seen
                                         * before the lookup */
    apr_time_t fetched;                 /* the lookup set out; 0: empty */
    apr_int64_t written;                /* the entry's, seconds */
    unsigned char key[AFFINITY_LEARN_KEY_LEN];
    unsigned char id[AFFINITY_ID_LEN];
} affinity_store_cache_slot;

static struct {
    affinity_store_cache_slot *slots;   /* NULL: no cache in this child */
    apr_thread_mutex_t *mutex;          /* writers */
    apr_interval_time_t bound;
} affinity_store_cache;

static void affinity_store_cache_child_init(apr_pool_t *p, server_rec *s)
{
    apr_int64_t ms = affinity_store_cache_ms >= 0 ? affinity_store_cache_ms
                                                  : AFFINITY_STORE_CACHE_DEFAULT;

    memset(&affinity_store_cache, 0, sizeof(affinity_store_cache));
    if (!affinity_store || !affinity_store_gens || ms == 0) {
        return;
    }
    if (apr_thread_mutex_create(&affinity_store_cache.mutex,
                                APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_ENOMEM, s,
                     "AFF0093: AffinityStoreCacheTime: cannot set up this "
                     "child's cache; every lookup asks the store");
        return;
    }
    affinity_store_cache.bound = apr_time_from_msec(ms);
    affinity_store_cache.slots = apr_pcalloc(p, AFFINITY_STORE_CACHE_SLOTS
                                 * sizeof(affinity_store_cache_slot));
}

static apr_uint32_t affinity_store_cache_index(const unsigned char *key)
{
    apr_uint32_t h;

    memcpy(&h, key, sizeof(h));
    return h & (AFFINITY_STORE_CACHE_SLOTS - 1);
}

/* The generation of key's slot, shared by the front end's children. */
static volatile apr_uint32_t *affinity_store_cache_gen(const unsigned char *key)
{
    return &affinity_store_gens[affinity_store_cache_index(key)];
}

/* A kept answer for key: fetched less than the bound before r came, and
 * no child of this front end changed the entry since. */
static int affinity_store_cache_get(request_rec *r, const unsigned char *key,
                                    unsigned char id[AFFINITY_ID_LEN],
                                    apr_int64_t *written)
{
    affinity_store_cache_slot *slot, copy;
    apr_uint32_t seq;

    if (!affinity_store_cache.slots) {
        return 0;
    }
    slot = &affinity_store_cache.slots[affinity_store_cache_index(key)];
    seq = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
    if (seq & 1) {
        return 0;
    }
    memcpy(&copy, slot, sizeof(copy));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&slot->seq, __ATOMIC_RELAXED) != seq
        || !copy.fetched
        || r->request_time - copy.fetched >= affinity_store_cache.bound
        || memcmp(copy.key, key, AFFINITY_LEARN_KEY_LEN)
        || apr_atomic_read32(affinity_store_cache_gen(key)) != copy.gen) {
        return 0;
    }
    memcpy(id, copy.id, AFFINITY_ID_LEN);
    *written = copy.written;
    return 1;
}

/* Keeps an answer for key (id NULL: none), fetched by a lookup that set
 * out at fetched when the slot's generation was gen. */
static void affinity_store_cache_keep(const unsigned char *key,
                                      const unsigned char *id,
                                      apr_int64_t written, apr_time_t fetched,
                                      apr_uint32_t gen)
{
    affinity_store_cache_slot *slot;
    apr_uint32_t seq;

    if (!affinity_store_cache.slots) {
        return;
    }
    slot = &affinity_store_cache.slots[affinity_store_cache_index(key)];
    apr_thread_mutex_lock(affinity_store_cache.mutex);
    seq = slot->seq;
    __atomic_store_n(&slot->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    if (id) {
        memcpy(slot->key, key, AFFINITY_LEARN_KEY_LEN);
        memcpy(slot->id, id, AFFINITY_ID_LEN);
        slot->written = written;
        slot->fetched = fetched;
        slot->gen = gen;
    }
    else {
        slot->fetched = 0;
    }
    __atomic_store_n(&slot->seq, seq + 2, __ATOMIC_RELEASE);
    apr_thread_mutex_unlock(affinity_store_cache.mutex);
}

/* A child of this front end writes or removes key's entry: before its
 * store call and after it, the slot's generation moves on, which turns
 * away every answer kept or being fetched for it, in every child.  Returns
 * the new generation. */
static apr_uint32_t affinity_store_cache_bump(const unsigned char *key)
{
    if (!affinity_store_gens) {
        return 0;
    }
    return apr_atomic_inc32(affinity_store_cache_gen(key)) + 1;
}

/* ---- This child's client (memcache, redis) ------------------------------ */

typedef struct {
    ap_socache_instance_t *instance;
    apr_pool_t *pool;                   /* NULL: the inherited instance */
    int users;                          /* calls running on it */
    int worked;                         /* a call succeeded on it */
    int failed;                         /* a call failed: never used again */
} affinity_store_client;

static struct {
    apr_thread_mutex_t *mutex;          /* guards everything here */
    apr_pool_t *pool;                   /* the clients' pools' parent */
    server_rec *s;                      /* the main server, for init */
    affinity_store_client *current;     /* NULL: no renewal in this child */
    apr_time_t fresh_at;                /* the last fresh client made */
} affinity_store_child;

void affinity_store_child_init(apr_pool_t *p, server_rec *s)
{
    affinity_store_rec *st = affinity_store;
    apr_allocator_t *alloc;
    apr_thread_mutex_t *amutex;
    apr_status_t rv;

    memset(&affinity_store_child, 0, sizeof(affinity_store_child));
    affinity_store_cache_child_init(p, s);
    if (st && st->renewable) {
        /* the clients' connection pools are made by request threads at
         * once (APR's reslist constructs outside its lock): their parent's
         * allocator needs a mutex of its own */
        if (apr_allocator_create(&alloc) == APR_SUCCESS
            && apr_thread_mutex_create(&amutex, APR_THREAD_MUTEX_DEFAULT,
                                       p) == APR_SUCCESS
            && apr_thread_mutex_create(&affinity_store_child.mutex,
                                       APR_THREAD_MUTEX_DEFAULT,
                                       p) == APR_SUCCESS) {
            apr_allocator_mutex_set(alloc, amutex);
            if (apr_pool_create_ex(&affinity_store_child.pool, p, NULL,
                                   alloc) == APR_SUCCESS) {
                apr_allocator_owner_set(alloc, affinity_store_child.pool);
                apr_pool_tag(affinity_store_child.pool, "affinity-store");
                affinity_store_child.s = s;
                affinity_store_child.current =
                    apr_pcalloc(p, sizeof(affinity_store_client));
                affinity_store_child.current->instance = st->instance;
            }
            else {
                apr_allocator_destroy(alloc);
            }
        }
        if (!affinity_store_child.current) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, APR_ENOMEM, s,
                         "AFF0093: AffinityStore %s: cannot set up this "
                         "child's client; it keeps the provider's own "
                         "recovery (5 s or more after a store restart)",
                         st->spec);
        }
    }
    if (st && st->local_mutex) {
        rv = apr_global_mutex_child_init(&st->local_mutex,
                 apr_global_mutex_lockfile(st->local_mutex), p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         "AFF0093: AffinityStoreLocal: cannot attach to the "
                         "local tier's mutex in this child; it goes without "
                         "the tier");
            st->local_mutex = NULL;
        }
    }
    if (!st || !st->mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&st->mutex,
                                     apr_global_mutex_lockfile(st->mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "AFF0093: AffinityStore %s: cannot attach to its mutex "
                     "in this child", st->spec);
    }
}

/* A new instance of the provider, in a pool of its own; NULL if it could
 * not be made (the child keeps skipping the store and tries again later).
 * With the child's mutex held. */
static affinity_store_client *affinity_store_fresh(void)
{
    struct ap_socache_hints hints;
    affinity_store_client *c;
    apr_pool_t *pool;

    if (apr_pool_create(&pool, affinity_store_child.pool) != APR_SUCCESS) {
        return NULL;
    }
    c = apr_pcalloc(pool, sizeof(*c));
    c->pool = pool;
    affinity_store_hints(&hints);
    if (affinity_store_provider->create(&c->instance, affinity_store->args,
                                        pool, pool)
        || affinity_store_provider->init(c->instance, AFFINITY_STORE_CNAME,
                                         &hints, affinity_store_child.s,
                                         pool) != APR_SUCCESS) {
        apr_pool_destroy(pool);
        return NULL;
    }
    return c;
}

/* With the child's mutex held: a client no call will start on again goes
 * once the last call running on it is done (its pool's cleanup closes its
 * connections, which must all be back in APR's list by then). */
static void affinity_store_drop(affinity_store_client *c)
{
    if (c->users == 0 && c->pool && c != affinity_store_child.current) {
        affinity_store_provider->destroy(c->instance, affinity_store_child.s);
        apr_pool_destroy(c->pool);
    }
}

/* The client a call should run on, counted as a user; NULL: skip the store
 * (the client failed moments ago and no fresh one is due yet).  again: the
 * client a call just failed on, replaced at once if it is still current. */
static affinity_store_client *affinity_store_acquire(affinity_store_client *again)
{
    affinity_store_client *c, *fresh;
    apr_time_t now;

    apr_thread_mutex_lock(affinity_store_child.mutex);
    c = affinity_store_child.current;
    if (c->failed) {
        now = apr_time_now();
        if (c == again
            || now - affinity_store_child.fresh_at >= AFFINITY_STORE_FRESH_EVERY) {
            affinity_store_child.fresh_at = now;
            fresh = affinity_store_fresh();
            if (fresh) {
                affinity_store_child.current = fresh;
                affinity_store_drop(c);
                c = fresh;
            }
        }
    }
    if (c->failed) {
        c = NULL;
    }
    else {
        c->users++;
    }
    apr_thread_mutex_unlock(affinity_store_child.mutex);
    return c;
}

/* A call on c is done; returns whether c had worked before it. */
static int affinity_store_release(affinity_store_client *c, int failed)
{
    int worked;

    apr_thread_mutex_lock(affinity_store_child.mutex);
    worked = c->worked;
    if (failed) {
        c->failed = 1;
    }
    else {
        c->worked = 1;
    }
    c->users--;
    affinity_store_drop(c);
    apr_thread_mutex_unlock(affinity_store_child.mutex);
    return worked;
}

/* ---- Per request ------------------------------------------------------- */

static apr_uint32_t affinity_store_now(void)
{
    return (apr_uint32_t)apr_time_sec(apr_time_now());
}

static apr_uint32_t affinity_store_now_ms(void)
{
    return (apr_uint32_t)apr_time_as_msec(apr_time_now());
}

int affinity_store_available(void)
{
    apr_uint32_t at;

    if (!affinity_store) {
        return 0;
    }
    at = apr_atomic_read32(&affinity_store->shared->down_at);
    return at == 0 || affinity_store_now_ms() - at >= AFFINITY_STORE_BACKOFF;
}

/* May this call go to the store?  Not while backing off after a slow
 * failure.  When the backoff is over, one call (for all children) claims
 * the right to try the store, by moving down_at to now: the others skip the
 * store until it answers (down_at cleared) or for another backoff.  (The
 * difference of two wrapping millisecond counts is right for 49 days: a
 * backoff started that long ago may cost one more second, once.) */
static int affinity_store_may_call(void)
{
    affinity_store_shared *sh = affinity_store->shared;
    apr_uint32_t at = apr_atomic_read32(&sh->down_at);
    apr_uint32_t now;

    if (at == 0) {
        return 1;
    }
    now = affinity_store_now_ms();
    if (now - at < AFFINITY_STORE_BACKOFF) {
        return 0;
    }
    return apr_atomic_cas32(&sh->down_at, now ? now : 1, at) == at;
}

/* What went wrong, in words (APR's own text for EGENERAL is "Internal
 * error", which tells an operator nothing). */
static const char *affinity_store_reason(request_rec *r, apr_status_t rv,
                                         apr_time_t took)
{
    char buf[120];

    if (took >= AFFINITY_STORE_SLOW) {
        return apr_psprintf(r->pool, "no answer after %" APR_TIME_T_FMT
                            " ms", apr_time_as_msec(took));
    }
    if (rv == APR_EGENERAL) {
        return "connection refused, closed or broken";
    }
    if (rv == APR_NOTFOUND) {
        return "its client holds the server for unreachable";
    }
    if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_ETIMEDOUT(rv)) {
        return "timed out";
    }
    return apr_pstrdup(r->pool, apr_strerror(rv, buf, sizeof(buf)));
}

/* A failure: count it, back off if it was slow, and say so at most once a
 * minute for all children.  The key is never logged: it is derived from a
 * session ID. */
static void affinity_store_failed(request_rec *r, apr_status_t rv,
                                  const char *what, apr_time_t took)
{
    affinity_store_shared *sh = affinity_store->shared;
    apr_uint32_t now = affinity_store_now();
    apr_uint32_t ms;

    AFFINITY_STORE_INC64(&sh->count[AFFINITY_STORE_ERRORS]);
    apr_atomic_set32(&sh->last_error, now);
    apr_atomic_set32(&sh->last_ok, 0);
    apr_atomic_cas32(&sh->outage, now, 0);
    if (took >= AFFINITY_STORE_SLOW) {
        ms = affinity_store_now_ms();
        apr_atomic_set32(&sh->down_at, ms ? ms : 1);
    }
    if (affinity_log_gate_pass(&sh->logged, NULL, now,
                               AFFINITY_STORE_LOG_EVERY, NULL)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "AFF0091: learn mode's store %s failed %s (%s). "
                      "Until it answers, requests carrying a session cookie "
                      "go to the member their value hashes to%s, and "
                      "sessions learned now are not shared with other front "
                      "ends. Check that the store runs and accepts "
                      "connections from this host at %s (AffinityStore%s%s). "
                      "AFF0110 says when it answers again; this line comes "
                      "at most once a minute",
                      affinity_store->spec, what,
                      affinity_store_reason(r, rv, took),
                      affinity_store->local
                      ? " unless this front end's local tier knows them "
                        "(those keep their member)"
                      : " (the same member on every front end, not always "
                        "the one that issued it)",
                      affinity_store->args,
                      affinity_store_where ? " at " : "",
                      affinity_store_where ? affinity_store_where : "");
    }
}

/* A call that worked: the store is up; the first such call after an
 * outage (one for all children) says so. */
static void affinity_store_worked(request_rec *r)
{
    affinity_store_shared *sh = affinity_store->shared;
    apr_uint32_t since = apr_atomic_read32(&sh->outage);

    if (!apr_atomic_read32(&sh->last_ok)) {
        apr_atomic_set32(&sh->last_ok, 1);
    }
    if (since && apr_atomic_cas32(&sh->outage, 0, since) == since) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "AFF0110: learn mode's store %s answers again, %u s "
                      "after its first failure; lookups and learning use it "
                      "again%s", affinity_store->spec,
                      affinity_store_now() - since,
                      affinity_store->local
                      ? ", and sessions this front end learned meanwhile "
                        "are written back to it from the local tier as "
                        "their requests come" : "");
    }
}

/* The server the provider logs through.  memcache and redis log an error
 * per failed call: with the store down, one per request.  Unless
 * LogLevel affinity:debug (or higher) asks for them, they are given a copy
 * of the server that logs only emergencies, and AFF0091 says it once a
 * minute instead. */
static server_rec *affinity_store_log_server(request_rec *r)
{
    server_rec *quiet;

    if (affinity_store->mutex
        || APLOG_R_MODULE_IS_LEVEL(r, APLOG_MODULE_INDEX, APLOG_DEBUG)) {
        return r->server;
    }
    quiet = apr_pmemdup(r->pool, r->server, sizeof(*quiet));
    quiet->log.level = APLOG_EMERG;
    quiet->log.module_levels = NULL;
    return quiet;
}

static int affinity_store_lock(request_rec *r)
{
    apr_status_t rv;

    if (!affinity_store->mutex) {
        return 1;
    }
    rv = apr_global_mutex_lock(affinity_store->mutex);
    if (rv != APR_SUCCESS) {
        affinity_store_failed(r, rv, "locking", 0);
        return 0;
    }
    return 1;
}

static void affinity_store_unlock(void)
{
    if (affinity_store->mutex) {
        apr_global_mutex_unlock(affinity_store->mutex);
    }
}

enum { AFFINITY_STORE_GET, AFFINITY_STORE_PUT, AFFINITY_STORE_REMOVE };

/* One call to the store, as the provider's three functions need it. */
typedef struct {
    int what;
    const unsigned char *key;
    unsigned int key_len;               /* AFFINITY_LEARN_KEY_LEN, or the
                                         * old key's on a fallback lookup */
    unsigned char *data;                /* GET: the buffer; PUT: the entry */
    unsigned int size;                  /* GET: the buffer's; PUT: entry's */
    unsigned int len;                   /* GET: what was found */
    apr_time_t expiry;                  /* PUT */
} affinity_store_op;

static const char *const affinity_store_what[] = {
    "a lookup", "a write", "a removal"
};

static apr_status_t affinity_store_run(request_rec *r, server_rec *log,
                                       ap_socache_instance_t *instance,
                                       affinity_store_op *op)
{
    const ap_socache_provider_t *prov = affinity_store_provider;
    apr_status_t rv;

    if (!affinity_store_lock(r)) {
        return APR_EGENERAL;
    }
    switch (op->what) {
    case AFFINITY_STORE_GET:
        op->len = op->size;
        rv = prov->retrieve(instance, log, op->key, op->key_len,
                            op->data, &op->len, r->pool);
        break;
    case AFFINITY_STORE_PUT:
        rv = prov->store(instance, log, op->key, op->key_len,
                         op->expiry, op->data, op->size, r->pool);
        break;
    default:
        rv = prov->remove(instance, log, op->key, op->key_len,
                          r->pool);
        break;
    }
    affinity_store_unlock();
    return rv;
}

/* Did the store fail (as opposed to: no such entry)?  shmcb says
 * APR_EGENERAL for a miss, and a full shmcb that cannot fit one entry is no
 * reason to stop using it: only the network stores fail.  A write never
 * answers "not found" but when the provider thinks the server dead. */
static int affinity_store_failure(const affinity_store_op *op, apr_status_t rv)
{
    return rv != APR_SUCCESS && !affinity_store->mutex
           && (rv != APR_NOTFOUND || op->what == AFFINITY_STORE_PUT);
}

/* Runs op on the store, through this child's client when it has one (a
 * fast failure on a client that had worked is tried once more on a fresh
 * client), and notes failures.  APR_EGENERAL when the store is skipped. */
static apr_status_t affinity_store_call(request_rec *r, affinity_store_op *op)
{
    affinity_store_client *c, *failed = NULL;
    affinity_store_shared *sh;
    server_rec *log;
    apr_time_t start, took;
    apr_status_t rv;
    int bad;

    if (!affinity_store) {
        return APR_EGENERAL;
    }
    sh = affinity_store->shared;
    if (!affinity_store_may_call()) {
        AFFINITY_STORE_INC64(&sh->count[AFFINITY_STORE_SKIPPED]);
        return APR_EGENERAL;
    }
    log = affinity_store_log_server(r);
    if (!affinity_store_child.current) {
        start = apr_time_now();
        rv = affinity_store_run(r, log, affinity_store->instance, op);
        took = apr_time_now() - start;
        bad = affinity_store_failure(op, rv);
    }
    else {
        for (;;) {
            c = affinity_store_acquire(failed);
            if (!c) {
                AFFINITY_STORE_INC64(&sh->count[AFFINITY_STORE_SKIPPED]);
                return APR_EGENERAL;
            }
            start = apr_time_now();
            rv = affinity_store_run(r, log, c->instance, op);
            took = apr_time_now() - start;
            bad = affinity_store_failure(op, rv);
            if (!affinity_store_release(c, bad) || !bad || failed
                || took >= AFFINITY_STORE_SLOW) {
                break;
            }
            /* it had worked and failed at once: most likely a pooled
             * connection the store closed when it restarted */
            failed = c;
        }
    }
    /* AFFINITY_STORE_LOOKUPS, _WRITES, _REMOVALS follow op->what */
    AFFINITY_STORE_INC64(&sh->count[AFFINITY_STORE_LOOKUPS + op->what]);
    if (bad) {
        affinity_store_failed(r, rv, affinity_store_what[op->what], took);
    }
    else {
        affinity_store_worked(r);
        if (apr_atomic_read32(&sh->down_at)) {
            /* it answers: whoever was trying it again for everyone is
             * done */
            apr_atomic_set32(&sh->down_at, 0);
        }
    }
    return rv;
}

/* ---- The local tier ------------------------------------------------------
 * In front of memcache or redis: a shmcb of this front end's own, written
 * with every write to the store, read only when the store misses or fails
 * (a hit in the store costs nothing more), and what it answers after a
 * miss is written back to the store, so that a store restarted empty (or
 * that was down while sessions were learned) learns them again and the
 * other front ends with it.  Its failures are not the store's: a miss. */

static apr_status_t affinity_local_call(request_rec *r, affinity_store_op *op)
{
    const ap_socache_provider_t *prov = affinity_local_provider;
    ap_socache_instance_t *inst = affinity_store->local;
    apr_status_t rv;

    if (!inst || !prov || !affinity_store->local_mutex
        || apr_global_mutex_lock(affinity_store->local_mutex) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    switch (op->what) {
    case AFFINITY_STORE_GET:
        op->len = op->size;
        rv = prov->retrieve(inst, r->server, op->key, op->key_len,
                            op->data, &op->len, r->pool);
        break;
    case AFFINITY_STORE_PUT:
        rv = prov->store(inst, r->server, op->key, op->key_len,
                         op->expiry, op->data, op->size, r->pool);
        break;
    default:
        rv = prov->remove(inst, r->server, op->key, op->key_len,
                          r->pool);
        break;
    }
    apr_global_mutex_unlock(affinity_store->local_mutex);
    return rv;
}

static apr_status_t affinity_store_get_len(request_rec *r,
                                           const unsigned char *key,
                                           unsigned int key_len,
                                           unsigned char id[AFFINITY_ID_LEN],
                                           apr_int64_t *written, int timeout)
{
    unsigned char buf[64];
    affinity_store_op op;
    apr_status_t rv;
    apr_time_t expiry, fetched;
    apr_uint32_t gen;

    /* the cache holds the current keys only: 0.1.0's are looked up once
     * per value, then rewritten */
    int cached = key_len == AFFINITY_LEARN_KEY_LEN;

    if (cached && affinity_store_cache_get(r, key, id, written)) {
        return APR_SUCCESS;
    }
    gen = cached && affinity_store_gens
          ? apr_atomic_read32(affinity_store_cache_gen(key)) : 0;
    fetched = apr_time_now();
    memset(&op, 0, sizeof(op));
    op.what = AFFINITY_STORE_GET;
    op.key = key;
    op.key_len = key_len;
    op.data = buf;
    op.size = sizeof(buf);
    rv = affinity_store_call(r, &op);
    if (rv == APR_SUCCESS) {
        if (!affinity_learn_entry_decode(buf, op.len, id, written)) {
            return APR_NOTFOUND;
        }
        if (cached) {
            affinity_store_cache_keep(key, id, *written, fetched, gen);
        }
        return APR_SUCCESS;
    }
    if (affinity_store && affinity_store->local
        && affinity_local_call(r, &op) == APR_SUCCESS
        && affinity_learn_entry_decode(buf, op.len, id, written)) {
        AFFINITY_STORE_INC64(&affinity_store->shared->count[AFFINITY_STORE_LOCAL_HITS]);
        expiry = apr_time_from_sec(*written + timeout);
        if (rv == APR_NOTFOUND && expiry > apr_time_now()) {
            /* the store answers but lost it (restarted empty, evicted,
             * or learned nothing while it was down): give it back, with
             * its age, so the other front ends know it again */
            op.what = AFFINITY_STORE_PUT;
            op.size = op.len;
            op.expiry = expiry;
            if (affinity_store_call(r, &op) == APR_SUCCESS) {
                AFFINITY_STORE_INC64(&affinity_store->shared->count[AFFINITY_STORE_WRITEBACKS]);
            }
        }
        return APR_SUCCESS;
    }
    /* shmcb says APR_EGENERAL for a miss */
    if (rv == APR_NOTFOUND || (affinity_store && affinity_store->mutex)) {
        return APR_NOTFOUND;
    }
    return rv;
}

apr_status_t affinity_store_get(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                unsigned char id[AFFINITY_ID_LEN],
                                apr_int64_t *written, int timeout)
{
    return affinity_store_get_len(r, key, AFFINITY_LEARN_KEY_LEN, id, written,
                                  timeout);
}

apr_status_t affinity_store_get_old(request_rec *r,
                                    const unsigned char key[AFFINITY_LEARN_OLD_KEY_LEN],
                                    unsigned char id[AFFINITY_ID_LEN],
                                    apr_int64_t *written, int timeout)
{
    return affinity_store_get_len(r, key, AFFINITY_LEARN_OLD_KEY_LEN, id,
                                  written, timeout);
}

apr_status_t affinity_store_put(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                const unsigned char id[AFFINITY_ID_LEN],
                                int timeout)
{
    unsigned char entry[AFFINITY_LEARN_ENTRY_LEN];
    apr_time_t now = apr_time_now();
    affinity_store_op op;
    apr_status_t rv;

    affinity_learn_entry_encode(entry, id, apr_time_sec(now));
    memset(&op, 0, sizeof(op));
    op.what = AFFINITY_STORE_PUT;
    op.key = key;
    op.key_len = AFFINITY_LEARN_KEY_LEN;
    op.data = entry;
    op.size = sizeof(entry);
    op.expiry = now + apr_time_from_sec(timeout);
    if (affinity_store && affinity_store->local) {
        affinity_local_call(r, &op);
    }
    affinity_store_cache_bump(key);
    rv = affinity_store_call(r, &op);
    /* what this child just wrote is the answer (a failed write: none) */
    affinity_store_cache_keep(key, rv == APR_SUCCESS ? id : NULL,
                              apr_time_sec(now), apr_time_now(),
                              affinity_store_cache_bump(key));
    return rv;
}

static apr_status_t affinity_store_remove_len(request_rec *r,
                                              const unsigned char *key,
                                              unsigned int key_len)
{
    affinity_store_op op;
    apr_status_t rv;

    memset(&op, 0, sizeof(op));
    op.what = AFFINITY_STORE_REMOVE;
    op.key = key;
    op.key_len = key_len;
    if (affinity_store && affinity_store->local) {
        affinity_local_call(r, &op);
    }
    affinity_store_cache_bump(key);
    rv = affinity_store_call(r, &op);
    affinity_store_cache_bump(key);
    return rv;
}

apr_status_t affinity_store_remove(request_rec *r,
                                   const unsigned char key[AFFINITY_LEARN_KEY_LEN])
{
    return affinity_store_remove_len(r, key, AFFINITY_LEARN_KEY_LEN);
}

apr_status_t affinity_store_remove_old(request_rec *r,
                                       const unsigned char key[AFFINITY_LEARN_OLD_KEY_LEN])
{
    return affinity_store_remove_len(r, key, AFFINITY_LEARN_OLD_KEY_LEN);
}

int affinity_store_health_get(affinity_store_health *h)
{
    affinity_store_shared *sh;
    apr_uint32_t t;
    int i;

    memset(h, 0, sizeof(*h));
    if (!affinity_store) {
        return 0;
    }
    sh = affinity_store->shared;
    h->spec = affinity_store->spec;
    h->up = apr_atomic_read32(&sh->last_ok) != 0;
    h->backing_off = !affinity_store_available();
    t = apr_atomic_read32(&sh->last_error);
    h->last_error = t ? apr_time_from_sec(t) : 0;
    t = apr_atomic_read32(&sh->outage);
    h->outage = t ? apr_time_from_sec(t) : 0;
    h->local_size = affinity_store->local ? affinity_store->local_size : 0;
    for (i = 0; i < AFFINITY_STORE_NCOUNT; i++) {
        h->count[i] = AFFINITY_STORE_READ64(&sh->count[i]);
    }
    return 1;
}
