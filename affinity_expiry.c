/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_expiry.c: dated, signed cookie values (AffinityCookieMaxIdle,
 * AffinityCookieMaxLife) and the stock "SESSION.ROUTE" form
 * (AffinityLegacyRoutes).  Pure logic, no httpd: unit-tested in
 * t/unit/test_expiry.c and fuzzed in fuzz/fuzz_expiry.c.
 *
 * The dates are signed because a client that could rewrite them would stay
 * on its member for ever, which is what expiry is there to prevent.  The MAC
 * covers the balancer name too, so that a value issued for one balancer is
 * worthless on another that happens to have a member with the same ID.
 */

#include <string.h>

#include "apr_sha1.h"

#include "mod_affinity.h"

void affinity_mac_key_init(affinity_mac_key *key, const char *salt,
                           apr_size_t salt_len, const char *balancer,
                           apr_size_t balancer_len)
{
    static const unsigned char nul = 0;
    unsigned char k[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;

    /* a key of its own, not the salt itself: the salt also makes the IDs */
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, (const unsigned char *)AFFINITY_MAC_KEY_PREFIX,
                           sizeof(AFFINITY_MAC_KEY_PREFIX) - 1);
    if (salt_len) {
        apr_sha1_update_binary(&ctx, (const unsigned char *)salt,
                               (unsigned int)salt_len);
    }
    apr_sha1_final(k, &ctx);
    affinity_hmac_sha1_key(key, k, sizeof(k));
    memset(k, 0, sizeof(k));
    /* the name never holds a NUL: the separator keeps name and ID apart */
    if (balancer_len) {
        apr_sha1_update_binary(&key->inner, (const unsigned char *)balancer,
                               (unsigned int)balancer_len);
    }
    apr_sha1_update_binary(&key->inner, &nul, 1);
}

static const char affinity_hex_digits[] = "0123456789abcdef";

static void affinity_date_to_hex(char *out, apr_uint32_t d)
{
    int i;

    for (i = AFFINITY_DATE_HEX_LEN - 1; i >= 0; i--) {
        out[i] = affinity_hex_digits[d & 0xf];
        d >>= 4;
    }
}

/* Each lowercase hex digit's value plus one; 0 for every other byte: a
 * table, as affinity_id_from_hex has, because every dated cookie value
 * decodes 40 digits of dates and MAC on each request. */
static const unsigned char affinity_hex_plus_one[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
    ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16
};

/* One lowercase hex digit, or -1. */
static int affinity_hex_value(char c)
{
    return (int)affinity_hex_plus_one[(unsigned char)c] - 1;
}

