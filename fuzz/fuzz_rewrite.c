/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_rewrite: prefix mode's response side, affinity_set_cookie_prefix()
 * (and the affinity_set_cookie_parse() it stands on) on a Set-Cookie header.
 *
 * Input: one selector byte (the cookie name, and the clock: now is either
 * 2023 or 1990), then the Set-Cookie header value.  A naive model reads the
 * header as RFC 6265 5.2 says (pair up to the first ';', name and value
 * around its first '=', blanks trimmed; Max-Age as '-'? digits, the last valid one winning over Expires) and must
 * agree with the parser on the name, the value and deletion
 * (Expires dates are read with APR in both).  The rewriter must leave
 * another name, a deletion or a header without a cookie alone, and
 * otherwise change nothing but the value: head and tail byte for byte, the
 * value (inside its quotes, if quoted) "ID~" then the old value without any
 * leading prefixes; rewriting
 * its own output again gives the same bytes.
 */

#include <string.h>
#include <stdlib.h>

#include "apr_date.h"
#include "apr_pools.h"
#include "apr_strings.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

#define ID "56852a5456d1b09e1eb11c0ca39d8fbce6480106"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **b, const char **e)
{
    while (*b < *e && is_ows(**b)) {
        (*b)++;
    }
    while (*e > *b && is_ows((*e)[-1])) {
        (*e)--;
    }
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

/* 1 future, -1 past, 0 ignored */
static int model_expires(const char *v, const char *e, apr_time_t now)
{
    char *s;
    apr_time_t t;
    size_t i, len = (size_t)(e - v);

    if (!len || len >= 128) {
        return 0;
    }
    s = calloc(1, len + 1);
    memcpy(s, v, len);
    t = apr_date_parse_rfc(s);
    if (t != APR_DATE_BAD) {
        free(s);
        return t <= now ? -1 : 1;
    }
    for (i = 0; i + 4 <= len; i++) {
        int run = (i == 0 || !(s[i - 1] >= '0' && s[i - 1] <= '9'));
        size_t k;

        for (k = 0; k < 4; k++) {
            run &= s[i + k] >= '0' && s[i + k] <= '9';
        }
        if (run && !(s[i + 4] >= '0' && s[i + 4] <= '9')) {
            int year = atoi(s + i);
            free(s);
            return year <= 1970 ? -1 : 0;
        }
    }
    free(s);
    return 0;
}

static int model_max_age(const char *v, const char *e)
{
    int neg = 0, pos = 0;

    if (v < e && *v == '-') {
        neg = 1;
        v++;
    }
    if (v == e) {
        return 0;
    }
    for (; v < e; v++) {
        if (*v < '0' || *v > '9') {
            return 0;
        }
        if (*v != '0') {
            pos = 1;
        }
    }
    return pos && !neg ? 1 : -1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char *names[] = { "SID", "JSESSIONID", "S", "sid" };
    apr_pool_t *p;
    const char *name, *header, *pair_end, *eq, *nb, *ne, *vb, *ve, *s, *out;
    apr_time_t now;
    affinity_set_cookie_t sc;
    int parsed, max_age = 0, expires = 0, deletion;

    if (size < 1) {
        return 0;
    }
    apr_pool_create(&p, NULL);
    fuzz_pool_begin();
    name = names[data[0] % 4];
    now = (data[0] & 0x80 ? APR_INT64_C(631152000) : APR_INT64_C(1700000000))
          * APR_USEC_PER_SEC;
    header = fuzz_cstr(data + 1, size - 1);

    /* the model */
    pair_end = header + strcspn(header, ";");
    eq = memchr(header, '=', (size_t)(pair_end - header));
    parsed = 0;
    nb = ne = vb = ve = NULL;
    if (eq) {
        nb = header;
        ne = eq;
        trim(&nb, &ne);
        vb = eq + 1;
        ve = pair_end;
        trim(&vb, &ve);
        parsed = ne > nb;
    }
    for (s = pair_end; *s; ) {
        const char *a = s + 1, *ae = a + strcspn(a, ";");
        const char *aeq = memchr(a, '=', (size_t)(ae - a));
        const char *an = a, *ane = aeq ? aeq : ae, *av = aeq ? aeq + 1 : ae, *ave = ae;

        trim(&an, &ane);
        trim(&av, &ave);
        if (ane - an == 7 && !strncasecmp(an, "max-age", 7)) {
            int m = model_max_age(av, ave);
            max_age = m ? m : max_age;
        }
        else if (ane - an == 7 && !strncasecmp(an, "expires", 7)) {
            int x = model_expires(av, ave, now);
            expires = x ? x : expires;
        }
        s = ae;
    }
    deletion = parsed && (ve == vb || (ve - vb == 2 && !memcmp(vb, "\"\"", 2))
                          || max_age < 0 || (!max_age && expires < 0));

    memset(&sc, 0, sizeof(sc));
    FUZZ_CHECK(affinity_set_cookie_parse(header, now, &sc) == parsed);
    if (parsed) {
        FUZZ_CHECK(header + sc.name_off == nb && sc.name_len == (size_t)(ne - nb));
        FUZZ_CHECK(sc.value_len == (size_t)(ve - vb));
        FUZZ_CHECK(sc.value_len == 0 || header + sc.value_off == vb);
        FUZZ_CHECK(header + sc.attrs_off == pair_end);
        FUZZ_CHECK(sc.deletion == deletion);
        /* the value inside its quotes is what gets the prefix */
        if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') {
            vb++;
            ve--;
        }
    }

    out = affinity_set_cookie_prefix(p, header, name, ID, now);
    if (!parsed || deletion || (size_t)(ne - nb) != strlen(name)
        || memcmp(nb, name, strlen(name))) {
        FUZZ_CHECK(out == NULL);
    }
    else {
        const char *rest = vb;
        size_t head = (size_t)(vb - header), rlen;

        FUZZ_CHECK(out != NULL);
        while (model_prefix(rest, (size_t)(ve - rest))) {
            rest += 41;
        }
        rlen = strlen(rest);
        FUZZ_CHECK(strlen(out) == head + 41 + rlen);
        FUZZ_CHECK(!memcmp(out, header, head));
        FUZZ_CHECK(!memcmp(out + head, ID "~", 41));
        FUZZ_CHECK(!memcmp(out + head + 41, rest, rlen));
        /* again: the same bytes */
        FUZZ_CHECK(!strcmp(affinity_set_cookie_prefix(p, out, name, ID, now), out));
    }

    fuzz_pool_end();
    apr_pool_destroy(p);
    return 0;
}
