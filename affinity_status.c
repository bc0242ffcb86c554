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

static int affinity_view_only_member(affinity_view *v, const char *name);
static int affinity_not_found(request_rec *r, const char *member);

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

/* ?try=MEMBER&balancer=NAME: gives this browser the member's session
 * cookie, as the balancer's mode would issue it to a new session there, so
 * that a tester reaches a member in hot standby (or draining) and stays.
 * Only clients the page's own access rules admit get this far. */
static int affinity_status_try(request_rec *r, const affinity_view *v,
                               const char *member, const char *balancer)
{
    const affinity_view_balancer *vb = NULL;
    const affinity_view_member *m = NULL;
    const char *set = NULL, *instead = NULL;
    int i;

    for (i = 0; !vb && i < v->balancers->nelts; i++) {
        const affinity_view_balancer *x = &APR_ARRAY_IDX(v->balancers, i,
                                                         affinity_view_balancer);
        if (!strcmp(x->name, balancer)) {
            vb = x;
        }
    }
    for (i = 0; vb && !m && i < vb->members->nelts; i++) {
        const affinity_view_member *x = &APR_ARRAY_IDX(vb->members, i,
                                                       affinity_view_member);
        if (!strcmp(x->name, member)) {
            m = x;
        }
    }
    if (!m) {
        return affinity_bad_request(r, "try: no such member of an affinity "
                                       "balancer (give try=MEMBER URL and "
                                       "balancer=balancer://NAME as the page's "
                                       "links do)");
    }
    if (vb->can_try) {
        set = affinity_mode_of(vb->conf)->try_cookie(vb->balancer, r, vb->conf,
                                                     m->s, &instead);
    }
    else {
        instead = "this balancer's mode carries no session: a request goes "
                  "where its host or key maps";
    }
    if (!set && !instead) {
        instead = "the member is not in this server process's member table "
                  "yet (added moments ago): load the page again";
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "AFF0084: affinity-status: try link for member %s of %s: %s",
                  m->name, vb->name, set ? "session cookie given" : instead);
    if (set) {
        apr_table_addn(r->headers_out, "Set-Cookie", set);
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "text/html; charset=utf-8");
    if (r->header_only) {
        return OK;
    }
    ap_rvputs(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
              "<title>Try ", ap_escape_html(r->pool, m->name), "</title></head>"
              "<body>\n<h1>Try ", ap_escape_html(r->pool, m->name), " of ",
              ap_escape_html(r->pool, vb->name), "</h1>\n", NULL);
    if (set) {
        ap_rvputs(r, "<p>This browser now has the member's session cookie:</p>"
                  "\n<pre>Set-Cookie: ", ap_escape_html(r->pool, set),
                  "</pre>\n<p>Its requests to the balancer go to this member "
                  "while it is usable, in hot standby or draining too; other "
                  "clients get no new session there.  Delete the cookie to "
                  "leave.</p>\n", NULL);
    }
    else {
        ap_rvputs(r, "<p>No cookie was set: ", ap_escape_html(r->pool, instead),
                  ".</p>\n", NULL);
    }
    ap_rputs("<p><a href=\"?\">Back to the status page</a></p>\n</body></html>\n",
             r);
    return OK;
}

static int affinity_status_handler(request_rec *r)
{
    affinity_format_e fmt;
    const char *format = NULL;
    affinity_view *v;
    char *args, *pair, *state;
    const char *id = NULL, *host = NULL, *try_member = NULL, *try_bal = NULL;
    const char *member = NULL, *key = NULL;

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
        else if (!strcmp(pair, "try") && !try_member) {
            try_member = val;
        }
        else if (!strcmp(pair, "balancer") && !try_bal) {
            try_bal = val;
        }
        else if (!strcmp(pair, "member") && !member) {
            member = val;
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
    if (try_member) {
        return affinity_status_try(r, v, try_member, try_bal ? try_bal : "");
    }

    if (member && *member && !affinity_view_only_member(v, member)) {
        return affinity_not_found(r, member);
    }
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

/* ?member=NAME: only that member (a deploy job's question), in every
 * balancer that has it; the others go.  0: no balancer has it. */
static int affinity_view_only_member(affinity_view *v, const char *name)
{
    apr_array_header_t *keep = apr_array_make(v->r->pool, 1,
                                              sizeof(affinity_view_balancer));
    int b, i;

    for (b = 0; b < v->balancers->nelts; b++) {
        affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                    affinity_view_balancer);
        apr_array_header_t *ms = apr_array_make(v->r->pool, 1,
                                                sizeof(affinity_view_member));

        for (i = 0; i < vb->members->nelts; i++) {
            affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                     affinity_view_member);
            if (!strcmp(m->name, name)) {
                *(affinity_view_member *)apr_array_push(ms) = *m;
            }
        }
        if (ms->nelts) {
            vb->members = ms;
            *(affinity_view_balancer *)apr_array_push(keep) = *vb;
        }
    }
    v->balancers = keep;
    return keep->nelts;
}

static int affinity_not_found(request_rec *r, const char *member)
{
    ap_set_content_type(r, "text/plain; charset=utf-8");
    r->status = HTTP_NOT_FOUND;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    ap_rvputs(r, "affinity-status: no balancer member is named \"",
              ap_escape_html(r->pool, member), "\"; write it as the status "
              "page and balancer-manager show it, e.g. member=http://"
              "127.0.0.1:8080\n", NULL);
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
