/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_headers.c: the module's walks over HTTP headers, one of each:
 * the request's Cookie headers, the response's Set-Cookie headers, and
 * Cache-Control for a response that sets a cookie naming a member.  Every
 * mode reads and writes cookies through these.
 */

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* ---- Cookie ---------------------------------------------------------------- */

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

/* ---- Set-Cookie -------------------------------------------------------------- */

/* One pass, in place, so that the headers keep their order; nothing is
 * allocated unless a header is dropped (most responses drop none). */
int affinity_set_cookie_walk(request_rec *r, apr_table_t *t, const char *name,
                             affinity_set_cookie_fn *fn, void *baton)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    apr_table_entry_t *e = (apr_table_entry_t *)arr->elts;
    apr_array_header_t *keep = NULL;
    apr_size_t name_len;
    int i, j, n = arr->nelts, dropped = 0;

    /* most responses set no cookie: the table's own index says so */
    if (!apr_table_get(t, "Set-Cookie")) {
        return 0;
    }
    name_len = name ? strlen(name) : 0;

    for (i = 0; i < n; i++) {
        affinity_set_cookie_t sc;
        const char *v;
        int named;

        if (!affinity_header_is(e[i].key, "Set-Cookie")) {
            continue;
        }
        v = e[i].val;
        named = name && affinity_set_cookie_parse(v, r->request_time, &sc)
                && sc.name_len == name_len
                && !memcmp(v + sc.name_off, name, name_len);
        if (fn(baton, &v, named ? &sc : NULL)) {
            if (!keep) {
                keep = apr_array_make(r->pool, 4, sizeof(const char *));
                for (j = 0; j < i; j++) {
                    if (affinity_header_is(e[j].key, "Set-Cookie")) {
                        APR_ARRAY_PUSH(keep, const char *) = e[j].val;
                    }
                }
            }
            dropped++;
            continue;
        }
        e[i].val = (char *)v;
        if (keep) {
            APR_ARRAY_PUSH(keep, const char *) = v;
        }
    }
    if (keep) {
        apr_table_unset(t, "Set-Cookie");
        for (i = 0; i < keep->nelts; i++) {
            apr_table_addn(t, "Set-Cookie", APR_ARRAY_IDX(keep, i, const char *));
        }
    }
    return dropped;
}

/* ---- Cache-Control ------------------------------------------------------------ */

typedef struct {
    request_rec *r;
    const char *joined;
    int lines;
} affinity_join_baton;

static int affinity_join_line(void *baton, const char *key, const char *v)
{
    affinity_join_baton *jb = baton;

    (void)key;
    jb->joined = jb->joined ? apr_pstrcat(jb->r->pool, jb->joined, ", ", v, NULL)
                            : v;
    jb->lines++;
    return 1;
}

/* Every Cache-Control line of both tables is one list of directives: the
 * member's no-store or private, in any line, stays in force.  A table is
 * only rewritten when it had a line (most members send none). */
void affinity_cache_control_fix(request_rec *r, apr_table_t *target)
{
    affinity_join_baton jb;
    const char *cc;
    int in_out, in_err;

    /* most members send none: two index look-ups settle it */
    if (!apr_table_get(r->headers_out, "Cache-Control")
        && !apr_table_get(r->err_headers_out, "Cache-Control")) {
        apr_table_addn(target, "Cache-Control",
                       affinity_cache_control_private(r->pool, NULL));
        return;
    }
    jb.r = r;
    jb.joined = NULL;
    jb.lines = 0;
    apr_table_do(affinity_join_line, &jb, r->headers_out, "Cache-Control",
                 NULL);
    in_out = jb.lines;
    apr_table_do(affinity_join_line, &jb, r->err_headers_out,
                 "Cache-Control", NULL);
    in_err = jb.lines - in_out;
    cc = affinity_cache_control_private(r->pool, jb.joined);
    if (cc == jb.joined) {
        return;
    }
    if (in_out) {
        apr_table_unset(r->headers_out, "Cache-Control");
    }
    if (in_err) {
        apr_table_unset(r->err_headers_out, "Cache-Control");
    }
    apr_table_setn(target, "Cache-Control", cc);
}
