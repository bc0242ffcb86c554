/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_cookie.c: cookie mode.  A request whose affinity cookie names a
 * usable member goes there; anything else gets a new member, chosen by
 * lbfactor exactly like byrequests, and a cookie naming it.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* ---- Session lifetime and stock values ------------------------------------ */

static void affinity_accept_id(affinity_request *req, const unsigned char *id,
                               affinity_value_kind kind, int checked,
                               apr_uint32_t first, apr_uint32_t last)
{
    affinity_id_info *info;

    memcpy(apr_array_push(req->ids), id, AFFINITY_ID_LEN);
    info = apr_array_push(req->info);
    info->kind = kind;
    info->checked = checked;
    info->first = first;
    info->last = last;
}

/* The member whose live route is the stock value's route: balancer-manager
 * edits count at once.  Only with AffinityLegacyRoutes On, and only for
 * values of the stock form: one string compare per member. */
static affinity_member *affinity_legacy_member(proxy_balancer *balancer,
                                               request_rec *r,
                                               affinity_table **t,
                                               const char *route)
{
    char live[PROXY_WORKER_MAX_ROUTE_SIZE];
    int i;

    for (i = 0; i < (*t)->nelts; i++) {
        proxy_worker *w = (*t)->members[i].worker;

        if (!w) {
            continue;
        }
        /* copy with bounds: balancer-manager strcpy()s routes in place */
        apr_cpystrn(live, w->s->route, sizeof(live));
        if (*live && !strcmp(live, route)) {
            /* its ID as of the live route (rebuilds when it was edited) */
            return affinity_member_of(balancer, t, w, r);
        }
    }
    return NULL;
}

/* A value without signed dates where expiry is on and no migration is
 * declared (AffinityCookieUpgrade Off): its age cannot be known, so it is
 * as good as expired.  Honouring it would let a client keep its member for
 * ever by cutting the dates off a value it was given. */
static void affinity_undated(request_rec *r, const char *name,
                             const char *what, affinity_request *req)
{
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0066: %s: cookie value without dates (%s) where "
                  "expiry is on: expired (AffinityCookieUpgrade On honours "
                  "such values during a migration)", name, what);
    req->expired++;
}

/* Expiry in force with no salt: a configuration the startup check could not
 * see (AFF0060).  Said at most once per balancer and process every
 * AFFINITY_LOG_INTERVAL. */
static void affinity_no_salt(proxy_balancer *balancer, request_rec *r)
{
    apr_uint32_t suppressed;

    if (affinity_log_allowed(balancer, AFFINITY_LOG_NOSALT, r->request_time,
                             &suppressed)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "AFF0067: %s: AffinityCookieMaxIdle/MaxLife in force for "
                      "%s without a salt: no dated cookie value is honoured "
                      "(%lu more since the last such line); give the section "
                      "that serves it an AffinitySalt", balancer->s->name,
                      r->uri, (unsigned long)suppressed);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0067: %s: expiry without a salt: dated value "
                      "ignored", balancer->s->name);
    }
}

