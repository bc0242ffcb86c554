/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status_html.c: the status page as HTML (UTF-8), from the view.
 */

#include "http_core.h"
#include "http_protocol.h"

#include "affinity_status.h"

/* HTML text: markup escaped, and bytes that are not well-formed UTF-8
 * replaced, so that the rest (the page is UTF-8) is shown as it is. */
#define H(s) ap_escape_html2(r->pool, affinity_utf8_clean(r->pool, (s)), 0)

static const char *affinity_time_text(apr_pool_t *p, apr_time_t t)
{
    char *buf = apr_palloc(p, APR_RFC822_DATE_LEN);

    apr_rfc822_date(buf, t);
    return buf;
}

static void affinity_html_lookups(request_rec *r, const affinity_view *v)
{
    int i;

    ap_rvputs(r, "<form method=\"get\" action=\"", H(r->uri), "\">"
              "<label>Cookie value <input name=\"id\" size=\"50\" value=\"",
              v->id_query ? H(v->id_query) : "", "\"></label> "
              "<label>Host <input name=\"host\" size=\"30\" value=\"",
              v->host_query ? H(v->host_query) : "", "\"></label> "
              "<label>Key <input name=\"key\" size=\"30\" "
              "type=\"password\"></label> "
              "<input type=\"submit\" value=\"Look up\"></form>\n", NULL);

    if (v->id_query) {
        const affinity_id_query *q = &v->id;
        const apr_array_header_t *matches = v->id_matches;

        ap_rvputs(r, "<h2>Cookie value <code>", H(v->id_query), "</code></h2>\n",
                  NULL);
        if (q->error) {
            ap_rvputs(r, "<p class=\"bad\">", H(q->error), "</p>\n", NULL);
        }
        else {
            ap_rvputs(r, "<p>Route ID <code>", q->hex, "</code>", NULL);
            if (q->suffix) {
                ap_rvputs(r, " followed by <code>", H(q->suffix), "</code> (",
                          !strcmp(q->form, "prefixed") ? "prefixed value"
                          : "expiry fields, not checked here", ")", NULL);
            }
            ap_rputs(".</p>\n", r);
            if (!matches->nelts) {
                ap_rputs("<p class=\"bad\">It names no member of any balancer "
                         "here: a request carrying it counts as "
                         "<code>invalid</code> and gets a new member.</p>\n", r);
            }
            else {
                ap_rputs("<table><tr><th>Balancer</th><th>Member</th><th>Route</th>"
                         "<th>Status</th><th>Now</th></tr>\n", r);
                for (i = 0; i < matches->nelts; i++) {
                    const affinity_id_match *mt = &APR_ARRAY_IDX(matches, i,
                                                                 affinity_id_match);
                    ap_rvputs(r, "<tr><td>", H(mt->vb->name), "</td><td>",
                              H(mt->m->name), "</td><td>", H(mt->m->route),
                              "</td><td>", mt->m->state,
                              "</td><td class=\"", mt->honoured ? "ok" : "bad",
                              "\">", H(mt->outcome), "</td></tr>\n", NULL);
                }
                ap_rputs("</table>\n", r);
            }
        }
    }

    if (v->host_query) {
        ap_rvputs(r, "<h2>Host <code>", H(v->host), "</code></h2>\n", NULL);
        for (i = 0; i < v->host_matches->nelts; i++) {
            const affinity_host_match *hm = &APR_ARRAY_IDX(v->host_matches, i,
                                                           affinity_host_match);
            const affinity_view_member *m = hm->m;

            if (!i) {
                ap_rputs("<table><tr><th>Balancer</th><th>Member</th><th>Route</th>"
                         "<th>Route ID</th></tr>\n", r);
            }
            ap_rvputs(r, "<tr><td>", H(hm->vb->name), "</td><td>",
                      m ? H(m->name) : "(no usable member: 503)", "</td><td>",
                      m ? H(m->route) : "", "</td><td><code>", m ? m->id_shown : "",
                      m && v->ids_prefix ? "&hellip;" : "",
                      "</code></td></tr>\n", NULL);
        }
        ap_rputs(v->host_matches->nelts ? "</table>\n"
                 : "<p>No balancer here is in domain mode.</p>\n", r);
    }

    if (v->key_asked) {
        /* the key itself is not shown back */
        ap_rputs("<h2>Key</h2>\n", r);
        for (i = 0; i < v->key_matches->nelts; i++) {
            const affinity_host_match *hm = &APR_ARRAY_IDX(v->key_matches, i,
                                                           affinity_host_match);
            const affinity_view_member *m = hm->m;

            if (!i) {
                ap_rputs("<table><tr><th>Balancer</th><th>Member</th><th>Route</th>"
                         "<th>Route ID</th></tr>\n", r);
            }
            ap_rvputs(r, "<tr><td>", H(hm->vb->name), "</td><td>",
                      m ? H(m->name) : "(no usable member: 503)", "</td><td>",
                      m ? H(m->route) : "", "</td><td><code>", m ? m->id_shown : "",
                      m && v->ids_prefix ? "&hellip;" : "",
                      "</code></td></tr>\n", NULL);
        }
        ap_rputs(v->key_matches->nelts ? "</table>\n"
                 : "<p>No balancer here is in hash mode.</p>\n", r);
    }
}

