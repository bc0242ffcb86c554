/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_private.h: what the module's httpd glue files share.
 *
 * One configuration record, one per-process member table per balancer, one
 * per-request state; each way of choosing a member (affinity_cookie.c,
 * affinity_domain.c) works on those.  The pure logic is in mod_affinity.h.
 */

#ifndef AFFINITY_PRIVATE_H
#define AFFINITY_PRIVATE_H

#include "apr_strings.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_mmn.h"

#include "mod_proxy.h"

#include "mod_affinity.h"

#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 82)
#error "mod_affinity needs httpd 2.4.35 or later (proxy_balancer_get_best_worker)"
#endif

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 124)
#define AFFINITY_WORKER_NAME(w) ((w)->s->name_ex)
#else
#define AFFINITY_WORKER_NAME(w) ((w)->s->name)
#endif

extern module AP_MODULE_DECLARE_DATA affinity_module;

/* The module record is the .so's only export: the names below are shared
 * between the module's own files, not with other modules. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden)
#endif

/* mod_proxy's, fetched in post_config (mod_affinity.c) */
extern APR_OPTIONAL_FN_TYPE(ap_proxy_retry_worker) *affinity_retry_worker;

/* ---- Configuration (affinity_config.c) ---------------------------------- */

typedef enum {
    AFFINITY_MODE_UNSET = -1,
    AFFINITY_MODE_COOKIE = 0,
    AFFINITY_MODE_DOMAIN = 1,
    AFFINITY_MODE_PREFIX = 2,
    AFFINITY_MODE_LEARN = 3
} affinity_mode_e;

/* The directives whose place in the configuration files is kept, for the
 * configuration check (affinity_check.c) to name file and line.  A new
 * directive adds itself before AFFINITY_DIRECTIVE_COUNT. */
typedef enum {
    AFFINITY_DIRECTIVE_COOKIE,
    AFFINITY_DIRECTIVE_SALT,
    AFFINITY_DIRECTIVE_REMOVE,
    AFFINITY_DIRECTIVE_NOCACHE,
    AFFINITY_DIRECTIVE_MODE,
    AFFINITY_DIRECTIVE_WARNINGS,
    AFFINITY_DIRECTIVE_MAX_IDLE,
    AFFINITY_DIRECTIVE_MAX_LIFE,
    AFFINITY_DIRECTIVE_COUNT
} affinity_directive_e;

typedef struct {
    const char *cookie_name;        /* NULL: unset */
    const char *cookie_attrs;       /* as sent, Path always present */
    const char *salt;               /* NULL: unset; may hold any bytes */
    apr_size_t salt_len;
    const char *salt_kind;          /* none, random, file or string (status) */
    int remove;                     /* -1: unset */
    int nocache;                    /* -1: unset */
    affinity_mode_e mode;
    const char *mode_cookie;        /* the application's cookie NAME of
                                     * "AffinityMode prefix|learn NAME", or
                                     * NULL */
    int store_timeout;              /* AffinityStoreTimeout, -1: unset */
    int max_idle;                   /* seconds, 0: off; -1: unset */
    int max_life;                   /* seconds, 0: off; -1: unset */
    int legacy_routes;              /* -1: unset */
    /* AffinityWarnings: int tag, positive on, negative off, in order
     * (outer sections first, so the last word on a tag wins); NULL: unset */
    apr_array_header_t *warnings;
    /* where each directive was set in this section or an outer one; NULL:
     * unset (the nodes live as long as the configuration) */
    const ap_directive_t *set_at[AFFINITY_DIRECTIVE_COUNT];
} affinity_dir_conf;

#define AFFINITY_STORE_TIMEOUT_DEFAULT 1800

extern const command_rec affinity_cmds[];
void *affinity_create_dir_config(apr_pool_t *p, char *dir);
void *affinity_merge_dir_config(apr_pool_t *p, void *basev, void *addv);

/* Says at startup whether AffinitySalt random made a new salt or kept the
 * running server's (AFF0004, AFF0005). */
void affinity_config_post_config(server_rec *s);

/* Stops startup when AffinityCookieMaxIdle/MaxLife are set where no salt
 * applies (AFF0060). */
int affinity_config_check(server_rec *s);

static APR_INLINE int affinity_max_idle_of(const affinity_dir_conf *conf)
{
    return conf->max_idle > 0 ? conf->max_idle : 0;
}

