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
 * per-request state, the session rules, the pickers and the header walks;
 * each mode (affinity_mode_*.c, behind affinity_mode below, listed in
 * affinity_modes.c) works on those.  The pure logic is in mod_affinity.h.
 */

#ifndef AFFINITY_PRIVATE_H
#define AFFINITY_PRIVATE_H

#include "apr_strings.h"

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_mmn.h"

#include "ap_expr.h"
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

/* mod_proxy's, fetched in post_config (mod_affinity.c; defined in
 * affinity_request.c, which uses it) */
extern APR_OPTIONAL_FN_TYPE(ap_proxy_retry_worker) *affinity_retry_worker;

/* ---- Configuration (affinity_config.c, affinity_directives.c) ----------- */

typedef struct affinity_mode affinity_mode;
typedef struct affinity_request affinity_request;

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
    AFFINITY_DIRECTIVE_UPGRADE,
    AFFINITY_DIRECTIVE_DRAIN_TIMEOUT,
    AFFINITY_DIRECTIVE_BALANCE_FACTOR,
    AFFINITY_DIRECTIVE_COUNT
} affinity_directive_e;

typedef struct {
    const char *cookie_name;        /* NULL: unset */
    const char *cookie_attrs;       /* as sent, Path always present */
    const char *salt;               /* NULL: unset; may hold any bytes */
    apr_size_t salt_len;
    const char *salt_kind;          /* none, random, file or string (status) */
    /* learn mode's store key secret, derived from the salt when it is set
     * (NULL: unset, the secret of no salt) */
    const affinity_learn_secret *learn_secret;
    int remove;                     /* -1: unset */
    int nocache;                    /* -1: unset */
    const affinity_mode *mode;      /* NULL: unset (affinity_mode_of) */
    const char *mode_cookie;        /* the application's cookie NAME of
                                     * "AffinityMode MODE NAME", or NULL */
    const char *mode_header;        /* "header NAME" when NAME is a header,
                                     * not a cookie ("AffinityMode learn
                                     * header:NAME"); in hash mode the
                                     * header EXPR is no more than
                                     * ("%{HTTP:NAME}": NAME); else NULL */
    const ap_expr_info_t *hash_expr;    /* "AffinityMode hash EXPR", or NULL */
    int balance_factor;             /* AffinityHashBalanceFactor PERCENT,
                                     * 0: off; -1: unset (off) */
    int store_timeout;              /* AffinityStoreTimeout, -1: unset */
    int max_idle;                   /* seconds, 0: off; -1: unset */
    int max_life;                   /* seconds, 0: off; -1: unset */
    int legacy_routes;              /* -1: unset */
    int upgrade;                    /* AffinityCookieUpgrade, -1: unset */
    int slow_start;                 /* AffinitySlowStart seconds, 0: off;
                                     * -1: unset */
    int drain_timeout;              /* AffinityDrainTimeout seconds, 0:
                                     * off; -1: unset */
    int status_ids;                 /* AffinityStatusShowIds: 1 full,
                                     * 0 prefix, -1: unset (full) */
    /* AffinityWarnings: int tag, positive on, negative off, in order
     * (outer sections first, so the last word on a tag wins); NULL: unset */
    apr_array_header_t *warnings;
    /* where each directive was set in this section or an outer one; NULL:
     * unset (the nodes live as long as the configuration) */
    const ap_directive_t *set_at[AFFINITY_DIRECTIVE_COUNT];
} affinity_dir_conf;

#define AFFINITY_STORE_TIMEOUT_DEFAULT 1800

void *affinity_create_dir_config(apr_pool_t *p, char *dir);
void *affinity_merge_dir_config(apr_pool_t *p, void *basev, void *addv);

/* AffinityMode's arguments, for a mode's configure (mode: its name, for the
 * message): none, or the application's session cookie NAME, which goes to
 * conf->mode_cookie. */
const char *affinity_mode_no_arg(cmd_parms *cmd, affinity_dir_conf *conf,
                                 const char *mode, const char *arg);