/* Learn mode's store: its state and counts (every child's). */
static void affinity_html_store(request_rec *r, const affinity_view *v)
{
    const affinity_store_health *h = &v->store_health;
    const char *state;

    if (!v->store) {
        return;
    }
    if (h->up) {
        state = "<td class=\"ok\">up: its last call succeeded";
    }
    else {
        state = apr_pstrcat(r->pool, "<td class=\"bad\">down",
                            h->outage ? " since " : "",
                            h->outage ? affinity_time_text(r->pool, h->outage)
                                     : "",
                            h->backing_off ? " (skipped for now)" : "",
                            ": sessions are hashed",
                            h->local_size ? " unless the local tier knows them"
                                         : "", NULL);
    }
    ap_rvputs(r, "<h2>Learn-mode store</h2>\n<table><tr><th>Store</th>"
              "<th>State</th><th>Lookups</th><th>Writes</th><th>Removals</th>"
              "<th>Errors</th><th>Skipped</th><th>Last error</th>"
              "<th>Local tier</th><th>Local hits</th><th>Written back</th>"
              "</tr>\n<tr><td><code>", H(h->spec), "</code></td>", state,
              "</td>", NULL);
    ap_rprintf(r, "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
               "<td class=\"n\">%" APR_UINT64_T_FMT "</td>",
               h->count[AFFINITY_STORE_LOOKUPS], h->count[AFFINITY_STORE_WRITES],
               h->count[AFFINITY_STORE_REMOVALS], h->count[AFFINITY_STORE_ERRORS],
               h->count[AFFINITY_STORE_SKIPPED]);
    ap_rvputs(r, "<td>", h->last_error ? affinity_time_text(r->pool, h->last_error)
                                      : "none", "</td>", NULL);
    if (h->local_size) {
        ap_rprintf(r, "<td class=\"n\">%" APR_SIZE_T_FMT " bytes</td>"
                   "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
                   "<td class=\"n\">%" APR_UINT64_T_FMT "</td></tr></table>\n",
                   h->local_size, h->count[AFFINITY_STORE_LOCAL_HITS],
                   h->count[AFFINITY_STORE_WRITEBACKS]);
    }
    else {
        ap_rputs("<td>none</td><td></td><td></td></tr></table>\n", r);
    }
}