static APR_INLINE int affinity_max_life_of(const affinity_dir_conf *conf)
{
    return conf->max_life > 0 ? conf->max_life : 0;
}

/* Dated, signed cookie values in force? */
static APR_INLINE int affinity_expiry_on(const affinity_dir_conf *conf)
{
    return conf->max_idle > 0 || conf->max_life > 0;
}

/* Is the warning with this tag number (9 for AFF0009) on where conf is in
 * force?  AffinityWarnings -AFFnnnn turns one off. */
int affinity_warning_on(const affinity_dir_conf *conf, int tag);

static APR_INLINE const char *affinity_cookie_name_of(const affinity_dir_conf *conf)
{
    return conf->cookie_name ? conf->cookie_name : AFFINITY_DEFAULT_COOKIE;
}

static APR_INLINE const char *affinity_cookie_attrs_of(const affinity_dir_conf *conf)
{
    return conf->cookie_name ? conf->cookie_attrs : AFFINITY_DEFAULT_ATTRS;
}

/* ---- Member table (affinity_table.c) ------------------------------------ */

typedef struct {
    proxy_worker *worker;                       /* NULL: left out (being added) */
    char route[PROXY_WORKER_MAX_ROUTE_SIZE];    /* s->route when built */
    char id_hex[AFFINITY_ID_HEX_LEN + 1];
    apr_uint64_t seed;                          /* domain-mode hash seed */
} affinity_member;

/* One per balancer, salt and process.  A balancer reached from sections with
 * different salts keeps one table per salt, side by side in a short list on
 * balancer->context (unused by httpd 2.4); sections with equal salt bytes
 * share one.  Only touched with the balancer's thread mutex held, as the
 * finder always is, and freed by a rebuild: nothing that outlives the finder
 * (env, notes, headers, cookies, logs written later) may point into it, so
 * whatever a request keeps is copied into r->pool. */
typedef struct affinity_table affinity_table;
struct affinity_table {
    apr_pool_t *pool;               /* the table's own; dropped on rebuild */
    affinity_table *next;           /* the same balancer, another salt */
    const char *salt;               /* the salt the IDs were made with (a copy) */
    apr_size_t salt_len;
    int nelts;
    int missing;                    /* members[] left out: worker NULL */
    affinity_member *members;       /* parallel to balancer->workers */
    affinity_index *index;          /* route ID -> members[] slot */
    affinity_mac_key mac;           /* signs dated cookie values */
};

/* Holds the balancer's global mutex, which balancer-manager holds while it
 * adds a member (and nothing else does while taking the thread mutex, so
 * taking it with the thread mutex held cannot deadlock): in this process no
 * slot of balancer->workers is then half made.  Returns whether it is held;
 * affinity_members_unlock() takes that answer. */
int affinity_members_lock(proxy_balancer *balancer);
void affinity_members_unlock(proxy_balancer *balancer, int locked);

/* A slot of balancer->workers whose worker is complete: a worker, shared
 * data, initialised.  A member being added is not, for a while; an add that
 * failed half way may leave one that never is. */
int affinity_worker_ready(const proxy_worker *w);

/* How many slots of balancer->workers a table build has counted (the most
 * of any table of the balancer; the finder's own table was brought up to
 * date when it began).  Builds count under the global mutex, and a finder
 * holds the thread mutex under which other processes' members are
 * appended, so those slots are all complete (or left broken by an add that
 * failed half way, which affinity_worker_ready() tells) and stay so.  A
 * slot counted later may be half made by balancer-manager in this process
 * right now: only these may be read without a lock. */
int affinity_members_settled(const proxy_balancer *balancer);

/* A member's identity: its route (the caller's bounded copy of s->route)
 * when set, else the socket path of a unix-socket member, else host:port,
 * an IPv6 address in brackets. */
const char *affinity_identity(apr_pool_t *p, const proxy_worker *w,
                              const char *route);

/* The table for the balancer and the salt in force, built first when there
 * is none for that salt yet, rebuilt when members were added. */
affinity_table *affinity_table_get(proxy_balancer *balancer,
                                   const affinity_dir_conf *conf,
                                   request_rec *r);

