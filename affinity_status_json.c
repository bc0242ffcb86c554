/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status_json.c: the status page as JSON (format version
 * AFFINITY_STATUS_JSON_VERSION), from the view.
 */

#include "http_core.h"
#include "http_protocol.h"

#include "affinity_status.h"

#define AFFINITY_STATUS_JSON_VERSION 1

/* JSON string contents: quotes, backslashes and controls escaped, also <, >
 * and & (harmless if a browser is tricked into reading JSON as HTML);
 * invalid UTF-8 bytes become U+FFFD. */
static const char *affinity_json_esc(apr_pool_t *p, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    const unsigned char *end = s + strlen(in);
    char *out = apr_palloc(p, strlen(in) * 6 + 1), *o = out;

    while (*s) {
        int n = affinity_utf8_len(s, (apr_size_t)(end - s));

        if (!n) {
            o += sprintf(o, "\\ufffd");
            s++;
        }
        else if (n > 1) {
            memcpy(o, s, n);
            o += n;
            s += n;
        }
        else if (*s == '"' || *s == '\\') {
            *o++ = '\\';
            *o++ = *s++;
        }
        else if (*s < 0x20 || *s == 0x7f || *s == '<' || *s == '>' || *s == '&') {
            o += sprintf(o, "\\u%04x", *s++);
        }
        else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

#define J(s) affinity_json_esc(r->pool, (s))


static void affinity_json_counts(request_rec *r, const apr_uint64_t *count)
{
    int k;

    ap_rputs("{", r);
    for (k = 0; k < AFFINITY_SHOWN; k++) {
        ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, k ? "," : "",
                   affinity_status_name(affinity_shown_index(k)),
                   count[affinity_shown_index(k)]);
    }
    ap_rputs("}", r);
}

static void affinity_json_lookups(request_rec *r, const affinity_view *v)
{
    int i;

    if (!v->id_query && !v->host_query && !v->key_asked) {
        return;
    }
    ap_rputs(",\"lookup\":{", r);
    if (v->id_query) {
        const affinity_id_query *q = &v->id;
        const apr_array_header_t *matches = v->id_matches;

        ap_rvputs(r, "\"id\":{\"query\":\"", J(v->id_query), "\"", NULL);
        if (q->error) {
            ap_rvputs(r, ",\"error\":\"", J(q->error), "\"}", NULL);
        }
        else {
            ap_rvputs(r, ",\"route_id\":\"", q->hex, "\",\"form\":\"", q->form, "\"",
                      NULL);
            if (q->suffix) {
                ap_rvputs(r, ",\"suffix\":\"", J(q->suffix), "\"", NULL);
            }
            if (q->cookie_name) {
                ap_rvputs(r, ",\"cookie_name\":\"", J(q->cookie_name), "\"", NULL);
            }
            ap_rputs(",\"matches\":[", r);
            for (i = 0; i < matches->nelts; i++) {
                const affinity_id_match *mt = &APR_ARRAY_IDX(matches, i,
                                                             affinity_id_match);
                ap_rvputs(r, i ? "," : "", "{\"balancer\":\"", J(mt->vb->name),
                          "\",\"member\":\"", J(mt->m->name), "\",\"route\":\"",
                          J(mt->m->route), "\",\"status\":\"",
                          J(mt->m->state),
                          "\",\"usable\":", mt->m->usable ? "true" : "false",
                          ",\"honoured\":", mt->honoured ? "true" : "false",
                          ",\"outcome\":\"", J(mt->outcome), "\"}", NULL);
            }
            ap_rputs("]}", r);
        }
    }
    if (v->host_query) {
        ap_rvputs(r, v->id_query ? "," : "", "\"host\":{\"query\":\"",
                  J(v->host_query), "\",\"host\":\"", J(v->host),
                  "\",\"balancers\":[", NULL);
        for (i = 0; i < v->host_matches->nelts; i++) {
            const affinity_host_match *hm = &APR_ARRAY_IDX(v->host_matches, i,
                                                           affinity_host_match);
            const affinity_view_member *m = hm->m;

            ap_rvputs(r, i ? "," : "", "{\"balancer\":\"", J(hm->vb->name), "\"",
                      NULL);
            if (m) {
                ap_rvputs(r, ",\"member\":\"", J(m->name), "\",\"route\":\"",
                          J(m->route), "\",\"route_id\":\"", m->id_shown, "\"}", NULL);
            }
            else {
                ap_rputs(",\"member\":null}", r);
            }
        }
        ap_rputs("]}", r);
    }
    if (v->key_asked) {
        /* the key itself is not shown back */
        ap_rputs(v->id_query || v->host_query ? ",\"key\":{\"balancers\":["
                 : "\"key\":{\"balancers\":[", r);
        for (i = 0; i < v->key_matches->nelts; i++) {
            const affinity_host_match *hm = &APR_ARRAY_IDX(v->key_matches, i,
                                                           affinity_host_match);
            const affinity_view_member *m = hm->m;

            ap_rvputs(r, i ? "," : "", "{\"balancer\":\"", J(hm->vb->name), "\"",
                      NULL);
            if (m) {
                ap_rvputs(r, ",\"member\":\"", J(m->name), "\",\"route\":\"",
                          J(m->route), "\",\"route_id\":\"", m->id_shown, "\"}", NULL);
            }
            else {
                ap_rputs(",\"member\":null}", r);
            }
        }
        ap_rputs("]}", r);
    }
    ap_rputs("}", r);
}

/* "store": learn mode's store (absent when no balancer learns). */
static void affinity_json_store(request_rec *r, const affinity_view *v)
{
    const affinity_store_health *h = &v->store_health;

    if (!v->store) {
        return;
    }
    ap_rvputs(r, ",\"store\":{\"spec\":\"", J(h->spec), "\",\"up\":",
              h->up ? "true" : "false", ",\"backing_off\":",
              h->backing_off ? "true" : "false", NULL);
    ap_rprintf(r, ",\"lookups\":%" APR_UINT64_T_FMT ",\"writes\":%"
               APR_UINT64_T_FMT ",\"removals\":%" APR_UINT64_T_FMT
               ",\"errors\":%" APR_UINT64_T_FMT ",\"skipped\":%"
               APR_UINT64_T_FMT, h->count[AFFINITY_STORE_LOOKUPS],
               h->count[AFFINITY_STORE_WRITES], h->count[AFFINITY_STORE_REMOVALS],
               h->count[AFFINITY_STORE_ERRORS], h->count[AFFINITY_STORE_SKIPPED]);
    if (h->last_error) {
        ap_rprintf(r, ",\"last_error\":%" APR_TIME_T_FMT,
                   apr_time_sec(h->last_error));
    }
    else {
        ap_rputs(",\"last_error\":null", r);
    }
    if (h->outage) {
        ap_rprintf(r, ",\"down_since\":%" APR_TIME_T_FMT,
                   apr_time_sec(h->outage));
    }
    else {
        ap_rputs(",\"down_since\":null", r);
    }
    if (h->local_size) {
        ap_rprintf(r, ",\"local\":{\"size\":%" APR_SIZE_T_FMT ",\"hits\":%"
                   APR_UINT64_T_FMT ",\"written_back\":%" APR_UINT64_T_FMT
                   "}}", h->local_size, h->count[AFFINITY_STORE_LOCAL_HITS],
                   h->count[AFFINITY_STORE_WRITEBACKS]);
    }
    else {
        ap_rputs(",\"local\":null}", r);
    }
}

/* The member's drain and its progress ("drain":{...}); times in seconds
 * since the epoch, null for none. */
static void affinity_json_drain(request_rec *r, const affinity_view_member *m)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(r->request_time);

    ap_rputs(",\"drain\":{\"since\":", r);
    if (m->draining_since) {
        ap_rprintf(r, "%u", m->draining_since);
    }
    else {
        ap_rputs("null", r);
    }
    if (m->drain_timeout) {
        ap_rprintf(r, ",\"timeout\":%d,\"deadline\":", m->drain_timeout);
        if (m->draining_since) {
            ap_rprintf(r, "%u", m->draining_since + (apr_uint32_t)m->drain_timeout);
        }
        else {
            ap_rputs("null", r);
        }
    }
    else {
        ap_rputs(",\"timeout\":null,\"deadline\":null", r);
    }
    ap_rprintf(r, ",\"session_requests_last_minute\":%u,"
               "\"last_session_request\":", m->sessions_minute);
    if (m->last_session) {
        ap_rprintf(r, "%u,\"idle_seconds\":%u", m->last_session,
                   now > m->last_session ? now - m->last_session : 0);
    }
    else {
        ap_rputs("null,\"idle_seconds\":null", r);
    }
    ap_rprintf(r, ",\"safe_to_stop\":%s}", m->safe_to_stop ? "true" : "false");
}

