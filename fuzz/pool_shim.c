/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * pool_shim.c: exact-size pool allocations for the fuzzers.
 *
 * APR pools carve allocations out of 8 KB blocks, so an overflow of a pool
 * buffer lands in the next allocation and AddressSanitizer never sees it.
 * While a fuzz input runs, this file's apr_palloc() and apr_pcalloc() take
 * the place of APR's (the fuzzer binary's definitions win over libapr's for
 * every caller, libapr's own apr_pstrcat/apr_pstrmemdup included) and give
 * each allocation its own malloc() block, freed when the input is done.  Any
 * write or read past the size asked for is then an ASan report.  Outside an
 * input (APR's own setup) the real functions are used.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr_general.h"
#include "apr_pools.h"

#include "fuzz_common.h"

#undef apr_pcalloc

static void *(*real_palloc)(apr_pool_t *, apr_size_t);
static int shim_active;
static void **blocks;
static size_t nblocks, cap;

static void *shim_alloc(apr_size_t size)
{
    /* malloc(0) may return NULL; a zero-size block still must not be
     * written to, which ASan checks for a 1-byte block too */
    void *b = malloc(size ? size : 1);

    if (!b) {
        abort();
    }
    if (nblocks == cap) {
        cap = cap ? 2 * cap : 256;
        blocks = realloc(blocks, cap * sizeof(*blocks));
        if (!blocks) {
            abort();
        }
    }
    blocks[nblocks++] = b;
    return b;
}

void *apr_palloc(apr_pool_t *p, apr_size_t size)
{
    if (shim_active) {
        return shim_alloc(size);
    }
    if (!real_palloc) {
        real_palloc = (void *(*)(apr_pool_t *, apr_size_t))dlsym(RTLD_NEXT,
                                                                 "apr_palloc");
        if (!real_palloc) {
            fprintf(stderr, "pool_shim: apr_palloc not found\n");
            abort();
        }
    }
    return real_palloc(p, size);
}

void *apr_pcalloc(apr_pool_t *p, apr_size_t size)
{
    void *b = apr_palloc(p, size);

    memset(b, 0, size);
    return b;
}

void fuzz_pool_begin(void)
{
    shim_active = 1;
}

void fuzz_pool_end(void)
{
    size_t i;

    shim_active = 0;
    for (i = 0; i < nblocks; i++) {
        free(blocks[i]);
    }
    nblocks = 0;
}

/* An exact-size, NUL-terminated copy of the input, so that a read past the
 * terminator is an ASan report too; freed by fuzz_pool_end(). */
char *fuzz_cstr(const unsigned char *data, size_t size)
{
    char *s = shim_alloc(size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Every target links this file: APR is started here, once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    return 0;
}
