/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_mode_domain.c: domain mode.  Every request for one host name goes to
 * one member, by weighted rendezvous hashing of the host over the usable,
 * non-draining members (see affinity_rendezvous_cost()); with
 * AffinityDrainTimeout a draining member keeps its hosts until then.  No
 * cookie.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* ---- The finder ---------------------------------------------------------- */

static proxy_worker *affinity_find_domain(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          affinity_request *req)
{
    affinity_member *m = NULL;
    proxy_worker *w;
    const char *host = r->hostname ? r->hostname : r->server->server_hostname;

    w = affinity_pick_bounded(balancer, r, &t, req,
                              affinity_host_key(host ? host : ""),
                              affinity_balance_factor_of(conf), &req->bounded,
                              &req->drained);
    if (w) {
        m = affinity_member_of(balancer, &t, w, r);
    }
    affinity_set_env(r, m, req->drained ? "drained" : "domain");
    if (req->drained) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0131: %s: the member of host %s has been draining "
                      "for longer than AffinityDrainTimeout: it goes to %s",
                      balancer->s->name, host ? host : "(none)",
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0012: %s: host %s maps to %s", balancer->s->name,
                  host ? host : "(none)", w ? AFFINITY_WORKER_NAME(w) : "no member");
    return w;
}

/* ---- What the status page is told --------------------------------------- */

static void affinity_domain_answer(proxy_balancer *balancer, request_rec *r,
                                   const affinity_dir_conf *conf,
                                   const char *value, apr_size_t len,
                                   affinity_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->status = "domain";
    a->why = "this balancer is in domain mode and reads no cookie: the host "
             "name chooses the member (look it up with ?host=)";
}

/* affinity_find_domain()'s choice, without its logging and environment. */
static proxy_worker_shared *affinity_domain_answer_host(proxy_balancer *balancer,
                                                 request_rec *r,
                                                 const affinity_dir_conf *conf,
                                                 const char *host)
{
    affinity_request *req = affinity_request_new(r->pool);
    proxy_worker_shared *s = NULL;
    affinity_table *t;
    proxy_worker *w;

    /* the finder's view of drain deadlines and ramps */
    req->drain_timeout = conf->drain_timeout > 0 ? conf->drain_timeout : 0;
    req->slow_start = conf->slow_start > 0 ? conf->slow_start : 0;
    if (PROXY_THREAD_LOCK(balancer) != APR_SUCCESS) {
        return NULL;
    }
    t = affinity_table_get(balancer, conf, r);
    w = affinity_pick_bounded(balancer, r, &t, req, affinity_host_key(host),
                              affinity_balance_factor_of(conf), NULL, NULL);
    if (w) {
        s = w->s;
    }
    PROXY_THREAD_UNLOCK(balancer);
    return s;
}

/* ---- The mode ------------------------------------------------------------ */

static const char *affinity_domain_configure(cmd_parms *cmd,
                                             affinity_dir_conf *conf,
                                             const char *arg)
{
    return affinity_mode_no_arg(cmd, conf, "domain", arg);
}

/* No cookie is read; the page shows the route cookie's settings. */
static const char *affinity_domain_cookie(const affinity_dir_conf *conf,
                                          const char **attrs)
{
    *attrs = affinity_cookie_attrs_of(conf);
    return affinity_cookie_name_of(conf);
}

static const char *const affinity_domain_started[] = { "domain", "drained",
                                                        NULL };

const affinity_mode affinity_mode_domain = {
    "domain", "domain",
    AFFINITY_BOUNDS_LOAD,
    affinity_domain_configure,
    NULL,                           /* nothing to read but the host */
    affinity_find_domain,
    NULL,                           /* no response work */
    NULL,
    affinity_domain_cookie,
    affinity_domain_answer,
    affinity_domain_answer_host,
    affinity_domain_started,
    (1u << AFFINITY_DIRECTIVE_COOKIE) | (1u << AFFINITY_DIRECTIVE_REMOVE)
    | (1u << AFFINITY_DIRECTIVE_NOCACHE),
    NULL,
    NULL
};
