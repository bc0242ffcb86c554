/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_table.c: the per-process member table of each balancer.
 *
 * Nothing is cached that balancer-manager can change behind our back: each
 * process keeps, per balancer, a table of the members' IDs built from the
 * shared memory, and checks it against the shared memory on use (member
 * count on every request, a member's route whenever that member is about to
 * be used).  Tables are keyed by what the IDs depend on: the balancer (one
 * list per balancer) and the salt's bytes.
 *
 * Lifetime: a table lives until its next rebuild, which only a finder does,
 * under the balancer's thread mutex.  Output filters, error pages and log
 * hooks run without that mutex, so nothing a request keeps may point into a
 * table: IDs go into the request as copies (affinity_set_env, the cookie).
 *
 * Members being added: balancer-manager adds a member holding only the
 * balancer's global mutex, not the thread mutex a finder runs under.  In the
 * process serving that POST, ap_proxy_define_worker() counts the new slot in
 * balancer->workers first and fills it in afterwards (no worker, then ->s
 * NULL, then not initialised): reading it then crashed the child.  A build
 * therefore also holds the global mutex, which waits for an add under way,
 * and leaves out a slot that is still not complete (an add that failed half
 * way) until it is.  The choice of a member for a new session or a hashed
 * key (affinity_walk) reads only the slots a build has counted: an add that
 * begins while it walks pushes a slot it never reaches.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

int affinity_members_lock(proxy_balancer *balancer)
{
#if APR_HAS_THREADS
    return balancer->gmutex
           && apr_global_mutex_lock(balancer->gmutex) == APR_SUCCESS;
#else
    (void)balancer;
    return 0;
#endif
}

void affinity_members_unlock(proxy_balancer *balancer, int locked)
{
#if APR_HAS_THREADS
    if (locked) {
        apr_global_mutex_unlock(balancer->gmutex);
    }
#else
    (void)balancer;
    (void)locked;
#endif
}

int affinity_worker_ready(const proxy_worker *w)
{
    return w && w->s && (w->s->status & PROXY_WORKER_INITIALIZED);
}

int affinity_members_settled(const proxy_balancer *balancer)
{
    const affinity_table *t;
    int n = 0;

    for (t = balancer->context; t; t = t->next) {
        if (t->nelts > n) {
            n = t->nelts;
        }
    }
    return n;
}

const char *affinity_identity(apr_pool_t *p, const proxy_worker *w,
                              const char *route)
{
    const proxy_worker_shared *s = w->s;
    const char *host;

    if (*route) {
        return route;
    }
    /* neither is edited at run time; read with bounds all the same */
    if (*s->uds_path) {
        return apr_pstrndup(p, s->uds_path, sizeof(s->uds_path));
    }
    host = apr_pstrndup(p, s->hostname_ex, sizeof(s->hostname_ex));
    /* an IPv6 address, as in its URL, so that the port stands apart */
    return apr_psprintf(p, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
                        (unsigned)s->port);
}

static void affinity_hash_member_init(affinity_hash_member *h,
                                      const affinity_member *m, int slot)
{
    affinity_route_head_init(&h->route, m->route);
    h->seed = m->seed;
    h->worker = m->worker;
    h->s = m->worker->s;
    h->slot = slot;
}

static affinity_table *affinity_table_build(proxy_balancer *balancer,
                                            const char *salt,
                                            apr_size_t salt_len,
                                            request_rec *r)
{
    apr_pool_t *p;
    affinity_table *t;
    int i, locked;

    /* parent NULL: the global pool, safe to create from any thread */
    apr_pool_create(&p, NULL);
    apr_pool_tag(p, "affinity_table");
    t = apr_pcalloc(p, sizeof(*t));
    t->pool = p;
    t->salt = apr_pmemdup(p, salt, salt_len ? salt_len : 1);
    t->salt_len = salt_len;
    locked = affinity_members_lock(balancer);
    t->nelts = balancer->workers->nelts;
    t->members = apr_pcalloc(p, (t->nelts ? t->nelts : 1) * sizeof(*t->members));
    t->index = affinity_index_make(p, t->nelts);
    t->hashed = apr_pcalloc(p, (t->nelts ? t->nelts : 1) * sizeof(*t->hashed));
    t->counters = affinity_status_counters_of(balancer);
    affinity_mac_key_init(&t->mac, t->salt, t->salt_len, balancer->s->name,
                          strnlen(balancer->s->name, sizeof(balancer->s->name)));

    for (i = 0; i < t->nelts; i++) {
        affinity_member *m = &t->members[i];
        proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);
        unsigned char id[AFFINITY_ID_LEN];
        const char *identity;

        if (!affinity_worker_ready(w)) {
            /* no ID and never chosen (worker NULL) until it is complete */
            t->missing++;
            continue;
        }
        m->worker = w;
        /* copy with bounds: balancer-manager strcpy()s routes in place */
        apr_cpystrn(m->route, m->worker->s->route, sizeof(m->route));
        identity = affinity_identity(p, m->worker, m->route);
        affinity_route_id(id, t->salt, t->salt_len, identity, strlen(identity));
        affinity_id_to_hex(m->id_hex, id);
        m->seed = affinity_member_seed(t->salt, t->salt_len, identity,
                                       strlen(identity));
        affinity_index_put(t->index, id, i);
        affinity_hash_member_init(&t->hashed[t->nhashed++], m, i);
    }
    affinity_members_unlock(balancer, locked);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0011: %s: route table built for %d member(s)%s",
                  balancer->s->name, t->nelts - t->missing,
                  t->missing ? apr_psprintf(r->pool, ", %d still being added "
                                            "left out", t->missing) : "");
    return t;
}