/* The table with every member's route as built, rebuilt if any changed. */
affinity_table *affinity_table_verify_all(proxy_balancer *balancer,
                                          affinity_table *t,
                                          request_rec *r, int *rebuilt);

/* The member for a worker, with its ID checked against the live route
 * (*t is rebuilt when it is not: members of the old *t are gone). */
affinity_member *affinity_member_of(proxy_balancer *balancer,
                                    affinity_table **t,
                                    proxy_worker *w, request_rec *r);

/* Does the member's live route still match the one its ID was made from?
 * Runs per member in domain mode and for unknown IDs: most members have no
 * route, and one byte settles those. */
static APR_INLINE int affinity_member_current(const affinity_member *m)
{
    const char *live = m->worker->s->route;

    if (m->route[0] != live[0]) {
        return 0;
    }
    return !m->route[0]
           || !strncmp(m->route + 1, live + 1, sizeof(m->route) - 1);
}

/* ---- Per-request state (affinity_request.c) ----------------------------- */

/* A value of our cookie as read, before it is checked against the
 * configuration and the member table (affinity_cookie_resolve). */
typedef enum {
    AFFINITY_VALUE_BARE,            /* a 40-hex ID */
    AFFINITY_VALUE_DATED,           /* ID.FIRST.LAST.MAC */
    AFFINITY_VALUE_LEGACY           /* stock SESSION.ROUTE */
} affinity_value_kind;

typedef struct {
    affinity_value_kind kind;
    affinity_stamp st;              /* BARE: the ID only */
    const char *route;              /* LEGACY: the route, request pool */
} affinity_value;

/* How an accepted ID came: decides whether the response re-issues it. */
typedef struct {
    affinity_value_kind kind;
    int checked;                    /* DATED: MAC and dates verified */
    apr_uint32_t first, last;       /* DATED */
} affinity_id_info;

/* The finder runs again for the same request after a member fails, and the
 * cookie may have been stripped from headers_in by then: what was read and
 * tried is kept here, in r->request_config. */
typedef struct {
    int cookie_seen;                /* our cookie name was present */
    apr_array_header_t *values;     /* affinity_value, header order */
    int resolved;                   /* values turned into ids */
    int expired;                    /* dated values too old */
    int malformed;                  /* values that are not IDs (AFF0007) */
    apr_array_header_t *ids;        /* accepted IDs, header order */
    apr_array_header_t *info;       /* affinity_id_info, parallel to ids */
    apr_array_header_t *tried;      /* proxy_worker *: failed this request */
    proxy_worker *chosen;
    const char *cookie_name;        /* cookie mode: the cookie's name */
    proxy_balancer *balancer;       /* of the last finder call (status) */
    const char *set_cookie;         /* Set-Cookie value to send, or NULL */
    int nocache;
    affinity_mode_e mode;           /* the mode of the section that chose */
    const char *mode_cookie;        /* prefix and learn modes: NAME */
    /* the response side (affinity_response.c) */
    int filter_added;
    int answered;                   /* the member's response was seen */
    const char *sent_cookie;        /* put in headers_out by the finder */
    apr_table_t *seen_headers_out;  /* as the finder left them, to tell */
    apr_table_t *seen_err_headers_out;  /* whether a member answered */
    int seen_headers_n, seen_err_headers_n;
    const char *seen_status_line;
    /* prefix mode (ids holds the IDs of the prefixes, in header order) */
    const char *key;                /* first value of the application's
                                     * cookie, without its prefix */
    apr_size_t key_len;
    const char *served_id;          /* hex ID of the member chosen */
    const char *carried_id;         /* hex of the request's first ID (NULL
                                     * when none), or of the member a kept
                                     * prefix names */
    struct affinity_learn_state *learn;     /* learn mode */
} affinity_request;

/* Calls fn for every value of the cookie name, in every Cookie header of
 * the request, in order (affinity_cookie_scan's rules); returns how many
 * values there were. */
int affinity_request_cookies(request_rec *r, const char *name,
                             affinity_cookie_fn *fn, void *baton);

affinity_request *affinity_request_get(request_rec *r,
                                       const affinity_dir_conf *conf);

/* Is a header table key (possibly NULL) the header name?  Case-insensitive;
 * the first letter is compared first because most keys differ there. */
