/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_directives.c: the directives (the command table and their
 * handlers), the salt, and what startup says about a random one.  The
 * record they fill is affinity_config.c's.
 */

#include <errno.h>

#include "apr_file_io.h"
#include "apr_lib.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

#define AFFINITY_RANDOM_SALT_KEY "mod_affinity.random_salt"
#define AFFINITY_RANDOM_SALT_LEN 32
#define AFFINITY_SALT_FILE_MAX   65536
/* Set when this configuration cycle uses AffinitySalt random, so that
 * post_config can say whether the salt is new or kept. */
static int affinity_random_salt_used;

/* Keep where a directive was set, for the configuration check. */
static void affinity_set_at(cmd_parms *cmd, affinity_dir_conf *conf,
                            affinity_directive_e which)
{
    conf->set_at[which] = cmd->directive;
}

static const char *affinity_set_cookie(cmd_parms *cmd, void *dconf,
                                       const char *name, const char *attrs)
{
    affinity_dir_conf *conf = dconf;
    const char *err;

    if (!affinity_cookie_name_valid(name)) {
        return apr_psprintf(cmd->pool, "AffinityCookie: \"%s\" is not a valid "
                            "cookie name; use an RFC 6265 token (letters, "
                            "digits and !#$%%&'*+-.^_`|~, no spaces)", name);
    }
    conf->cookie_attrs = affinity_cookie_attrs(cmd->pool,
                                               attrs ? attrs : AFFINITY_DEFAULT_ATTRS,
                                               &err);
    if (!conf->cookie_attrs) {
        return apr_psprintf(cmd->pool, "AffinityCookie: cookie attributes "
                            "rejected: %s; write them on one line, e.g. "
                            "\"Path=/; HttpOnly; Secure\"", err);
    }
    conf->cookie_name = name;
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_COOKIE);
    return NULL;
}

/* The random salt belongs to the parent process, not to one configuration
 * cycle: it lives in the process pool, so graceful restarts keep it and
 * every child inherits the same bytes. */
static const char *affinity_random_salt(cmd_parms *cmd, apr_size_t *len)
{
    apr_pool_t *pp = cmd->server->process->pool;
    void *salt = NULL;
    apr_status_t rv;

    apr_pool_userdata_get(&salt, AFFINITY_RANDOM_SALT_KEY, pp);
    if (!salt) {
        salt = apr_palloc(pp, AFFINITY_RANDOM_SALT_LEN);
        rv = apr_generate_random_bytes(salt, AFFINITY_RANDOM_SALT_LEN);
        if (rv != APR_SUCCESS) {
            return NULL;
        }
        apr_pool_userdata_setn(salt, AFFINITY_RANDOM_SALT_KEY, NULL, pp);
        /* post_config announces a fresh salt once */
        apr_pool_userdata_setn("1", AFFINITY_RANDOM_SALT_KEY ".new", NULL, pp);
    }
    affinity_random_salt_used = 1;
    *len = AFFINITY_RANDOM_SALT_LEN;
    return salt;
}

static const char *affinity_file_salt(cmd_parms *cmd, const char *path,
                                      apr_size_t *len, const char **err)
{
    const char *full = ap_server_root_relative(cmd->temp_pool, path);
    apr_file_t *f;
    char *buf, *eol;
    apr_size_t n = AFFINITY_SALT_FILE_MAX;
    apr_status_t rv;
    char ebuf[120];

    if (!full) {
        *err = apr_psprintf(cmd->pool, "AffinitySalt: invalid path "
                            "\"file:%s\"", path);
        return NULL;
    }
    rv = apr_file_open(&f, full, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                       cmd->temp_pool);
    if (rv == APR_SUCCESS) {
        buf = apr_palloc(cmd->temp_pool, n + 1);
        rv = apr_file_read_full(f, buf, n, &n);
        apr_file_close(f);
        if (rv == APR_EOF) {
            rv = APR_SUCCESS;
        }
    }
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(cmd->pool, "AffinitySalt: cannot read salt file "
                            "%s: %s; create it with the salt on its first line "
                            "(readable by the user that starts httpd), or use "
                            "AffinitySalt random", full,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
        return NULL;
    }
    buf[n] = '\0';
    eol = memchr(buf, '\n', n);
    n = eol ? (apr_size_t)(eol - buf) : n;
    if (n && buf[n - 1] == '\r') {
        n--;
    }
    if (!n) {
        *err = apr_psprintf(cmd->pool, "AffinitySalt: the first line of %s is "
                            "empty; write the salt on it, or use "
                            "AffinitySalt none for no salt", full);
        return NULL;
    }
    *len = n;
    return apr_pmemdup(cmd->pool, buf, n);
}

