/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_route.c: route IDs, cookies and hashing for mod_affinity.
 * Depends on APR and APR-util only; see mod_affinity.h.
 */

#include <stdlib.h>
#include <string.h>

#include "apr_date.h"
#include "apr_lib.h"
#include "apr_sha1.h"
#include "apr_strings.h"

#include "mod_affinity.h"

/* ---- Route IDs ---------------------------------------------------------- */

void affinity_route_id(unsigned char id[AFFINITY_ID_LEN],
                       const char *salt, apr_size_t salt_len,
                       const char *identity, apr_size_t identity_len)
{
    apr_sha1_ctx_t ctx;

    apr_sha1_init(&ctx);
    if (salt_len) {
        apr_sha1_update_binary(&ctx, (const unsigned char *)salt,
                               (unsigned int)salt_len);
    }
    apr_sha1_update_binary(&ctx, (const unsigned char *)identity,
                           (unsigned int)identity_len);
    apr_sha1_final(id, &ctx);
}

void affinity_id_to_hex(char *hex, const unsigned char id[AFFINITY_ID_LEN])
{
    static const char digits[] = "0123456789abcdef";
    int i;

    for (i = 0; i < AFFINITY_ID_LEN; i++) {
        hex[2 * i] = digits[id[i] >> 4];
        hex[2 * i + 1] = digits[id[i] & 0x0f];
    }
    hex[AFFINITY_ID_HEX_LEN] = '\0';
}

/* Each lowercase hex digit's value; 0x10 for every other byte.  A table,
 * because every request with a route ID decodes 40 digits: one OR of all
 * the looked-up values tells at the end whether any byte was not a digit,
 * with no branch per digit. */
static const unsigned char affinity_hex_value[] = {
#define AFFINITY_X16 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, \
                     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10
    AFFINITY_X16, AFFINITY_X16, AFFINITY_X16,                   /* 0x00-0x2f */
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9,                               /* '0'-'9' */
    0x10, 0x10, 0x10, 0x10, 0x10, 0x10,                         /* 0x3a-0x3f */
    AFFINITY_X16, AFFINITY_X16,                                 /* 0x40-0x5f */
    0x10, 10, 11, 12, 13, 14, 15,                               /* '`', 'a'-'f' */
    0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,       /* 0x67-0x6f */
    AFFINITY_X16,                                               /* 0x70-0x7f */
    AFFINITY_X16, AFFINITY_X16, AFFINITY_X16, AFFINITY_X16,     /* 0x80-0xff */
    AFFINITY_X16, AFFINITY_X16, AFFINITY_X16, AFFINITY_X16
#undef AFFINITY_X16
};
typedef char affinity_hex_value_full[sizeof(affinity_hex_value) == 256 ? 1 : -1];

#if !APR_IS_BIGENDIAN
/* Eight lowercase hex digits at s (read as a little-endian word) into four
 * bytes at out; 0 if any of them is not one.  Each byte b < 0x80 of a word
 * is in [lo, hi] when b + (0x80 - lo) has its top bit and b + (0x7f - hi)
 * has not; no sum carries into the next byte.  A digit's value is its low
 * nibble, plus 9 for a letter. */
#define AFFINITY_ONES APR_UINT64_C(0x0101010101010101)
#define AFFINITY_TOP  (AFFINITY_ONES * 0x80)

/* The top bit of each byte of x that is a lowercase hex letter, or ~0 when
 * some byte of x is not a lowercase hex digit at all. */
static APR_INLINE apr_uint64_t affinity_hex8_letters(apr_uint64_t x)
{
    apr_uint64_t digit, letter;

    if (x & AFFINITY_TOP) {
        return ~(apr_uint64_t)0;
    }
    digit = (x + AFFINITY_ONES * (0x80 - '0')) & ~(x + AFFINITY_ONES * (0x7f - '9'))
            & AFFINITY_TOP;
    letter = (x + AFFINITY_ONES * (0x80 - 'a')) & ~(x + AFFINITY_ONES * (0x7f - 'f'))
             & AFFINITY_TOP;
    return (digit | letter) == AFFINITY_TOP ? letter : ~(apr_uint64_t)0;
}

static int affinity_hex8(unsigned char *out, const unsigned char *s)
{
    apr_uint64_t x, letter, v;
    apr_uint32_t w;

    memcpy(&x, s, 8);
    letter = affinity_hex8_letters(x);
    if (letter == ~(apr_uint64_t)0) {
        return 0;
    }
    v = (x & AFFINITY_ONES * 0x0f) + (letter >> 7) * 9;
    /* byte 2k: its digit's value << 4 | the next one's */
    v = ((v << 4) | (v >> 8)) & APR_UINT64_C(0x00ff00ff00ff00ff);
    v = (v | (v >> 8)) & APR_UINT64_C(0x0000ffff0000ffff);
    w = (apr_uint32_t)(v | (v >> 16));
    memcpy(out, &w, 4);         /* little-endian: byte 0 first */
    return 1;
}
#endif

int affinity_id_from_hex(unsigned char id[AFFINITY_ID_LEN],
                         const char *s, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char out[AFFINITY_ID_LEN];
    int i;

    if (len != AFFINITY_ID_HEX_LEN) {
        return 0;
    }
#if !APR_IS_BIGENDIAN
    /* every cookie hit decodes one: eight digits at a time */
    for (i = 0; i < AFFINITY_ID_LEN; i += 4) {
        if (!affinity_hex8(out + i, u + 2 * i)) {
            return 0;           /* id untouched, as callers expect */
        }
    }
#else
    {
        unsigned int bad = 0;

        for (i = 0; i < AFFINITY_ID_LEN; i++) {
            unsigned int hi = affinity_hex_value[u[2 * i]];
            unsigned int lo = affinity_hex_value[u[2 * i + 1]];

            bad |= hi | lo;
            out[i] = (unsigned char)(hi << 4 | lo);
        }
        if (bad & 0x10) {
            return 0;
        }
    }
#endif
    memcpy(id, out, AFFINITY_ID_LEN);
    return 1;
}

/* ---- Cookies ------------------------------------------------------------- */

/* Blanks around pairs, names and values (RFC 6265 5.2 is lenient, so are
 * we). */
static int affinity_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The end of the pair that starts at s: the next ';', or the next ", "
 * (httpd joins repeated Cookie header lines with it); a comma not followed
 * by a space is part of the pair.  *next: where the following pair starts;
 * *joined: the pair ends at a ", " join. */