static APR_INLINE int affinity_header_is(const char *key, const char *name)
{
    return key && apr_tolower(*key) == apr_tolower(*name)
           && !strcasecmp(key, name);
}

static APR_INLINE int affinity_was_tried(const affinity_request *req,
                                         const proxy_worker *w)
{
    int i;

    for (i = 0; i < req->tried->nelts; i++) {
        if (APR_ARRAY_IDX(req->tried, i, proxy_worker *) == w) {
            return 1;
        }
    }
    return 0;
}

/* Usable as mod_proxy_balancer defines it, after httpd's own retry check,
 * and not already failed for this request. */
int affinity_usable(const affinity_request *req, proxy_worker *w,
                    request_rec *r);

/* Decides between two candidates, as httpd's is_best callbacks do: may
 * keep state in baton (byrequests' lbstatus accounting). */
typedef int affinity_is_best_fn(proxy_worker *current, proxy_worker *prev_best,
                                void *baton);

/* A member's kind for the walk below: HOT_SPARE, HOT_STANDBY (a spare
 * when both are set, as in httpd) or 0. */
static APR_INLINE unsigned int affinity_reserve_of(unsigned int status)
{
    return (status & PROXY_WORKER_HOT_SPARE) ? PROXY_WORKER_HOT_SPARE
           : status & PROXY_WORKER_HOT_STANDBY;
}

proxy_worker *affinity_walk_reserves(proxy_worker *const *slots, int n,
                                     int lbset, unsigned int kind, int limit,
                                     const affinity_request *req,
                                     affinity_is_best_fn *is_best,
                                     void *baton, proxy_worker *best);

/* The member is_best prefers among those proxy_balancer_get_best_worker()
 * would offer it, by its rules: lbset 0, 1, ... until one yields a member;
 * within a set a draining member is skipped, and counts as unusable unless
 * it is a spare or a standby; an unusable one gets httpd's retry check
 * first; the others are offered to is_best, then as many usable spares as
 * there were unusable members, then, if none won, the usable standbys.
 * NULL when none is usable.
 *
 * Only over the slots a table build counted (affinity_members_settled),
 * each checked complete: httpd's own walk reads every slot, one that
 * balancer-manager is adding in this process too, and that crashed the
 * child.  A member that already failed this request counts as unusable (a
 * spare may stand in for it) even when retry=0 has revived it.
 *
 * Inline, so that each caller's is_best is inlined into its own copy; no
 * allocation (spares and standbys are found again by a second look at the
 * slots, which only a set that has them pays). */
static APR_INLINE proxy_worker *affinity_walk(proxy_balancer *balancer,
                                              request_rec *r,
                                              const affinity_request *req,
                                              affinity_is_best_fn *is_best,
                                              void *baton)
{
    int n = affinity_members_settled(balancer);
    /* read after n: any later version of the list holds those n slots */
    proxy_worker *const *slots = (proxy_worker *const *)balancer->workers->elts;
    const unsigned int skip = PROXY_WORKER_NOT_USABLE_BITMAP | PROXY_WORKER_DRAIN
                              | PROXY_WORKER_HOT_SPARE | PROXY_WORKER_HOT_STANDBY;
    int tried = req->tried->nelts > 0;
    proxy_worker *best = NULL;
    int lbset, max_lbset = 0;

    for (lbset = 0; !best && lbset <= max_lbset; lbset++) {
        int i, unusable = 0, spares = 0, standbys = 0;

        for (i = 0; i < n; i++) {
            proxy_worker *w = slots[i];
            proxy_worker_shared *s;
            unsigned int st, kind;

            if (!w || !(s = w->s)
                || !((st = s->status) & PROXY_WORKER_INITIALIZED)) {
                continue;           /* an add that failed half way */
            }
            if (s->lbset != lbset) {
                if (s->lbset > max_lbset) {
                    max_lbset = s->lbset;
                }
                continue;
            }
            if (!(st & skip) && !(tried && affinity_was_tried(req, w))) {
                if (is_best(w, best, baton)) {
                    best = w;
                }
                continue;
            }
            kind = affinity_reserve_of(st);
            if (st & PROXY_WORKER_DRAIN) {
                unusable += !kind;
            }
            else if (!affinity_usable(req, w, r)) {
                unusable += !kind;
            }
            else if (kind == PROXY_WORKER_HOT_SPARE) {
                spares++;
            }
            else if (kind) {
                standbys++;
            }
            else if (is_best(w, best, baton)) {
                best = w;           /* revived by the retry check */
            }
        }
        if (spares && unusable) {
            best = affinity_walk_reserves(slots, n, lbset, PROXY_WORKER_HOT_SPARE,
                                          unusable, req, is_best, baton, best);
        }
        if (!best && standbys) {
            best = affinity_walk_reserves(slots, n, lbset,
                                          PROXY_WORKER_HOT_STANDBY, standbys,
                                          req, is_best, baton, best);
        }
    }
    return best;
}

