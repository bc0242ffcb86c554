/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_request.c: the per-request state every mode shares (the cookies
 * read, the members tried), usability, and the new-session choice.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

typedef struct {
    const char *name;
    affinity_request *req;
    apr_pool_t *pool;
    int legacy;                     /* AffinityLegacyRoutes On */
} affinity_read_baton;

/* Keeps the values that may name a member; they are checked later, against
 * the member table (affinity_cookie_resolve).  Dated values are kept even
 * with expiry off, so that turning it off loses no session either. */
static int affinity_collect_value(void *baton, const char *value, apr_size_t len)
{
    affinity_read_baton *rb = baton;
    affinity_value v;
    const char *route;
    apr_size_t route_len;

    if (affinity_id_from_hex(v.st.id, value, len)) {
        v.kind = AFFINITY_VALUE_BARE;
    }
    else if (affinity_stamp_parse(&v.st, value, len)) {
        v.kind = AFFINITY_VALUE_DATED;
    }
    else if (rb->legacy && affinity_legacy_route(value, len, &route, &route_len)
             && route_len < PROXY_WORKER_MAX_ROUTE_SIZE) {
        v.kind = AFFINITY_VALUE_LEGACY;
        v.route = apr_pstrmemdup(rb->pool, route, route_len);
    }
    else {
        rb->req->malformed++;   /* for AFF0007: malformed, not unknown */
        return 0;
    }
    *(affinity_value *)apr_array_push(rb->req->values) = v;
    return 0;
}

typedef struct {
    const char *name;
    affinity_cookie_fn *fn;
    void *baton;
    int seen;
} affinity_scan_baton;

static int affinity_scan_line(void *baton, const char *key, const char *value)
{
    affinity_scan_baton *sb = baton;

    (void)key;
    sb->seen += affinity_cookie_scan(value, sb->name, sb->fn, sb->baton);
    return 1;
}

int affinity_request_cookies(request_rec *r, const char *name,
                             affinity_cookie_fn *fn, void *baton)
{
    affinity_scan_baton sb;

    sb.name = name;
    sb.fn = fn;
    sb.baton = baton;
    sb.seen = 0;
    apr_table_do(affinity_scan_line, &sb, r->headers_in, "Cookie", NULL);
    return sb.seen;
}

/* AffinityCookieRemove: the member gets one Cookie header holding every
 * other pair, the lines joined with "; " (RFC 6265, as HTTP/2 joins them);
 * httpd has already joined an HTTP/1.1 request's lines into one with ", ",
 * which affinity_cookie_strip() reads as a separator too. */
static void affinity_strip_cookie(request_rec *r, const char *name)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    const char *joined = NULL;
    int i, removed_any = 0;

    for (i = 0; i < arr->nelts; i++) {
        int removed;
        const char *rest;

        if (!affinity_header_is(e[i].key, "Cookie")) {
            continue;
        }
        rest = affinity_cookie_strip(r->pool, e[i].val, name, &removed);
        removed_any |= removed;
        if (rest) {
            joined = joined ? apr_pstrcat(r->pool, joined, "; ", rest, NULL)
                            : rest;
        }
    }
    if (!removed_any) {
        return;
    }
    apr_table_unset(r->headers_in, "Cookie");
    if (joined) {
        apr_table_setn(r->headers_in, "Cookie", joined);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE3, 0, r,
                  "AFF0013: cookie %s removed from the request to the member",
                  name);
}

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

