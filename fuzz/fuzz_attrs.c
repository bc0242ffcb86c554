/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_attrs: the directive value parsers, run on every input.
 *
 *  - affinity_cookie_name_valid agrees with the RFC 6265 token set.
 *  - affinity_cookie_attrs refuses exactly the strings with control
 *    characters (tab allowed); otherwise its result holds none, has no
 *    leading or trailing blank or ';', always has a Path attribute, and is
 *    the trimmed input, with "Path=/; " in front when it had no Path.
 *  - affinity_cache_control_private: directives split at commas outside
 *    quoted strings (backslash escapes inside them); the input unchanged
 *    when a directive is a plain private or a no-store, else exactly its
 *    directives minus public and qualified private, plus "private".
 *  - affinity_utf8_clean (the status page's output): its result is
 *    well-formed UTF-8 by affinity_utf8_len, holds no surrogate, overlong
 *    or code point above U+10FFFF, and is the input itself when the input
 *    was well-formed; otherwise each bad byte became one U+FFFD.
 */

#include <string.h>
#include <strings.h>

#include "apr_pools.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Is there an attribute named Path (any case) in the ';' list? */
static int model_has_path(const char *s)
{
    for (;;) {
        const char *e = strchr(s, ';'), *n_end;

        if (!e) {
            e = s + strlen(s);
        }
        while (s < e && is_ows(*s)) {
            s++;
        }
        n_end = memchr(s, '=', (size_t)(e - s));
        if (!n_end) {
            n_end = e;
        }
        while (n_end > s && is_ows(n_end[-1])) {
            n_end--;
        }
        if (n_end - s == 4 && !strncasecmp(s, "path", 4)) {
            return 1;
        }
        if (!*e) {
            return 0;
        }
        s = e + 1;
    }
}

/* Does the trimmed directive [b, e) have the name d: d alone, or followed
 * by blanks and then nothing or '=', or by '='?  *q: it has a value. */
static int model_is_directive(const char *b, const char *e, const char *d,
                              int *q)
{
    size_t n = strlen(d);
    const char *v;

    if ((size_t)(e - b) < n || strncasecmp(b, d, n)) {
        return 0;
    }
    v = b + n;
    while (v < e && is_ows(*v)) {
        v++;
    }
    *q = v < e && *v == '=';
    return v == e || *q;
}

static void check_attrs(apr_pool_t *p, const char *in)
{
    const char *err = "untouched", *out, *c;
    const char *tb = in, *te = in + strlen(in);
    int ctl = 0;
    size_t tlen;

    for (c = in; *c; c++) {
        ctl |= is_ctl((unsigned char)*c);
    }
    out = affinity_cookie_attrs(p, in, &err);
    if (ctl) {
        FUZZ_CHECK(out == NULL);
        FUZZ_CHECK(err != NULL && *err);
        return;
    }
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(err == NULL);
    for (c = out; *c; c++) {
        FUZZ_CHECK(!is_ctl((unsigned char)*c));
    }
    FUZZ_CHECK(model_has_path(out));
    if (*out) {
        FUZZ_CHECK(!is_ows(out[0]) && out[0] != ';');
        FUZZ_CHECK(!is_ows(out[strlen(out) - 1]) && out[strlen(out) - 1] != ';');
    }

    while (tb < te && (is_ows(*tb) || *tb == ';')) {
        tb++;
    }
    while (te > tb && (is_ows(te[-1]) || te[-1] == ';')) {
        te--;
    }
    tlen = (size_t)(te - tb);
    if (model_has_path(in)) {
        FUZZ_CHECK(strlen(out) == tlen && !memcmp(out, tb, tlen));
    }
    else if (!tlen) {
        FUZZ_CHECK(!strcmp(out, "Path=/"));
    }
    else {
        FUZZ_CHECK(strlen(out) == tlen + 8 && !memcmp(out, "Path=/; ", 8)
                   && !memcmp(out + 8, tb, tlen));
    }
}

static void check_cache_control(apr_pool_t *p, const char *in)
{
    const char *out = affinity_cache_control_private(p, in), *s;
    char *want, *w;
    int keep = 0, q;

    FUZZ_CHECK(out != NULL);
    want = w = calloc(1, 3 * strlen(in) + sizeof("private"));
    for (s = in; ; ) {
        const char *e = s, *b, *t;
        int quoted = 0;

        /* the directive ends at a comma outside quotes */
        while (*e && (quoted || *e != ',')) {
            if (quoted && *e == '\\' && e[1]) {
                e++;
            }
            else if (*e == '"') {
                quoted = !quoted;
            }
            e++;
        }
        b = s;
        t = e;
        while (b < t && is_ows(*b)) {
            b++;
        }
        while (t > b && is_ows(t[-1])) {
            t--;
        }
        if ((model_is_directive(b, t, "private", &q) && !q)
            || model_is_directive(b, t, "no-store", &q)) {
            keep = 1;
        }
        if (t > b && !model_is_directive(b, t, "public", &q)
            && !model_is_directive(b, t, "private", &q)) {
            memcpy(w, b, (size_t)(t - b));
            w += t - b;
            memcpy(w, ", ", 2);
            w += 2;
        }
        if (!*e) {
            break;
        }
        s = e + 1;
    }
    strcpy(w, "private");
    if (!*in) {
        FUZZ_CHECK(!strcmp(out, "private"));
    }
    else if (keep) {
        FUZZ_CHECK(out == in);
    }
    else {
        FUZZ_CHECK(!strcmp(out, want));
    }
    free(want);
}

/* Decodes a sequence affinity_utf8_len accepted: a scalar value in the
 * shortest form. */
static void check_utf8_seq(const unsigned char *s, int n)
{
    apr_uint32_t cp = n == 1 ? s[0] : (apr_uint32_t)(s[0] & (0x7f >> n));
    int i;

    for (i = 1; i < n; i++) {
        FUZZ_CHECK((s[i] & 0xc0) == 0x80);
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    FUZZ_CHECK(cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff));
    FUZZ_CHECK(n == (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4));
}

static void check_utf8(apr_pool_t *p, const char *in)
{
    const char *out = affinity_utf8_clean(p, in);
    const unsigned char *s = (const unsigned char *)out;
    size_t len = strlen(out), inlen = strlen(in), i, bad = 0;

    for (i = 0; i < len;) {
        int n = affinity_utf8_len(s + i, len - i);

        FUZZ_CHECK(n > 0);
        check_utf8_seq(s + i, n);
        i += (size_t)n;
    }
    s = (const unsigned char *)in;
    for (i = 0; i < inlen;) {
        int n = affinity_utf8_len(s + i, inlen - i);

        bad += !n;
        i += n ? (size_t)n : 1;
    }
    FUZZ_CHECK(bad ? len == inlen + 2 * bad : out == in);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    apr_pool_t *p;
    const char *in, *c;
    int tok = 1;

    apr_pool_create(&p, NULL);
    fuzz_pool_begin();
    in = fuzz_cstr(data, size);

    for (c = in; *c; c++) {
        tok &= is_tchar((unsigned char)*c);
    }
    FUZZ_CHECK(affinity_cookie_name_valid(in) == (*in && tok));

    check_attrs(p, in);
    check_cache_control(p, in);
    FUZZ_CHECK(!strcmp(affinity_cache_control_private(p, NULL), "private"));
    check_utf8(p, in);

    fuzz_pool_end();
    apr_pool_destroy(p);
    return 0;
}
