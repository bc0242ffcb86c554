/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_domain.c: domain mode.  Every request for one host name goes to
 * one member, by weighted rendezvous hashing of the host over the usable,
 * non-draining members (see affinity_rendezvous_cost()).  No cookie.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);
typedef struct {
    proxy_balancer *balancer;
    affinity_table *table;
    request_rec *r;
    apr_uint64_t key;
    apr_uint64_t best_cost;
    apr_uint64_t best_weight;
} affinity_domain_baton;

static int affinity_is_best_domain(proxy_worker *current, proxy_worker *prev_best,
                                   void *baton)
{
    affinity_domain_baton *b = baton;
    affinity_member *m;
    apr_uint64_t weight, cost;

    m = affinity_member_of(b->balancer, &b->table, current, b->r);
    if (!m) {
        return 0;
    }
    weight = current->s->lbfactor > 0 ? (apr_uint64_t)current->s->lbfactor : 1;
    cost = affinity_rendezvous_cost(b->key, m->seed);
    if (prev_best && !affinity_rendezvous_beats(weight, cost, b->best_weight,
                                                b->best_cost)) {
        return 0;
    }
    b->best_weight = weight;
    b->best_cost = cost;
    return 1;
}

proxy_worker *affinity_pick_hashed(proxy_balancer *balancer, request_rec *r,
                                   affinity_table **t,
                                   const affinity_request *req,
                                   apr_uint64_t key)
{
    affinity_domain_baton b;
    proxy_worker *w;

    memset(&b, 0, sizeof(b));
    b.balancer = balancer;
    b.table = *t;
    b.r = r;
    b.key = key;
    w = affinity_walk(balancer, r, req, affinity_is_best_domain, &b);
    *t = b.table;
    return w;
}

proxy_worker *affinity_find_domain(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          const affinity_request *req)
{
    affinity_member *m = NULL;
    proxy_worker *w;
    const char *host = r->hostname ? r->hostname : r->server->server_hostname;

    w = affinity_pick_hashed(balancer, r, &t, req,
                             affinity_host_key(host ? host : ""));
    if (w) {
        m = affinity_member_of(balancer, &t, w, r);
    }
    affinity_set_env(r, m, "domain");
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0012: %s: host %s maps to %s", balancer->s->name,
                  host ? host : "(none)", w ? AFFINITY_WORKER_NAME(w) : "no member");
    return w;
}
