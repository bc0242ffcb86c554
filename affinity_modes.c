/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_modes.c: the registry of modes.  Each mode is one file
 * (affinity_mode_*.c) that fills one affinity_mode; this table is the only
 * place that lists them.  A new mode: its file, and one line here.
 */

#include "affinity_private.h"

extern const affinity_mode affinity_mode_cookie;
extern const affinity_mode affinity_mode_domain;
extern const affinity_mode affinity_mode_prefix;
extern const affinity_mode affinity_mode_learn;
extern const affinity_mode affinity_mode_hash;

/* The first is the default (no AffinityMode). */
const affinity_mode *const affinity_modes[] = {
    &affinity_mode_cookie,
    &affinity_mode_domain,
    &affinity_mode_prefix,
    &affinity_mode_learn,
    &affinity_mode_hash,
    NULL
};

const affinity_mode *affinity_mode_named(const char *name)
{
    int i;

    for (i = 0; affinity_modes[i]; i++) {
        if (!strcasecmp(name, affinity_modes[i]->name)) {
            return affinity_modes[i];
        }
    }
    return NULL;
}

const char *affinity_mode_names(apr_pool_t *p)
{
    const char *out = affinity_modes[0]->syntax;
    int i;

    for (i = 1; affinity_modes[i]; i++) {
        out = apr_pstrcat(p, out, affinity_modes[i + 1] ? ", " : " or ",
                          affinity_modes[i]->syntax, NULL);
    }
    return out;
}

void affinity_modes_register_hooks(apr_pool_t *p)
{
    int i;

    for (i = 0; affinity_modes[i]; i++) {
        if (affinity_modes[i]->register_hooks) {
            affinity_modes[i]->register_hooks(p);
        }
    }
}

void affinity_modes_post_config(server_rec *s)
{
    int i;

    for (i = 0; affinity_modes[i]; i++) {
        if (affinity_modes[i]->post_config) {
            affinity_modes[i]->post_config(s);
        }
    }
}