static const char *affinity_pair_end(const char *s, const char **next,
                                     int *joined)
{
    const char *e = s;

    for (;;) {
        e += strcspn(e, ";,");
        if (*e == ';') {
            *next = e + 1;
            *joined = 0;
            return e;
        }
        if (*e == ',' && e[1] == ' ') {
            *next = e + 2;
            *joined = 1;
            return e;
        }
        if (!*e) {
            *next = e;
            *joined = 0;
            return e;
        }
        e++;
    }
}

/* [*b, *e) without blanks at either end */
static void affinity_trim(const char **b, const char **e)
{
    while (*b < *e && affinity_is_ows(**b)) {
        (*b)++;
    }
    while (*e > *b && affinity_is_ows((*e)[-1])) {
        (*e)--;
    }
}

/* Is the pair [pair, end) named name?  Sets *value to what follows '='. */
static int affinity_pair_named(const char *pair, const char *end,
                               const char *name, apr_size_t name_len,
                               const char **value)
{
    const char *eq, *name_end;

    while (pair < end && affinity_is_ows(*pair)) {
        pair++;
    }
    eq = memchr(pair, '=', (apr_size_t)(end - pair));
    if (!eq) {
        return 0;
    }
    name_end = eq;
    while (name_end > pair && affinity_is_ows(name_end[-1])) {
        name_end--;
    }
    *value = eq + 1;
    return (apr_size_t)(name_end - pair) == name_len
           && !memcmp(pair, name, name_len);
}

int affinity_cookie_scan(const char *header, const char *name,
                         affinity_cookie_fn *fn, void *baton)
{
    apr_size_t name_len = strlen(name);
    const char *p = header;
    int seen = 0, joined;

    while (*p) {
        const char *pair = p, *end = affinity_pair_end(p, &p, &joined);
        const char *value, *value_end;

        affinity_trim(&pair, &end);
        if (!affinity_pair_named(pair, end, name, name_len, &value)) {
            continue;
        }
        value_end = end;
        affinity_trim(&value, &value_end);
        if (value_end - value >= 2 && *value == '"' && value_end[-1] == '"') {
            value++;
            value_end--;
        }
        seen++;
        if (fn(baton, value, (apr_size_t)(value_end - value))) {
            break;
        }
    }
    return seen;
}

/* Is [b, e) only ';' and blanks: nothing a client meant as a pair? */
static int affinity_only_separators(const char *b, const char *e)
{
    for (; b < e; b++) {
        if (*b != ';' && !affinity_is_ows(*b)) {
            return 0;
        }
    }
    return 1;
}

const char *affinity_cookie_strip(apr_pool_t *p, const char *header,
                                  const char *name, int *removed)
{
    apr_size_t name_len = strlen(name), len = strlen(header);
    const char *s = header, *value, *last = NULL;
    char *out, *o;
    int joined;

    *removed = 0;
    /* every kept pair but the first may get a 2-byte "; " where the input
     * had a 1-byte ';': at most twice as long */
    out = o = apr_palloc(p, 2 * len + 1);
    while (*s) {
        const char *pair = s, *end = affinity_pair_end(s, &s, &joined);

        affinity_trim(&pair, &end);
        if (pair == end) {
            continue;
        }
        if (affinity_pair_named(pair, end, name, name_len, &value)) {
            *removed = 1;
            continue;
        }
        if (last && affinity_only_separators(last, pair)) {
            /* neighbours as sent: keep their separator byte for byte */
            memcpy(o, last, (apr_size_t)(pair - last));
            o += pair - last;
        }
        else if (last) {
            memcpy(o, "; ", 2);
            o += 2;
        }
        memcpy(o, pair, (apr_size_t)(end - pair));
        o += end - pair;
        last = end;
    }
    if (!*removed) {
        return header;
    }
    *o = '\0';
    return last ? out : NULL;
}

/* ---- Directive values ---------------------------------------------------- */

int affinity_cookie_name_valid(const char *name)
{
    const unsigned char *c = (const unsigned char *)name;

    if (!*c) {
        return 0;
    }
    for (; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *c)) {
            return 0;
        }
    }
    return 1;
}

const char *affinity_cookie_attrs(apr_pool_t *p, const char *attrs,
                                  const char **err)
{
    const unsigned char *c;
    const char *s;
    int has_path = 0;

    for (c = (const unsigned char *)attrs; *c; c++) {
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
            *err = "attributes must not contain control characters";
            return NULL;
        }
    }

    /* Is there an attribute whose name is Path (any case)? */
    for (s = attrs; *s; ) {
        const char *name_end;

        while (*s == ';' || affinity_is_ows(*s)) {
            s++;
        }
        name_end = s;
        while (*name_end && *name_end != '=' && *name_end != ';') {
            name_end++;
        }
        while (name_end > s && affinity_is_ows(name_end[-1])) {
            name_end--;
        }
        if (name_end - s == 4 && !strncasecmp(s, "path", 4)) {
            has_path = 1;
        }
        s = strchr(s, ';');
        if (!s) {
            break;
        }
    }

    /* trim, so "NAME=v; " never goes out */
    while (affinity_is_ows(*attrs) || *attrs == ';') {
        attrs++;
    }
    {
        apr_size_t len = strlen(attrs);
        while (len && (affinity_is_ows(attrs[len - 1]) || attrs[len - 1] == ';')) {
            len--;
        }
        attrs = apr_pstrmemdup(p, attrs, len);
    }

    *err = NULL;
    if (has_path) {
        return attrs;
    }
    return *attrs ? apr_pstrcat(p, "Path=/; ", attrs, NULL) : "Path=/";
}

/* The next Cache-Control directive at or after s: [*d, *e) trimmed, empty
 * when there is none.  A directive ends at a comma outside a quoted string
 * (RFC 9110 5.6.4: backslash escapes the next byte inside one).  Returns
 * where the search goes on. */
static const char *affinity_next_directive(const char *s, const char **d,
                                           const char **e)
{
    int quoted = 0;

    while (*s == ',' || affinity_is_ows(*s)) {
        s++;
    }
    *d = s;
    for (; *s && (quoted || *s != ','); s++) {
        if (quoted && *s == '\\' && s[1]) {
            s++;
        }
        else if (*s == '"') {
            quoted = !quoted;
        }
    }
    *e = s;
    while (*e > *d && affinity_is_ows((*e)[-1])) {
        (*e)--;
    }
    return s;
}

/* Is the directive [d, e) named name (any case)?  *qualified: it has a
 * value ("name=..."). */