const char *affinity_mode_cookie_arg(cmd_parms *cmd, affinity_dir_conf *conf,
                                     const char *mode, const char *arg);

/* The directives (affinity_directives.c). */
extern const command_rec affinity_cmds[];

/* Says at startup whether AffinitySalt random made a new salt or kept the
 * running server's (AFF0004, AFF0005; affinity_directives.c). */
void affinity_config_post_config(server_rec *s);

/* Stops startup when AffinityCookieMaxIdle/MaxLife are in force where no
 * salt is, in any configuration a request can get (AFF0060; in
 * affinity_check.c, which walks the sections). */
int affinity_config_check(apr_pool_t *p, server_rec *s);

/* For a request that reaches a balancer without httpd's proxy walk
 * (SetHandler "proxy:balancer://NAME", a per-directory RewriteRule [P]):
 * merges our settings of the <Proxy>/<ProxyMatch> sections the walk would
 * have merged for url (the proxy URL, after "proxy:") into
 * r->per_dir_config, on top of the request's own.  post_config calls
 * affinity_config_proxy_found() first. */
void affinity_config_proxy_found(void);
void affinity_config_proxy_sections(request_rec *r, const char *url);

/* Does a <Proxy>/<ProxyMatch> section apply to a proxy URL?  The one
 * matcher, as httpd's proxy walk matches. */
int affinity_proxy_section_matches(const proxy_dir_conf *pd, const char *url);

/* Our settings of server s's <Proxy> sections that apply to url, merged in
 * their order over base (NULL: over nothing); base if none applies. */
const affinity_dir_conf *affinity_config_proxy_merge(apr_pool_t *p,
                                                     server_rec *s,
                                                     const char *url,
                                                     const affinity_dir_conf *base);

/* One configuration of this balancer, as a request to its root gets it in
 * server s: the server's settings, then the <Proxy> sections that apply to
 * "balancer://NAME/".  What the status page reports and the checks judge. */
const affinity_dir_conf *affinity_config_balancer(apr_pool_t *p, server_rec *s,
                                                  const proxy_balancer *b);

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

/* Values without signed dates (bare IDs, stock values) honoured and
 * re-issued dated while expiry is on?  Only during a migration the operator
 * declares (AffinityCookieUpgrade On); otherwise they count as expired, or
 * a client could keep its member for ever by cutting the dates off. */