static const char *affinity_set_salt(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    affinity_dir_conf *conf = dconf;
    affinity_learn_secret *secret;
    const char *err = NULL;

    if (!strcasecmp(arg, "none")) {
        conf->salt = "";
        conf->salt_len = 0;
        conf->salt_kind = "none";
    }
    else if (!strcasecmp(arg, "random")) {
        conf->salt_kind = "random";
        conf->salt = affinity_random_salt(cmd, &conf->salt_len);
        if (!conf->salt) {
            return "AffinitySalt: random: the system random source failed; "
                   "use AffinitySalt file:PATH instead";
        }
    }
    else if (!strncmp(arg, "file:", 5)) {
        conf->salt_kind = "file";
        conf->salt = affinity_file_salt(cmd, arg + 5, &conf->salt_len, &err);
        if (!conf->salt) {
            return err;
        }
    }
    else if (!*arg) {
        return "AffinitySalt: empty salt; use AffinitySalt none for no salt";
    }
    else {
        conf->salt = arg;
        conf->salt_len = strlen(arg);
        conf->salt_kind = "string";
    }
    /* once per configuration, not per request: learn mode's store keys */
    secret = apr_palloc(cmd->pool, sizeof(*secret));
    affinity_learn_secret_init(secret, conf->salt, conf->salt_len);
    conf->learn_secret = secret;
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_SALT);
    return NULL;
}

/* AffinityHashBalanceFactor PERCENT|Off: bounded loads (hash, domain). */
static const char *affinity_set_balance_factor(cmd_parms *cmd, void *dconf,
                                               const char *arg)
{
    affinity_dir_conf *conf = dconf;
    char *end;
    long v;

    if (!strcasecmp(arg, "off")) {
        conf->balance_factor = 0;
        return NULL;
    }
    v = strtol(arg, &end, 10);
    if (end == arg || *end || v < 101 || v > 100000) {
        return apr_psprintf(cmd->pool, "AffinityHashBalanceFactor: \"%s\" is "
                            "not a percentage from 101 to 100000 or Off; a "
                            "member may take PERCENT%% of the average load "
                            "before a key passes it over, e.g. "
                            "AffinityHashBalanceFactor 150", arg);
    }
    conf->balance_factor = (int)v;
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_BALANCE_FACTOR);
    return NULL;
}

/* AffinityMode MODE [ARG]: the mode takes its own arguments. */
static const char *affinity_set_mode(cmd_parms *cmd, void *dconf,
                                     const char *arg, const char *name)
{
    affinity_dir_conf *conf = dconf;
    const affinity_mode *mode = affinity_mode_named(arg);
    const char *err;

    if (!mode) {
        return apr_psprintf(cmd->pool, "AffinityMode: unknown mode \"%s\"; "
                            "use %s", arg, affinity_mode_names(cmd->pool));
    }
    err = mode->configure(cmd, conf, name);
    if (err) {
        return err;
    }
    conf->mode = mode;
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_MODE);
    return NULL;
}

static const char *affinity_set_store_timeout(cmd_parms *cmd, void *dconf,
                                              const char *arg)
{
    affinity_dir_conf *conf = dconf;
    char *end;
    long v = strtol(arg, &end, 10);

    if (!apr_isdigit(*arg) || *end || v < 1 || v > 31536000) {
        return apr_psprintf(cmd->pool, "AffinityStoreTimeout: \"%s\" is not "
                            "a number of seconds from 1 to 31536000 (a year), "
                            "e.g. AffinityStoreTimeout 1800", arg);
    }
    conf->store_timeout = (int)v;
    return NULL;
}

/* Seconds: 10 years at most, so that dates and sums stay far from any
 * overflow. */
#define AFFINITY_SECONDS_MAX 315360000

static const char *affinity_set_lifetime(cmd_parms *cmd, void *dconf,
                                         const char *arg)
{
    affinity_dir_conf *conf = dconf;
    const char *name = cmd->cmd->name;
    apr_int64_t v;
    char *end;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno || end == arg || *end || v < 0 || v > AFFINITY_SECONDS_MAX
        || !apr_isdigit(*arg)) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a number of "
                            "seconds; use 0 (off) to %d, e.g. %s 1800", name,
                            arg, AFFINITY_SECONDS_MAX, name);
    }
    if (cmd->info) {
        conf->max_life = (int)v;
        affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_MAX_LIFE);
    }
    else {
        conf->max_idle = (int)v;
        affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_MAX_IDLE);
    }
    return NULL;
}

