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


static void affinity_prometheus_store(request_rec *r, const affinity_view *v);
static void affinity_prometheus_life(request_rec *r, const affinity_view *v);

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
    ap_rputs("# HELP affinity_member_bounded_total Requests a member took "
             "because the key's first member was over "
             "AffinityHashBalanceFactor (hash and domain modes).\n"
             "# TYPE affinity_member_bounded_total counter\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);

            ap_rprintf(r, "affinity_member_bounded_total{balancer=\"%s\","
                       "member=\"%s\"} %" APR_UINT64_T_FMT "\n", bn,
                       affinity_prom_esc(r->pool, m->name),
                       m->count[AFFINITY_COUNT_BOUNDED]);
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
    ap_rputs("# HELP affinity_member_slow_start_ratio The part of its lbfactor "
             "share of new sessions the member gets now: below 1 while "
             "AffinitySlowStart ramps it up.\n"
             "# TYPE affinity_member_slow_start_ratio gauge\n", r);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);
            ap_rprintf(r, "affinity_member_slow_start_ratio{balancer=\"%s\","
                       "member=\"%s\"} %.3f\n", bn,
                       affinity_prom_esc(r->pool, m->name),
                       m->ramp / (double)AFFINITY_RAMP_FULL);
        }
    }
    affinity_prometheus_life(r, v);
    affinity_prometheus_store(r, v);
}

/* Drain and its progress: one gauge family each, every member. */
static void affinity_prometheus_life(request_rec *r, const affinity_view *v)
{
    static const struct {
        const char *name, *help;
    } series[] = {
        { "affinity_member_draining",
          "1 while the member is draining (balancer-manager's N flag)." },
        { "affinity_member_draining_since_seconds",
          "When the member started draining, as first seen (0: not "
          "draining)." },
        { "affinity_member_drain_timeout_seconds",
          "AffinityDrainTimeout of the member's balancer (0: off)." },
        { "affinity_member_last_session_request_seconds",
          "When the member last served a request of a session it kept "
          "(0: none since the full start)." },
        { "affinity_member_session_requests_last_minute",
          "Requests of sessions the member kept, in the last 50 to 60 "
          "seconds (every child)." },
    };
    apr_size_t j;
    int b, i;

    for (j = 0; j < sizeof(series) / sizeof(series[0]); j++) {
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s gauge\n", series[j].name,
                   series[j].help, series[j].name);
        for (b = 0; b < v->balancers->nelts; b++) {
            const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                              affinity_view_balancer);
            const char *bn = affinity_prom_esc(r->pool, vb->name);

            for (i = 0; i < vb->members->nelts; i++) {
                const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                               affinity_view_member);
                apr_uint32_t x = j == 0 ? (apr_uint32_t)m->draining
                                 : j == 1 ? m->draining_since
                                 : j == 2 ? (apr_uint32_t)m->drain_timeout
                                 : j == 3 ? m->last_session
                                 : m->sessions_minute;

                ap_rprintf(r, "%s{balancer=\"%s\",member=\"%s\"} %u\n",
                           series[j].name, bn,
                           affinity_prom_esc(r->pool, m->name), x);
            }
        }
    }
}

/* Learn mode's store: one series each, labelled with the store. */
static void affinity_prometheus_store(request_rec *r, const affinity_view *v)
{
    static const struct {
        const char *name, *type, *help;
        int index;
    } series[] = {
        { "affinity_store_lookups_total", "counter",
          "Lookups learn mode made in its store (every child).",
          AFFINITY_STORE_LOOKUPS },
        { "affinity_store_writes_total", "counter",
          "Writes learn mode made to its store.", AFFINITY_STORE_WRITES },
        { "affinity_store_removals_total", "counter",
          "Removals learn mode made in its store.", AFFINITY_STORE_REMOVALS },
        { "affinity_store_errors_total", "counter",
          "Calls to the store that failed (after one retry on a fresh "
          "connection).", AFFINITY_STORE_ERRORS },
        { "affinity_store_skipped_total", "counter",
          "Calls not made because the store failed moments ago.",
          AFFINITY_STORE_SKIPPED },
        { "affinity_store_local_hits_total", "counter",
          "Lookups the local tier answered after the store missed or "
          "failed.", AFFINITY_STORE_LOCAL_HITS },
        { "affinity_store_local_writebacks_total", "counter",
          "Entries of the local tier written back to a store that had "
          "lost them.", AFFINITY_STORE_WRITEBACKS },
    };
    const affinity_store_health *h = &v->store_health;
    const char *st;
    apr_size_t i;

    if (!v->store) {
        return;
    }
    st = affinity_prom_esc(r->pool, h->spec);
    for (i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n%s{store=\"%s\"} %"
                   APR_UINT64_T_FMT "\n", series[i].name, series[i].help,
                   series[i].name, series[i].type, series[i].name, st,
                   h->count[series[i].index]);
    }
    ap_rprintf(r, "# HELP affinity_store_up 1 when the store's last call "
               "succeeded, 0 when it failed.\n# TYPE affinity_store_up gauge\n"
               "affinity_store_up{store=\"%s\"} %d\n"
               "# HELP affinity_store_last_error_timestamp_seconds When a call "
               "to the store last failed (0: not since the start).\n"
               "# TYPE affinity_store_last_error_timestamp_seconds gauge\n"
               "affinity_store_last_error_timestamp_seconds{store=\"%s\"} %"
               APR_TIME_T_FMT "\n"
               "# HELP affinity_store_local_size_bytes Shared memory of the "
               "local tier in front of the store (0: none).\n"
               "# TYPE affinity_store_local_size_bytes gauge\n"
               "affinity_store_local_size_bytes{store=\"%s\"} %"
               APR_SIZE_T_FMT "\n", st, h->up, st, apr_time_sec(h->last_error),
               st, h->local_size);
}