void affinity_cookie_resolve(proxy_balancer *balancer, request_rec *r,
                             const affinity_dir_conf *conf, affinity_table **t,
                             affinity_request *req)
{
    apr_int64_t now = apr_time_sec(r->request_time);
    const char *name = balancer->s->name;
    int i;

    if (req->resolved) {
        return;
    }
    req->resolved = 1;
    for (i = 0; i < req->values->nelts; i++) {
        const affinity_value *v = &APR_ARRAY_IDX(req->values, i, affinity_value);
        affinity_stamp_state state;
        affinity_member *m;
        unsigned char id[AFFINITY_ID_LEN];

        switch (v->kind) {
        case AFFINITY_VALUE_BARE:
            if (affinity_expiry_on(conf) && !affinity_upgrade_on(conf)) {
                affinity_undated(r, name, "bare ID", req);
                break;
            }
            affinity_accept_id(req, v->st.id, v->kind, 0, 0, 0);
            break;

        case AFFINITY_VALUE_DATED:
            if (!affinity_expiry_on(conf)) {
                /* expiry was turned off: the ID still counts */
                affinity_accept_id(req, v->st.id, v->kind, 0, 0, 0);
                break;
            }
            if (!conf->salt_len) {
                /* the key is public: nothing signed with it is worth
                 * anything (the startup check refuses the configurations
                 * it can see; this is for the ones it cannot) */
                affinity_no_salt(balancer, r);
                break;
            }
            if (!affinity_stamp_verify(&v->st, &(*t)->mac)) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0061: %s: cookie value's signature does not "
                              "verify (forged, or another salt or balancer): "
                              "ignored", name);
                break;
            }
            state = affinity_stamp_check(&v->st, now, affinity_max_idle_of(conf),
                                         affinity_max_life_of(conf));
            if (state == AFFINITY_STAMP_FUTURE) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0062: %s: cookie value dated more than %d s "
                              "ahead (first %lu, last %lu, now %" APR_INT64_T_FMT
                              "): ignored; check the front ends' clocks", name,
                              AFFINITY_CLOCK_SKEW, (unsigned long)v->st.first,
                              (unsigned long)v->st.last, now);
                break;
            }
            if (state == AFFINITY_STAMP_EXPIRED) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0063: %s: session expired (first issued "
                              "%" APR_INT64_T_FMT " s ago, last %" APR_INT64_T_FMT
                              " s ago)", name, now - (apr_int64_t)v->st.first,
                              now - (apr_int64_t)v->st.last);
                req->expired++;
                break;
            }
            affinity_accept_id(req, v->st.id, v->kind, 1, v->st.first,
                               v->st.last);
            break;

        case AFFINITY_VALUE_LEGACY:
            m = affinity_legacy_member(balancer, r, t, v->route);
            if (m && affinity_expiry_on(conf) && !affinity_upgrade_on(conf)) {
                affinity_undated(r, name, "stock value", req);
            }
            else if (m && affinity_id_from_hex(id, m->id_hex,
                                               AFFINITY_ID_HEX_LEN)) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                              "AFF0064: %s: stock cookie value for route %s "
                              "names member %s", name, v->route,
                              AFFINITY_WORKER_NAME(m->worker));
                affinity_accept_id(req, id, v->kind, 0, 0, 0);
            }
            break;
        }
    }
}

/* Does a kept session's cookie need sending again?  Bare IDs and stock
 * values are upgraded to the configured form, dated values are refreshed
 * past a quarter of MaxIdle, and with expiry off a dated value goes back to
 * the bare ID.  *first: the first date to keep. */
static int affinity_reissue_due(const affinity_dir_conf *conf,
                                const affinity_id_info *info, apr_int64_t now,
                                apr_uint32_t *first)
{
    *first = affinity_stamp_date(now);
    if (!affinity_expiry_on(conf)) {
        return info->kind != AFFINITY_VALUE_BARE;
    }
    if (info->kind != AFFINITY_VALUE_DATED || !info->checked) {
        return 1;
    }
    *first = info->first;
    return affinity_stamp_refresh_due(info->last, now, affinity_max_idle_of(conf));
}

/* Records the Set-Cookie naming m; the response side sends it. */
static void affinity_issue_cookie(proxy_balancer *balancer, request_rec *r,
                                  const affinity_dir_conf *conf,
                                  const affinity_table *t, affinity_request *req,
                                  const affinity_member *m, apr_uint32_t first)
{
    const char *value = m->id_hex;

    if (affinity_expiry_on(conf)) {
        unsigned char id[AFFINITY_ID_LEN];
        char *buf = apr_palloc(r->pool, AFFINITY_STAMPED_LEN + 1);

        affinity_id_from_hex(id, m->id_hex, AFFINITY_ID_HEX_LEN);
        affinity_stamp_format(buf, &t->mac, id, first,
                              affinity_stamp_date(apr_time_sec(r->request_time)));
        value = buf;
    }
    /* the response side (affinity_response.c) sends it */
    req->set_cookie = apr_pstrcat(r->pool, affinity_cookie_name_of(conf), "=",
                                  value, "; ", affinity_cookie_attrs_of(conf),
                                  NULL);
}

