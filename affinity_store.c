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
 * AFFINITY_STORE_SLOW) is left alone for AFFINITY_STORE_BACKOFF seconds, so
 * requests fall back to rendezvous hashing at once instead of each waiting
 * for the provider's timeout.  A fast failure (connection refused, a pooled
 * connection the restarted store closed) backs off nothing: it costs
 * nothing, and the provider drops that connection, so learning resumes as
 * soon as the store answers.  Failures are logged at most once a minute for
 * all children together (timestamps in a small shared segment, swapped
 * atomically).
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
#define AFFINITY_STORE_BACKOFF      2       /* seconds */
#define AFFINITY_STORE_LOG_EVERY    60      /* seconds */
#define AFFINITY_STORE_SLOW         apr_time_from_msec(250)

typedef struct {
    volatile apr_uint32_t down_until;   /* seconds: skip the store until */
    volatile apr_uint32_t logged;       /* seconds: last AFF0091 */
} affinity_store_shared;

/* One per parent process and spec, in the process pool. */
typedef struct {
    const char *spec;                   /* as configured */
    const char *provider_name;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;          /* NOTMPSAFE providers only */
    affinity_store_shared *shared;
} affinity_store_rec;

/* This generation's: the directive, and the store in use. */
static const char *affinity_store_spec;
static const char *affinity_store_where;    /* file:line of AffinityStore */
static int affinity_learn_used;
static const ap_socache_provider_t *affinity_store_provider;
static affinity_store_rec *affinity_store;

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
    err = prov->create(&st->instance, args, ptemp, pp);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0093: AffinityStore %s: %s", spec, err);
        return NULL;
    }
    /* shmcb sizes its index from these: an entry is a 20-byte key and
     * 28 bytes of data, and the index should not eat the data area */
    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = AFFINITY_LEARN_KEY_LEN;
    hints.avg_obj_size = 52;
    hints.expiry_interval = apr_time_from_sec(30);
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
    return affinity_store_lookup(s, name) ? OK : HTTP_INTERNAL_SERVER_ERROR;
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
    if (!found) {
        found = affinity_store_make(s, ptemp, spec, name, args);
        if (!found) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_userdata_set(found, ukey, NULL, s->process->pool);
    }
    affinity_store = found;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "AFF0094: learn mode stores sessions in %s", spec);
    return OK;
}

void affinity_store_child_init(apr_pool_t *p, server_rec *s)
{
    affinity_store_rec *st = affinity_store;
    apr_status_t rv;

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

/* ---- Per request ------------------------------------------------------- */

static apr_uint32_t affinity_store_now(void)
{
    return (apr_uint32_t)apr_time_sec(apr_time_now());
}

int affinity_store_available(void)
{
    return affinity_store
           && affinity_store_now() >= affinity_store->shared->down_until;
}

/* A failure: back off, and say so at most once a minute for all children.
 * The key is never logged: it is derived from a session ID. */
static void affinity_store_failed(request_rec *r, apr_status_t rv,
                                  const char *what, apr_time_t took)
{
    affinity_store_shared *sh = affinity_store->shared;
    apr_uint32_t now = affinity_store_now();
    apr_uint32_t last = apr_atomic_read32(&sh->logged);

    if (took >= AFFINITY_STORE_SLOW) {
        apr_atomic_set32(&sh->down_until, now + AFFINITY_STORE_BACKOFF);
    }
    if ((last == 0 || now - last >= AFFINITY_STORE_LOG_EVERY)
        && apr_atomic_cas32(&sh->logged, now, last) == last) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "AFF0091: AffinityStore %s: %s failed; learn mode "
                      "routes by rendezvous hashing and learns nothing "
                      "until the store answers again (said at most once a "
                      "minute)", affinity_store->spec, what);
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

apr_status_t affinity_store_get(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                unsigned char id[AFFINITY_ID_LEN],
                                apr_int64_t *written)
{
    unsigned char buf[64];
    unsigned int len = sizeof(buf);
    apr_time_t start;
    apr_status_t rv;

    if (!affinity_store_available()) {
        return APR_EGENERAL;
    }
    if (!affinity_store_lock(r)) {
        return APR_EGENERAL;
    }
    start = apr_time_now();
    rv = affinity_store_provider->retrieve(affinity_store->instance,
                                           affinity_store_log_server(r),
                                           key, AFFINITY_LEARN_KEY_LEN, buf,
                                           &len, r->pool);
    affinity_store_unlock();
    if (rv == APR_SUCCESS) {
        return affinity_learn_entry_decode(buf, len, id, written)
               ? APR_SUCCESS : APR_NOTFOUND;
    }
    /* shmcb says APR_EGENERAL for a miss; only the network stores can fail */
    if (rv == APR_NOTFOUND || affinity_store->mutex) {
        return APR_NOTFOUND;
    }
    affinity_store_failed(r, rv, "a lookup", apr_time_now() - start);
    return rv;
}

apr_status_t affinity_store_put(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                const unsigned char id[AFFINITY_ID_LEN],
                                int timeout)
{
    unsigned char entry[AFFINITY_LEARN_ENTRY_LEN];
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    if (!affinity_store_available()) {
        return APR_EGENERAL;
    }
    affinity_learn_entry_encode(entry, id, apr_time_sec(now));
    if (!affinity_store_lock(r)) {
        return APR_EGENERAL;
    }
    rv = affinity_store_provider->store(affinity_store->instance,
                                        affinity_store_log_server(r),
                                        key, AFFINITY_LEARN_KEY_LEN,
                                        now + apr_time_from_sec(timeout),
                                        entry, sizeof(entry), r->pool);
    affinity_store_unlock();
    /* a full shmcb evicts old entries itself; ENOSPC means this one entry
     * did not fit, which is no reason to stop using the store */
    if (rv != APR_SUCCESS && !affinity_store->mutex) {
        affinity_store_failed(r, rv, "a write", apr_time_now() - now);
    }
    return rv;
}

apr_status_t affinity_store_remove(request_rec *r,
                                   const unsigned char key[AFFINITY_LEARN_KEY_LEN])
{
    apr_time_t start = apr_time_now();
    apr_status_t rv;

    if (!affinity_store_available()) {
        return APR_EGENERAL;
    }
    if (!affinity_store_lock(r)) {
        return APR_EGENERAL;
    }
    rv = affinity_store_provider->remove(affinity_store->instance,
                                         affinity_store_log_server(r),
                                         key, AFFINITY_LEARN_KEY_LEN, r->pool);
    affinity_store_unlock();
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND && !affinity_store->mutex) {
        affinity_store_failed(r, rv, "a removal", apr_time_now() - start);
    }
    return rv;
}