/* Replaces t, in its place in the balancer's list, by a table built afresh
 * for the same salt. */
static affinity_table *affinity_table_rebuild(proxy_balancer *balancer,
                                              affinity_table *t,
                                              request_rec *r)
{
    affinity_table **slot = (affinity_table **)&balancer->context;
    affinity_table *fresh;

    while (*slot && *slot != t) {
        slot = &(*slot)->next;
    }
    fresh = affinity_table_build(balancer, t->salt, t->salt_len, r);
    fresh->next = t->next;
    *slot = fresh;
    apr_pool_destroy(t->pool);
    return fresh;
}

/* Has a slot left out of t (a member being added) become complete? */
static int affinity_table_missing_ready(proxy_balancer *balancer,
                                        const affinity_table *t)
{
    int i;

    for (i = 0; i < t->nelts; i++) {
        if (!t->members[i].worker
            && affinity_worker_ready(APR_ARRAY_IDX(balancer->workers, i,
                                                   proxy_worker *))) {
            return 1;
        }
    }
    return 0;
}

/* The cheap checks, on every request: the table of this salt, and members
 * added (growth).  Route edits are caught per member by
 * affinity_member_current().  The list holds one table per distinct salt
 * among the sections that reach the balancer: a handful at most. */
affinity_table *affinity_table_get(proxy_balancer *balancer,
                                   const affinity_dir_conf *conf,
                                   request_rec *r)
{
    affinity_table **slot = (affinity_table **)&balancer->context;
    const char *salt = conf->salt ? conf->salt : "";
    apr_size_t salt_len = conf->salt ? conf->salt_len : 0;

    for (; *slot; slot = &(*slot)->next) {
        affinity_table *t = *slot;

        if (t->salt_len == salt_len && !memcmp(t->salt, salt, salt_len)) {
            if (t->nelts == balancer->workers->nelts
                && (!t->missing || !affinity_table_missing_ready(balancer, t))) {
                return t;
            }
            return affinity_table_rebuild(balancer, t, r);
        }
    }
    *slot = affinity_table_build(balancer, salt, salt_len, r);
    return *slot;
}

/* Every member's route as built, or rebuilt if any has changed. */
affinity_table *affinity_table_verify_all(proxy_balancer *balancer,
                                          affinity_table *t,
                                          request_rec *r, int *rebuilt)
{
    int i;

    for (i = 0; i < t->nelts; i++) {
        if (t->members[i].worker && !affinity_member_current(&t->members[i])) {
            *rebuilt = 1;
            return affinity_table_rebuild(balancer, t, r);
        }
    }
    *rebuilt = 0;
    return t;
}

static affinity_member *affinity_table_member(affinity_table *t,
                                              const proxy_worker *w)
{
    int i = w->s->index;

    /* s->index is the shm slot, which is the array position unless the
     * slotmem has holes */
    if (i >= 0 && i < t->nelts && t->members[i].worker == w) {
        return &t->members[i];
    }
    for (i = 0; i < t->nelts; i++) {
        if (t->members[i].worker == w) {
            return &t->members[i];
        }
    }
    return NULL;
}

/* The member for a worker, with its ID checked against the live route. */
affinity_member *affinity_member_of(proxy_balancer *balancer,
                                    affinity_table **t,
                                    proxy_worker *w, request_rec *r)
{
    affinity_member *m = affinity_table_member(*t, w);

    if (!m || !affinity_member_current(m)) {
        *t = affinity_table_rebuild(balancer, *t, r);
        m = affinity_table_member(*t, w);
    }
    return m;
}

affinity_member *affinity_member_by_shared(proxy_balancer *balancer,
                                           affinity_table **t,
                                           const proxy_worker_shared *s,
                                           request_rec *r)
{
    int i;

    for (i = 0; *t && i < (*t)->nelts; i++) {
        proxy_worker *w = (*t)->members[i].worker;

        if (w && w->s == s) {
            return affinity_member_of(balancer, t, w, r);
        }
    }
    return NULL;
}