/* AffinitySlowStart SECONDS: how long a member that became usable ramps up
 * to its share of new sessions. */
static const char *affinity_set_slow_start(cmd_parms *cmd, void *dconf,
                                           const char *arg)
{
    affinity_dir_conf *conf = dconf;
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || !apr_isdigit(*arg) || *end || v < 0 || v > 86400) {
        return apr_psprintf(cmd->pool, "AffinitySlowStart: \"%s\" is not a "
                            "number of seconds; use 0 (off) to 86400 (a day), "
                            "e.g. AffinitySlowStart 60", arg);
    }
    conf->slow_start = (int)v;
    return NULL;
}

/* AffinityDrainTimeout SECONDS|off: how long a draining member keeps its
 * sessions before each moves, once, where a new session would go. */
static const char *affinity_set_drain_timeout(cmd_parms *cmd, void *dconf,
                                              const char *arg)
{
    affinity_dir_conf *conf = dconf;
    apr_int64_t v;
    char *end;

    if (!strcasecmp(arg, "off")) {
        v = 0;
    }
    else {
        errno = 0;
        v = apr_strtoi64(arg, &end, 10);
        if (errno || end == arg || *end || v < 1 || v > AFFINITY_SECONDS_MAX
            || !apr_isdigit(*arg)) {
            return apr_psprintf(cmd->pool, "AffinityDrainTimeout: \"%s\" is "
                                "not a number of seconds from 1 to %d, nor "
                                "off; e.g. AffinityDrainTimeout 600", arg,
                                AFFINITY_SECONDS_MAX);
        }
    }
    conf->drain_timeout = (int)v;
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_DRAIN_TIMEOUT);
    return NULL;
}

static const char *affinity_set_flag(cmd_parms *cmd, void *dconf, int on)
{
    affinity_dir_conf *conf = dconf;
    const char *err = ap_set_flag_slot(cmd, dconf, on);

    if (!err) {
        affinity_set_at(cmd, conf,
                        cmd->info == (void *)APR_OFFSETOF(affinity_dir_conf, remove)
                        ? AFFINITY_DIRECTIVE_REMOVE
                        : cmd->info == (void *)APR_OFFSETOF(affinity_dir_conf, upgrade)
                        ? AFFINITY_DIRECTIVE_UPGRADE : AFFINITY_DIRECTIVE_NOCACHE);
    }
    return err;
}

/* AffinityStatusShowIds full|prefix: what the status page shows of each
 * member's route ID.  With a salt, a full ID is a valid cookie value. */
static const char *affinity_set_status_ids(cmd_parms *cmd, void *dconf,
                                           const char *arg)
{
    affinity_dir_conf *conf = dconf;

    if (!strcasecmp(arg, "full")) {
        conf->status_ids = 1;
    }
    else if (!strcasecmp(arg, "prefix")) {
        conf->status_ids = 0;
    }
    else {
        return apr_psprintf(cmd->pool, "AffinityStatusShowIds: \"%s\" is "
                            "neither full nor prefix", arg);
    }
    return NULL;
}

/* AffinityWarnings -AFF0041 [+AFF0041 ...]: each word turns one warning off
 * (-) or back on (+) here and in inner sections. */
static const char *affinity_set_warnings(cmd_parms *cmd, void *dconf,
                                         const char *arg)
{
    affinity_dir_conf *conf = dconf;
    const char *digits = arg + 1;
    int tag = 0, i;

    if ((*arg == '-' || *arg == '+') && !strncasecmp(digits, "AFF", 3)) {
        digits += 3;
        for (i = 0; i < 4 && apr_isdigit(digits[i]); i++) {
            tag = tag * 10 + (digits[i] - '0');
        }
        if (i == 4 && !digits[4] && affinity_warning_known(tag)) {
            if (!conf->warnings) {
                conf->warnings = apr_array_make(cmd->pool, 2, sizeof(int));
            }
            APR_ARRAY_PUSH(conf->warnings, int) = *arg == '-' ? -tag : tag;
            affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_WARNINGS);
            return NULL;
        }
    }
    return apr_psprintf(cmd->pool, "AffinityWarnings: \"%s\" is not a "
                        "warning that can be turned off; write -AFFnnnn with "
                        "the tag of a warning httpd printed (see the README's "
                        "tag table), e.g. AffinityWarnings -AFF0041", arg);
}