static int affinity_directive_is(const char *d, const char *e,
                                 const char *name, int *qualified)
{
    apr_size_t n = strlen(name);
    const char *v;

    if ((apr_size_t)(e - d) < n || strncasecmp(d, name, n)) {
        return 0;
    }
    /* then nothing, or '=', blanks allowed: not "publicity" */
    for (v = d + n; v < e && affinity_is_ows(*v); v++) {
    }
    *qualified = v < e && *v == '=';
    return v == e || *qualified;
}

const char *affinity_cache_control_private(apr_pool_t *p, const char *existing)
{
    const char *s, *d, *e;
    char *out, *o;
    int q;

    if (!existing || !*existing) {
        return "private";
    }
    for (s = existing; *s; ) {
        s = affinity_next_directive(s, &d, &e);
        if ((affinity_directive_is(d, e, "private", &q) && !q)
            || affinity_directive_is(d, e, "no-store", &q)) {
            return existing;
        }
    }

    /* each directive kept (at least one byte) is followed by ", ": at most
     * three times the input, plus "private" */
    out = o = apr_palloc(p, 3 * strlen(existing) + sizeof("private"));
    for (s = existing; *s; ) {
        s = affinity_next_directive(s, &d, &e);
        if (d == e || affinity_directive_is(d, e, "public", &q)
            || affinity_directive_is(d, e, "private", &q)) {
            continue;
        }
        memcpy(o, d, (apr_size_t)(e - d));
        o += e - d;
        *o++ = ',';
        *o++ = ' ';
    }
    strcpy(o, "private");
    return out;
}

/* ---- Prefix mode ----------------------------------------------------------- */

/* Are the AFFINITY_ID_HEX_LEN bytes at s lowercase hex digits? */
static int affinity_hex_id_valid(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    int i;

#if !APR_IS_BIGENDIAN
    for (i = 0; i < AFFINITY_ID_HEX_LEN; i += 8) {
        apr_uint64_t x;

        memcpy(&x, u + i, 8);
        if (affinity_hex8_letters(x) == ~(apr_uint64_t)0) {
            return 0;
        }
    }
    return 1;
#endif
    for (i = 0; i < AFFINITY_ID_HEX_LEN; i++) {
        if (affinity_hex_value[u[i]] & 0x10) {
            return 0;
        }
    }
    return 1;
}

int affinity_prefix_parse(unsigned char id[AFFINITY_ID_LEN],
                          const char *value, apr_size_t len)
{
    if (len < AFFINITY_PREFIX_LEN || value[AFFINITY_ID_HEX_LEN] != AFFINITY_PREFIX_SEP) {
        return 0;
    }
    /* only asked whether it is one (affinity_prefix_skip): no decoding */
    return id ? affinity_id_from_hex(id, value, AFFINITY_ID_HEX_LEN)
              : affinity_hex_id_valid(value);
}

const char *affinity_prefix_skip(const char *value, apr_size_t len)
{
    while (affinity_prefix_parse(NULL, value, len)) {
        value += AFFINITY_PREFIX_LEN;
        len -= AFFINITY_PREFIX_LEN;
    }
    return value;
}

/* [*b, *e) trimmed of blanks, then of one pair of enclosing double quotes,
 * as affinity_cookie_scan() hands values out.  Returns 1 when quoted. */
static int affinity_trim_value(const char **b, const char **e)
{
    while (*b < *e && affinity_is_ows(**b)) {
        (*b)++;
    }
    while (*e > *b && affinity_is_ows((*e)[-1])) {
        (*e)--;
    }
    if (*e - *b >= 2 && **b == '"' && (*e)[-1] == '"') {
        (*b)++;
        (*e)--;
        return 1;
    }
    return 0;
}

const char *affinity_prefix_strip(apr_pool_t *p, const char *header,
                                  const char *name, affinity_cookie_fn *fn,
                                  void *baton, int *seen, int *cut)
{
    apr_size_t name_len = strlen(name);
    const char *s = header;
    char *out = NULL, *o = NULL;

    *seen = 0;
    *cut = 0;
    while (*s) {
        const char *next, *end, *v, *ve;
        int joined;

        /* pairs as affinity_cookie_scan() reads them: a bare ',' is part of
         * a value, whose bytes are never touched */
        end = affinity_pair_end(s, &next, &joined);
        ve = end;

        if (affinity_pair_named(s, end, name, name_len, &v)) {
            const char *rest;

            affinity_trim_value(&v, &ve);
            (*seen)++;
            if (fn) {
                fn(baton, v, (apr_size_t)(ve - v));
            }
            rest = affinity_prefix_skip(v, (apr_size_t)(ve - v));
            if (rest != v) {
                if (!out) {
                    /* the result is shorter: one allocation does */
                    out = o = apr_palloc(p, strlen(header) + 1);
                    memcpy(o, header, (apr_size_t)(s - header));
                    o += s - header;
                }
                memcpy(o, s, (apr_size_t)(v - s));
                o += v - s;
                memcpy(o, rest, (apr_size_t)(next - rest));
                o += next - rest;
                (*cut)++;
                s = next;
                continue;
            }
        }
        if (out) {
            memcpy(o, s, (apr_size_t)(next - s));
            o += next - s;
        }
        s = next;
    }
    if (!out) {
        return header;
    }
    *o = '\0';
    return out;
}

/* Max-Age (RFC 6265 5.2.2): an optional '-' and digits, else ignored.
 * Returns 1 for a positive age, -1 for zero or less, 0 when ignored. */
static int affinity_max_age(const char *v, const char *e)
{
    int negative = v < e && *v == '-', positive = 0;

    v += negative;
    if (v == e) {
        return 0;
    }
    for (; v < e; v++) {
        if (!apr_isdigit(*v)) {
            return 0;
        }
        positive |= *v != '0';
    }
    return positive && !negative ? 1 : -1;
}

/* Expires: 1 in the future, -1 at or before now, 0 ignored.  APR answers 0
 * both for a date it cannot read and for dates up to the epoch, the usual
 * way to delete a cookie ("Thu, 01 Jan 1970 00:00:00 GMT"): a four-digit
 * year up to 1970 in a date APR refused means the past. */