static int affinity_hex_bytes(unsigned char *out, const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        int hi = affinity_hex_value(s[2 * i]), lo = affinity_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return 0;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

static int affinity_hex_date(apr_uint32_t *d, const char *s)
{
    apr_uint32_t v = 0;
    int i;

    for (i = 0; i < AFFINITY_DATE_HEX_LEN; i++) {
        int x = affinity_hex_value(s[i]);
        if (x < 0) {
            return 0;
        }
        v = v << 4 | (apr_uint32_t)x;
    }
    *d = v;
    return 1;
}

/* "ID.FIRST.LAST." into out (AFFINITY_STAMP_HEX_LEN bytes, no NUL) */
static void affinity_stamp_text(char *out, const unsigned char id[AFFINITY_ID_LEN],
                                apr_uint32_t first, apr_uint32_t last)
{
    char *o = out;

    affinity_id_to_hex(o, id);      /* writes a NUL we overwrite */
    o += AFFINITY_ID_HEX_LEN;
    *o++ = '.';
    affinity_date_to_hex(o, first);
    o += AFFINITY_DATE_HEX_LEN;
    *o++ = '.';
    affinity_date_to_hex(o, last);
    o += AFFINITY_DATE_HEX_LEN;
    *o = '.';
}

static void affinity_put_be32(unsigned char *p, apr_uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

int affinity_stamp_parse(affinity_stamp *st, const char *s, apr_size_t len)
{
    const char *d1 = s + AFFINITY_ID_HEX_LEN;
    const char *d2 = d1 + 1 + AFFINITY_DATE_HEX_LEN;
    const char *mac = d2 + 1 + AFFINITY_DATE_HEX_LEN;

    if (len != AFFINITY_STAMPED_LEN || *d1 != '.' || *d2 != '.' || *mac != '.') {
        return 0;
    }
    return affinity_id_from_hex(st->id, s, AFFINITY_ID_HEX_LEN)
           && affinity_hex_date(&st->first, d1 + 1)
           && affinity_hex_date(&st->last, d2 + 1)
           && affinity_hex_bytes(st->mac, mac + 1, AFFINITY_MAC_LEN);
}

void affinity_stamp_mac(unsigned char mac[AFFINITY_MAC_LEN],
                        const affinity_mac_key *key,
                        const unsigned char id[AFFINITY_ID_LEN],
                        apr_uint32_t first, apr_uint32_t last)
{
    unsigned char msg[AFFINITY_ID_LEN + 8];
    unsigned char outer[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;

    /* binary, not the hex text: the message then fits the inner hash's
     * last block */
    memcpy(msg, id, AFFINITY_ID_LEN);
    affinity_put_be32(msg + AFFINITY_ID_LEN, first);
    affinity_put_be32(msg + AFFINITY_ID_LEN + 4, last);
    ctx = key->inner;
    apr_sha1_update_binary(&ctx, msg, sizeof(msg));
    affinity_hmac_sha1_final(outer, &ctx, key);
    memcpy(mac, outer, AFFINITY_MAC_LEN);
}

void affinity_stamp_format(char *buf, const affinity_mac_key *key,
                           const unsigned char id[AFFINITY_ID_LEN],
                           apr_uint32_t first, apr_uint32_t last)
{
    unsigned char mac[AFFINITY_MAC_LEN];
    char *o = buf + AFFINITY_STAMP_HEX_LEN;
    int i;

    affinity_stamp_text(buf, id, first, last);
    affinity_stamp_mac(mac, key, id, first, last);
    for (i = 0; i < AFFINITY_MAC_LEN; i++) {
        *o++ = affinity_hex_digits[mac[i] >> 4];
        *o++ = affinity_hex_digits[mac[i] & 0xf];
    }
    *o = '\0';
}

int affinity_stamp_verify(const affinity_stamp *st, const affinity_mac_key *key)
{
    unsigned char mac[AFFINITY_MAC_LEN];
    unsigned char diff = 0;
    int i;

    affinity_stamp_mac(mac, key, st->id, st->first, st->last);
    /* no early exit: the time taken must not tell how many bytes matched */
    for (i = 0; i < AFFINITY_MAC_LEN; i++) {
        diff |= (unsigned char)(mac[i] ^ st->mac[i]);
    }
    return diff == 0;
}

int affinity_stamp_verify_cached(const affinity_stamp *st, const char *text,
                                 const affinity_mac_key *key,
                                 affinity_verified *c)
{
    char *slot;
    unsigned char diff = 0;
    int i;

    if (!c) {
        return affinity_stamp_verify(st, key);
    }
    slot = c->text[st->mac[0]];
    /* no early exit: the time taken must not tell how many bytes matched */
    for (i = 0; i < AFFINITY_STAMPED_LEN; i++) {
        diff |= (unsigned char)(slot[i] ^ text[i]);
    }
    if (diff == 0) {
        return 1;
    }
    if (!affinity_stamp_verify(st, key)) {
        return 0;
    }
    memcpy(slot, text, AFFINITY_STAMPED_LEN);
    return 1;
}

affinity_stamp_state affinity_stamp_check(const affinity_stamp *st,
                                          apr_int64_t now, apr_int64_t max_idle,
                                          apr_int64_t max_life)
{
    apr_int64_t first = st->first, last = st->last;

    if (first > now + AFFINITY_CLOCK_SKEW || last > now + AFFINITY_CLOCK_SKEW) {
        return AFFINITY_STAMP_FUTURE;
    }
    if (max_life > 0 && now - first > max_life) {
        return AFFINITY_STAMP_EXPIRED;
    }
    if (max_idle > 0 && now - last > max_idle) {
        return AFFINITY_STAMP_EXPIRED;
    }
    return AFFINITY_STAMP_OK;
}

int affinity_stamp_refresh_due(apr_uint32_t last, apr_int64_t now,
                               apr_int64_t max_idle)
{
    /* age > max_idle / 4, without rounding the quarter down */
    return max_idle > 0 && 4 * (now - (apr_int64_t)last) > max_idle;
}

apr_uint32_t affinity_stamp_date(apr_int64_t now)
{
    if (now < 0) {
        return 0;
    }
    if (now > (apr_int64_t)0xffffffffu) {
        return 0xffffffffu;
    }
    return (apr_uint32_t)now;
}

int affinity_legacy_route(const char *value, apr_size_t len,
                          const char **route, apr_size_t *route_len)
{
    const char *dot = memchr(value, '.', len);

    if (!dot || dot + 1 == value + len) {
        return 0;
    }
    *route = dot + 1;
    *route_len = (apr_size_t)(value + len - (dot + 1));
    return 1;
}