const command_rec affinity_cmds[] = {
    AP_INIT_TAKE12("AffinityCookie", affinity_set_cookie, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "cookie name and optional attributes, e.g. "
                   "ROUTEID \"Path=/; HttpOnly\""),
    AP_INIT_TAKE1("AffinitySalt", affinity_set_salt, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "none, random, file:PATH or a salt string"),
    AP_INIT_FLAG("AffinityCookieRemove", affinity_set_flag,
                 (void *)APR_OFFSETOF(affinity_dir_conf, remove),
                 RSRC_CONF | ACCESS_CONF,
                 "On: do not pass the affinity cookie to the member"),
    AP_INIT_FLAG("AffinityNoCache", affinity_set_flag,
                 (void *)APR_OFFSETOF(affinity_dir_conf, nocache),
                 RSRC_CONF | ACCESS_CONF,
                 "On: mark responses that set the cookie Cache-Control: private"),
    AP_INIT_TAKE12("AffinityMode", affinity_set_mode, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "cookie (default), domain, prefix NAME, learn NAME "
                   "(NAME: the application's session cookie) or hash EXPR "
                   "(an httpd string expression)"),
    AP_INIT_TAKE1("AffinityHashBalanceFactor", affinity_set_balance_factor,
                  NULL, RSRC_CONF | ACCESS_CONF,
                  "hash and domain modes: PERCENT (at least 101) of the "
                  "average requests in progress a member may have before a "
                  "key passes it over, or Off (default)"),
    AP_INIT_TAKE1("AffinityStore", affinity_set_store, NULL, RSRC_CONF,
                  "learn mode's store: a mod_socache provider and its "
                  "arguments, e.g. shmcb, memcache:HOST:PORT, redis:HOST:PORT"),
    AP_INIT_TAKE1("AffinityStoreLocal", affinity_set_store_local, NULL,
                  RSRC_CONF,
                  "bytes of shared memory for learn mode's local tier in "
                  "front of memcache or redis (default 4194304; 0: none)"),
    AP_INIT_TAKE1("AffinityStoreCacheTime", affinity_set_store_cache_time,
                  NULL, RSRC_CONF,
                  "milliseconds each child may reuse an answer of learn "
                  "mode's store (default 500; 0: none)"),
    AP_INIT_TAKE1("AffinityStoreTimeout", affinity_set_store_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds an unused learned session is remembered "
                  "(default 1800)"),
    AP_INIT_TAKE1("AffinityCookieMaxIdle", affinity_set_lifetime, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds a session may stay idle before it is balanced "
                  "afresh (0: off)"),
    AP_INIT_TAKE1("AffinityCookieMaxLife", affinity_set_lifetime, (void *)1,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds a session may last from its first cookie "
                  "(0: off)"),
    AP_INIT_FLAG("AffinityLegacyRoutes", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(affinity_dir_conf, legacy_routes),
                 RSRC_CONF | ACCESS_CONF,
                 "On: honour stock stickysession values .ROUTE and "
                 "SESSION.ROUTE as that member's session"),
    AP_INIT_FLAG("AffinityCookieUpgrade", affinity_set_flag,
                 (void *)APR_OFFSETOF(affinity_dir_conf, upgrade),
                 RSRC_CONF | ACCESS_CONF,
                 "On: while expiry is on, honour values without dates (bare "
                 "IDs, stock values) and re-issue them dated; Off: they "
                 "count as expired"),
    AP_INIT_TAKE1("AffinitySlowStart", affinity_set_slow_start, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds a member that became usable ramps up from 10% "
                  "to its share of new sessions (0: off, the default)"),
    AP_INIT_TAKE1("AffinityDrainTimeout", affinity_set_drain_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds a draining member keeps its sessions before they "
                  "move, or off (default)"),
    AP_INIT_TAKE1("AffinityStatusShowIds", affinity_set_status_ids, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "full (default) or prefix: the status page shows each "
                  "member's whole route ID, or only its first 8 digits"),
    AP_INIT_ITERATE("AffinityWarnings", affinity_set_warnings, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "-AFFnnnn turns that warning off, +AFFnnnn back on"),
    {NULL}
};

void affinity_config_post_config(server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    void *fresh = NULL;

    if (affinity_random_salt_used) {
        apr_pool_userdata_get(&fresh, AFFINITY_RANDOM_SALT_KEY ".new", pp);
        if (fresh) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "AFF0004: AffinitySalt random: made a new random "
                         "salt; route cookies issued before this start no "
                         "longer match and those sessions start over (use "
                         "AffinitySalt file:PATH to keep them)");
            apr_pool_userdata_setn(NULL, AFFINITY_RANDOM_SALT_KEY ".new", NULL,
                                   pp);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "AFF0005: AffinitySalt random: kept the random salt "
                         "of the running server across this restart");
        }
    }
    affinity_random_salt_used = 0;
}
