/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_prefix: prefix mode's request side, affinity_prefix_parse() and
 * affinity_prefix_strip() on a Cookie header.
 *
 * Input: one selector byte (the cookie name: one of a few fixed ones), then
 * the Cookie header value.  A naive model splits the header at ';' and at
 * ", " (a bare ',' is part of a value), and for every pair named name whose value (blanks trimmed, one pair of
 * double quotes removed) starts with 40 lowercase hex digits and '~', cuts
 * those 41 bytes and any more such prefixes right after; every other byte is
 * copied.  The stripped header must be
 * exactly the model's, never longer, and scanning it must give each value
 * with its prefix cut (and read as a value again), in order; the values
 * strip hands out in the same pass must be the scanner's, pointer for
 * pointer.  The prefix parser must agree with the
 * model's own reading of "40 lowercase hex and ~" on the raw bytes.
 */

#include <string.h>

#include "apr_pools.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int model_prefix(const char *v, size_t len)
{
    size_t i;

    if (len < 41 || v[40] != '~') {
        return 0;
    }
    for (i = 0; i < 40; i++) {
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

#define MAX_VALUES 2048

typedef struct {
    int n;
    const char *val[MAX_VALUES];
    size_t len[MAX_VALUES];
} values;

static int record(void *baton, const char *value, apr_size_t len)
{
    values *r = baton;

    if (r->n < MAX_VALUES) {
        r->val[r->n] = value;
        r->len[r->n] = len;
    }
    r->n++;
    return 0;
}

static values before, after, handed;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char *names[] = { "JSESSIONID", "S", "PHPSESSID", "s" };
    apr_pool_t *p;
    const char *name, *header, *s, *out;
    char *model, *o;
    unsigned char id[AFFINITY_ID_LEN];
    int cut, seen, model_cut = 0, i;
    size_t hlen;

    if (size < 1) {
        return 0;
    }
    apr_pool_create(&p, NULL);
    fuzz_pool_begin();
    name = names[data[0] % 4];
    header = fuzz_cstr(data + 1, size - 1);
    hlen = strlen(header);

    /* the parser and the skipper on the raw bytes, not NUL-terminated */
    FUZZ_CHECK(affinity_prefix_parse(id, (const char *)data + 1, size - 1)
               == model_prefix((const char *)data + 1, size - 1));
    {
        const char *v = (const char *)data + 1;
        size_t len = size - 1;

        while (model_prefix(v, len)) {
            v += 41;
            len -= 41;
        }
        FUZZ_CHECK(affinity_prefix_skip((const char *)data + 1, size - 1) == v);
    }

    model = o = calloc(1, hlen + 1);
    for (s = header; *s; ) {
        const char *e = s, *next;
        const char *b = s, *eq, *ne, *v, *ve;

        while (*e && *e != ';' && !(*e == ',' && e[1] == ' ')) {
            e++;
        }
        next = !*e ? e : *e == ';' ? e + 1 : e + 2;
        ve = e;

        while (b < e && is_ows(*b)) {
            b++;
        }
        eq = memchr(b, '=', (size_t)(e - b));
        if (eq) {
            ne = eq;
            while (ne > b && is_ows(ne[-1])) {
                ne--;
            }
            v = eq + 1;
            while (v < ve && is_ows(*v)) {
                v++;
            }
            while (ve > v && is_ows(ve[-1])) {
                ve--;
            }
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
            if ((size_t)(ne - b) == strlen(name) && !memcmp(b, name, strlen(name))
                && model_prefix(v, (size_t)(ve - v))) {
                const char *rest = v;

                while (model_prefix(rest, (size_t)(ve - rest))) {
                    rest += 41;
                }
                memcpy(o, s, (size_t)(v - s));
                o += v - s;
                memcpy(o, rest, (size_t)(next - rest));
                o += next - rest;
                model_cut++;
                s = next;
                continue;
            }
        }
        memcpy(o, s, (size_t)(next - s));
        o += next - s;
        s = next;
    }
    *o = '\0';

    memset(&handed, 0, sizeof(handed));
    out = affinity_prefix_strip(p, header, name, record, &handed, &seen, &cut);
    FUZZ_CHECK(cut == model_cut);
    FUZZ_CHECK(!strcmp(out, model));
    FUZZ_CHECK(strlen(out) <= hlen - 41 * (size_t)cut);
    FUZZ_CHECK((hlen - strlen(out)) % 41 == 0);
    if (!cut) {
        FUZZ_CHECK(out == header);
    }

    /* the same values, in order, each with its prefix cut */
    memset(&before, 0, sizeof(before));
    memset(&after, 0, sizeof(after));
    FUZZ_CHECK(affinity_cookie_scan(header, name, record, &before) == seen);
    affinity_cookie_scan(out, name, record, &after);
    FUZZ_CHECK(before.n == after.n);
    /* the values strip handed out, in its one pass, are the scanner's (an
     * empty value has no bytes: where it points does not matter) */
    FUZZ_CHECK(handed.n == before.n);
    for (i = 0; i < before.n && i < MAX_VALUES; i++) {
        FUZZ_CHECK(handed.len[i] == before.len[i]
                   && (!before.len[i] || handed.val[i] == before.val[i]));
    }
    for (i = 0; i < before.n && i < MAX_VALUES; i++) {
        const char *v = before.val[i];
        size_t len = before.len[i];

        if (model_prefix(v, len)) {
            /* unquoted, what follows the prefix is read as a value again:
             * blanks after the '~' and a pair of quotes around the rest go */
            int quoted = v[-1] == '"' && v[len] == '"';

            while (model_prefix(v, len)) {
                v += 41;
                len -= 41;
            }
            while (!quoted && len && is_ows(*v)) {
                v++;
                len--;
            }
            if (!quoted && len >= 2 && v[0] == '"' && v[len - 1] == '"') {
                v++;
                len -= 2;
            }
        }
        FUZZ_CHECK(after.len[i] == len && !memcmp(after.val[i], v, len));
    }

    free(model);
    fuzz_pool_end();
    apr_pool_destroy(p);
    return 0;
}
