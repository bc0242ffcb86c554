/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status.c: the affinity-status handler.  It reads the query,
 * picks the format, builds the view once (affinity_status_view.c) and hands
 * it to that format's renderer; the counters it shows are
 * affinity_status_counters.c's, set up here at post_config and bumped from
 * the log_transaction hook.
 */

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include "affinity_status.h"

APLOG_USE_MODULE(affinity);

#define AFFINITY_STATUS_HANDLER "affinity-status"

/* ---- The handler ------------------------------------------------------------------ */

typedef enum {
    AFFINITY_FMT_HTML,
    AFFINITY_FMT_JSON,
    AFFINITY_FMT_PROMETHEUS
} affinity_format_e;

static int affinity_bad_request(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "AFF0083: affinity-status: bad query: %s", why);
    r->status = HTTP_BAD_REQUEST;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    if (!r->header_only) {
        ap_rvputs(r, "affinity-status: ", why, "\n", NULL);
    }
    return OK;
}

static int affinity_wants_prometheus(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    return accept && (ap_strcasestr(accept, "openmetrics-text")
                      || ap_strcasestr(accept, "version=0.0.4"));
}

static int affinity_status_handler(request_rec *r)
{
    affinity_format_e fmt;
    const char *format = NULL;
    affinity_view *v;
    char *args, *pair, *state;
    const char *id = NULL, *host = NULL, *key = NULL;

    if (!r->handler || strcmp(r->handler, AFFINITY_STATUS_HANDLER)) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }

    args = apr_pstrdup(r->pool, r->args ? r->args : "");
    for (pair = apr_strtok(args, "&", &state); pair;
         pair = apr_strtok(NULL, "&", &state)) {
        char *val = strchr(pair, '=');

        if (val) {
            *val++ = '\0';
        }
        else {
            val = "";
        }
        if (ap_unescape_urlencoded(pair) != OK
            || ap_unescape_urlencoded(val) != OK) {
            return affinity_bad_request(r, "malformed %-escape in the query");
        }
        if (!strcmp(pair, "format") && !format) {
            format = val;
        }
        else if (!strcmp(pair, "id") && !id) {
            id = val;
        }
        else if (!strcmp(pair, "host") && !host) {
            host = val;
        }
        else if (!strcmp(pair, "key") && !key) {
            key = val;
        }
    }

    if (!format) {
        fmt = affinity_wants_prometheus(r) ? AFFINITY_FMT_PROMETHEUS
                                           : AFFINITY_FMT_HTML;
    }
    else if (!strcmp(format, "html")) {
        fmt = AFFINITY_FMT_HTML;
    }
    else if (!strcmp(format, "json")) {
        fmt = AFFINITY_FMT_JSON;
    }
    else if (!strcmp(format, "prometheus")) {
        fmt = AFFINITY_FMT_PROMETHEUS;
    }
    else {
        return affinity_bad_request(r, "format must be html, json or prometheus");
    }

    v = affinity_view_build(r, key && *key ? key : NULL,
                            id && *id ? id : NULL,
                            host && *host ? host : NULL);

    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (!format) {
        apr_table_mergen(r->headers_out, "Vary", "Accept");
    }
    switch (fmt) {
    case AFFINITY_FMT_JSON:
        affinity_status_json(r, v);
        break;
    case AFFINITY_FMT_PROMETHEUS:
        affinity_status_prometheus(r, v);
        break;
    default:
        affinity_status_html(r, v);
    }
    return OK;
}

static int affinity_status_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                       apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    affinity_counters_post_config(pconf, ptemp, s);
    return OK;
}

void affinity_status_register_hooks(apr_pool_t *p)
{
    /* after mod_proxy_balancer's: it sets max_workers, sname and the slots */
    static const char *const pre[] = {"mod_proxy_balancer.c", NULL};

    (void)p;
    ap_hook_post_config(affinity_status_post_config, pre, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(affinity_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(affinity_status_count, NULL, NULL,
                            APR_HOOK_REALLY_FIRST);
}
