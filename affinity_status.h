/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_status.h: what the status page's files share.  The page is split
 * by job: the counters in shared memory (affinity_status_counters.c), a view
 * model built once per request (affinity_status_view.c), one renderer per
 * format (affinity_status_html.c, _json.c, _prom.c), and the handler that
 * picks one (affinity_status.c).  Renderers read the view only.
 */

#ifndef AFFINITY_STATUS_H
#define AFFINITY_STATUS_H

#include "affinity_private.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden)
#endif

/* ---- AFFINITY_STATUS values and counters (affinity_status_counters.c) ---- */

/* Index = counter slot; new values are appended, never reordered (the slots
 * are in shared memory that outlives a graceful restart to a newer build). */
#define AFFINITY_NSTATUS 16
#define AFFINITY_STATUS_OTHER (AFFINITY_NSTATUS - 1)
#define AFFINITY_NAMED 10               /* values with a name */
#define AFFINITY_SHOWN (AFFINITY_NAMED + 1)     /* the named, then "other" */
/* Not a status: the slot that counts requests a member took because the
 * key's first member was over AffinityHashBalanceFactor (in a member's
 * record; never in a total). */
#define AFFINITY_COUNT_BOUNDED (AFFINITY_NSTATUS - 2)

/* A draining member that served no request of a session it kept for this
 * long is "safe to stop": sessions come back within seconds while their
 * users are active, and past the deadline none comes. */
#define AFFINITY_DRAIN_QUIET 10

/* A member's life as the status page reads it (affinity_private.h). */
void affinity_life_view(const char *bkey, const char *member,
                        unsigned int status, apr_uint32_t now,
                        affinity_member_life *out);
apr_uint32_t affinity_life_last_minute(const affinity_member_life *l,
                                       apr_uint32_t now);
void affinity_life_sticky(affinity_member_life *l, apr_uint32_t now);

/* The slot of an AFFINITY_STATUS value (other: AFFINITY_STATUS_OTHER). */
int affinity_status_index(const char *status);
/* The name of slot i. */
const char *affinity_status_name(int i);
/* The slot shown k-th. */
int affinity_shown_index(int k);

/* Are the counters there, and since when (a full start)? */
int affinity_counting(void);
apr_time_t affinity_counting_since(void);

/* Sums of every record, AFFINITY_NSTATUS counts each, by
 * "balancer sname\nmember name" ("" for the balancer's unrouted requests). */
apr_hash_t *affinity_counts_snapshot(apr_pool_t *p);

void affinity_counters_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                   server_rec *s);
/* log_transaction: counts the finder's final decision for the request. */
int affinity_status_count(request_rec *r);

/* ---- The view model (affinity_status_view.c) ----------------------------- */

typedef struct {
    proxy_worker_shared *s;         /* to match the modes' answers only */
    const char *name;
    const char *route;
    const char *redirect;
    const char *identity;
    char id_hex[AFFINITY_ID_HEX_LEN + 1];
    const char *id_shown;           /* id_hex, or its prefix */
    const char *state;              /* balancer-manager's Status column */
    double lbfactor;                /* as balancer-manager shows it */
    int lbset;
    int draining;
    apr_uint32_t draining_since;    /* seconds since the epoch; 0: not */
    apr_uint32_t last_session;      /* last sticky request; 0: none */
    apr_uint32_t sessions_minute;   /* sticky requests in the last minute */
    int drain_timeout;              /* AffinityDrainTimeout; 0: off */
    apr_uint32_t quiet;             /* seconds without a sticky request
                                     * (since the drain start if none) */
    int safe_to_stop;               /* draining, quiet for
                                     * AFFINITY_DRAIN_QUIET s at least */
    apr_uint64_t count[AFFINITY_NSTATUS];
    apr_uint64_t total;
    apr_uint64_t started;           /* requests that started a session here */
    int usable;                     /* now, as the finder would see it */
    int ramp;                       /* AffinitySlowStart: thousandths of its
                                     * share of new sessions it gets now
                                     * (AFFINITY_RAMP_FULL: all) */
    apr_time_t ramp_left;           /* how long it still ramps (0: done) */
} affinity_view_member;

