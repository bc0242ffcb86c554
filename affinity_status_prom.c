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


/* Prints one member's sample(s) of a series, after its labels. */
typedef void affinity_prom_sample(request_rec *r, const char *series,
                                  const char *labels,
                                  const affinity_view_member *m,
                                  const void *arg);

/* One per-member series: HELP and TYPE once, then every member of every
 * balancer, labelled with both. */
static void affinity_prom_members(request_rec *r, const affinity_view *v,
                                  const char *series, const char *type,
                                  const char *help,
                                  affinity_prom_sample *sample,
                                  const void *arg)
{
    int b, i;

    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", series, help, series, type);
    for (b = 0; b < v->balancers->nelts; b++) {
        const affinity_view_balancer *vb = &APR_ARRAY_IDX(v->balancers, b,
                                                          affinity_view_balancer);
        const char *bn = affinity_prom_esc(r->pool, vb->name);

        for (i = 0; i < vb->members->nelts; i++) {
            const affinity_view_member *m = &APR_ARRAY_IDX(vb->members, i,
                                                           affinity_view_member);

            sample(r, series, apr_pstrcat(r->pool, "balancer=\"", bn,
                                          "\",member=\"",
                                          affinity_prom_esc(r->pool, m->name),
                                          "\"", NULL), m, arg);
        }
    }
}

/* The per-member series of plain numbers. */
enum {
    AFFINITY_PROM_BOUNDED, AFFINITY_PROM_USABLE, AFFINITY_PROM_DRAINING,
    AFFINITY_PROM_DRAINING_SINCE, AFFINITY_PROM_DRAIN_TIMEOUT,
    AFFINITY_PROM_LAST_SESSION, AFFINITY_PROM_SESSIONS_MINUTE
};

static void affinity_prom_number(request_rec *r, const char *series,
                                 const char *labels,
                                 const affinity_view_member *m,
                                 const void *arg)
{
    int which = *(const int *)arg;
    apr_uint64_t x =
        which == AFFINITY_PROM_BOUNDED ? m->count[AFFINITY_COUNT_BOUNDED]
        : which == AFFINITY_PROM_USABLE ? (apr_uint64_t)m->usable
        : which == AFFINITY_PROM_DRAINING ? (apr_uint64_t)m->draining
        : which == AFFINITY_PROM_DRAINING_SINCE ? m->draining_since
        : which == AFFINITY_PROM_DRAIN_TIMEOUT ? (apr_uint64_t)m->drain_timeout
        : which == AFFINITY_PROM_LAST_SESSION ? m->last_session
        : m->sessions_minute;

    ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", series, labels, x);
}

static void affinity_prom_by_status(request_rec *r, const char *series,
                                    const char *labels,
                                    const affinity_view_member *m,
                                    const void *arg)
{
    int k;

    for (k = 0; k < AFFINITY_SHOWN; k++) {
        ap_rprintf(r, "%s{%s,status=\"%s\"} %" APR_UINT64_T_FMT "\n", series,
                   labels, affinity_status_name(affinity_shown_index(k)),
                   m->count[affinity_shown_index(k)]);
    }
}

static void affinity_prom_info(request_rec *r, const char *series,
                               const char *labels,
                               const affinity_view_member *m, const void *arg)
{
    ap_rprintf(r, "%s{%s,route=\"%s\",route_id=\"%s\"} 1\n", series, labels,
               affinity_prom_esc(r->pool, m->route), m->id_shown);
}

static void affinity_prom_ramp(request_rec *r, const char *series,
                               const char *labels,
                               const affinity_view_member *m, const void *arg)
{
    ap_rprintf(r, "%s{%s} %.3f\n", series, labels,
               m->ramp / (double)AFFINITY_RAMP_FULL);
}

static void affinity_prometheus_store(request_rec *r, const affinity_view *v);

void affinity_status_prometheus(request_rec *r, const affinity_view *v)
{
    /* the per-member series of plain numbers, in the page's order */
    static const struct {
        const char *name, *type, *help;
        int which;
    } numbers[] = {
        { "affinity_member_bounded_total", "counter",
          "Requests a member took because the key's first member was over "
          "AffinityHashBalanceFactor (hash and domain modes).",
          AFFINITY_PROM_BOUNDED },
        { "affinity_member_usable", "gauge",
          "1 when the member can take requests now (balancer-manager's Ok).",
          AFFINITY_PROM_USABLE },
        { "affinity_member_draining", "gauge",
          "1 while the member is draining (balancer-manager's N flag).",
          AFFINITY_PROM_DRAINING },
        { "affinity_member_draining_since_seconds", "gauge",
          "When the member started draining, as first seen (0: not "
          "draining).", AFFINITY_PROM_DRAINING_SINCE },
        { "affinity_member_drain_timeout_seconds", "gauge",
          "AffinityDrainTimeout of the member's balancer (0: off).",
          AFFINITY_PROM_DRAIN_TIMEOUT },
        { "affinity_member_last_session_request_seconds", "gauge",
          "When the member last served a request of a session it kept "
          "(0: none since the full start).", AFFINITY_PROM_LAST_SESSION },
        { "affinity_member_session_requests_last_minute", "gauge",
          "Requests of sessions the member kept, in the last 50 to 60 "
          "seconds (every child).", AFFINITY_PROM_SESSIONS_MINUTE },
    };
    apr_size_t j;
    int b, k;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (r->header_only) {
        return;
    }
    affinity_prom_members(r, v, "affinity_requests_total", "counter",
                          "Requests mod_affinity routed to a member, by "
                          "AFFINITY_STATUS.", affinity_prom_by_status, NULL);
    affinity_prom_members(r, v, numbers[0].name, numbers[0].type,
                          numbers[0].help, affinity_prom_number,
                          &numbers[0].which);
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
    affinity_prom_members(r, v, "affinity_member_info", "gauge",
                          "A balancer member, its route and route ID.",
                          affinity_prom_info, NULL);
    affinity_prom_members(r, v, numbers[1].name, numbers[1].type,
                          numbers[1].help, affinity_prom_number,
                          &numbers[1].which);
    affinity_prom_members(r, v, "affinity_member_slow_start_ratio", "gauge",
                          "The part of its lbfactor share of new sessions "
                          "the member gets now: below 1 while "
                          "AffinitySlowStart ramps it up.",
                          affinity_prom_ramp, NULL);
    /* drain and its progress */
    for (j = 2; j < sizeof(numbers) / sizeof(numbers[0]); j++) {
        affinity_prom_members(r, v, numbers[j].name, numbers[j].type,
                              numbers[j].help, affinity_prom_number,
                              &numbers[j].which);
    }
    affinity_prometheus_store(r, v);
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
