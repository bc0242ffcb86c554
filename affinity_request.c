/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_request.c: the per-request state every mode shares (what was
 * read, the members tried), usability, and the variables the finder sets.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

APR_OPTIONAL_FN_TYPE(ap_proxy_retry_worker) *affinity_retry_worker = NULL;

/* The request state with room for the first element of each of its lists:
 * a request mostly carries one value and tries one member, so one
 * allocation makes it all (apr_array_push() moves a list into the pool
 * when it grows past its first element). */
typedef struct {
    affinity_request req;
    apr_array_header_t values, ids, info, tried;
    affinity_value first_value;
    unsigned char first_id[AFFINITY_ID_LEN];
    affinity_id_info first_info;
    proxy_worker *first_tried;
} affinity_request_block;

/* An empty list, as apr_array_make(p, 1, elt_size) makes it, whose one
 * zeroed element is first. */
static apr_array_header_t *affinity_list_init(apr_array_header_t *list,
                                              apr_pool_t *p, void *first,
                                              int elt_size)
{
    list->pool = p;
    list->elt_size = elt_size;
    list->nelts = 0;
    list->nalloc = 1;
    list->elts = first;
    return list;
}

affinity_request *affinity_request_new(apr_pool_t *p)
{
    affinity_request_block *block = apr_pcalloc(p, sizeof(*block));
    affinity_request *req = &block->req;

    req->values = affinity_list_init(&block->values, p, &block->first_value,
                                     sizeof(affinity_value));
    req->ids = affinity_list_init(&block->ids, p, block->first_id,
                                  AFFINITY_ID_LEN);
    req->info = affinity_list_init(&block->info, p, &block->first_info,
                                   sizeof(affinity_id_info));
    req->tried = affinity_list_init(&block->tried, p, &block->first_tried,
                                    sizeof(proxy_worker *));
    return req;
}

affinity_request *affinity_request_get(request_rec *r,
                                       const affinity_dir_conf *conf,
                                       const affinity_mode *mode)
{
    affinity_request *req = ap_get_module_config(r->request_config,
                                                 &affinity_module);

    if (req) {
        /* called again: the member chosen last time failed */
        if (req->chosen) {
            APR_ARRAY_PUSH(req->tried, proxy_worker *) = req->chosen;
            req->chosen = NULL;
        }
        return req;
    }

    req = affinity_request_new(r->pool);
    /* AffinityNoCache is On unless said Off */
    req->nocache = conf->nocache != 0;
    /* the response side reads these, also from an error document's request
     * whose section is not the balancer's */
    req->mode = mode;
    req->mode_cookie = conf->mode_cookie;
    req->slow_start = conf->slow_start > 0 ? conf->slow_start : 0;
    req->drain_timeout = conf->drain_timeout > 0 ? conf->drain_timeout : 0;
    if (mode->read) {
        mode->read(r, conf, req);
    }
    ap_set_module_config(r->request_config, &affinity_module, req);
    return req;
}

/* Usable as mod_proxy_balancer defines it, after httpd's own retry check,
 * and not already failed for this request (even when retry=0 revives it). */
int affinity_usable(const affinity_request *req, proxy_worker *w,
                           request_rec *r)
{
    if (affinity_was_tried(req, w)) {
        return 0;
    }
    if (!PROXY_WORKER_IS_USABLE(w)) {
        affinity_retry_worker("BALANCER", w, r->server);
    }
    return PROXY_WORKER_IS_USABLE(w);
}

const char *affinity_set_session_env(request_rec *r,
                                     const affinity_request *req,
                                     const char *name)
{
    char *hex;

    if (!req->ids->nelts) {
        return NULL;
    }
    /* the value's own text when it is the hex (bare and dated values):
     * a copy, not an encoding */
    if (req->info->nelts
        && APR_ARRAY_IDX(req->info, 0, affinity_id_info).hex) {
        return affinity_set_session_env_hex(r, name,
            apr_pstrmemdup(r->pool,
                           APR_ARRAY_IDX(req->info, 0, affinity_id_info).hex,
                           AFFINITY_ID_HEX_LEN));
    }
    hex = apr_palloc(r->pool, AFFINITY_ID_HEX_LEN + 1);
    affinity_id_to_hex(hex, (const unsigned char *)req->ids->elts);
    return affinity_set_session_env_hex(r, name, hex);
}

const char *affinity_set_session_env_hex(request_rec *r, const char *name,
                                         const char *hex)
{
    apr_table_setn(r->subprocess_env, "BALANCER_SESSION_STICKY", name);
    apr_table_setn(r->subprocess_env, "BALANCER_SESSION_ROUTE", hex);
    return hex;
}

/* The ID is copied: m lives in a table that another thread's finder may
 * free while this request's filters, error page and log still read it.
 * The status is also kept in the request state, where the status page's
 * counting reads it (status: a literal, or in r->pool). */
const char *affinity_set_env(request_rec *r, const affinity_member *m,
                             const char *status)
{
    affinity_request *req = ap_get_module_config(r->request_config,
                                                 &affinity_module);
    const char *id_hex = NULL;

    if (m) {
        id_hex = apr_pstrmemdup(r->pool, m->id_hex, AFFINITY_ID_HEX_LEN);
        apr_table_setn(r->subprocess_env, "AFFINITY_ROUTE", id_hex);
    }
    else {
        apr_table_unset(r->subprocess_env, "AFFINITY_ROUTE");
    }
    apr_table_setn(r->subprocess_env, "AFFINITY_STATUS", status);
    if (req) {
        req->status = status;
    }
    return id_hex;
}