/* A session whose member is not usable starts over on a new member, and
 * the cookie then names that one. */
static proxy_worker *affinity_cookie_move(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_request *req,
                                          void *baton)
{
    (void)baton;
    return affinity_pick_new(balancer, r, req);
}

proxy_worker *affinity_find_cookie(proxy_balancer *balancer,
                                          request_rec *r,
                                          const affinity_dir_conf *conf,
                                          affinity_table *t,
                                          affinity_request *req)
{
    affinity_member *m, *down = NULL;
    const char *status;
    proxy_worker *w;
    int at = 0;

    m = affinity_session_find(balancer, r, &t, req, &down);
    if (m) {
        const affinity_id_info *info;
        apr_uint32_t first;

        /* which of the IDs named it: the first that names this member */
        while (at < req->ids->nelts - 1
               && affinity_index_get(t->index, (const unsigned char *)req->ids->elts
                                               + at * AFFINITY_ID_LEN)
                  != (int)(m - t->members)) {
            at++;
        }
        info = &APR_ARRAY_IDX(req->info, at, affinity_id_info);

        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0006: %s: cookie %s names usable member %s: kept",
                      balancer->s->name, m->id_hex, AFFINITY_WORKER_NAME(m->worker));
        affinity_set_env(r, m, info->kind == AFFINITY_VALUE_LEGACY ? "legacy"
                                                                   : "valid");
        /* the member did not change, even when the cookie is re-issued
         * (only an earlier try of this request can have said it did) */
        if (req->tried->nelts) {
            apr_table_unset(r->subprocess_env, "BALANCER_ROUTE_CHANGED");
        }
        req->set_cookie = NULL;
        if (affinity_reissue_due(conf, info, apr_time_sec(r->request_time),
                                 &first)) {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                          "AFF0065: %s: cookie for member %s re-issued (%s)",
                          balancer->s->name, AFFINITY_WORKER_NAME(m->worker),
                          info->kind == AFFINITY_VALUE_DATED && info->checked
                          ? "refresh" : "new form");
            affinity_issue_cookie(balancer, r, conf, t, req, m, first);
        }
        return m->worker;
    }

    if (down) {
        status = "down";
        w = affinity_session_move(balancer, r, t, req, down,
                                  affinity_cookie_move, NULL);
        if (!w) {
            affinity_set_env(r, NULL, status);
            req->set_cookie = NULL;
            return NULL;
        }
    }
    else {
        status = req->expired ? "expired" : req->cookie_seen ? "invalid" : "new";
        w = affinity_pick_new(balancer, r, req);
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0007: %s: %s, new session on %s", balancer->s->name,
                      req->expired ? "session expired"
                      : !req->cookie_seen ? "no cookie"
                      : !req->values->nelts ? apr_psprintf(r->pool,
                            "cookie %s malformed (not an ID, a dated ID or a "
                            "stock route)", affinity_cookie_name_of(conf))
                      : apr_psprintf(r->pool, "cookie %s names no member "
                            "(%d unknown value(s), %d malformed value(s))",
                            affinity_cookie_name_of(conf), req->values->nelts,
                            req->malformed),
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
    }

    m = w ? affinity_member_of(balancer, &t, w, r) : NULL;
    affinity_set_env(r, m, status);
    if (!m) {
        req->set_cookie = NULL;
        return NULL;
    }
    /* a new member: a new session, with new dates */
    affinity_issue_cookie(balancer, r, conf, t, req, m,
                          affinity_stamp_date(apr_time_sec(r->request_time)));
    apr_table_setn(r->subprocess_env, "BALANCER_ROUTE_CHANGED", "1");
    return m->worker;
}