static int affinity_expires(const char *v, const char *e, apr_time_t now)
{
    char buf[128];
    apr_size_t len = (apr_size_t)(e - v);
    apr_time_t t;
    const char *d;

    if (!len || len >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    t = apr_date_parse_rfc(buf);
    if (t != APR_DATE_BAD) {
        return t <= now ? -1 : 1;
    }
    for (d = buf; *d; d++) {
        if (apr_isdigit(d[0]) && apr_isdigit(d[1]) && apr_isdigit(d[2])
            && apr_isdigit(d[3]) && !apr_isdigit(d[4])
            && (d == buf || !apr_isdigit(d[-1]))) {
            return atoi(d) <= 1970 ? -1 : 0;
        }
    }
    return 0;
}

int affinity_set_cookie_parse(const char *header, apr_time_t now,
                              affinity_set_cookie_t *out)
{
    const char *pair_end = header + strcspn(header, ";");
    const char *eq = memchr(header, '=', (apr_size_t)(pair_end - header));
    const char *n = header, *ne, *v, *ve = pair_end, *s;
    int max_age = 0, expires = 0;

    if (!eq) {
        return 0;
    }
    ne = eq;
    while (n < ne && affinity_is_ows(*n)) {
        n++;
    }
    while (ne > n && affinity_is_ows(ne[-1])) {
        ne--;
    }
    if (ne == n) {
        return 0;
    }
    v = eq + 1;
    while (v < ve && affinity_is_ows(*v)) {
        v++;
    }
    while (ve > v && affinity_is_ows(ve[-1])) {
        ve--;
    }

    for (s = pair_end; *s; ) {
        const char *a = s + 1, *ae = a + strcspn(a, ";");
        const char *av, *ave = ae, *an_end;

        s = ae;
        av = memchr(a, '=', (apr_size_t)(ae - a));
        an_end = av ? av : ae;
        av = av ? av + 1 : ae;
        while (a < an_end && affinity_is_ows(*a)) {
            a++;
        }
        while (an_end > a && affinity_is_ows(an_end[-1])) {
            an_end--;
        }
        while (av < ave && affinity_is_ows(*av)) {
            av++;
        }
        while (ave > av && affinity_is_ows(ave[-1])) {
            ave--;
        }
        if (an_end - a == 7 && !strncasecmp(a, "max-age", 7)) {
            int m = affinity_max_age(av, ave);
            max_age = m ? m : max_age;
        }
        else if (an_end - a == 7 && !strncasecmp(a, "expires", 7)) {
            int x = affinity_expires(av, ave, now);
            expires = x ? x : expires;
        }
    }
    out->name_off = (apr_size_t)(n - header);
    out->name_len = (apr_size_t)(ne - n);
    out->value_off = (apr_size_t)(v - header);
    out->value_len = (apr_size_t)(ve - v);
    out->attrs_off = (apr_size_t)(pair_end - header);
    /* Max-Age wins over Expires (RFC 6265 5.3 step 3) */
    out->deletion = v == ve || (ve - v == 2 && v[0] == '"' && v[1] == '"')
                    || max_age < 0 || (!max_age && expires < 0);
    return 1;
}

const char *affinity_set_cookie_prefix(apr_pool_t *p, const char *header,
                                       const char *name, const char *id_hex,
                                       apr_time_t now)
{
    affinity_set_cookie_t sc;
    apr_size_t name_len = strlen(name);

    if (!affinity_set_cookie_parse(header, now, &sc) || sc.deletion
        || sc.name_len != name_len
        || memcmp(header + sc.name_off, name, name_len)) {
        return NULL;
    }
    return affinity_set_cookie_prefix_parsed(p, header, &sc, id_hex);
}

const char *affinity_set_cookie_prefix_parsed(apr_pool_t *p,
                                              const char *header,
                                              const affinity_set_cookie_t *sc,
                                              const char *id_hex)
{
    apr_size_t head, tail, len;
    const char *value, *rest;
    char *out;

    /* inside the quotes, if any: a quoted value stays valid */
    value = header + sc->value_off;
    len = sc->value_len;
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value++;
        len -= 2;
    }
    /* an ID already there is replaced, never stacked */
    rest = affinity_prefix_skip(value, len);
    head = (apr_size_t)(value - header);
    tail = strlen(rest);
    out = apr_palloc(p, head + AFFINITY_PREFIX_LEN + tail + 1);
    memcpy(out, header, head);
    memcpy(out + head, id_hex, AFFINITY_ID_HEX_LEN);
    out[head + AFFINITY_ID_HEX_LEN] = AFFINITY_PREFIX_SEP;
    memcpy(out + head + AFFINITY_PREFIX_LEN, rest, tail + 1);
    return out;
}

/* ---- ID index ----------------------------------------------------------- */

typedef struct {
    unsigned char id[AFFINITY_ID_LEN];
    int slot;                   /* -1: empty */
} affinity_index_entry;

struct affinity_index {
    apr_uint32_t mask;
    affinity_index_entry *entries;
};

affinity_index *affinity_index_make(apr_pool_t *p, int capacity)
{
    affinity_index *ix = apr_palloc(p, sizeof(*ix));
    apr_uint32_t size = 4, i;

    /* load factor at most 1/2: a miss ends on an empty entry after about
     * two probes on average */
    while (size < 2 * (apr_uint32_t)(capacity > 0 ? capacity : 1)) {
        size <<= 1;
    }
    ix->mask = size - 1;
    ix->entries = apr_palloc(p, size * sizeof(*ix->entries));
    for (i = 0; i < size; i++) {
        ix->entries[i].slot = -1;
    }
    return ix;
}

/* The IDs are SHA1 output, so any four of their bytes are a uniform hash. */
static apr_uint32_t affinity_index_hash(const unsigned char id[AFFINITY_ID_LEN])
{
    return (apr_uint32_t)id[0] << 24 | (apr_uint32_t)id[1] << 16
           | (apr_uint32_t)id[2] << 8 | id[3];
}

void affinity_index_put(affinity_index *ix, const unsigned char id[AFFINITY_ID_LEN],
                        int slot)
{
    apr_uint32_t i = affinity_index_hash(id) & ix->mask;

    while (ix->entries[i].slot >= 0) {
        if (!memcmp(ix->entries[i].id, id, AFFINITY_ID_LEN)) {
            return;
        }
        i = (i + 1) & ix->mask;
    }
    memcpy(ix->entries[i].id, id, AFFINITY_ID_LEN);
    ix->entries[i].slot = slot;
}

int affinity_index_get(const affinity_index *ix,
                       const unsigned char id[AFFINITY_ID_LEN])
{
    apr_uint32_t i = affinity_index_hash(id) & ix->mask;

    while (ix->entries[i].slot >= 0) {
        if (!memcmp(ix->entries[i].id, id, AFFINITY_ID_LEN)) {
            return ix->entries[i].slot;
        }
        i = (i + 1) & ix->mask;
    }
    return -1;
}