/* Each draining member's progress, in words an operator acts on. */
static void affinity_html_drain(request_rec *r, const affinity_view_balancer *vb)
{
    int i;

    for (i = 0; i < vb->members->nelts; i++) {
        const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                       affinity_view_member);
        const char *deadline = "no deadline (AffinityDrainTimeout off)";

        if (!m->draining) {
            continue;
        }
        if (m->drain_timeout && m->draining_since) {
            deadline = apr_pstrcat(r->pool, "its sessions move at ",
                                   affinity_time_text(r->pool,
                                       apr_time_from_sec((apr_time_t)m->draining_since
                                                         + m->drain_timeout)),
                                   NULL);
        }
        ap_rvputs(r, "<p class=\"drain\">", H(m->name), " is draining since ",
                  m->draining_since
                  ? affinity_time_text(r->pool,
                                       apr_time_from_sec(m->draining_since))
                  : "now", ", ", deadline, ": ", NULL);
        if (m->safe_to_stop) {
            ap_rprintf(r, "<span class=\"ok\">no session requests for %u s: "
                       "safe to stop</span></p>\n", m->quiet);
        }
        else if (!m->sessions_minute) {
            ap_rprintf(r, "no session requests for %u s yet: wait until %d "
                       "s</p>\n", m->quiet, AFFINITY_DRAIN_QUIET);
        }
        else {
            ap_rprintf(r, "<span class=\"bad\">still serving about %u "
                       "session requests a minute</span> (the last %u s "
                       "ago)</p>\n", m->sessions_minute, m->quiet);
        }
    }
}