typedef struct {
    proxy_balancer *balancer;
    const char *name;
    const affinity_dir_conf *conf;
    const char *mode;               /* the mode's name */
    const char *cookie;             /* the cookie the mode reads */
    const char *cookie_attrs;       /* NULL: the application's cookie */
    const char *salt_kind;
    const char *salt;
    apr_size_t salt_len;
    int sessions;                   /* requests carry sessions */
    int by_host;                    /* the host chooses (?host=) */
    int by_key;                     /* a key chooses (?key=, hash mode) */
    int nofailover;
    int max_members;
    int slow_start;                 /* AffinitySlowStart seconds, 0: off */
    int can_try;                    /* the page offers try links */
    const char *try_instead;        /* what a tester does instead of the
                                     * link's cookie (NULL: the link sets it) */
    apr_array_header_t *members;    /* affinity_view_member */
    apr_uint64_t unrouted[AFFINITY_NSTATUS];
    apr_uint64_t started;
} affinity_view_balancer;

/* ?id=: a value as pasted from a cookie, read for its route ID. */
typedef struct {
    const char *error;              /* why no ID could be read */
    char hex[AFFINITY_ID_HEX_LEN + 1];
    const char *form;               /* id, id+suffix, prefixed */
    const char *cookie_name;        /* NAME= given before the value */
    const char *suffix;             /* after the ID */
    const char *value;              /* as a cookie would carry it */
    apr_size_t value_len;
    int uppercase;
} affinity_id_query;

/* A member whose route ID the value carries, and what its mode says. */
typedef struct {
    const affinity_view_balancer *vb;
    const affinity_view_member *m;
    int honoured;
    const char *outcome;
} affinity_id_match;

/* ?host=: the member a balancer choosing by host sends it to (NULL: none
 * usable). */
typedef struct {
    const affinity_view_balancer *vb;
    const affinity_view_member *m;
} affinity_host_match;

typedef struct {
    request_rec *r;
    apr_array_header_t *balancers;  /* affinity_view_balancer */
    int ids_prefix;                 /* AffinityStatusShowIds prefix */
    int counting;
    apr_time_t since;
    int generation;
    const char *id_query;           /* NULL: none asked */
    affinity_id_query id;
    apr_array_header_t *id_matches; /* affinity_id_match */
    int store;                      /* learn mode's store is set up */
    affinity_store_health store_health;
    const char *host_query;         /* NULL: none asked */
    const char *host;               /* as httpd keeps r->hostname */
    apr_array_header_t *host_matches;   /* affinity_host_match */
    int key_asked;                  /* ?key= was given (never shown) */
    apr_array_header_t *key_matches;    /* affinity_host_match */
} affinity_view;

/* Digits of a route ID shown under AffinityStatusShowIds prefix: enough to
 * tell members apart and match a cookie by eye, far from forging one. */
#define AFFINITY_SHOWN_ID_DIGITS 8

/* Everything the page shows, read once: members from the balancers' slots
 * in shared memory (copied under the balancer's locks), each balancer's
 * configuration as a request to its root gets it, the counters, and the
 * answers of the modes to the lookups (each mode takes the locks its
 * answer needs).  id and host: the queries, NULL when not asked. */
affinity_view *affinity_view_build(request_rec *r, const char *key,
                                   const char *id,
                                   const char *host);

/* ---- The renderers: one per format --------------------------------------- */

void affinity_status_html(request_rec *r, const affinity_view *v);
void affinity_status_json(request_rec *r, const affinity_view *v);
void affinity_status_prometheus(request_rec *r, const affinity_view *v);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif /* AFFINITY_STATUS_H */
