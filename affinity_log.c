/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_log.c: the one rate limiter for log lines a flood of requests
 * could repeat.  A gate is the second a line last passed and how many were
 * held back since; it may live in a process (per balancer and kind, below)
 * or in shared memory (the store's AFF0091, for all children at once).
 */

#include "apr_atomic.h"
#include "apr_hash.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

int affinity_log_gate_pass(volatile apr_uint32_t *last,
                           volatile apr_uint32_t *held, apr_uint32_t sec,
                           apr_uint32_t interval, apr_uint32_t *suppressed)
{
    apr_uint32_t prev;

    sec = sec ? sec : 1;        /* 0 means "never passed" */
    prev = apr_atomic_read32(last);
    if ((prev && sec - prev < interval)
        || apr_atomic_cas32(last, sec, prev) != prev) {
        if (held) {
            apr_atomic_inc32(held);
        }
        if (suppressed) {
            *suppressed = 0;
        }
        return 0;
    }
    if (suppressed) {
        *suppressed = held ? apr_atomic_xchg32(held, 0) : 0;
    }
    return 1;
}

/* One gate per balancer and kind, in this process.  The table is built in
 * child_init and only read afterwards; the gates change by atomics, since
 * the callers may run in several threads. */
typedef struct {
    volatile apr_uint32_t last;
    volatile apr_uint32_t suppressed;
} affinity_log_gate;

static apr_hash_t *affinity_gates;
static affinity_log_gate affinity_gate_other[AFFINITY_LOG_KINDS];

int affinity_log_allowed(const proxy_balancer *balancer,
                         affinity_log_kind_e kind, apr_time_t now,
                         apr_uint32_t *suppressed)
{
    affinity_log_gate *g = affinity_gates
        ? apr_hash_get(affinity_gates, &balancer, sizeof(balancer)) : NULL;

    g = (g ? g : affinity_gate_other) + kind;
    return affinity_log_gate_pass(&g->last, &g->suppressed,
                                  (apr_uint32_t)apr_time_sec(now),
                                  AFFINITY_LOG_INTERVAL, suppressed);
}

static void affinity_log_child_init(apr_pool_t *pchild, server_rec *main_s)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    apr_hash_t *gates = apr_hash_make(pchild);
    server_rec *s;
    int i;

    for (s = main_s; proxy && s; s = s->next) {
        proxy_server_conf *psf = ap_get_module_config(s->module_config, proxy);

        for (i = 0; psf && psf->balancers && i < psf->balancers->nelts; i++) {
            proxy_balancer **key = apr_palloc(pchild, sizeof(*key));

            *key = &APR_ARRAY_IDX(psf->balancers, i, proxy_balancer);
            apr_hash_set(gates, key, sizeof(*key),
                         apr_pcalloc(pchild, AFFINITY_LOG_KINDS
                                             * sizeof(affinity_log_gate)));
        }
    }
    affinity_gates = gates;
}

void affinity_log_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_child_init(affinity_log_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
