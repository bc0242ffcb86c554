/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status_prom.c: the status page as Prometheus metrics (text
 * format 0.0.4), from the view.
 */

#include "http_protocol.h"

#include "affinity_status.h"

/* Prometheus label values: \, " and newline escaped; other controls and
 * invalid UTF-8 replaced, as the text format must be UTF-8. */
static const char *affinity_prom_esc(apr_pool_t *p, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    const unsigned char *end = s + strlen(in);
    char *out = apr_palloc(p, strlen(in) * 3 + 1), *o = out;

    while (*s) {
        int n = affinity_utf8_len(s, (apr_size_t)(end - s));

        if (!n) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
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
        else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
            s++;
        }
        else if (*s < 0x20 || *s == 0x7f) {
            *o++ = '?';
            s++;
        }
        else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}


void affinity_status_prometheus(request_rec *r, const affinity_view *v)
{
    int b, i, k;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (r->header_only) {
        return;
    }
    ap_rputs("# HELP affinity_requests_total Requests mod_affinity routed to a "
             "member, by AFFINITY_STATUS.\n"
             "# TYPE affinity_requests_total counter\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            const char *mn = affinity_prom_esc(r->pool, m->name);

            for (k = 0; k < AFFINITY_SHOWN; k++) {
                ap_rprintf(r, "affinity_requests_total{balancer=\"%s\",member=\"%s\","
                           "status=\"%s\"} %" APR_UINT64_T_FMT "\n", bn, mn,
                           affinity_status_name(affinity_shown_index(k)),
                           m->count[affinity_shown_index(k)]);
            }
        }
    }
    ap_rputs("# HELP affinity_unrouted_requests_total Requests for which "
             "mod_affinity found no usable member, by AFFINITY_STATUS.\n"
             "# TYPE affinity_unrouted_requests_total counter\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (k = 0; k < AFFINITY_SHOWN; k++) {
            ap_rprintf(r, "affinity_unrouted_requests_total{balancer=\"%s\","
                       "status=\"%s\"} %" APR_UINT64_T_FMT "\n", bn,
                       affinity_status_name(affinity_shown_index(k)),
                       vb->unrouted[affinity_shown_index(k)]);
        }
    }
    ap_rputs("# HELP affinity_member_info A balancer member, its route and "
             "route ID.\n# TYPE affinity_member_info gauge\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rprintf(r, "affinity_member_info{balancer=\"%s\",member=\"%s\","
                       "route=\"%s\",route_id=\"%s\"} 1\n", bn,
                       affinity_prom_esc(r->pool, m->name),
                       affinity_prom_esc(r->pool, m->route), m->id_shown);
        }
    }
    ap_rputs("# HELP affinity_member_usable 1 when the member can take requests "
             "now (balancer-manager's Ok).\n# TYPE affinity_member_usable gauge\n",
             r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rprintf(r, "affinity_member_usable{balancer=\"%s\",member=\"%s\"} %d\n",
                       bn, affinity_prom_esc(r->pool, m->name), m->usable);
        }
    }
}