/* A member for a new session, chosen exactly as byrequests does. */
proxy_worker *affinity_pick_new(proxy_balancer *balancer, request_rec *r,
                                const affinity_request *req);

/* BALANCER_SESSION_STICKY (name, which lives as long as the configuration)
 * and BALANCER_SESSION_ROUTE (the request's first ID), as stock stickiness
 * sets them, when the request carried an ID.  Returns that ID's hex, in
 * r->pool, or NULL. */
const char *affinity_set_session_env(request_rec *r,
                                     const affinity_request *req,
                                     const char *name);

/* AFFINITY_ROUTE, a copy of m's ID in r->pool (unset when m is NULL), and
 * AFFINITY_STATUS (a string that lives as long as the request).  Returns
 * the copy, or NULL. */
const char *affinity_set_env(request_rec *r, const affinity_member *m,
                             const char *status);

/* ---- Sessions (affinity_session.c) -------------------------------------- */

/* The member named by the first of the request's IDs (req->ids) that names
 * a usable member, or NULL; then *down is the first named member that is
 * not usable, if any.  Routes edited live are caught here. */
affinity_member *affinity_session_find(proxy_balancer *balancer,
                                       request_rec *r,
                                       affinity_table **t,
                                       const affinity_request *req,
                                       affinity_member **down);

/* Where a session goes whose member is not usable, the mode's way. */
typedef proxy_worker *affinity_move_fn(proxy_balancer *balancer,
                                       request_rec *r,
                                       const affinity_request *req,
                                       void *baton);

/* The session's member down is not usable: its Route Redirect if that is
 * usable; else NULL when nofailover is On (the client gets 503); else the
 * member move() picks (NULL: none left). */
proxy_worker *affinity_session_move(proxy_balancer *balancer, request_rec *r,
                                    affinity_table *t,
                                    const affinity_request *req,
                                    const affinity_member *down,
                                    affinity_move_fn *move, void *baton);
/* ---- Configuration check and log hygiene (affinity_check.c) ----------- */

/* Warnings AffinityWarnings may turn off: 1 if tag is one of them. */
int affinity_warning_known(int tag);

/* The configuration check, at every start and graceful restart (the
 * real post_config pass); apache2ctl -t runs it from test_config. */
void affinity_check_config(apr_pool_t *p, server_rec *s);
void affinity_check_register_hooks(apr_pool_t *p);

/* Per-request warnings that a flood could repeat: may this one be logged
 * now?  At most one line per balancer, kind and process every
 * AFFINITY_LOG_INTERVAL; *suppressed: how many were not logged since the
 * last one that was.  Called with the balancer's thread mutex held or not. */
#define AFFINITY_LOG_INTERVAL 10    /* seconds */
typedef enum {
    AFFINITY_LOG_NOFAILOVER,        /* AFF0009 */
    AFFINITY_LOG_KINDS
} affinity_log_kind_e;
int affinity_log_allowed(const proxy_balancer *balancer,
                         affinity_log_kind_e kind, apr_time_t now,
                         apr_uint32_t *suppressed);

/* The lbmethod this module provides (mod_affinity.c). */
extern const proxy_balancer_method affinity_method;

/* ---- Ways of choosing a member ----------------------------------------- */

/* affinity_cookie.c */
/* Turns the cookie's values into accepted IDs, once per request: dated
 * values are verified (one HMAC each), stock values mapped to a member. */
void affinity_cookie_resolve(proxy_balancer *balancer, request_rec *r,
                             const affinity_dir_conf *conf, affinity_table **t,
                             affinity_request *req);
proxy_worker *affinity_find_cookie(proxy_balancer *balancer, request_rec *r,
                                   const affinity_dir_conf *conf,
                                   affinity_table *t, affinity_request *req);