void affinity_status_json(request_rec *r, const affinity_view *v)
{
    int b, i, k;

    ap_set_content_type(r, "application/json");
    if (r->header_only) {
        return;
    }
    ap_rprintf(r, "{\"version\":%d,\"server\":{\"name\":\"%s\",\"generation\":%d,"
               "\"counting\":%s", AFFINITY_STATUS_JSON_VERSION,
               J(ap_get_server_name(r)), v->generation,
               v->counting ? "true" : "false");
    if (v->counting) {
        ap_rprintf(r, ",\"counting_since\":%" APR_TIME_T_FMT,
                   apr_time_sec(v->since));
    }
    ap_rvputs(r, ",\"route_ids\":\"", v->ids_prefix ? "prefix" : "full",
              "\"},\"statuses\":[", NULL);
    for (k = 0; k < AFFINITY_SHOWN; k++) {
        ap_rprintf(r, "%s\"%s\"", k ? "," : "",
                   affinity_status_name(affinity_shown_index(k)));
    }
    ap_rputs("],\"balancers\":[", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);

        ap_rvputs(r, b ? "," : "", "{\"name\":\"", J(vb->name), "\",\"mode\":\"",
                  vb->mode, "\",\"cookie\":{\"name\":\"",
                  J(vb->cookie), "\",\"attributes\":",
                  vb->cookie_attrs ? apr_pstrcat(r->pool, "\"", J(vb->cookie_attrs),
                                                 "\"", NULL) : "null",
                  "},\"salt\":\"", vb->salt_kind, "\",\"nofailover\":",
                  vb->nofailover ? "true" : "false", NULL);
        ap_rprintf(r, ",\"max_members\":%d,\"members\":[", vb->max_members);
        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rvputs(r, i ? "," : "", "{\"name\":\"", J(m->name),
                      "\",\"route\":\"", J(m->route), "\",\"route_id\":\"",
                      m->id_shown, "\",\"redirect\":\"", J(m->redirect),
                      "\",\"status\":\"", J(m->state),
                      "\",\"usable\":", m->usable ? "true" : "false",
                      ",\"draining\":",
                      m->draining ? "true" : "false", NULL);
            ap_rprintf(r, ",\"slow_start\":{\"ratio\":%.3f,\"seconds_left\":%.1f}"
                       ",\"lbfactor\":%.2f,\"lbset\":%d,\"requests\":",
                       m->ramp / (double)AFFINITY_RAMP_FULL,
                       m->ramp_left / (double)APR_USEC_PER_SEC,
                       m->lbfactor, m->lbset);
            affinity_json_counts(r, m->count);
            affinity_json_drain(r, m);
            ap_rprintf(r, ",\"requests_total\":%" APR_UINT64_T_FMT
                       ",\"sessions_started\":%" APR_UINT64_T_FMT
                       ",\"share\":%.4f,\"bounded\":%" APR_UINT64_T_FMT "}",
                       m->total, m->started,
                       vb->started ? (double)m->started / vb->started : 0.0,
                       m->count[AFFINITY_COUNT_BOUNDED]);
        }
        ap_rputs("],\"unrouted\":", r);
        affinity_json_counts(r, vb->unrouted);
        ap_rputs("}", r);
    }
    ap_rputs("]", r);
    affinity_json_store(r, v);
    affinity_json_lookups(r, v);
    ap_rputs("}\n", r);
}
