/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_response.c: what the response to a balanced request carries, in
 * every mode.
 *
 * affinity_response_fixup() does each mode's header work once a member
 * answered.  Cookie mode: the member's own cookies of our name go unless
 * they delete it (HAProxy's insert mode), ours is there exactly once;
 * prefix mode: the member's cookie NAME gets the prefix
 * (affinity_prefix_response()); learn mode: NAME's values are learned
 * (affinity_learn_response()).  A response that sets a cookie naming a
 * member is kept out of shared caches.  It runs wherever the response
 * leaves httpd:
 *
 *  - AFFINITY_RESPONSE, an output filter the finder adds, of a type just
 *    below mod_headers' (AP_FTYPE_CONTENT_SET), so it runs after mod_proxy
 *    has put the member's headers in place and before mod_headers' filter:
 *    `Header edit/unset Set-Cookie` see our cookie as they see the
 *    member's, and mod_cache (AP_FTYPE_CONTENT_SET + 1) sees the result;
 *  - httpd's own error page after a member answered (ProxyErrorOverride):
 *    the insert_error_filter hook, in err_headers_out, the only table such a
 *    page keeps;
 *  - a local ErrorDocument (an internal redirect): the new request inherits
 *    the cookie (in err_headers_out, which it shares with the original, so
 *    that `Header always` rules see it) and our environment variables;
 *  - a 101 Switching Protocols (websockets) goes out through
 *    ap_send_interim_response(), past every filter: for a request asking to
 *    upgrade, the finder puts the cookie in headers_out, whose Set-Cookie
 *    entries mod_proxy_http keeps when it copies the member's headers in.
 *
 * Whether a member answered, on the error paths, is read from what the
 * scheme handlers leave behind (affinity_member_answered()).
 */

#include "http_request.h"
#include "util_filter.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

static ap_filter_rec_t *affinity_response_filter_handle;

/* The variables the module sets for logging: an error document's request
 * gets them under their own names (httpd renames the original's REDIRECT_*) */
static const char *const affinity_env_names[] = {
    "AFFINITY_ROUTE", "AFFINITY_STATUS", "BALANCER_ROUTE_CHANGED",
    "BALANCER_SESSION_ROUTE", "BALANCER_SESSION_STICKY", NULL
};

/* ---- Whether a member answered -------------------------------------------- */

/* Remembers what the scheme handler is about to change. */
static void affinity_snapshot(request_rec *r, affinity_request *req)
{
    req->seen_headers_out = r->headers_out;
    req->seen_headers_n = apr_table_elts(r->headers_out)->nelts;
    req->seen_err_headers_out = r->err_headers_out;
    req->seen_err_headers_n = apr_table_elts(r->err_headers_out)->nelts;
    req->seen_status_line = r->status_line;
}

/* Did the member chosen last answer?  Not the status: with
 * ProxyErrorOverride a member's 503 and mod_proxy's own look alike, and
 * mod_proxy_http resets r->status.  Every scheme handler leaves a trace of
 * an answer, and none of them when it could not get one:
 *  - our filter saw the response (every scheme, no error override);
 *  - "proxy-status" (mod_proxy_http, once it read a status line) or
 *    "proxy-error-override" (mod_proxy_http and mod_proxy_ajp) in r->notes;
 *  - r->status_line set (mod_proxy_http, ajp and uwsgi from the status line;
 *    fcgi and scgi from the script's Status header, without which a script
 *    cannot answer with an error);
 *  - the member's headers put in headers_out or err_headers_out (the table
 *    replaced or grown: uwsgi, which clears status_line on override; CGI
 *    scripts' headers land in err_headers_out).
 * mod_proxy's own failures (no member, connection refused or reset,
 * timeout) touch none of these. */
static int affinity_member_answered(request_rec *r, const affinity_request *req)
{
    return req->answered
           || apr_table_get(r->notes, "proxy-status")
           || apr_table_get(r->notes, "proxy-error-override")
           || r->status_line != req->seen_status_line
           || r->headers_out != req->seen_headers_out
           || apr_table_elts(r->headers_out)->nelts != req->seen_headers_n
           || r->err_headers_out != req->seen_err_headers_out
           || apr_table_elts(r->err_headers_out)->nelts != req->seen_err_headers_n;
}

static int affinity_is_sent(void *baton, const char **v,
                            const affinity_set_cookie_t *sc)
{
    (void)sc;
    return *v == (const char *)baton;
}

/* ---- The fixup --------------------------------------------------------------- */

/* Drops the Set-Cookie entry a retried finder had put in headers_out. */
void affinity_response_fixup(request_rec *r, const affinity_request *req,
                             apr_table_t *target)
{
    if (req->mode->response) {
        req->mode->response(r, req, target);
    }
}

/* Has req's mode anything to do on the response? */
static int affinity_response_wanted(const affinity_request *req)
{
    return req->mode->response_wanted && req->mode->response_wanted(req);
}

/* ---- Where the response leaves ----------------------------------------------- */

void affinity_response_prepare(request_rec *r, affinity_request *req)
{
    /* a retried finder: the cookie of the member that failed goes */
    if (req->sent_cookie) {
        affinity_set_cookie_walk(r, r->headers_out, NULL, affinity_is_sent,
                                 (void *)req->sent_cookie);
        req->sent_cookie = NULL;
    }
    /* only an upgrade can be answered by a 101, which no filter sees; other
     * interim responses (100 Continue) need no cookie */
    if (req->set_cookie && apr_table_get(r->headers_in, "Upgrade")) {
        apr_table_addn(r->headers_out, "Set-Cookie", req->set_cookie);
        req->sent_cookie = req->set_cookie;
    }
    affinity_snapshot(r, req);
    if (affinity_response_wanted(req) && !req->filter_added) {
        ap_add_output_filter_handle(affinity_response_filter_handle, NULL, r,
                                    r->connection);
        req->filter_added = 1;
    }
}

/* The state of the request whose member serves r: r's own, or, for an
 * error document, the original's.  *error_doc tells which. */
static affinity_request *affinity_response_state(request_rec *r,
                                                 request_rec **origin,
                                                 int *error_doc)
{
    request_rec *o;

    *error_doc = 0;
    for (o = r; o; o = o->prev) {
        affinity_request *req = ap_get_module_config(o->request_config,
                                                     &affinity_module);
        if (req) {
            *origin = o;
            return req;
        }
        *error_doc = 1;
    }
    return NULL;
}

/* Added by the finder: the member's response passes here, so it answered.
 * Added for an error document too (affinity_response_redirected()); a
 * response httpd makes itself after the member failed never passes: error
 * pages start a new filter chain. */
static apr_status_t affinity_response_filter(ap_filter_t *f,
                                             apr_bucket_brigade *bb)
{
    request_rec *r = f->r, *origin;
    int error_doc;
    affinity_request *req = affinity_response_state(r, &origin, &error_doc);

    if (req) {
        req->answered = 1;
        affinity_response_fixup(r, req, error_doc ? r->err_headers_out
                                                  : r->headers_out);
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* No member answered: nothing may name one. */
static void affinity_unanswered(request_rec *r)
{
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0033: no member answered: the error response sets no "
                  "cookie and AFFINITY_ROUTE is unset");
    apr_table_unset(r->subprocess_env, "AFFINITY_ROUTE");
    apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
}

/* httpd's own error page (ap_send_error_response): it sends err_headers_out
 * only.  After ProxyErrorOverride the member did answer, and the page
 * names it. */
static void affinity_insert_error_filter(request_rec *r)
{
    affinity_request *req = ap_get_module_config(r->request_config,
                                                 &affinity_module);

    if (!req) {
        return;
    }
    if (req->chosen && affinity_member_answered(r, req)) {
        affinity_response_fixup(r, req, r->err_headers_out);
    }
    else {
        affinity_unanswered(r);
    }
}

/* A local ErrorDocument (or a script's local redirect): a new request whose
 * environment and filters are its own.  Our variables follow (httpd would
 * only keep them as REDIRECT_*), and so does the cookie when the member
 * answered. */
static void affinity_response_redirected(request_rec *r)
{
    request_rec *origin;
    affinity_request *req;
    int error_doc, answered, i;

    if (!r->prev) {
        return;
    }
    req = affinity_response_state(r->prev, &origin, &error_doc);
    if (!req) {
        return;
    }
    answered = req->chosen && affinity_member_answered(origin, req);
    if (!answered) {
        affinity_unanswered(origin);
    }
    for (i = 0; affinity_env_names[i]; i++) {
        const char *v = apr_table_get(origin->subprocess_env,
                                      affinity_env_names[i]);
        if (v) {
            apr_table_set(r->subprocess_env, affinity_env_names[i], v);
        }
    }
    if (answered && affinity_response_wanted(req)) {
        ap_add_output_filter_handle(affinity_response_filter_handle, NULL, r,
                                    r->connection);
    }
}

void affinity_response_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_insert_error_filter(affinity_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_hook_insert_filter(affinity_response_redirected, NULL, NULL,
                          APR_HOOK_MIDDLE);
    /* one below mod_headers' type: see the top of this file */
    affinity_response_filter_handle =
        ap_register_output_filter("AFFINITY_RESPONSE", affinity_response_filter,
                                  NULL, AP_FTYPE_CONTENT_SET - 1);
}