/* affinity_prefix.c */
void affinity_prefix_read(request_rec *r, const affinity_dir_conf *conf,
                          affinity_request *req);
proxy_worker *affinity_find_prefix(proxy_balancer *balancer, request_rec *r,
                                   const affinity_dir_conf *conf,
                                   affinity_table *t, affinity_request *req);
/* The response's header work of prefix mode (from affinity_response_fixup):
 * gives the member's Set-Cookie of NAME the prefix of the member that
 * served; returns how many it rewrote.  Running it twice changes nothing
 * more. */
int affinity_prefix_response(request_rec *r, const affinity_request *req);

/* affinity_learn.c */
void affinity_learn_read(request_rec *r, const affinity_dir_conf *conf,
                         affinity_request *req);
proxy_worker *affinity_find_learn(proxy_balancer *balancer, request_rec *r,
                                  const affinity_dir_conf *conf,
                                  affinity_table *t, affinity_request *req);
/* The response's work of learn mode (from affinity_response_fixup): learns
 * from the member's Set-Cookie of NAME; runs once per request. */
void affinity_learn_response(request_rec *r, const affinity_request *req);
/* The store lookups made before the finder, outside the balancer's lock
 * (a fixups hook); post_config finds mod_proxy for it. */
void affinity_learn_register_hooks(apr_pool_t *p);
void affinity_learn_post_config(void);

/* affinity_domain.c */
/* The member a key maps to by weighted rendezvous hashing over the usable,
 * non-draining members (lbsets, spares and standbys as mod_proxy does them). */
proxy_worker *affinity_pick_hashed(proxy_balancer *balancer, request_rec *r,
                                   affinity_table **t,
                                   const affinity_request *req,
                                   apr_uint64_t key);
proxy_worker *affinity_find_domain(proxy_balancer *balancer, request_rec *r,
                                   const affinity_dir_conf *conf,
                                   affinity_table *t,
                                   const affinity_request *req);

/* ---- Learn mode's store (affinity_store.c) ---------------------------- */

/* AffinityStore PROVIDER[:ARGS] (server config) */
const char *affinity_set_store(cmd_parms *cmd, void *dconf, const char *arg);
/* AffinityMode learn was seen: post_config sets up the store. */
void affinity_store_learn_used(void);
int affinity_store_pre_config(apr_pool_t *pconf);
int affinity_store_check_config(apr_pool_t *ptemp, server_rec *s);
int affinity_store_post_config(apr_pool_t *ptemp, server_rec *s);
void affinity_store_child_init(apr_pool_t *p, server_rec *s);

/* Is the store set up and not backing off after a failure? */
int affinity_store_available(void);
/* APR_SUCCESS: found (id, *written); APR_NOTFOUND: no entry; anything
 * else: the store failed or is backing off (logged, rate-limited). */
apr_status_t affinity_store_get(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                unsigned char id[AFFINITY_ID_LEN],
                                apr_int64_t *written);
apr_status_t affinity_store_put(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                const unsigned char id[AFFINITY_ID_LEN],
                                int timeout);
apr_status_t affinity_store_remove(request_rec *r,
                                   const unsigned char key[AFFINITY_LEARN_KEY_LEN]);

/* ---- The response (affinity_response.c) -------------------------------- */

/* Called by the finder after every choice it makes for a request (a retried
 * finder calls it again): readies the response side for what req says now. */
void affinity_response_prepare(request_rec *r, affinity_request *req);

/* Does the response's work of req's mode, once a member has answered, in
 * r->headers_out and r->err_headers_out.  Cookie mode: the member's own
 * cookies of our name are dropped unless they delete it, ours
 * (req->set_cookie) is there exactly once (added to target when missing);
 * prefix mode: the member's NAME gets the prefix; learn mode: NAME's values
 * are learned.  A response setting a cookie that names a member is kept out
 * of shared caches (AffinityNoCache; Cache-Control goes to target). */
void affinity_response_fixup(request_rec *r, const affinity_request *req,
                             apr_table_t *target);

void affinity_response_register_hooks(apr_pool_t *p);

/* ---- Status handler and counters (affinity_status.c) ------------------- */

void affinity_status_register_hooks(apr_pool_t *p);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif /* AFFINITY_PRIVATE_H */
