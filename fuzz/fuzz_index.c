/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * fuzz_index: the route ID index with IDs the fuzzer chooses (so it can
 * make them collide in the four bytes the index hashes).
 *
 * Input: two bytes of capacity (0..511), one byte that says how many of the
 * following 20-byte IDs are put (never more than the capacity, as the module
 * never puts more members than it sized the table for); the other IDs, and
 * each put ID with its last byte flipped, are looked up.  A linear list is
 * the model: every put ID is found with the slot of its first put, every
 * other ID gives -1.
 */

#include <string.h>

#include "apr_pools.h"

#include "mod_affinity.h"
#include "fuzz_common.h"

static int model_get(const unsigned char *ids, int nput,
                     const unsigned char *id)
{
    int i;

    for (i = 0; i < nput; i++) {
        if (!memcmp(ids + (size_t)i * AFFINITY_ID_LEN, id, AFFINITY_ID_LEN)) {
            return i;
        }
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    apr_pool_t *p;
    affinity_index *ix;
    const unsigned char *ids;
    int capacity, nids, nput, i;

    if (size < 3) {
        return 0;
    }
    capacity = ((data[0] << 8) | data[1]) % 512;
    ids = data + 3;
    nids = (int)((size - 3) / AFFINITY_ID_LEN);
    nput = data[2] % (nids + 1);
    if (nput > capacity) {
        nput = capacity;
    }

    apr_pool_create(&p, NULL);
    fuzz_pool_begin();
    ix = affinity_index_make(p, capacity);

    for (i = 0; i < nput; i++) {
        affinity_index_put(ix, ids + (size_t)i * AFFINITY_ID_LEN, i);
    }
    for (i = 0; i < nids; i++) {
        const unsigned char *id = ids + (size_t)i * AFFINITY_ID_LEN;
        unsigned char flipped[AFFINITY_ID_LEN];

        FUZZ_CHECK(affinity_index_get(ix, id) == model_get(ids, nput, id));
        memcpy(flipped, id, AFFINITY_ID_LEN);
        flipped[AFFINITY_ID_LEN - 1] ^= 0x01;
        FUZZ_CHECK(affinity_index_get(ix, flipped)
                   == model_get(ids, nput, flipped));
    }

    fuzz_pool_end();
    apr_pool_destroy(p);
    return 0;
}
