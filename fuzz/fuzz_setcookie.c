/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_setcookie: affinity_set_cookie_parse, one Set-Cookie header.
 *
 * Input: the header.  A naive model of the documented rules (the pair is
 * everything before the first ';', the name before its first '=', blanks
 * trimmed; attributes split at ';'; the last valid Max-Age, digits with an
 * optional '-', wins over Expires; a date is read by apr_date_parse_rfc,
 * the epoch recognised one year later) must agree on whether it is a
 * cookie, on every offset, and on deletion; offsets stay inside the header
 * and the name never holds '=', ';' or outer blanks.
 */

#include <string.h>
#include <strings.h>

#include "apr_date.h"
#include "apr_lib.h"
#include "apr_pools.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

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

/* -1: not a valid Max-Age; else whether it is <= 0 */
static int model_max_age(const char *b, const char *e)
{
    const char *d = b + (b < e && *b == '-');
    const char *c;
    int zero = 1;

    if (d == e) {
        return -1;
    }
    for (c = d; c < e; c++) {
        if (!apr_isdigit(*c)) {
            return -1;
        }
        zero &= *c == '0';
    }
    return d != b || zero;
}

/* -1: not a valid date; else whether it is not after now */
static int model_expires(const char *b, const char *e, apr_time_t now)
{
    char buf[64];
    char *y;
    apr_time_t t;

    if ((size_t)(e - b) >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, b, (size_t)(e - b));
    buf[e - b] = '\0';
    t = apr_date_parse_rfc(buf);
    if (t != APR_DATE_BAD) {
        return t <= now;
    }
    for (y = buf; (y = strstr(y, "1970")) != NULL; y++) {
        if ((y == buf || !apr_isdigit(y[-1])) && !apr_isdigit(y[4])) {
            y[3] = '1';
            return apr_date_parse_rfc(buf) == apr_time_from_sec(365 * 86400)
                   ? 1 : -1;
        }
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* 2026-11-29 12:00:00 GMT */
    const apr_time_t now = apr_time_from_sec(1795953600);
    affinity_set_cookie_t sc;
    const char *h, *pair_end, *eq, *nb, *ne, *vb, *ve, *s;
    int got, max_age = -1, expires = -1, deletion;
    size_t len;

    fuzz_pool_begin();
    h = fuzz_cstr(data, size);
    len = strlen(h);
    memset(&sc, 0xa5, sizeof(sc));
    got = affinity_set_cookie_parse(h, now, &sc);

    pair_end = h + strcspn(h, ";");
    eq = memchr(h, '=', (size_t)(pair_end - h));
    nb = h;
    ne = eq ? eq : h;
    trim(&nb, &ne);
    if (!eq || nb == ne) {
        FUZZ_CHECK(got == 0);
        fuzz_pool_end();
        return 0;
    }
    FUZZ_CHECK(got == 1);
    vb = eq + 1;
    ve = pair_end;
    trim(&vb, &ve);

    FUZZ_CHECK(sc.name_off == (size_t)(nb - h) && sc.name_len == (size_t)(ne - nb));
    FUZZ_CHECK(sc.value_off == (size_t)(vb - h) && sc.value_len == (size_t)(ve - vb));
    FUZZ_CHECK(sc.attrs_off == (size_t)(pair_end - h));
    FUZZ_CHECK(sc.name_off + sc.name_len <= len && sc.value_off + sc.value_len <= len);
    FUZZ_CHECK(sc.attrs_off <= len);
    FUZZ_CHECK(!memchr(h + sc.name_off, '=', sc.name_len));
    FUZZ_CHECK(!memchr(h + sc.name_off, ';', sc.name_len));
    FUZZ_CHECK(!is_ows(h[sc.name_off]) && !is_ows(h[sc.name_off + sc.name_len - 1]));

    for (s = pair_end; *s; ) {
        const char *ab = s + 1, *ae = ab + strcspn(ab, ";");
        const char *aeq = memchr(ab, '=', (size_t)(ae - ab));
        const char *an = aeq ? aeq : ae, *avb = aeq ? aeq + 1 : ae, *ave = ae;
        int r;

        s = ae;
        trim(&ab, &an);
        trim(&avb, &ave);
        if (an - ab == 7 && !strncasecmp(ab, "Max-Age", 7)) {
            if ((r = model_max_age(avb, ave)) >= 0) {
                max_age = r;
            }
        }
        else if (an - ab == 7 && !strncasecmp(ab, "Expires", 7)) {
            if ((r = model_expires(avb, ave, now)) >= 0) {
                expires = r;
            }
        }
    }
    deletion = vb == ve || (ve - vb == 2 && vb[0] == '"' && vb[1] == '"')
               || max_age == 1 || (max_age < 0 && expires == 1);
    FUZZ_CHECK(sc.deletion == deletion);

    fuzz_pool_end();
    return 0;
}
