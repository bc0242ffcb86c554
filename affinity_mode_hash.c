/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_mode_hash.c: hash mode.  "AffinityMode hash EXPR": every request
 * whose httpd string expression EXPR has one value goes to one member, by
 * the weighted rendezvous hashing domain mode uses (affinity_pick_hashed:
 * the same seeds from the salt, drain and its deadline, lbsets, standbys,
 * live edits).  An
 * empty value is a new visitor (byrequests' choice, status "new").  The
 * value is hashed when read and never kept, logged or shown in clear.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* ---- Reading the request ------------------------------------------------- */

/* Outside the balancer's mutex: the expression may call slow functions. */
static void affinity_hash_read(request_rec *r, const affinity_dir_conf *conf,
                               affinity_request *req)
{
    const char *err = NULL, *value = NULL;

    req->hash_empty = 1;
    if (conf->mode_header) {
        value = apr_table_get(r->headers_in, conf->mode_header);
    }
    else if (!conf->hash_expr) {
        return;
    }
    else {
        value = ap_expr_str_exec(r, conf->hash_expr, &err);
    }
    if (err) {
        /* the expression's own error, not the value: no key in the log */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "AFF0100: AffinityMode hash: the expression failed for "
                      "this request (%s); it counts as an empty key", err);
        return;
    }
    if (value && *value) {
        req->hash_key = affinity_hash64(value, strlen(value));
        req->hash_empty = 0;
    }
}

/* ---- The finder ---------------------------------------------------------- */

static proxy_worker *affinity_find_hash(proxy_balancer *balancer,
                                        request_rec *r,
                                        const affinity_dir_conf *conf,
                                        affinity_table *t,
                                        affinity_request *req)
{
    affinity_member *m = NULL;
    proxy_worker *w;

    if (req->hash_empty) {
        w = affinity_pick_new(balancer, r, req);
    }
    else {
        w = affinity_pick_bounded(balancer, r, &t, req, req->hash_key,
                                  affinity_balance_factor_of(conf),
                                  &req->bounded, &req->drained);
    }
    if (w) {
        m = affinity_member_of(balancer, &t, w, r);
    }
    affinity_set_env(r, m, req->hash_empty ? "new"
                           : req->drained ? "drained" : "hash");
    if (req->drained) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "AFF0131: %s: the member of the request's key has been "
                      "draining for longer than AffinityDrainTimeout: it goes "
                      "to %s", balancer->s->name,
                      w ? AFFINITY_WORKER_NAME(w) : "no member");
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "AFF0101: %s: %s key maps to %s", balancer->s->name,
                  req->hash_empty ? "an empty" : "the request's",
                  w ? AFFINITY_WORKER_NAME(w) : "no member");
    return w;
}

/* ---- What the status page is told --------------------------------------- */

static void affinity_hash_answer(proxy_balancer *balancer, request_rec *r,
                                 const affinity_dir_conf *conf,
                                 const char *value, apr_size_t len,
                                 affinity_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->status = "hash";
    a->why = "this balancer is in hash mode and reads no cookie: the value "
             "of its expression chooses the member (look it up with ?key=)";
}

/* affinity_find_hash()'s choice for a key value, without its logging and
 * environment; NULL for an empty key (a new visitor: no fixed member). */
static proxy_worker_shared *affinity_hash_answer_key(proxy_balancer *balancer,
                                                     request_rec *r,
                                                     const affinity_dir_conf *conf,
                                                     const char *key)
{
    affinity_request *req;
    proxy_worker_shared *s = NULL;
    affinity_table *t;
    proxy_worker *w;

    if (!*key) {
        return NULL;
    }
    req = affinity_request_new(r->pool);
    /* the finder's view of drain deadlines and ramps */
    req->drain_timeout = conf->drain_timeout > 0 ? conf->drain_timeout : 0;
    req->slow_start = conf->slow_start > 0 ? conf->slow_start : 0;
    if (PROXY_THREAD_LOCK(balancer) != APR_SUCCESS) {
        return NULL;
    }
    t = affinity_table_get(balancer, conf, r);
    w = affinity_pick_bounded(balancer, r, &t, req,
                              affinity_hash64(key, strlen(key)),
                              affinity_balance_factor_of(conf), NULL, NULL);
    if (w) {
        s = w->s;
    }
    PROXY_THREAD_UNLOCK(balancer);
    return s;
}

/* ---- The mode ------------------------------------------------------------ */

/* NAME when EXPR is "%{HTTP:NAME}" (or http:, req:, req_novary:, in any
 * case) and nothing else, else NULL.  Such an expression is one
 * apr_table_get() of the request header, which the finder then does
 * itself: ap_expr_str_exec() costs four times that.  The value is the same
 * (no Vary is added either way: the expression is evaluated without one). */
static const char *affinity_hash_plain_header(apr_pool_t *p, const char *expr)
{
    static const char *const prefixes[] = { "%{HTTP:", "%{req:",
                                            "%{req_novary:", NULL };
    const char *name = NULL, *end;
    int i;

    for (i = 0; prefixes[i] && !name; i++) {
        apr_size_t n = strlen(prefixes[i]);

        if (!ap_cstr_casecmpn(expr, prefixes[i], n)) {
            name = expr + n;
        }
    }
    if (!name) {
        return NULL;
    }
    for (end = name; apr_isalnum(*end) || (*end && strchr("!#$%&'*+-.^_`|~",
                                                           *end)); end++) {
    }
    if (end == name || strcmp(end, "}")) {
        return NULL;
    }
    return apr_pstrmemdup(p, name, end - name);
}

static const char *affinity_hash_configure(cmd_parms *cmd,
                                           affinity_dir_conf *conf,
                                           const char *arg)
{
    const char *err = NULL;
    ap_expr_info_t *expr;

    if (!arg || !*arg) {
        return "AffinityMode hash needs an httpd string expression naming "
               "the key, e.g. AffinityMode hash \"%{HTTP:X-Tenant}\"";
    }
    expr = ap_expr_parse_cmd(cmd, arg, AP_EXPR_FLAG_STRING_RESULT, &err, NULL);
    if (err) {
        return apr_psprintf(cmd->pool, "AffinityMode hash: cannot parse the "
                            "expression \"%s\": %s; write it as for "
                            "mod_headers' expr=, e.g. \"%%{HTTP:X-Tenant}\"",
                            arg, err);
    }
    conf->mode_cookie = NULL;
    conf->hash_expr = expr;
    conf->mode_header = affinity_hash_plain_header(cmd->pool, arg);
    return NULL;
}

/* No cookie is read; the page shows the route cookie's settings. */
static const char *affinity_hash_cookie(const affinity_dir_conf *conf,
                                        const char **attrs)
{
    *attrs = affinity_cookie_attrs_of(conf);
    return affinity_cookie_name_of(conf);
}

static const char *const affinity_hash_started[] = { "hash", "new", "drained",
                                                      NULL };

const affinity_mode affinity_mode_hash = {
    "hash", "hash EXPR",
    AFFINITY_BOUNDS_LOAD,
    affinity_hash_configure,
    affinity_hash_read,
    affinity_find_hash,
    NULL,                           /* no response work */
    NULL,
    affinity_hash_cookie,
    affinity_hash_answer,
    NULL,                           /* the host chooses nothing */
    affinity_hash_started,
    (1u << AFFINITY_DIRECTIVE_COOKIE) | (1u << AFFINITY_DIRECTIVE_REMOVE)
    | (1u << AFFINITY_DIRECTIVE_NOCACHE),
    NULL,
    NULL,
    NULL,                           /* requests carry no session to try */
    affinity_hash_answer_key
};