/* ---- Domain mode: weighted rendezvous hashing ----------------------------
 *
 * Each member gets a 64-bit seed, hash64(salt . identity), once per table
 * build.  A request hashes its host once (key) and scores every candidate:
 *
 *     h    = fmix64(key ^ seed)                 uniform 64-bit value
 *     u    = (h >> 11 | 1) / 2^53               in (0, 1)
 *     cost = -log2(u)                           exponential-like, > 0
 *     score = weight / cost                     highest wins
 *
 * This is weighted highest-random-weight hashing (Schindelhauer & Schomaker's
 * logarithmic method): a member's share is weight / sum of weights, and a
 * change to one member only moves keys to or from that member.  Costs are
 * 32.32 fixed point from an integer log2 (a table of log2(1 + i/256) and
 * linear interpolation, error < 3e-6), and scores are compared by cross
 * multiplication, so no floating point is involved and every front end,
 * child and platform picks the same member.  The test vectors in
 * t/unit/test_route.c pin the function; changing any of it remaps sites.
 */

#define AFFINITY_FNV_OFFSET APR_UINT64_C(0xcbf29ce484222325)
#define AFFINITY_FNV_PRIME  APR_UINT64_C(0x100000001b3)

/* MurmurHash3's 64-bit finalizer: every input bit affects every output bit */
static apr_uint64_t affinity_fmix64(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= APR_UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= APR_UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static apr_uint64_t affinity_fnv1a(apr_uint64_t h, const void *data,
                                   apr_size_t len)
{
    const unsigned char *c = data;

    while (len--) {
        h ^= *c++;
        h *= AFFINITY_FNV_PRIME;
    }
    return h;
}

apr_uint64_t affinity_hash64(const void *data, apr_size_t len)
{
    return affinity_fmix64(affinity_fnv1a(AFFINITY_FNV_OFFSET, data, len));
}

apr_uint64_t affinity_member_seed(const char *salt, apr_size_t salt_len,
                                  const char *identity, apr_size_t identity_len)
{
    apr_uint64_t h = affinity_fnv1a(AFFINITY_FNV_OFFSET, salt, salt_len);

    return affinity_fmix64(affinity_fnv1a(h, identity, identity_len));
}

apr_uint64_t affinity_host_key(const char *host)
{
    apr_uint64_t h = AFFINITY_FNV_OFFSET;
    apr_size_t len = strlen(host);

    if (len && host[len - 1] == '.') {
        len--;
    }
    while (len--) {
        h ^= (unsigned char)apr_tolower(*host++);
        h *= AFFINITY_FNV_PRIME;
    }
    return affinity_fmix64(h);
}

/* round(log2(1 + i/256) * 2^32), i = 0..256 */
static const apr_uint64_t affinity_log2_table[257] = {
    0x00000000, 0x01709c47, 0x02dfca17, 0x044d8c46, 0x05b9e5a1, 0x0724d8ef,
    0x088e68eb, 0x09f6984a, 0x0b5d69bb, 0x0cc2dfe2, 0x0e26fd5d, 0x0f89c4c2,
    0x10eb38a0, 0x124b5b7e, 0x13aa2fdd, 0x1507b836, 0x1663f6fb, 0x17beee97,
    0x1918a16e, 0x1a7111df, 0x1bc84241, 0x1d1e34e3, 0x1e72ec11, 0x1fc66a0f,
    0x2118b11a, 0x2269c369, 0x23b9a32f, 0x25085296, 0x2655d3c5, 0x27a228db,
    0x28ed53f3, 0x2a375721, 0x2b803474, 0x2cc7edf6, 0x2e0e85aa, 0x2f53fd90,
    0x309857a0, 0x31db95d0, 0x331dba0f, 0x345ec646, 0x359ebc5b, 0x36dd9e2f,
    0x381b6d9c, 0x39582c79, 0x3a93dc98, 0x3bce7fc7, 0x3d0817cf, 0x3e40a672,
    0x3f782d72, 0x40aeae89, 0x41e42b6f, 0x4318a5d5, 0x444c1f6b, 0x457e99db,
    0x46b016ca, 0x47e097db, 0x49101eac, 0x4a3eacd7, 0x4b6c43f1, 0x4c98e58e,
    0x4dc4933b, 0x4eef4e83, 0x501918ec, 0x5141f3fb, 0x5269e12f, 0x5390e204,
    0x54b6f7f1, 0x55dc246d, 0x570068e8, 0x5823c6d1, 0x59463f92, 0x5a67d492,
    0x5b888736, 0x5ca858df, 0x5dc74aea, 0x5ee55eb1, 0x6002958c, 0x611ef0cf,
    0x623a71cc, 0x635519cf, 0x646eea24, 0x6587e415, 0x66a008e4, 0x67b759d6,
    0x68cdd82a, 0x69e3851c, 0x6af861e6, 0x6c0c6fc0, 0x6d1fafdd, 0x6e322370,
    0x6f43cba8, 0x7054a9b1, 0x7164beb5, 0x72740bdb, 0x73829249, 0x74905320,
    0x759d4f81, 0x76a98888, 0x77b4ff51, 0x78bfb4f4, 0x79c9aa88, 0x7ad2e11f,
    0x7bdb59cd, 0x7ce3159f, 0x7dea15a3, 0x7ef05ae4, 0x7ff5e66a, 0x80fab93c,
    0x81fed45d, 0x830238d0, 0x8404e794, 0x8506e1a8, 0x86082807, 0x8708bbaa,
    0x88089d8b, 0x8907ce9d, 0x8a064fd5, 0x8b042225, 0x8c01467c, 0x8cfdbdc8,
    0x8df988f5, 0x8ef4a8ed, 0x8fef1e98, 0x90e8eade, 0x91e20ea1, 0x92da8ac6,
    0x93d2602c, 0x94c98fb4, 0x95c01a3a, 0x96b6009b, 0x97ab43af, 0x989fe451,
    0x9993e356, 0x9a874193, 0x9b79ffdb, 0x9c6c1f01, 0x9d5d9fd5, 0x9e4e8325,
    0x9f3ec9bd, 0xa02e746a, 0xa11d83f5, 0xa20bf926, 0xa2f9d4c5, 0xa3e71797,
    0xa4d3c25e, 0xa5bfd5df, 0xa6ab52da, 0xa7963a0d, 0xa8808c38, 0xa96a4a17,
    0xaa537465, 0xab3c0bdc, 0xac241135, 0xad0b8526, 0xadf26866, 0xaed8bba8,
    0xafbe7fa1, 0xb0a3b502, 0xb1885c7b, 0xb26c76bc, 0xb3500472, 0xb433064b,
    0xb5157cf3, 0xb5f76913, 0xb6d8cb54, 0xb7b9a45e, 0xb899f4d9, 0xb979bd69,
    0xba58feb2, 0xbb37b959, 0xbc15edff, 0xbcf39d45, 0xbdd0c7ca, 0xbead6e2d,
    0xbf89910c, 0xc0653103, 0xc1404eae, 0xc21aeaa6, 0xc2f50586, 0xc3ce9fe4,
    0xc4a7ba58, 0xc5805579, 0xc65871da, 0xc7301011, 0xc80730b0, 0xc8ddd449,
    0xc9b3fb6d, 0xca89a6ac, 0xcb5ed695, 0xcc338bb7, 0xcd07c69e, 0xcddb87d6,
    0xceaecfeb, 0xcf819f66, 0xd053f6d2, 0xd125d6b7, 0xd1f73f9c, 0xd2c83209,
    0xd398ae81, 0xd468b58c, 0xd53847ac, 0xd6076565, 0xd6d60f39, 0xd7a445a9,
    0xd8720936, 0xd93f5a60, 0xda0c39a5, 0xdad8a784, 0xdba4a47b, 0xdc703104,
    0xdd3b4d9d, 0xde05fac0, 0xded038e6, 0xdf9a088a, 0xe0636a24, 0xe12c5e2b,
    0xe1f4e517, 0xe2bcff5e, 0xe384ad75, 0xe44befd0, 0xe512c6e5, 0xe5d93326,
    0xe69f3506, 0xe764ccf7, 0xe829fb69, 0xe8eec0ce, 0xe9b31d94, 0xea77122b,
    0xeb3a9f02, 0xebfdc485, 0xecc08322, 0xed82db45, 0xee44cd5a, 0xef0659cc,
    0xefc78104, 0xf088436d, 0xf148a170, 0xf2089b75, 0xf2c831e4, 0xf3876524,
    0xf446359b, 0xf504a3af, 0xf5c2afc6, 0xf6805a44, 0xf73da38e, 0xf7fa8c05,
    0xf8b7140f, 0xf9733c0c, 0xfa2f045e, 0xfaea6d67, 0xfba57787, 0xfc60231e,
    0xfd1a708c, 0xfdd4602e, 0xfe8df264, 0xff47278b, 0x100000000u,
};

/* index of the highest set bit, x > 0 */
static int affinity_msb64(apr_uint64_t x)
{
#if defined(__GNUC__)
    return 63 - __builtin_clzll(x);
#else
    int n = 0;

    while (x >>= 1) {
        n++;
    }
    return n;
#endif
}

/* log2(x) in 32.32 fixed point, x >= 1 */
static apr_uint64_t affinity_log2_q32(apr_uint64_t x)
{
    int n = affinity_msb64(x);
    apr_uint64_t m = x << (63 - n);             /* leading 1 at bit 63 */
    unsigned int i = (unsigned int)(m >> 55) & 0xff;
    apr_uint64_t frac = (m >> 23) & APR_UINT64_C(0xffffffff);
    apr_uint64_t lo = affinity_log2_table[i], hi = affinity_log2_table[i + 1];

    return ((apr_uint64_t)n << 32) + lo + (((hi - lo) * frac) >> 32);
}

static apr_uint64_t affinity_rendezvous_x(apr_uint64_t key, apr_uint64_t seed)
{
    return (affinity_fmix64(key ^ seed) >> 11) | 1;
}

/* monotone: a larger x never costs more */
static apr_uint64_t affinity_rendezvous_cost_x(apr_uint64_t x)
{
    apr_uint64_t cost = (APR_UINT64_C(53) << 32) - affinity_log2_q32(x);

    return cost ? cost : 1;
}

apr_uint64_t affinity_rendezvous_cost(apr_uint64_t key, apr_uint64_t seed)
{
    return affinity_rendezvous_cost_x(affinity_rendezvous_x(key, seed));
}

void affinity_route_head_init(affinity_route_head *h, const char *route)
{
    unsigned char head[8], mask[8];
    apr_size_t len = strnlen(route, sizeof(head));

    memset(head, 0, sizeof(head));
    memset(mask, 0, sizeof(mask));
    memcpy(head, route, len);
    memset(mask, 0xff, len < sizeof(mask) ? len + 1 : sizeof(mask));
    memcpy(&h->head, head, sizeof(h->head));
    memcpy(&h->mask, mask, sizeof(h->mask));
    h->long_route = len >= sizeof(mask);
}

/* ---- The same choice, cheaper (affinity_rv) ------------------------------
 *
 * Within one weight the plain walk keeps the first member of the lowest
 * cost.  The log table's error is below 3e-6, so when x is smaller than
 * another's by more than a factor 1 + 2^-12 (log2 difference > 3.5e-4) its
 * cost is strictly larger: only x within that factor of the best needs the
 * two costs compared.  Across weights, equal scores with different weights
 * have different costs and the smaller wins, so the order of the classes
 * does not matter. */

void affinity_rv_init(affinity_rv *rv, apr_uint64_t key)
{
    rv->key = key;
    rv->nclasses = 0;
    rv->over_slot = -1;
    rv->over_weight = rv->over_cost = 0;
}

void affinity_rv_offer_x(affinity_rv *rv, apr_uint64_t x, apr_uint64_t weight,
                         int slot)
{
    affinity_rv_class *c = rv->cls, *end = rv->cls + rv->nclasses;

    while (c < end && c->weight != weight) {
        c++;
    }
    if (c < end) {
        if (x + (x >> 12) < c->x) {
            return;                             /* surely costs more */
        }
        if (c->x + (c->x >> 12) < x
            || affinity_rendezvous_cost_x(x) < affinity_rendezvous_cost_x(c->x)) {
            c->x = x;
            c->slot = slot;
        }
        return;
    }
    if (rv->nclasses < AFFINITY_RV_CLASSES) {
        c->weight = weight;
        c->x = x;
        c->slot = slot;
        rv->nclasses++;
        return;
    }
    /* more weights than classes: the plain comparison */
    {
        apr_uint64_t cost = affinity_rendezvous_cost_x(x);

        if (rv->over_slot < 0
            || affinity_rendezvous_beats(weight, cost, rv->over_weight,
                                         rv->over_cost)) {
            rv->over_slot = slot;
            rv->over_weight = weight;
            rv->over_cost = cost;
        }
    }
}

int affinity_rv_best(const affinity_rv *rv)
{
    apr_uint64_t bw = rv->over_weight, bc = rv->over_cost;
    int i, best = rv->over_slot;

    if (rv->nclasses == 1 && best < 0) {
        return rv->cls[0].slot;                 /* one weight: no log at all */
    }
    for (i = 0; i < rv->nclasses; i++) {
        const affinity_rv_class *c = &rv->cls[i];
        apr_uint64_t cost = affinity_rendezvous_cost_x(c->x);

        if (best < 0 || affinity_rendezvous_beats(c->weight, cost, bw, bc)) {
            best = c->slot;
            bw = c->weight;
            bc = cost;
        }
    }
    return best;
}

/* ---- Learn mode ---------------------------------------------------------- */

#define AFFINITY_SHA1_BLOCK 64

void affinity_hmac_sha1_key(affinity_hmac_key *hk, const void *key,
                            apr_size_t key_len)
{
    unsigned char k[AFFINITY_SHA1_BLOCK], pad[AFFINITY_SHA1_BLOCK];
    apr_sha1_ctx_t ctx;
    apr_size_t i;

    memset(k, 0, sizeof(k));
    if (key_len > AFFINITY_SHA1_BLOCK) {
        apr_sha1_init(&ctx);
        apr_sha1_update_binary(&ctx, key, (unsigned int)key_len);
        apr_sha1_final(k, &ctx);
    }
    else if (key_len) {
        memcpy(k, key, key_len);
    }
    for (i = 0; i < sizeof(pad); i++) {
        pad[i] = k[i] ^ 0x36;
    }
    apr_sha1_init(&hk->inner);
    apr_sha1_update_binary(&hk->inner, pad, sizeof(pad));
    for (i = 0; i < sizeof(pad); i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    apr_sha1_init(&hk->outer);
    apr_sha1_update_binary(&hk->outer, pad, sizeof(pad));
    /* the key may be a secret (the salt): leave no copy on the stack */
    memset(k, 0, sizeof(k));
    memset(pad, 0, sizeof(pad));
}

void affinity_hmac_sha1_final(unsigned char mac[AFFINITY_ID_LEN],
                              apr_sha1_ctx_t *inner,
                              const affinity_hmac_key *hk)
{
    unsigned char digest[AFFINITY_ID_LEN];
    apr_sha1_ctx_t ctx;

    apr_sha1_final(digest, inner);
    ctx = hk->outer;
    apr_sha1_update_binary(&ctx, digest, sizeof(digest));
    apr_sha1_final(mac, &ctx);
}

void affinity_hmac_sha1(unsigned char mac[AFFINITY_ID_LEN],
                        const void *key, apr_size_t key_len,
                        const void *data, apr_size_t len)
{
    affinity_hmac_key hk;
    apr_sha1_ctx_t ctx;

    affinity_hmac_sha1_key(&hk, key, key_len);
    ctx = hk.inner;
    apr_sha1_update_binary(&ctx, data, (unsigned int)len);
    affinity_hmac_sha1_final(mac, &ctx, &hk);
}

/* SipHash-2-4-128, as the reference implementation (veorq/SipHash). */
#define AFFINITY_ROTL64(x, b) (apr_uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define AFFINITY_SIPROUND(h)                                               \
    do {                                                                   \
        (h)->v0 += (h)->v1; (h)->v1 = AFFINITY_ROTL64((h)->v1, 13);        \
        (h)->v1 ^= (h)->v0; (h)->v0 = AFFINITY_ROTL64((h)->v0, 32);        \
        (h)->v2 += (h)->v3; (h)->v3 = AFFINITY_ROTL64((h)->v3, 16);        \
        (h)->v3 ^= (h)->v2;                                                \
        (h)->v0 += (h)->v3; (h)->v3 = AFFINITY_ROTL64((h)->v3, 21);        \
        (h)->v3 ^= (h)->v0;                                                \
        (h)->v2 += (h)->v1; (h)->v1 = AFFINITY_ROTL64((h)->v1, 17);        \
        (h)->v1 ^= (h)->v2; (h)->v2 = AFFINITY_ROTL64((h)->v2, 32);        \
    } while (0)

static apr_uint64_t affinity_le64(const unsigned char *p)
{
    return (apr_uint64_t)p[0] | (apr_uint64_t)p[1] << 8
           | (apr_uint64_t)p[2] << 16 | (apr_uint64_t)p[3] << 24
           | (apr_uint64_t)p[4] << 32 | (apr_uint64_t)p[5] << 40
           | (apr_uint64_t)p[6] << 48 | (apr_uint64_t)p[7] << 56;
}

static void affinity_put_le64(unsigned char *p, apr_uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void affinity_siphash_block(affinity_siphash *h, apr_uint64_t m)
{
    h->v3 ^= m;
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    h->v0 ^= m;
}

void affinity_siphash_init(affinity_siphash *h,
                           const unsigned char key[AFFINITY_SIPHASH_KEY_LEN])
{
    apr_uint64_t k0 = affinity_le64(key), k1 = affinity_le64(key + 8);

    h->v0 = k0 ^ APR_UINT64_C(0x736f6d6570736575);
    h->v1 = k1 ^ APR_UINT64_C(0x646f72616e646f6d) ^ 0xee;   /* 128-bit out */
    h->v2 = k0 ^ APR_UINT64_C(0x6c7967656e657261);
    h->v3 = k1 ^ APR_UINT64_C(0x7465646279746573);
    h->tail = 0;
    h->len = 0;
}

void affinity_siphash_update(affinity_siphash *h, const void *data,
                             apr_size_t len)
{
    const unsigned char *p = data, *end = p + len;
    unsigned int have = (unsigned int)(h->len & 7);

    h->len += len;
    /* fill the pending word first */
    while (have && p < end) {
        h->tail |= (apr_uint64_t)*p++ << (8 * have);
        if (++have == 8) {
            affinity_siphash_block(h, h->tail);
            h->tail = 0;
            have = 0;
        }
    }
    for (; end - p >= 8; p += 8) {
        affinity_siphash_block(h, affinity_le64(p));
    }
    for (; p < end; have++) {
        h->tail |= (apr_uint64_t)*p++ << (8 * have);
    }
}

void affinity_siphash_final(affinity_siphash *h,
                            unsigned char out[AFFINITY_SIPHASH_LEN])
{
    affinity_siphash_block(h, h->tail | (apr_uint64_t)h->len << 56);
    h->v2 ^= 0xee;
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    affinity_put_le64(out, h->v0 ^ h->v1 ^ h->v2 ^ h->v3);
    h->v1 ^= 0xdd;
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    AFFINITY_SIPROUND(h);
    affinity_put_le64(out + 8, h->v0 ^ h->v1 ^ h->v2 ^ h->v3);
}

void affinity_siphash128(unsigned char out[AFFINITY_SIPHASH_LEN],
                         const unsigned char key[AFFINITY_SIPHASH_KEY_LEN],
                         const void *data, apr_size_t len)
{
    affinity_siphash h;

    affinity_siphash_init(&h, key);
    affinity_siphash_update(&h, data, len);
    affinity_siphash_final(&h, out);
}

void affinity_learn_secret_init(affinity_learn_secret *ls, const char *salt,
                                apr_size_t salt_len)
{
    unsigned char mac[AFFINITY_ID_LEN];
    apr_sha1_ctx_t ctx;

    /* a key of its own, not the salt: the salt also makes the route IDs */
    affinity_hmac_sha1_key(&ls->old, salt, salt_len);
    ctx = ls->old.inner;
    apr_sha1_update_binary(&ctx, (const unsigned char *)AFFINITY_LEARN_SECRET_LABEL,
                           sizeof(AFFINITY_LEARN_SECRET_LABEL) - 1);
    affinity_hmac_sha1_final(mac, &ctx, &ls->old);
    memcpy(ls->k, mac, sizeof(ls->k));
    memset(mac, 0, sizeof(mac));
}

void affinity_learn_key_kind(unsigned char key[AFFINITY_LEARN_KEY_LEN],
                             const affinity_learn_secret *ls,
                             const char *balancer, const char *kind,
                             const char *value, apr_size_t len)
{
    static const char nul[2] = { 0, 0 };
    affinity_siphash h;

    /* the bytes the old key hashed: balancer NUL [NUL kind NUL] value; no
     * cookie value starts with a NUL, so no cookie key equals a header
     * key */
    affinity_siphash_init(&h, ls->k);
    affinity_siphash_update(&h, balancer, strlen(balancer) + 1);
    if (kind) {
        affinity_siphash_update(&h, nul, 1);
        affinity_siphash_update(&h, kind, strlen(kind) + 1);
    }
    affinity_siphash_update(&h, value, len);
    affinity_siphash_final(&h, key);
}

void affinity_learn_key(unsigned char key[AFFINITY_LEARN_KEY_LEN],
                        const affinity_learn_secret *ls,
                        const char *balancer, const char *value,
                        apr_size_t len)
{
    affinity_learn_key_kind(key, ls, balancer, NULL, value, len);
}

void affinity_learn_old_key_kind(unsigned char key[AFFINITY_LEARN_OLD_KEY_LEN],
                                 const affinity_learn_secret *ls,
                                 const char *balancer, const char *kind,
                                 const char *value, apr_size_t len)
{
    static const unsigned char nul = 0;
    apr_sha1_ctx_t ctx = ls->old.inner;

    apr_sha1_update_binary(&ctx, (const unsigned char *)balancer,
                           (unsigned int)strlen(balancer) + 1);
    if (kind) {
        apr_sha1_update_binary(&ctx, &nul, 1);
        apr_sha1_update_binary(&ctx, (const unsigned char *)kind,
                               (unsigned int)strlen(kind) + 1);
    }
    apr_sha1_update_binary(&ctx, (const unsigned char *)value,
                           (unsigned int)len);
    affinity_hmac_sha1_final(key, &ctx, &ls->old);
}

void affinity_learn_entry_encode(unsigned char entry[AFFINITY_LEARN_ENTRY_LEN],
                                 const unsigned char id[AFFINITY_ID_LEN],
                                 apr_int64_t written)
{
    apr_uint64_t w = (apr_uint64_t)written;
    int i;

    memcpy(entry, id, AFFINITY_ID_LEN);
    for (i = 7; i >= 0; i--) {
        entry[AFFINITY_ID_LEN + i] = (unsigned char)(w & 0xff);
        w >>= 8;
    }
}

int affinity_learn_entry_decode(const unsigned char *entry, apr_size_t len,
                                unsigned char id[AFFINITY_ID_LEN],
                                apr_int64_t *written)
{
    apr_uint64_t w = 0;
    int i;

    if (len != AFFINITY_LEARN_ENTRY_LEN) {
        return 0;
    }
    memcpy(id, entry, AFFINITY_ID_LEN);
    for (i = 0; i < 8; i++) {
        w = (w << 8) | entry[AFFINITY_ID_LEN + i];
    }
    *written = (apr_int64_t)w;
    return 1;
}

int affinity_learn_entry_age(apr_int64_t written, apr_int64_t now,
                             apr_int64_t timeout)
{
    apr_int64_t age = now - written;

    /* a clock that stepped back makes the entry young, never negative-old */
    if (age < 0) {
        age = 0;
    }
    if (age >= timeout) {
        return -1;
    }
    return age >= timeout / 4 ? 1 : 0;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

int affinity_utf8_len(const unsigned char *s, apr_size_t len)
{
    unsigned char lo = 0x80, hi = 0xbf;
    apr_size_t n, i;

    if (!len) {
        return 0;
    }
    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        if (s[0] == 0xe0) {
            lo = 0xa0;              /* overlong below */
        }
        else if (s[0] == 0xed) {
            hi = 0x9f;              /* surrogates above */
        }
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        if (s[0] == 0xf0) {
            lo = 0x90;              /* overlong below */
        }
        else if (s[0] == 0xf4) {
            hi = 0x8f;              /* beyond U+10FFFF above */
        }
    }
    else {
        return 0;                   /* 80..C1 (continuation, overlong), F5..FF */
    }
    if (len < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return (int)n;
}

const char *affinity_utf8_clean(apr_pool_t *p, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    apr_size_t len = strlen(in), i = 0, bad = 0;
    char *out, *o;

    while (i < len) {
        int n = affinity_utf8_len(s + i, len - i);

        bad += !n;
        i += n ? (apr_size_t)n : 1;
    }
    if (!bad) {
        return in;
    }
    o = out = apr_palloc(p, len + 2 * bad + 1);
    for (i = 0; i < len;) {
        int n = affinity_utf8_len(s + i, len - i);

        if (n) {
            memcpy(o, s + i, (apr_size_t)n);
            o += n;
            i += (apr_size_t)n;
        }
        else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}
