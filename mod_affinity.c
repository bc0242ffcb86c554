/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * mod_affinity: the "affinity" lbmethod for mod_proxy_balancer.
 *
 * A mode is one way of choosing a member, in one file behind one interface
 * (affinity_mode, affinity_private.h), listed in one registry
 * (affinity_modes.c): cookie (the default: the module's own route cookie
 * names the member), domain (the request's host, by rendezvous hashing),
 * prefix (the route ID rides on the application's session cookie), learn
 * (the application's cookie values are learned from the members' responses
 * into a store).  The modes share the per-process member table
 * (affinity_table.c), the per-request state (affinity_request.c), the
 * session rules (affinity_session.c), the pickers (affinity_pick.c), the
 * header walks (affinity_headers.c) and the configuration record
 * (affinity_config.c); the pure logic is mod_affinity.h's.
 *
 * This file: the module record, the provider and its finder, and startup.
 * The finder only calls through the mode in force.
 */

#include "http_core.h"
#include "ap_provider.h"

#include "affinity_private.h"
#include "affinity_version.h"

static void affinity_register_hooks(apr_pool_t *p);

/* declared first: it also sets up APLOG_USE_MODULE for this file */
AP_DECLARE_MODULE(affinity) = {
    STANDARD20_MODULE_STUFF,
    affinity_create_dir_config,     /* create per-directory config */
    affinity_merge_dir_config,      /* merge per-directory config */
    NULL,                           /* create per-server config */
    NULL,                           /* merge per-server config */
    affinity_cmds,                  /* directives */
    affinity_register_hooks         /* register hooks */
};

/* ---- The finder ---------------------------------------------------------- */

static proxy_worker *affinity_finder(proxy_balancer *balancer, request_rec *r)
{
    const affinity_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                         &affinity_module);
    const affinity_mode *mode = affinity_mode_of(conf);
    affinity_request *req = affinity_request_get(r, conf, mode);
    affinity_table *t = affinity_table_get(balancer, conf, r);
    proxy_worker *w = mode->find(balancer, r, conf, t, req);

    req->chosen = w;
    req->balancer = balancer;
    req->counters = t->counters;
    affinity_response_prepare(r, req);
    return w;
}

/* Zero byrequests-style counters when balancer-manager switches to us. */
static apr_status_t affinity_reset(proxy_balancer *balancer, server_rec *s)
{
    int i;

    (void)s;
    for (i = 0; i < balancer->workers->nelts; i++) {
        proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i, proxy_worker *);

        /* a member being added by balancer-manager starts at 0 anyway */
        if (affinity_worker_ready(w)) {
            w->s->lbstatus = 0;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t affinity_age(proxy_balancer *balancer, server_rec *s)
{
    (void)balancer;
    (void)s;
    return APR_SUCCESS;
}

static const proxy_balancer_method affinity_method = {
    AFFINITY_LBMETHOD,
    &affinity_finder,
    NULL,
    &affinity_reset,
    &affinity_age,
    NULL
};

/* ---- Startup ------------------------------------------------------------- */

static int affinity_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    /* the first of the two startup passes only checks the syntax */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }

    /* get_best_worker is not called (affinity_walk does its walk) but
     * tells that mod_proxy is 2.4.35 or later */
    affinity_retry_worker = APR_RETRIEVE_OPTIONAL_FN(ap_proxy_retry_worker);
    if (!APR_RETRIEVE_OPTIONAL_FN(proxy_balancer_get_best_worker)
        || !affinity_retry_worker) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0001: mod_proxy and mod_proxy_balancer (httpd 2.4.35 "
                     "or later) must be loaded for mod_affinity");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    affinity_config_post_config(s);
    affinity_config_proxy_found();
    affinity_modes_post_config(s);
    if (affinity_store_post_config(ptemp, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    /* once per (re)start, so the log says which build is running */
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "AFF0020: mod_affinity " AFFINITY_VERSION " loaded");

    affinity_check_config(ptemp, s);
    return OK;
}

static int affinity_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return affinity_store_pre_config(pconf);
}

/* The errors that stop startup (lifetimes without a salt, a store provider
 * not loaded).  Runs for httpd -t too, before the logs are open: the
 * messages go to the console.  Both run, so that every error is told at
 * once.  The warnings are affinity_check.c's. */
static int affinity_check_errors(apr_pool_t *pconf, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s)
{
    int lifetimes = affinity_config_check(ptemp, s);
    int stores = affinity_store_check_config(ptemp, s);

    (void)pconf;
    (void)plog;

    return lifetimes != OK ? lifetimes : stores;
}

static void affinity_register_hooks(apr_pool_t *p)
{
    ap_hook_check_config(affinity_check_errors, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_config(affinity_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(affinity_store_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_provider(p, PROXY_LBMETHOD, AFFINITY_LBMETHOD, "0",
                         &affinity_method);
    ap_hook_post_config(affinity_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    affinity_response_register_hooks(p);
    affinity_modes_register_hooks(p);
    affinity_status_register_hooks(p);
    affinity_check_register_hooks(p);
    affinity_log_register_hooks(p);
}