affinity_request *affinity_request_get(request_rec *r,
                                       const affinity_dir_conf *conf)
{
    affinity_request *req = ap_get_module_config(r->request_config,
                                                 &affinity_module);
    affinity_request_block *block;

    if (req) {
        /* called again: the member chosen last time failed */
        if (req->chosen) {
            APR_ARRAY_PUSH(req->tried, proxy_worker *) = req->chosen;
            req->chosen = NULL;
        }
        return req;
    }

    block = apr_pcalloc(r->pool, sizeof(*block));
    req = &block->req;
    req->values = affinity_list_init(&block->values, r->pool,
                                     &block->first_value,
                                     sizeof(affinity_value));
    req->ids = affinity_list_init(&block->ids, r->pool, block->first_id,
                                  AFFINITY_ID_LEN);
    req->info = affinity_list_init(&block->info, r->pool, &block->first_info,
                                   sizeof(affinity_id_info));
    req->tried = affinity_list_init(&block->tried, r->pool,
                                    &block->first_tried,
                                    sizeof(proxy_worker *));
    /* AffinityNoCache is On unless said Off */
    req->nocache = conf->nocache != 0;
    /* the response side reads these, also from an error document's request
     * whose section is not the balancer's */
    req->mode = conf->mode == AFFINITY_MODE_UNSET ? AFFINITY_MODE_COOKIE
                                                  : conf->mode;
    req->mode_cookie = conf->mode_cookie;
    if (conf->mode == AFFINITY_MODE_PREFIX) {
        affinity_prefix_read(r, conf, req);
    }
    else if (conf->mode == AFFINITY_MODE_LEARN) {
        affinity_learn_read(r, conf, req);
    }
    else if (conf->mode != AFFINITY_MODE_DOMAIN) {
        affinity_read_baton rb;

        rb.name = req->cookie_name = affinity_cookie_name_of(conf);
        rb.req = req;
        rb.pool = r->pool;
        rb.legacy = conf->legacy_routes == 1;
        req->cookie_seen = affinity_request_cookies(r, rb.name,
                                                    affinity_collect_value, &rb);
        if (req->cookie_seen && conf->remove == 1) {
            affinity_strip_cookie(r, rb.name);
        }
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

/* ---- Choosing a member: lbsets, drain, spares, standbys ----------------- */

/* affinity_walk()'s second look, for a set with spares standing in or
 * standbys: offers is_best the usable members of one kind (HOT_SPARE or
 * HOT_STANDBY) in lbset, in slot order, at most limit of them. */
proxy_worker *affinity_walk_reserves(proxy_worker *const *slots, int n,
                                     int lbset, unsigned int kind, int limit,
                                     const affinity_request *req,
                                     affinity_is_best_fn *is_best,
                                     void *baton, proxy_worker *best)
{
    int i;

    for (i = 0; i < n && limit > 0; i++) {
        proxy_worker *w = slots[i];

        if (!affinity_worker_ready(w) || w->s->lbset != lbset
            || PROXY_WORKER_IS_DRAINING(w)
            || affinity_reserve_of(w->s->status) != kind
            || !PROXY_WORKER_IS_USABLE(w) || affinity_was_tried(req, w)) {
            continue;
        }
        limit--;
        if (is_best(w, best, baton)) {
            best = w;
        }
    }
    return best;
}

/* byrequests' weighting, so that new sessions spread by lbfactor as
 * operators expect: every member offered earns its lbfactor, the one most
 * behind wins and pays back what all earned (mod_lbmethod_byrequests). */
static int affinity_is_best_new(proxy_worker *current, proxy_worker *prev_best,
                                void *baton)
{
    int *total_factor = baton;

    current->s->lbstatus += current->s->lbfactor;
    *total_factor += current->s->lbfactor;
    return !prev_best || current->s->lbstatus > prev_best->s->lbstatus;
}

proxy_worker *affinity_pick_new(proxy_balancer *balancer,
                                       request_rec *r,
                                       const affinity_request *req)
{
    int total_factor = 0;
    proxy_worker *w = affinity_walk(balancer, r, req, affinity_is_best_new,
                                    &total_factor);

    if (w) {
        w->s->lbstatus -= total_factor;
    }
    return w;
}

const char *affinity_set_session_env(request_rec *r,
                                     const affinity_request *req,
                                     const char *name)
{
    char *hex;

    if (!req->ids->nelts) {
        return NULL;
    }
    hex = apr_palloc(r->pool, AFFINITY_ID_HEX_LEN + 1);
    affinity_id_to_hex(hex, (const unsigned char *)req->ids->elts);
    apr_table_setn(r->subprocess_env, "BALANCER_SESSION_STICKY", name);
    apr_table_setn(r->subprocess_env, "BALANCER_SESSION_ROUTE", hex);
    return hex;
}

/* The ID is copied: m lives in a table that another thread's finder may
 * free while this request's filters, error page and log still read it. */
const char *affinity_set_env(request_rec *r, const affinity_member *m,
                             const char *status)
{
    const char *id_hex = NULL;

    if (m) {
        id_hex = apr_pstrmemdup(r->pool, m->id_hex, AFFINITY_ID_HEX_LEN);
        apr_table_setn(r->subprocess_env, "AFFINITY_ROUTE", id_hex);
    }
    else {
        apr_table_unset(r->subprocess_env, "AFFINITY_ROUTE");
    }
    apr_table_setn(r->subprocess_env, "AFFINITY_STATUS", status);
    return id_hex;
}