static APR_INLINE int affinity_upgrade_on(const affinity_dir_conf *conf)
{
    return conf->upgrade == 1;
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
/* A member as a hashed pick reads it (affinity_pick.c's fast walk), one
 * per complete slot of a table, in slot order, made at each build: what
 * the plain walk looks up per member per request (the table entry, the
 * seed) is at hand in one compact array, and the check that the route is
 * the one the seed was made from is affinity_route_head_same().  Status,
 * lbset, lbfactor and busy are read live. */
typedef struct {
    apr_uint64_t seed;
    affinity_route_head route;
    proxy_worker *worker;
    proxy_worker_shared *s;         /* worker->s */
    int slot;                       /* in members[] and balancer->workers */
} affinity_hash_member;

typedef struct affinity_table affinity_table;
struct affinity_table {
    apr_pool_t *pool;               /* the table's own; dropped on rebuild */
    affinity_table *next;           /* the same balancer, another salt */
    const char *salt;               /* the salt the IDs were made with (a copy) */
    apr_size_t salt_len;
    int nelts;
    int missing;                    /* members[] left out: worker NULL */
    affinity_member *members;       /* parallel to balancer->workers */
    affinity_hash_member *hashed;   /* the complete ones, in slot order */
    int nhashed;
    affinity_index *index;          /* route ID -> members[] slot */
    affinity_mac_key mac;           /* signs dated cookie values */
    affinity_verified *verified;    /* dated values whose MAC verified under
                                     * mac; made at the first one (a salt
                                     * change builds a new table, so it
                                     * starts empty) */
    void *counters;                 /* the balancer's status counters (in
                                     * pconf, outlive the table), or NULL */
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

/* The member whose shared data is s (its ID checked as affinity_member_of
 * does), or NULL; with the balancer's thread mutex held. */
affinity_member *affinity_member_by_shared(proxy_balancer *balancer,
                                           affinity_table **t,
                                           const proxy_worker_shared *s,
                                           request_rec *r);

/* Does the member's live route still match the one its ID was made from?
 * Runs per member for unknown IDs and in the hashed picks' fallback walk
 * (their own walk uses affinity_route_head_same): most members have no
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
    const char *text;               /* BARE, DATED: the value as sent (its
                                     * first 40 bytes are the ID's hex), in
                                     * the request's header; else NULL */
} affinity_value;

/* How an accepted ID came: decides whether the response re-issues it. */
typedef struct {
    affinity_value_kind kind;
    int checked;                    /* DATED: MAC and dates verified */
    apr_uint32_t first, last;       /* DATED */
    const char *hex;                /* the ID's hex as sent (40 bytes, not
                                     * terminated), or NULL */
} affinity_id_info;

/* The finder runs again for the same request after a member fails, and the
 * cookie may have been stripped from headers_in by then: what was read and
 * tried is kept here, in r->request_config. */
struct affinity_request {
    const affinity_mode *mode;      /* of the section that chose */
    int cookie_seen;                /* the mode's cookie name was present */
    apr_array_header_t *values;     /* affinity_value, header order */
    int resolved;                   /* values turned into ids */
    int expired;                    /* dated values too old */
    int malformed;                  /* values that are not IDs (AFF0007) */
    apr_array_header_t *ids;        /* accepted IDs, header order */
    apr_array_header_t *info;       /* affinity_id_info, parallel to ids */
    apr_array_header_t *tried;      /* proxy_worker *: failed this request */
    proxy_worker *chosen;
    int slow_start;                 /* AffinitySlowStart in force, seconds */
    const char *cookie_name;        /* cookie mode: the cookie's name */
    proxy_balancer *balancer;       /* of the last finder call (status) */
    const char *set_cookie;         /* Set-Cookie value to send, or NULL */
    int nocache;
    const char *mode_cookie;        /* NAME of "AffinityMode MODE NAME" */
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
    /* hash mode: the expression's value, hashed (never kept in clear) */
    apr_uint64_t hash_key;
    int hash_empty;                 /* the value was empty: a new member */
    int bounded;                    /* hash, domain: the key's first member
                                     * was over AffinityHashBalanceFactor */
    /* what the status page counts when the request is logged */
    const char *status;             /* AFFINITY_STATUS as the finder left it */
    void *counters;                 /* the balancer's counters (table's) */
    int drain_timeout;              /* AffinityDrainTimeout in force, seconds,
                                     * 0: off (hash, domain: the keys of a
                                     * draining member stay until then) */
    int drained;                    /* hash, domain: the key's first member
                                     * has been draining past it */
};


/* The request's state: made, and read by the mode, on the first call; on
 * a later one (the member chosen last failed) that member is added to
 * tried. */
affinity_request *affinity_request_get(request_rec *r,
                                       const affinity_dir_conf *conf,
                                       const affinity_mode *mode);

/* An empty request state that reads nothing from a request (the status
 * page's lookups hand the modes a value of their own). */
affinity_request *affinity_request_new(apr_pool_t *p);

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

/* BALANCER_SESSION_STICKY (name, which lives as long as the configuration)
 * and BALANCER_SESSION_ROUTE (the request's first ID), as stock stickiness
 * sets them, when the request carried an ID.  Returns that ID's hex, in
 * r->pool, or NULL. */
const char *affinity_set_session_env(request_rec *r,
                                     const affinity_request *req,
                                     const char *name);

/* The same with the first ID's hex already made (in r->pool): returns it. */
const char *affinity_set_session_env_hex(request_rec *r, const char *name,
                                         const char *hex);

/* AFFINITY_ROUTE, a copy of m's ID in r->pool (unset when m is NULL), and
 * AFFINITY_STATUS (a string that lives as long as the request).  Returns
 * the copy, or NULL. */
const char *affinity_set_env(request_rec *r, const affinity_member *m,
                             const char *status);

/* ---- Headers (affinity_headers.c) --------------------------------------- */

/* Calls fn for every value of the cookie name, in every Cookie header of
 * the request, in order (affinity_cookie_scan's rules); returns how many
 * values there were. */
int affinity_request_cookies(request_rec *r, const char *name,
                             affinity_cookie_fn *fn, void *baton);

/* Called for each Set-Cookie header of a table, in order.  *value may be
 * replaced (the header keeps its place); sc is the header parsed when it
 * sets or deletes the cookie name, NULL otherwise (another cookie, none, or
 * no name given).  Returns non-zero to drop the header. */
typedef int affinity_set_cookie_fn(void *baton, const char **value,
                                   const affinity_set_cookie_t *sc);

/* The one walk over a response's Set-Cookie headers (name may be NULL);
 * returns how many were dropped. */
int affinity_set_cookie_walk(request_rec *r, apr_table_t *t, const char *name,
                             affinity_set_cookie_fn *fn, void *baton);

/* A response that sets a cookie naming a member stays out of shared caches:
 * the Cache-Control lines of both tables become one, made private
 * (affinity_cache_control_private), in target. */
void affinity_cache_control_fix(request_rec *r, apr_table_t *target);

/* ---- A member's life, in shared memory (affinity_status_counters.c) ---- */

/* Kept in the member's counter record, so every child and every graceful
 * restart agrees.  Seconds since the epoch, 0: none.  Append fields, never
 * reorder: spare is room for more without changing the record's size. */
#define AFFINITY_LIFE_RING 6            /* buckets ... */
#define AFFINITY_LIFE_BUCKET 10         /* ... of 10 s: the last minute */
typedef struct {
    /* AffinitySlowStart: when the member last became usable for new
     * sessions (apr_time_t), or 0: never looked at, 1: last seen taking no
     * new sessions, 2: usable since the full start (the AFFINITY_SINCE_*
     * of affinity_status_counters.c); first, so it is 8-byte aligned */
    volatile apr_uint64_t usable_since;
    volatile apr_uint32_t draining_since;   /* DRAIN seen set since */
    volatile apr_uint32_t last_session;     /* last sticky request */
    volatile apr_uint32_t bucket_at[AFFINITY_LIFE_RING];
    volatile apr_uint32_t bucket_n[AFFINITY_LIFE_RING];
    volatile apr_uint32_t spare[4];
} affinity_member_life;

/* The record of w (NULL: none, e.g. shared memory could not be made). */
affinity_member_life *affinity_life_of(proxy_balancer *balancer,
                                       proxy_worker *w, request_rec *r);
/* Brings the drain start up to date with the member's status flags;
 * returns it (0: not draining). */
apr_uint32_t affinity_life_drain_note(affinity_member_life *l,
                                      unsigned int status, apr_uint32_t now);

/* ---- Sessions (affinity_session.c) -------------------------------------- */


/* The one skeleton of every mode whose requests carry a session (cookie,
 * prefix, learn): which of four cases a request is, and the member each
 * gets.  The modes add their own logging, variables and cookies. */
typedef enum {
    AFFINITY_SESSION_KEPT,          /* the first of req->ids that names a
                                     * usable member names this one */
    AFFINITY_SESSION_DOWN,          /* else the first member named is not
                                     * usable: the session moves */
    AFFINITY_SESSION_UNKNOWN,       /* else the request carried a session
                                     * value that names no member */
    AFFINITY_SESSION_NEW            /* else: a new session */
} affinity_session_e;

/* A mode's pick for a session that is not where its IDs say: down is the
 * session's member that is not usable (DOWN), or NULL (UNKNOWN). */
typedef proxy_worker *affinity_move_fn(proxy_balancer *balancer,
                                       request_rec *r, affinity_table **t,
                                       const affinity_request *req,
                                       const affinity_member *down,
                                       void *baton);

typedef struct {
    affinity_session_e kind;
    int drained;                    /* DOWN: the member is usable but has
                                     * been draining past
                                     * AffinityDrainTimeout
                                     * (AFFINITY_STATUS=drained) */
    affinity_member *member;        /* KEPT: the session's member */
    affinity_member *down;          /* DOWN: the member that is not usable */
    proxy_worker *worker;           /* the choice; NULL: none */
} affinity_session_choice;

/* The session rules, written once:
 *  KEPT: the member the request's IDs name (routes edited live are caught);
 *  DOWN: that member's Route Redirect if usable; else none when nofailover
 *        is On (the client gets 503); else move() (NULL: a new member);
 *        also, with drained set, a usable member draining for longer than
 *        AffinityDrainTimeout: Redirect, else move() (nofailover aside:
 *        the operator asked for the deadline);
 *  UNKNOWN: only when the mode gives unknown (the request carried a value
 *        that names no member): unknown() picks;
 *  NEW: a new member, as byrequests picks.
 * *t is the table in force after (a rebuild replaces it). */
void affinity_session_choose(proxy_balancer *balancer, request_rec *r,
                             affinity_table **t, const affinity_request *req,
                             affinity_move_fn *move, affinity_move_fn *unknown,
                             void *baton, affinity_session_choice *c);
/* ---- Log lines a flood could repeat (affinity_log.c) -------------------- */

/* The one rate limiter: may a line whose gate last passed at *last (0:
 * never) pass at second sec, interval seconds at least after the last?
 * held (may be NULL) counts the lines held back, and *suppressed (may be
 * NULL) gets that count when one passes.  Lock-free: the gate may be in
 * shared memory, used by every child at once. */
int affinity_log_gate_pass(volatile apr_uint32_t *last,
                           volatile apr_uint32_t *held, apr_uint32_t sec,
                           apr_uint32_t interval, apr_uint32_t *suppressed);

/* Per-request warnings: at most one line per balancer, kind and process
 * every AFFINITY_LOG_INTERVAL; *suppressed: how many were not logged since
 * the last one that was.  Called with the balancer's thread mutex held or
 * not. */
#define AFFINITY_LOG_INTERVAL 10    /* seconds */
typedef enum {
    AFFINITY_LOG_NOFAILOVER,        /* AFF0009 */
    AFFINITY_LOG_NOSALT,            /* AFF0067 */
    AFFINITY_LOG_KINDS
} affinity_log_kind_e;
int affinity_log_allowed(const proxy_balancer *balancer,
                         affinity_log_kind_e kind, apr_time_t now,
                         apr_uint32_t *suppressed);
void affinity_log_register_hooks(apr_pool_t *p);

/* ---- Configuration check (affinity_check.c) ----------------------------- */

/* Warnings AffinityWarnings may turn off: 1 if tag is one of them. */
int affinity_warning_known(int tag);

/* The configuration check, at every start and graceful restart (the
 * real post_config pass); apache2ctl -t runs it from test_config. */
void affinity_check_config(apr_pool_t *p, server_rec *s);
void affinity_check_register_hooks(apr_pool_t *p);

/* The name of the lbmethod this module provides (mod_affinity.c registers
 * it; balancer->s->lbpname holds it). */
#define AFFINITY_LBMETHOD "affinity"

/* ---- Pickers (affinity_pick.c) ----------------------------------------- */

/* Where w stands against a drain deadline of timeout seconds (> 0):
 * draining for longer (PAST), draining for less (KEEP), or neither: not
 * draining, or no shared record to date its start (NONE: as if no
 * deadline were set).  Records the drain start if no process has yet. */
typedef enum {
    AFFINITY_DRAIN_NONE,
    AFFINITY_DRAIN_KEEP,
    AFFINITY_DRAIN_PAST
} affinity_drain_e;
affinity_drain_e affinity_drain_state(proxy_balancer *balancer,
                                      request_rec *r, proxy_worker *w,
                                      int timeout);

/* AffinitySlowStart (affinity_status_counters.c keeps each member's "usable
 * since" in shared memory with its counters).  A ramp is in thousandths of
 * the member's lbfactor share: from AFFINITY_RAMP_FLOOR when it became
 * usable, linearly to AFFINITY_RAMP_FULL after the given seconds. */
#define AFFINITY_RAMP_FULL  1000
#define AFFINITY_RAMP_FLOOR 100
/* The member's ramp now (updating its "usable since" if it changed); *left
 * (may be NULL): how long it still ramps. */
int affinity_slow_start_ramp(const proxy_balancer *balancer,
                             const proxy_worker *w, int seconds,
                             apr_time_t now, request_rec *r,
                             apr_time_t *left);
/* The weight a new-session pick counts for the member: lbfactor x ramp,
 * in whole lbfactor units (the remainder carries over). */
int affinity_slow_start_weight(const proxy_balancer *balancer,
                               const proxy_worker *w, int seconds,
                               apr_time_t now, request_rec *r);
/* Records that a member takes no new sessions now, if so. */
void affinity_slow_start_observe(const proxy_balancer *balancer,
                                 const proxy_worker *w, apr_time_t now);

/* A member for a new session, chosen exactly as byrequests does. */
proxy_worker *affinity_pick_new(proxy_balancer *balancer, request_rec *r,
                                const affinity_request *req);

/* The member a key maps to by weighted rendezvous hashing over the usable,
 * non-draining members (lbsets, spares and standbys as mod_proxy does them). */
proxy_worker *affinity_pick_hashed(proxy_balancer *balancer, request_rec *r,
                                   affinity_table **t,
                                   const affinity_request *req,
                                   apr_uint64_t key);

/* The same with bounded loads: factor (AffinityHashBalanceFactor, 0: off):
 * a member whose requests in progress would exceed factor% of its weighted
 * share (under AffinitySlowStart, req->slow_start: times its ramp) is
 * passed over for the next in the key's order; *bounded (may be NULL) says
 * it happened.  With req->drain_timeout, a draining member is a candidate
 * until it has drained that long (its keys stay); after, *drained (may be
 * NULL) says the key's first member was such a one. */
proxy_worker *affinity_pick_bounded(proxy_balancer *balancer, request_rec *r,
                                    affinity_table **t,
                                    const affinity_request *req,
                                    apr_uint64_t key, int factor, int *bounded,
                                    int *drained);

/* The balance factor in force (0: off). */
static APR_INLINE int affinity_balance_factor_of(const affinity_dir_conf *conf)
{
    return conf->balance_factor > 0 ? conf->balance_factor : 0;
}

/* ---- Learn mode's store (affinity_store.c) ---------------------------- */

/* AffinityStore PROVIDER[:ARGS] (server config) */
const char *affinity_set_store(cmd_parms *cmd, void *dconf, const char *arg);
/* AffinityMode learn was seen: post_config sets up the store. */
void affinity_store_learn_used(void);
int affinity_store_pre_config(apr_pool_t *pconf);
int affinity_store_check_config(apr_pool_t *ptemp, server_rec *s);
int affinity_store_post_config(apr_pool_t *ptemp, server_rec *s);
void affinity_store_child_init(apr_pool_t *p, server_rec *s);

/* AffinityStoreLocal BYTES (server config) */
const char *affinity_set_store_local(cmd_parms *cmd, void *dconf,
                                     const char *arg);

/* AffinityStoreCacheTime MS (server config) */
const char *affinity_set_store_cache_time(cmd_parms *cmd, void *dconf,
                                          const char *arg);

/* Is the store set up and not backing off after a failure? */
int affinity_store_available(void);

/* The store's health, counted in shared memory by every child (status
 * page).  Calls are counted once each, after the one retry on a fresh
 * connection. */
enum {
    AFFINITY_STORE_LOOKUPS,             /* lookups made */
    AFFINITY_STORE_WRITES,              /* writes made */
    AFFINITY_STORE_REMOVALS,            /* removals made */
    AFFINITY_STORE_ERRORS,              /* of those, failed */
    AFFINITY_STORE_SKIPPED,             /* calls not made: backing off */
    AFFINITY_STORE_LOCAL_HITS,          /* lookups the local tier answered */
    AFFINITY_STORE_WRITEBACKS,          /* local entries written back */
    AFFINITY_STORE_NCOUNT
};
typedef struct {
    const char *spec;                   /* AffinityStore as in force */
    int up;                             /* the last call succeeded */
    int backing_off;                    /* skipped for now (slow failure) */
    apr_time_t last_error;              /* 0: none since the start */
    apr_time_t outage;                  /* first failure of the outage
                                         * going on; 0: none */
    apr_size_t local_size;              /* the local tier's; 0: none */
    apr_uint64_t count[AFFINITY_STORE_NCOUNT];
} affinity_store_health;
/* 0 when no store is set up (no learn-mode balancer). */
int affinity_store_health_get(affinity_store_health *h);
/* APR_SUCCESS: found (id, *written); APR_NOTFOUND: no entry; anything
 * else: the store failed or is backing off (logged, rate-limited). */
apr_status_t affinity_store_get(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                unsigned char id[AFFINITY_ID_LEN],
                                apr_int64_t *written, int timeout);
/* The same under a key of versions up to 0.1.0 (learn mode's fallback). */
apr_status_t affinity_store_get_old(request_rec *r,
                                    const unsigned char key[AFFINITY_LEARN_OLD_KEY_LEN],
                                    unsigned char id[AFFINITY_ID_LEN],
                                    apr_int64_t *written, int timeout);
apr_status_t affinity_store_put(request_rec *r,
                                const unsigned char key[AFFINITY_LEARN_KEY_LEN],
                                const unsigned char id[AFFINITY_ID_LEN],
                                int timeout);
apr_status_t affinity_store_remove(request_rec *r,
                                   const unsigned char key[AFFINITY_LEARN_KEY_LEN]);
/* The same under a key of versions up to 0.1.0 (a session found there
 * that the member ends). */
apr_status_t affinity_store_remove_old(request_rec *r,
                                       const unsigned char key[AFFINITY_LEARN_OLD_KEY_LEN]);

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

/* ---- What a mode would do with a value (the status page asks) -------- */

/* A value as a request would carry it where the mode reads one, judged by
 * the mode's own code, so that the page never re-implements a choice:
 * ids holds the route IDs the mode accepts from it, in order (the first
 * naming a usable member wins, affinity_session_choose()); with none, a
 * request carrying it gets status, for the reason why. */
typedef struct {
    const char *carrier;            /* the cookie the mode reads (NULL: none) */
    apr_array_header_t *ids;        /* AFFINITY_ID_LEN bytes each */
    const char *status;             /* AFFINITY_STATUS when ids is empty */
    const char *why;                /* why ids is empty */
    const char *moves;              /* where a session goes whose member is
                                     * not usable and has no usable Route
                                     * Redirect (nofailover Off) */
} affinity_answer;

/* ---- Modes (affinity_modes.c: the registry; affinity_mode_*.c: one each) */

/* A mode is one way of choosing a member, and everything that goes with it:
 * the directive's arguments, what it reads from a request, the finder, the
 * response's work, and what the status page and the configuration check
 * need to know.  Only the registry and the mode's own file name it; the
 * finder (mod_affinity.c), the response filter, the check and the status
 * page call through this.  A new mode is one file and one registry line. */

/* flags */
#define AFFINITY_SETS_ROUTE_COOKIE  0x1     /* issues the module's own route
                                             * cookie (AffinityCookie) */
#define AFFINITY_CARRIES_SESSION    0x2     /* requests carry a session (the
                                             * session rules apply); else
                                             * every request is assigned */
