/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_rendezvous: affinity_rv (one log per weight) against the plain walk
 * (affinity_rendezvous_cost and affinity_rendezvous_beats for every member,
 * ties to the first), with keys, seeds and weights the fuzzer chooses.
 *
 * Input: 8 bytes of key, then members of 9 bytes each: 8 bytes of seed and
 * one byte of weight (1 + byte % 16 * 7, so weights repeat and exceed
 * AFFINITY_RV_CLASSES distinct values).  A seed byte pattern of all 0xff
 * copies an earlier member's seed, and 0xfe puts the member's x next to the
 * previous member's (the near-tie window), so both kinds of tie are reached.
 * The two must pick the same member.  The same input also drives the check
 * the hashed picks make that a member's route is unchanged
 * (affinity_route_head_check below).
 */

#include <string.h>

#include "mod_affinity.h"
#include "fuzz_common.h"

#define MAXM 512

static apr_uint64_t get64(const unsigned char *d)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | d[i];
    }
    return v;
}

static apr_uint64_t fmix(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= APR_UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= APR_UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static apr_uint64_t unfmix(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= APR_UINT64_C(0x9cb4b2f8129337db);
    h ^= h >> 33;
    h *= APR_UINT64_C(0x4f74430c22a54005);
    h ^= h >> 33;
    return h;
}

/* The hashed picks' route check (affinity_route_head_same) against
 * strncmp, as affinity_member_current compares: the input's first bytes
 * are the route as the table copied it (up to a NUL, 63 at most, NUL
 * padded), the live bytes start as that copy and then take the rest of the
 * input as (position, byte) pairs: cut short, lengthened, one byte
 * changed, an older route's bytes left after the NUL. */
static void affinity_route_head_check(const unsigned char *in, size_t size)
{
    char built[64], live[64];
    affinity_route_head h;
    size_t b = size < 63 ? size : 63, i;

    memset(built, 0, sizeof(built));
    memcpy(built, in, b);
    b = strnlen(built, sizeof(built));
    memset(built + b, 0, sizeof(built) - b);
    memcpy(live, built, sizeof(live));
    for (i = b; i + 1 < size; i += 2) {
        live[in[i] % sizeof(live)] = (char)in[i + 1];
    }
    affinity_route_head_init(&h, built);
    FUZZ_CHECK(affinity_route_head_same(&h, built, live, sizeof(live))
               == !strncmp(built, live, sizeof(live)));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const unsigned char *in = data;
    size_t insize = size;

    static apr_uint64_t seed[MAXM], weight[MAXM];
    apr_uint64_t key, bw = 0, bc = 0;
    affinity_rv rv;
    int n = 0, i, plain = -1;

    if (size < 8) {
        return 0;
    }
    key = get64(data);
    data += 8;
    size -= 8;
    while (size >= 9 && n < MAXM) {
        apr_uint64_t s = get64(data);

        if (n && data[0] == 0xff) {
            s = seed[data[1] % n];                      /* exact tie */
        }
        else if (n && data[0] == 0xfe) {
            /* x within a small distance of the previous member's */
            apr_uint64_t h = fmix(key ^ seed[n - 1]);

            h += (apr_uint64_t)(apr_int64_t)(signed char)data[1]
                 << (data[2] % 40);
            s = unfmix(h) ^ key;
        }
        seed[n] = s;
        weight[n] = 1 + (data[8] % 16) * 7;
        n++;
        data += 9;
        size -= 9;
    }
    affinity_rv_init(&rv, key);
    for (i = 0; i < n; i++) {
        apr_uint64_t c = affinity_rendezvous_cost(key, seed[i]);

        affinity_rv_offer(&rv, seed[i], weight[i], i);
        if (plain < 0 || affinity_rendezvous_beats(weight[i], c, bw, bc)) {
            plain = i;
            bw = weight[i];
            bc = c;
        }
    }
    FUZZ_CHECK(affinity_rv_best(&rv) == plain);
    affinity_route_head_check(in, insize);
    return 0;
}
