/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_cookie: the Cookie header parser, the ID parser and the stripper.
 *
 * Input: one selector byte, then the Cookie header value.  Selector bit 7
 * set and a newline in the rest: the bytes before the newline are the cookie
 * name (when they form a valid token, as AffinityCookie requires), the bytes
 * after it the header.  Otherwise the name is one of a few fixed ones.
 *
 * The header is parsed a second time by a deliberately naive model of the
 * documented rules (a pair ends at ';' or at ", ", trim spaces and tabs,
 * name before the first '=', one pair of double quotes removed) and both
 * must agree on every value, in order.  The stripped header must be exactly
 * the other non-empty pairs, trimmed, byte for byte, each two joined by the
 * bytes between them when those are only ';' and blanks, else by "; "; at
 * most twice as long as the header, and holding no pair of the name.  IDs
 * parse iff they are 40 lowercase hex digits, and round-trip.
 */

#include <string.h>

#include "apr_pools.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

#define MAX_VALUES 4096

typedef struct {
    const char *start, *end;        /* s[0..strlen) */
    int n;
    int stop_at;                    /* stop when n reaches it (0: never) */
    const char *val[MAX_VALUES];
    size_t len[MAX_VALUES];
} scan_rec;

static int record(void *baton, const char *value, apr_size_t len)
{
    scan_rec *r = baton;

    FUZZ_CHECK(value >= r->start && value <= r->end);
    FUZZ_CHECK(len <= (size_t)(r->end - value));
    FUZZ_CHECK(!memchr(value, ';', len));
    {
        size_t i;
        for (i = 0; i + 1 < len; i++) {
            FUZZ_CHECK(!(value[i] == ',' && value[i + 1] == ' '));
        }
    }
    if (r->n < MAX_VALUES) {
        r->val[r->n] = value;
        r->len[r->n] = len;
    }
    r->n++;
    return r->stop_at && r->n >= r->stop_at;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* One pair of the model: [b, e) trimmed of blanks. */
typedef struct {
    const char *b, *e;
} span;

static span trim(const char *b, const char *e)
{
    span s;

    while (b < e && is_ows(*b)) {
        b++;
    }
    while (e > b && is_ows(e[-1])) {
        e--;
    }
    s.b = b;
    s.e = e;
    return s;
}

/* Does the pair have the name?  Its value into *v when so. */
static int model_pair_named(span pair, const char *name, span *v)
{
    const char *eq = memchr(pair.b, '=', (size_t)(pair.e - pair.b));
    span n;

    if (!eq) {
        return 0;
    }
    n = trim(pair.b, eq);
    if ((size_t)(n.e - n.b) != strlen(name) || memcmp(n.b, name, strlen(name))) {
        return 0;
    }
    *v = trim(eq + 1, pair.e);
    if (v->e - v->b >= 2 && *v->b == '"' && v->e[-1] == '"') {
        v->b++;
        v->e--;
    }
    return 1;
}

static int is_lower_hex(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static void check_id(const char *value, size_t len)
{
    unsigned char id[AFFINITY_ID_LEN];
    char hex[AFFINITY_ID_HEX_LEN + 1];
    int ok = affinity_id_from_hex(id, value, len);

    FUZZ_CHECK(ok == (len == AFFINITY_ID_HEX_LEN && is_lower_hex(value, len)));
    if (ok) {
        affinity_id_to_hex(hex, id);
        FUZZ_CHECK(!memcmp(hex, value, AFFINITY_ID_HEX_LEN));
        FUZZ_CHECK(hex[AFFINITY_ID_HEX_LEN] == '\0');
    }
}

static scan_rec rec;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char *names[] = { "ROUTEID", "R", "sid", "ROUTEID2" };
    apr_pool_t *p;
    const char *name, *header, *s, *out;
    char *model_out, *model_start, *o;
    const char *prev_end;
    int n, model_n = 0, removed, i;
    size_t hlen;

    if (size < 1) {
        return 0;
    }
    apr_pool_create(&p, NULL);
    fuzz_pool_begin();

    name = names[data[0] % 4];
    header = fuzz_cstr(data + 1, size - 1);
    if (data[0] & 0x80) {
        const unsigned char *nl = memchr(data + 1, '\n', size - 1);
        if (nl) {
            const char *cand = fuzz_cstr(data + 1, (size_t)(nl - data - 1));
            if (affinity_cookie_name_valid(cand)) {
                name = cand;
                header = fuzz_cstr(nl + 1, size - (size_t)(nl + 1 - data));
            }
        }
    }
    hlen = strlen(header);

    /* the IDs parser on the raw bytes, not NUL-terminated */
    check_id((const char *)data, size);
    if (size >= 1 + AFFINITY_ID_HEX_LEN) {
        check_id((const char *)data + 1, AFFINITY_ID_HEX_LEN);
    }

    /* every value, in order */
    memset(&rec, 0, sizeof(rec));
    rec.start = header;
    rec.end = header + hlen;
    n = affinity_cookie_scan(header, name, record, &rec);
    FUZZ_CHECK(n == rec.n);

    /* the model, and the stripped header it expects */
    model_out = o = calloc(1, 2 * hlen + 1);
    prev_end = NULL;
    for (s = header; *s; ) {
        const char *e = s, *next;
        span pair, v;

        while (*e && *e != ';' && !(*e == ',' && e[1] == ' ')) {
            e++;
        }
        next = !*e ? e : *e == ';' ? e + 1 : e + 2;
        pair = trim(s, e);
        s = next;
        if (pair.b == pair.e) {
            continue;
        }
        if (model_pair_named(pair, name, &v)) {
            FUZZ_CHECK(model_n < n);
            if (model_n < MAX_VALUES) {
                /* an empty value may point anywhere in its pair */
                FUZZ_CHECK(rec.len[model_n] == (size_t)(v.e - v.b));
                FUZZ_CHECK(v.e == v.b || rec.val[model_n] == v.b);
            }
            check_id(v.b, (size_t)(v.e - v.b));
            model_n++;
            continue;
        }
        if (prev_end) {
            const char *g = prev_end;
            while (g < pair.b && (*g == ';' || is_ows(*g))) {
                g++;
            }
            if (g == pair.b) {
                memcpy(o, prev_end, (size_t)(pair.b - prev_end));
                o += pair.b - prev_end;
            }
            else {
                memcpy(o, "; ", 2);
                o += 2;
            }
        }
        memcpy(o, pair.b, (size_t)(pair.e - pair.b));
        o += pair.e - pair.b;
        prev_end = pair.e;
    }
    *o = '\0';
    model_start = model_out;
    FUZZ_CHECK(model_n == n);

    /* a callback that stops the scan is obeyed */
    if (n) {
        int stop = 1 + (int)(data[0] % (unsigned)n);
        memset(&rec, 0, sizeof(rec));
        rec.start = header;
        rec.end = header + hlen;
        rec.stop_at = stop;
        FUZZ_CHECK(affinity_cookie_scan(header, name, record, &rec) == stop);
        FUZZ_CHECK(rec.n == stop);
    }

    out = affinity_cookie_strip(p, header, name, &removed);
    FUZZ_CHECK(removed == (n > 0));
    if (!removed) {
        FUZZ_CHECK(out == header);
    }
    else if (!*model_start) {
        FUZZ_CHECK(out == NULL);
    }
    else {
        FUZZ_CHECK(out != NULL);
        FUZZ_CHECK(strlen(out) <= 2 * hlen);
        FUZZ_CHECK(!strcmp(out, model_start));
        memset(&rec, 0, sizeof(rec));
        rec.start = out;
        rec.end = out + strlen(out);
        FUZZ_CHECK(affinity_cookie_scan(out, name, record, &rec) == 0);
        FUZZ_CHECK(affinity_cookie_strip(p, out, name, &i) == out && !i);
    }

    free(model_out);
    fuzz_pool_end();
    apr_pool_destroy(p);
    return 0;
}