#define AFFINITY_BOUNDS_LOAD        0x4     /* picks by a key, with
                                             * AffinityHashBalanceFactor's
                                             * bound (the check's AFF0132) */

struct affinity_mode {
    const char *name;               /* AffinityMode NAME */
    const char *syntax;             /* for messages: "prefix NAME" */
    unsigned int flags;
    /* "AffinityMode NAME [ARG]": checks ARG (NULL when not given) and
     * takes it into conf; returns an error string, or NULL */
    const char *(*configure)(cmd_parms *cmd, affinity_dir_conf *conf,
                             const char *arg);
    /* reads the request, once per request (the finder may run again);
     * NULL: nothing to read */
    void (*read)(request_rec *r, const affinity_dir_conf *conf,
                 affinity_request *req);
    /* the finder's choice, with the balancer's thread mutex held; sets
     * AFFINITY_STATUS and the other variables */
    proxy_worker *(*find)(proxy_balancer *balancer, request_rec *r,
                          const affinity_dir_conf *conf, affinity_table *t,
                          affinity_request *req);
    /* has the response work to do? (NULL: never) and that work, once a
     * member answered (affinity_response.c says where it runs); target:
     * the table a header the module adds goes to */
    int (*response_wanted)(const affinity_request *req);
    void (*response)(request_rec *r, const affinity_request *req,
                     apr_table_t *target);
    /* the cookie requests carry the session in; *attrs: its attributes
     * when the module sets it, NULL when it is the application's */
    const char *(*cookie)(const affinity_dir_conf *conf, const char **attrs);
    /* the status page's ?id=: what a request carrying value would get (the
     * mode's own code judges it; takes the balancer's thread mutex itself
     * if it needs the member table) */
    void (*answer)(proxy_balancer *balancer, request_rec *r,
                   const affinity_dir_conf *conf, const char *value,
                   apr_size_t len, affinity_answer *a);
    /* the status page's ?host=: the member a request for host goes to (its
     * shared data), or NULL; the function is NULL when the host chooses
     * nothing in this mode */
    proxy_worker_shared *(*answer_host)(proxy_balancer *balancer,
                                        request_rec *r,
                                        const affinity_dir_conf *conf,
                                        const char *host);
    /* the AFFINITY_STATUS values of requests that started a session (or,
     * without sessions, were assigned): the status page's share column */
    const char *const *started;
    /* the check's AFF0045: directives (1 << affinity_directive_e) that
     * have no effect in this mode */
    unsigned int unused_directives;
    /* hooks of the mode's own (NULL: none), and post_config's second pass */
    void (*register_hooks)(apr_pool_t *p);
    void (*post_config)(server_rec *s);
    /* the status page's try link: the Set-Cookie header value that makes a
     * browser's requests a session of the member whose shared data is s, as
     * the finder would issue it for a new session there (in r->pool); NULL
     * when it cannot, *instead then saying what a tester does instead (or
     * NULL: s is not a member now).  s NULL asks only whether the mode can
     * (*instead NULL: it can).  The function is NULL when requests carry no
     * session. */
    const char *(*try_cookie)(proxy_balancer *balancer, request_rec *r,
                              const affinity_dir_conf *conf,
                              const proxy_worker_shared *s,
                              const char **instead);
    /* the status page's ?key=: the member a request whose key (the value
     * the mode reads, as a request would carry it) is key goes to, or NULL;
     * the function is NULL when no such key chooses in this mode */
    proxy_worker_shared *(*answer_key)(proxy_balancer *balancer,
                                       request_rec *r,
                                       const affinity_dir_conf *conf,
                                       const char *key);
};

/* Every mode, the default (cookie) first; NULL-terminated. */
extern const affinity_mode *const affinity_modes[];

/* The mode AffinityMode names (case-insensitive), or NULL. */
const affinity_mode *affinity_mode_named(const char *name);

/* The modes' syntaxes for a message, e.g. "cookie, domain or prefix
 * NAME". */
const char *affinity_mode_names(apr_pool_t *p);

/* The mode in force: the one configured, else the default. */
static APR_INLINE const affinity_mode *affinity_mode_of(const affinity_dir_conf *conf)
{
    return conf->mode ? conf->mode : affinity_modes[0];
}

void affinity_modes_register_hooks(apr_pool_t *p);
void affinity_modes_post_config(server_rec *s);

/* ---- Status page (affinity_status*.c; affinity_status.h) ---------------- */

void affinity_status_register_hooks(apr_pool_t *p);

/* The balancer's status counters, looked up once per table build (the
 * request only copies the pointer), or NULL. */
void *affinity_status_counters_of(const proxy_balancer *balancer);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif /* AFFINITY_PRIVATE_H */
