/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * mod_affinity: the "affinity" lbmethod for mod_proxy_balancer.
 *
 * Cookie mode (affinity_cookie.c): every member has a route ID,
 * SHA1(salt . identity), where the identity is the member's route= or else
 * its host:port.  A request whose affinity cookie names a usable member goes
 * there; anything else gets a new member, chosen by lbfactor exactly like
 * byrequests, and a cookie naming it.  Domain mode (affinity_domain.c): the
 * member is picked by weighted rendezvous hashing of the request's host; no
 * cookie is involved.  Prefix mode (affinity_prefix.c): the route ID rides
 * as a prefix on the application's own session cookie.  All work on one
 * per-process member table (affinity_table.c), one per-request state
 * (affinity_request.c) and, for sessions, one set of rules for a member that
 * is not usable (affinity_session.c).  What a cookie-mode response carries
 * is decided in one place (affinity_response.c).
 *
 * This file: the module record, the provider and its finder, and the
 * startup checks.
 */

#include "apr_hash.h"

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

APR_OPTIONAL_FN_TYPE(proxy_balancer_get_best_worker) *affinity_get_best_worker = NULL;
APR_OPTIONAL_FN_TYPE(ap_proxy_retry_worker) *affinity_retry_worker = NULL;

/* ---- The finder ---------------------------------------------------------- */

static proxy_worker *affinity_finder(proxy_balancer *balancer, request_rec *r)
{
    const affinity_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                         &affinity_module);
    affinity_request *req = affinity_request_get(r, conf);
    affinity_table *t = affinity_table_get(balancer, conf, r);
    proxy_worker *w;

    if (req->ids->nelts) {
        char hex[AFFINITY_ID_HEX_LEN + 1];

        affinity_id_to_hex(hex, (const unsigned char *)req->ids->elts);
        apr_table_set(r->subprocess_env, "BALANCER_SESSION_STICKY",
                      conf->mode == AFFINITY_MODE_PREFIX
                      || conf->mode == AFFINITY_MODE_LEARN
                      ? conf->mode_cookie : affinity_cookie_name_of(conf));
        apr_table_set(r->subprocess_env, "BALANCER_SESSION_ROUTE", hex);
    }

    switch (conf->mode) {
    case AFFINITY_MODE_DOMAIN:
        w = affinity_find_domain(balancer, r, conf, t, req);
        break;
    case AFFINITY_MODE_PREFIX:
        w = affinity_find_prefix(balancer, r, conf, t, req);
        break;
    case AFFINITY_MODE_LEARN:
        w = affinity_find_learn(balancer, r, conf, t, req);
        break;
    default:
        w = affinity_find_cookie(balancer, r, conf, t, req);
        break;
    }
    req->chosen = w;
    req->balancer = balancer;
    affinity_response_prepare(r, req);
    return w;
}

/* Zero byrequests-style counters when balancer-manager switches to us. */
static apr_status_t affinity_reset(proxy_balancer *balancer, server_rec *s)
{
    int i;

    (void)s;
    for (i = 0; i < balancer->workers->nelts; i++) {
        APR_ARRAY_IDX(balancer->workers, i, proxy_worker *)->s->lbstatus = 0;
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
    "affinity",
    &affinity_finder,
    NULL,
    &affinity_reset,
    &affinity_age,
    NULL
};

/* ---- Startup ------------------------------------------------------------- */

/* A member as configured: a unix-socket member's URL alone hides the
 * socket, which is what tells such members apart. */
static const char *affinity_member_name(apr_pool_t *p, const proxy_worker *w)
{
    if (*w->s->uds_path) {
        return apr_psprintf(p, "unix:%.*s|%s", (int)sizeof(w->s->uds_path),
                            w->s->uds_path, AFFINITY_WORKER_NAME(w));
    }
    return AFFINITY_WORKER_NAME(w);
}

/* Warnings about balancers that use us: stickysession set (core stickiness
 * would bypass the finder) and members that share an identity. */
static void affinity_check_balancers(apr_pool_t *ptemp, server_rec *main_s)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    apr_hash_t *seen = apr_hash_make(ptemp);
    server_rec *s;

    if (!proxy) {
        return;
    }
    for (s = main_s; s; s = s->next) {
        proxy_server_conf *psf = ap_get_module_config(s->module_config, proxy);
        int b;

        if (!psf || !psf->balancers) {
            continue;
        }
        for (b = 0; b < psf->balancers->nelts; b++) {
            proxy_balancer *balancer = &APR_ARRAY_IDX(psf->balancers, b,
                                                      proxy_balancer);
            apr_hash_t *identities;
            int i;

            /* virtual hosts hold copies of the main server's balancers;
             * the copies share the shared-data pointer: key on its value */
            if (balancer->lbmethod != &affinity_method
                || apr_hash_get(seen, &balancer->s, sizeof(balancer->s))) {
                continue;
            }
            apr_hash_set(seen, &balancer->s, sizeof(balancer->s), "");

            if (*balancer->s->sticky) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             "AFF0002: %s uses lbmethod=affinity together with "
                             "stickysession=%s: httpd's own stickiness then "
                             "bypasses mod_affinity for matching routes; "
                             "remove stickysession", balancer->s->name,
                             balancer->s->sticky);
            }

            identities = apr_hash_make(ptemp);
            for (i = 0; i < balancer->workers->nelts; i++) {
                proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i,
                                                proxy_worker *);
                const char *route = apr_pstrndup(ptemp, w->s->route,
                                                 sizeof(w->s->route));
                const char *identity = affinity_identity(ptemp, w, route);
                proxy_worker *other = apr_hash_get(identities, identity,
                                                   APR_HASH_KEY_STRING);
                if (other) {
                    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                                 "AFF0003: %s: members %s and %s share the "
                                 "identity \"%s\" and so one route ID; "
                                 "give them distinct route= values",
                                 balancer->s->name,
                                 affinity_member_name(ptemp, other),
                                 affinity_member_name(ptemp, w), identity);
                }
                else {
                    apr_hash_set(identities, identity, APR_HASH_KEY_STRING, w);
                }
            }
        }
    }
}

static int affinity_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    /* the first of the two startup passes only checks the syntax */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }

    affinity_get_best_worker = APR_RETRIEVE_OPTIONAL_FN(proxy_balancer_get_best_worker);
    affinity_retry_worker = APR_RETRIEVE_OPTIONAL_FN(ap_proxy_retry_worker);
    if (!affinity_get_best_worker || !affinity_retry_worker) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "AFF0001: mod_proxy and mod_proxy_balancer (httpd 2.4.35 "
                     "or later) must be loaded for mod_affinity");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    affinity_config_post_config(s);
    if (affinity_store_post_config(ptemp, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    /* once per (re)start, so the log says which build is running */
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "AFF0020: mod_affinity " AFFINITY_VERSION " loaded");

    affinity_check_balancers(ptemp, s);
    return OK;
}

static int affinity_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return affinity_store_pre_config(pconf);
}

static int affinity_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    return affinity_store_check_config(ptemp, s);
}

static void affinity_register_hooks(apr_pool_t *p)
{
    ap_hook_check_config(affinity_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_config(affinity_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(affinity_store_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_provider(p, PROXY_LBMETHOD, "affinity", "0", &affinity_method);
    ap_hook_post_config(affinity_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    affinity_response_register_hooks(p);
    affinity_status_register_hooks(p);
}