void affinity_status_html(request_rec *r, const affinity_view *v)
{
    int b, i, k;

    ap_set_content_type(r, "text/html; charset=utf-8");
    if (r->header_only) {
        return;
    }
    ap_rputs(DOCTYPE_HTML_4_01
             "<html><head><meta charset=\"utf-8\">\n"
             "<title>mod_affinity status</title>\n<style>\n"
             "body{font-family:sans-serif;margin:1em}"
             "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
             /* fits 1280 px with 9 counter columns: names, routes and
              * attributes wrap, an ID takes two lines of 20 digits */
             "th,td{border:1px solid #bbb;padding:.2em .3em;text-align:left}"
             "td{max-width:22em;overflow-wrap:anywhere}"
             "td>code{display:inline-block;width:20ch;word-break:break-all}"
             "td:first-child{min-width:10em}"
             "th{background:#eee}td.n,td.ok,td.bad,td.share{white-space:nowrap}"
             "td.n{text-align:right;font-variant-numeric:tabular-nums}"
             "code{font-size:.95em}.bad{color:#a00}.ok{color:#060}"
             ".bar{display:inline-block;height:.8em;background:#4a7ab5;"
             "vertical-align:middle}\n"
             "</style></head><body>\n<h1>mod_affinity status for ", r);
    ap_rvputs(r, H(ap_get_server_name(r)), "</h1>\n<dl><dt>Server Version: ",
              H(ap_get_server_description()), "</dt>\n<dt>Counting since: ",
              v->counting ? affinity_time_text(r->pool, v->since)
              : "(counters unavailable)", " (kept across graceful restarts)</dt>\n",
              NULL);
    ap_rprintf(r, "<dt>Configuration generation: %d</dt></dl>\n",
               v->generation);
    affinity_html_lookups(r, v);
    affinity_html_store(r, v);

    if (!v->balancers->nelts) {
        ap_rputs("<p>No balancer of this server uses <code>lbmethod=affinity"
                 "</code>.</p>\n", r);
    }
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        apr_uint64_t unrouted = 0;

        ap_rvputs(r, "<hr>\n<h2>", H(vb->name), "</h2>\n<table><tr><th>Mode</th>"
                  "<th>Cookie</th><th>Cookie attributes</th><th>Salt</th>"
                  "<th>No failover</th><th>Max members</th></tr>\n<tr><td>",
                  vb->mode, "</td><td>", H(vb->cookie), "</td><td>",
                  vb->cookie_attrs ? H(vb->cookie_attrs) : "(the application's)",
                  "</td><td>", vb->salt_kind, "</td><td>",
                  vb->nofailover ? "On" : "Off", "</td>", NULL);
        ap_rprintf(r, "<td class=\"n\">%d</td></tr></table>\n",
                   vb->max_members);

        ap_rputs("<table><tr><th>Member</th><th>Route</th><th>Route ID</th>"
                 "<th>Status</th><th>Factor</th><th>Set</th>", r);
        for (k = 0; k < AFFINITY_SHOWN; k++) {
            ap_rvputs(r, "<th>", affinity_status_name(affinity_shown_index(k)),
                      "</th>", NULL);
        }
        ap_rvputs(r, "<th>Total</th><th title=\"requests taken because the "
                  "key's first member was over AffinityHashBalanceFactor\">"
                  "bounded</th><th>",
                  vb->sessions ? "Share of new sessions"
                                            : "Share of requests",
                  "</th></tr>\n", NULL);
        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            double share = vb->started ? (double)m->started / vb->started : 0;

            ap_rvputs(r, "<tr><td>", H(m->name), "</td><td>", H(m->route),
                      "</td><td><code>", m->id_shown,
                      v->ids_prefix ? "&hellip;" : "", "</code></td><td class=\"",
                      m->usable ? "ok" : "bad", "\">",
                      m->state, NULL);
            if (m->ramp < AFFINITY_RAMP_FULL) {
                ap_rprintf(r, "<br><span class=\"ramp\">slow start: %d%% of "
                           "its share, %" APR_TIME_T_FMT " s left</span>",
                           m->ramp / 10,
                           apr_time_sec(m->ramp_left + APR_USEC_PER_SEC - 1));
            }
            if (vb->can_try) {
                /* the member's cookie for this browser (the handler) */
                ap_rvputs(r, " <a href=\"?try=",
                          H(ap_escape_urlencoded(r->pool, m->name)),
                          "&amp;balancer=",
                          H(ap_escape_urlencoded(r->pool, vb->name)),
                          "\" title=\"give this browser the member's session "
                          "cookie\">try</a>", NULL);
            }
            ap_rputs("</td>", r);
            ap_rprintf(r, "<td class=\"n\">%.2f</td><td class=\"n\">%d</td>",
                       m->lbfactor, m->lbset);
            for (k = 0; k < AFFINITY_SHOWN; k++) {
                ap_rprintf(r, "<td class=\"n\">%" APR_UINT64_T_FMT "</td>",
                           m->count[affinity_shown_index(k)]);
            }
            ap_rprintf(r, "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
                       "<td class=\"n\">%" APR_UINT64_T_FMT "</td>"
                       "<td class=\"share\"><span class=\"bar\" style=\"width:%dpx\"></span> "
                       "%.1f%%</td></tr>\n", m->total,
                       m->count[AFFINITY_COUNT_BOUNDED], (int)(share * 60 + 0.5),
                       share * 100);
        }
        ap_rputs("</table>\n", r);
        if (vb->try_instead) {
            ap_rvputs(r, "<p>To try a member: ", H(vb->try_instead), ".</p>\n",
                      NULL);
        }
        affinity_html_drain(r, vb);
        for (k = 0; k < AFFINITY_NSTATUS; k++) {
            unrouted += vb->unrouted[k];
        }
        if (unrouted) {
            ap_rputs("<p>Requests no member could take (503):", r);
            for (k = 0; k < AFFINITY_SHOWN; k++) {
                ap_rprintf(r, " %s %" APR_UINT64_T_FMT,
                           affinity_status_name(affinity_shown_index(k)),
                           vb->unrouted[affinity_shown_index(k)]);
            }
            ap_rputs("</p>\n", r);
        }
    }
    ap_rputs("<hr>\n<p>Also as <a href=\"?format=json\">JSON</a> and "
             "<a href=\"?format=prometheus\">Prometheus metrics</a>.</p>\n"
             "</body></html>\n", r);
}
