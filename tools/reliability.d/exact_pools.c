/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * exact_pools.so: LD_PRELOAD into httpd so that AddressSanitizer and
 * valgrind see the bounds of every pool allocation.
 *
 * APR carves apr_palloc() memory out of 8 KB blocks: an overflow of one pool
 * buffer lands in the next and neither tool notices.  With this library
 * preloaded, apr_palloc() and apr_pcalloc() (from httpd, APR and every
 * module) return a malloc() block of exactly the size asked for, and
 * register a cleanup on the pool that frees it.  The free is deferred
 * through a FIFO of the last EXACT_POOLS_DEFER blocks, because APR frees a
 * pool's memory only after all its cleanups ran and some of those (registered
 * earlier, so run later) legitimately read memory allocated after them.
 * apr_psprintf() still writes into pool blocks directly and is not covered.
 *
 *   gcc -shared -fPIC -O1 -g -o exact_pools.so exact_pools.c \
 *       $(apr-1-config --includes --cppflags --link-ld) -ldl -lpthread
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr_pools.h"

#undef apr_pcalloc

#define EXACT_POOLS_DEFER 65536

static void *(*real_palloc)(apr_pool_t *, apr_size_t);
static __thread int inside;
static pthread_mutex_t fifo_lock = PTHREAD_MUTEX_INITIALIZER;
static void *fifo[EXACT_POOLS_DEFER];
static unsigned long fifo_head;

static void resolve(void)
{
    if (!real_palloc) {
        real_palloc = (void *(*)(apr_pool_t *, apr_size_t))dlsym(RTLD_NEXT,
                                                                 "apr_palloc");
        if (!real_palloc) {
            fputs("exact_pools: apr_palloc not found\n", stderr);
            abort();
        }
    }
}

static apr_status_t deferred_free(void *block)
{
    void *old;

    pthread_mutex_lock(&fifo_lock);
    old = fifo[fifo_head % EXACT_POOLS_DEFER];
    fifo[fifo_head % EXACT_POOLS_DEFER] = block;
    fifo_head++;
    pthread_mutex_unlock(&fifo_lock);
    free(old);
    return APR_SUCCESS;
}

void *apr_palloc(apr_pool_t *p, apr_size_t size)
{
    void *b;

    resolve();
    if (inside) {
        return real_palloc(p, size);
    }
    b = malloc(size ? size : 1);
    if (!b) {
        return real_palloc(p, size);
    }
    inside = 1;     /* the cleanup record itself comes from the real pool */
    apr_pool_cleanup_register(p, b, deferred_free, apr_pool_cleanup_null);
    inside = 0;
    return b;
}

void *apr_pcalloc(apr_pool_t *p, apr_size_t size)
{
    void *b = apr_palloc(p, size);

    if (b) {
        memset(b, 0, size);
    }
    return b;
}
