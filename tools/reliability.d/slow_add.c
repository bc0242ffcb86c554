/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * slow_add.so: LD_PRELOAD into httpd to widen, on purpose, the window in
 * which balancer-manager adds a member.
 *
 * mod_proxy_balancer adds a member (b_nwrkr) holding only the balancer's
 * global mutex: ap_proxy_define_worker() pushes the new slot onto
 * balancer->workers first (nelts counts it), then fills a zeroed worker
 * whose ->s stays NULL until the end.  Request threads of the same child
 * run the lbmethod under the per-balancer thread mutex only, so they can
 * meet that slot.  The window is a few microseconds; this library makes it
 * SLOW_ADD_MS milliseconds (default 300): ap_proxy_hashfunc(), which
 * ap_proxy_define_worker() calls on the member's URL inside the window,
 * sleeps when the URL holds "slow-add".  Nothing else changes; every other
 * URL is hashed at once.
 *
 *   gcc -shared -fPIC -O1 -g -o slow_add.so slow_add.c -ldl
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mod_proxy.h: proxy_hash_t is an enum */
typedef unsigned int (*slow_add_hashfunc)(const char *str, int method);

unsigned int ap_proxy_hashfunc(const char *str, int method);

unsigned int ap_proxy_hashfunc(const char *str, int method)
{
    /* looked up on every call, never kept: httpd unloads mod_proxy.so
     * after its first configuration pass and loads it again, often at
     * another address (always so under ASan) */
    slow_add_hashfunc real = (slow_add_hashfunc)dlsym(RTLD_NEXT,
                                                      "ap_proxy_hashfunc");

    if (!real) {
        abort();
    }
    if (str && strstr(str, "slow-add")) {
        const char *ms = getenv("SLOW_ADD_MS");

        usleep((useconds_t)(ms ? atoi(ms) : 300) * 1000);
    }
    return real(str, method);
}
