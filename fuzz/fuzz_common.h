/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/* Shared by the fuzz targets: APR's start-up and exact-size allocations
 * (pool_shim.c), and a check that aborts, so that libFuzzer records the
 * input as a crash. */

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>

void fuzz_pool_begin(void);
void fuzz_pool_end(void);
char *fuzz_cstr(const unsigned char *data, size_t size);

#define FUZZ_CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#endif
