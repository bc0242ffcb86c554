/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * rv_pick: the pure weighted rendezvous choice, for t/hash_exact.t to hold
 * a live httpd's hash-mode picks to.
 *
 *   rv_pick SALT IDENTITY=WEIGHT... < keys
 *
 * For each line of stdin (a key, as the hash expression yields it) prints
 * the index (from 0) of the candidate the plain comparison picks: every
 * candidate's affinity_rendezvous_cost() and affinity_rendezvous_beats(),
 * ties to the first, as the module's walk offers them in slot order.  The
 * seeds are affinity_member_seed(salt, identity): the route when set, else
 * host:port.  No member table, no affinity_rv: the reference, not the
 * module's code path.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mod_affinity.h"

#define MAXM 256

int main(int argc, char **argv)
{
    static apr_uint64_t seed[MAXM], weight[MAXM];
    char line[4096];
    int n = 0, i;

    if (argc < 2) {
        fprintf(stderr, "usage: rv_pick SALT IDENTITY=WEIGHT... < keys\n");
        return 2;
    }
    for (i = 2; i < argc && n < MAXM; i++, n++) {
        char *eq = strrchr(argv[i], '=');

        if (!eq) {
            fprintf(stderr, "rv_pick: %s: no =WEIGHT\n", argv[i]);
            return 2;
        }
        seed[n] = affinity_member_seed(argv[1], strlen(argv[1]), argv[i],
                                       (apr_size_t)(eq - argv[i]));
        weight[n] = (apr_uint64_t)strtoul(eq + 1, NULL, 10);
        if (!weight[n]) {
            weight[n] = 1;
        }
    }
    while (fgets(line, sizeof(line), stdin)) {
        apr_size_t len = strcspn(line, "\n");
        apr_uint64_t key = affinity_hash64(line, len), bw = 0, bc = 0;
        int best = -1;

        for (i = 0; i < n; i++) {
            apr_uint64_t c = affinity_rendezvous_cost(key, seed[i]);

            if (best < 0 || affinity_rendezvous_beats(weight[i], c, bw, bc)) {
                best = i;
                bw = weight[i];
                bc = c;
            }
        }
        printf("%d\n", best);
    }
    return 0;
}
