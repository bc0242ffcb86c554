/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_expiry: the dated cookie value (parse, MAC, date checks) and the
 * stock SESSION.ROUTE parser, against a naive model of the documented rules.
 *
 * Input: 16 bytes of parameters (now, MaxIdle, MaxLife, a mutation position
 * and character, the salt and balancer name lengths), then the bytes that
 * are parsed as a cookie value, and are also cut into a salt and a balancer
 * name.  Checks:
 * - the value parses iff it is 83 characters: 40, 8, 8 and 24 lowercase hex
 *   digits joined by '.'; then formatting its ID and dates back gives the
 *   same first 59 characters;
 * - it verifies iff it is exactly the value affinity_stamp_format makes for
 *   its ID and dates (so forging needs the key);
 * - a value made by affinity_stamp_format always parses and verifies, and
 *   no other balancer name or salt verifies it, nor does any one-character
 *   change of it;
 * - the date checks agree with a model written as plain inequalities;
 * - the stock route is what follows the first '.';
 * - the cache of verified values gives the plain check's verdict, empty or
 *   holding the genuine value for the same ID and dates, and a value one
 *   character from a cached one is refused;
 * - SipHash (learn mode's keys) fed in three pieces, cut at the mutation
 *   position, gives the one-call value.
 */

#include <string.h>

#include "apr_pools.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

static int is_lower_hex(const unsigned char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int model_well_formed(const unsigned char *v, size_t len)
{
    return len == 83 && v[40] == '.' && v[49] == '.' && v[58] == '.'
           && is_lower_hex(v, 40) && is_lower_hex(v + 41, 8)
           && is_lower_hex(v + 50, 8) && is_lower_hex(v + 59, 24);
}

static apr_uint32_t rd32(const unsigned char *p)
{
    return (apr_uint32_t)p[0] << 24 | (apr_uint32_t)p[1] << 16
           | (apr_uint32_t)p[2] << 8 | p[3];
}

static affinity_stamp_state model_check(apr_int64_t first, apr_int64_t last,
                                        apr_int64_t now, apr_int64_t idle,
                                        apr_int64_t life)
{
    if (first - now > 300 || last - now > 300) {
        return AFFINITY_STAMP_FUTURE;
    }
    if ((life && first + life < now) || (idle && last + idle < now)) {
        return AFFINITY_STAMP_EXPIRED;
    }
    return AFFINITY_STAMP_OK;
}

static affinity_verified cache;     /* emptied for each input */

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const unsigned char *v;
    size_t vlen, salt_len, name_len;
    apr_int64_t now, idle, life;
    affinity_mac_key key, other, shorter, fixed;
    affinity_stamp st, st2;
    char *val, buf[AFFINITY_STAMPED_LEN + 1], buf2[AFFINITY_STAMPED_LEN + 1];
    const char *salt, *name, *route;
    apr_size_t route_len;
    int parsed, pos;
    unsigned char c;

    if (size < 16) {
        return 0;
    }
    fuzz_pool_begin();
    now = (apr_int64_t)rd32(data) + ((data[4] & 1) ? 0x100000000LL : 0)
          - ((data[4] & 2) ? 0x80000000LL : 0);
    idle = data[5] & 0x80 ? 0 : rd32(data + 6) % 400000000u;
    life = data[5] & 0x40 ? 0 : rd32(data + 10) % 400000000u;
    pos = data[14];
    c = data[15];
    v = data + 16;
    vlen = size - 16;
    val = fuzz_cstr(v, vlen);
    salt_len = vlen ? (size_t)(data[5] & 0x3f) % (vlen + 1) : 0;
    name_len = vlen - salt_len;
    salt = fuzz_cstr(v, salt_len);
    name = fuzz_cstr(v + salt_len, name_len);

    affinity_mac_key_init(&key, salt, salt_len, name, name_len);

    /* the input as a value */
    parsed = affinity_stamp_parse(&st, val, vlen);
    FUZZ_CHECK(parsed == model_well_formed(v, vlen));
    if (parsed) {
        affinity_stamp_format(buf, &key, st.id, st.first, st.last);
        FUZZ_CHECK(strlen(buf) == AFFINITY_STAMPED_LEN);
        FUZZ_CHECK(!memcmp(buf, val, AFFINITY_STAMP_HEX_LEN));
        FUZZ_CHECK(affinity_stamp_verify(&st, &key)
                   == !memcmp(buf, val, AFFINITY_STAMPED_LEN));
        /* the cache: empty, then holding the genuine value (buf) */
        memset(&cache, 0, sizeof(cache));
        FUZZ_CHECK(affinity_stamp_verify_cached(&st, val, &key, &cache)
                   == !memcmp(buf, val, AFFINITY_STAMPED_LEN));
        FUZZ_CHECK(affinity_stamp_verify_cached(&st, val, &key, &cache)
                   == !memcmp(buf, val, AFFINITY_STAMPED_LEN));
        FUZZ_CHECK(affinity_stamp_parse(&st2, buf, AFFINITY_STAMPED_LEN)
                   && affinity_stamp_verify_cached(&st2, buf, &key, &cache));
        FUZZ_CHECK(affinity_stamp_verify_cached(&st, val, &key, &cache)
                   == !memcmp(buf, val, AFFINITY_STAMPED_LEN));
        FUZZ_CHECK(affinity_stamp_check(&st, now, idle, life)
                   == model_check(st.first, st.last, now, idle, life));
        FUZZ_CHECK(affinity_stamp_refresh_due(st.last, now, idle)
                   == (idle > 0 && (now - (apr_int64_t)st.last) * 4 > idle));
    }

    /* a value made from the input's bytes */
    memset(&st, 0, sizeof(st));
    memcpy(st.id, v, vlen < AFFINITY_ID_LEN ? vlen : AFFINITY_ID_LEN);
    st.first = rd32(data + 6);
    st.last = rd32(data + 10);
    affinity_stamp_format(buf, &key, st.id, st.first, st.last);
    FUZZ_CHECK(model_well_formed((const unsigned char *)buf, strlen(buf)));
    FUZZ_CHECK(affinity_stamp_parse(&st2, buf, AFFINITY_STAMPED_LEN));
    FUZZ_CHECK(!memcmp(st2.id, st.id, AFFINITY_ID_LEN));
    FUZZ_CHECK(st2.first == st.first && st2.last == st.last);
    FUZZ_CHECK(affinity_stamp_verify(&st2, &key));
    /* another balancer name: a byte shorter, or a fixed one */
    if (name_len) {
        affinity_mac_key_init(&shorter, salt, salt_len, name, name_len - 1);
        FUZZ_CHECK(!affinity_stamp_verify(&st2, &shorter));
    }
    affinity_mac_key_init(&fixed, salt, salt_len, "balancer://~", 12);
    FUZZ_CHECK(!affinity_stamp_verify(&st2, &fixed)
               || (name_len == 12 && !memcmp(name, "balancer://~", 12)));
    /* another salt: one byte more of the input */
    if (salt_len + 1 <= vlen) {
        affinity_mac_key_init(&other, (const char *)v, salt_len + 1, name, name_len);
        FUZZ_CHECK(!affinity_stamp_verify(&st2, &other));
    }
    /* one character changed */
    memcpy(buf2, buf, sizeof(buf2));
    buf2[pos % AFFINITY_STAMPED_LEN] = (char)c;
    if (memcmp(buf2, buf, AFFINITY_STAMPED_LEN)
        && affinity_stamp_parse(&st2, buf2, AFFINITY_STAMPED_LEN)) {
        FUZZ_CHECK(!affinity_stamp_verify(&st2, &key));
        /* nor through a cache holding the genuine one */
        memset(&cache, 0, sizeof(cache));
        memcpy(cache.text[st2.mac[0]], buf, AFFINITY_STAMPED_LEN);
        FUZZ_CHECK(!affinity_stamp_verify_cached(&st2, buf2, &key, &cache));
    }

    /* the stock form */
    if (affinity_legacy_route(val, vlen, &route, &route_len)) {
        const char *dot = memchr(val, '.', vlen);
        FUZZ_CHECK(dot && route == dot + 1 && route_len > 0);
        FUZZ_CHECK(route + route_len == val + vlen);
    }
    else {
        const char *dot = memchr(val, '.', vlen);
        FUZZ_CHECK(!dot || dot == val + vlen - 1);
    }

    /* SipHash streamed in pieces against one call */
    {
        affinity_siphash h;
        unsigned char k[16], s1[16], s2[16];
        size_t cut = vlen ? (size_t)pos % (vlen + 1) : 0;
        size_t cut2 = cut + (vlen - cut) / 2;

        memcpy(k, data, 16);
        affinity_siphash128(s1, k, v, vlen);
        affinity_siphash_init(&h, k);
        affinity_siphash_update(&h, v, cut);
        affinity_siphash_update(&h, v + cut, cut2 - cut);
        affinity_siphash_update(&h, v + cut2, vlen - cut2);
        affinity_siphash_final(&h, s2);
        FUZZ_CHECK(!memcmp(s1, s2, 16));
    }

    fuzz_pool_end();
    return 0;
}
