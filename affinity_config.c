/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_config.c: the directives, the salt and the per-directory
 * configuration record (create and merge).
 */

#include <errno.h>

#include "apr_file_io.h"
#include "apr_fnmatch.h"
#include "apr_lib.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

#define AFFINITY_RANDOM_SALT_KEY "mod_affinity.random_salt"
#define AFFINITY_RANDOM_SALT_LEN 32
#define AFFINITY_SALT_FILE_MAX   65536
/* Set when this configuration cycle uses AffinitySalt random, so that
 * post_config can say whether the salt is new or kept. */
static int affinity_random_salt_used;

void *affinity_create_dir_config(apr_pool_t *p, char *dir)
{
    affinity_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)dir;
    conf->remove = -1;
    conf->nocache = -1;
    conf->mode = AFFINITY_MODE_UNSET;
    conf->max_idle = -1;
    conf->max_life = -1;
    conf->legacy_routes = -1;
    conf->upgrade = -1;
    conf->status_ids = -1;
    conf->store_timeout = -1;
    return conf;
}

void *affinity_merge_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    affinity_dir_conf *base = basev, *add = addv;
    affinity_dir_conf *conf = apr_palloc(p, sizeof(*conf));
    int i;

    if (add->cookie_name) {
        conf->cookie_name = add->cookie_name;
        conf->cookie_attrs = add->cookie_attrs;
    }
    else {
        conf->cookie_name = base->cookie_name;
        conf->cookie_attrs = base->cookie_attrs;
    }
    if (add->salt) {
        conf->salt = add->salt;
        conf->salt_len = add->salt_len;
        conf->salt_kind = add->salt_kind;
    }
    else {
        conf->salt = base->salt;
        conf->salt_len = base->salt_len;
        conf->salt_kind = base->salt_kind;
    }
    conf->remove = add->remove != -1 ? add->remove : base->remove;
    conf->nocache = add->nocache != -1 ? add->nocache : base->nocache;
    conf->max_idle = add->max_idle != -1 ? add->max_idle : base->max_idle;
    conf->max_life = add->max_life != -1 ? add->max_life : base->max_life;
    conf->legacy_routes = add->legacy_routes != -1 ? add->legacy_routes
                                                   : base->legacy_routes;
    conf->upgrade = add->upgrade != -1 ? add->upgrade : base->upgrade;
    conf->store_timeout = add->store_timeout != -1 ? add->store_timeout
                                                   : base->store_timeout;
    conf->status_ids = add->status_ids != -1 ? add->status_ids
                                             : base->status_ids;
    /* a mode and its cookie NAME go together */
    if (add->mode != AFFINITY_MODE_UNSET) {
        conf->mode = add->mode;
        conf->mode_cookie = add->mode_cookie;
    }
    else {
        conf->mode = base->mode;
        conf->mode_cookie = base->mode_cookie;
    }
    if (add->warnings && base->warnings) {
        conf->warnings = apr_array_append(p, base->warnings, add->warnings);
    }
    else {
        conf->warnings = add->warnings ? add->warnings : base->warnings;
    }
    for (i = 0; i < AFFINITY_DIRECTIVE_COUNT; i++) {
        conf->set_at[i] = add->set_at[i] ? add->set_at[i] : base->set_at[i];
    }
    return conf;
}

/* Keep where a directive was set, for the configuration check. */
static void affinity_set_at(cmd_parms *cmd, affinity_dir_conf *conf,
                            affinity_directive_e which)
{
    conf->set_at[which] = cmd->directive;
}

int affinity_warning_on(const affinity_dir_conf *conf, int tag)
{
    int i;

    if (!conf->warnings) {
        return 1;
    }
    for (i = conf->warnings->nelts - 1; i >= 0; i--) {
        int w = APR_ARRAY_IDX(conf->warnings, i, int);

        if (w == tag || w == -tag) {
            return w > 0;
        }
    }
    return 1;
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
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_SALT);
    return NULL;
}

/* The modes AffinityMode knows; a mode that works on the application's own
 * cookie takes its NAME as second argument. */
static const struct {
    const char *name;
    affinity_mode_e mode;
    int takes_cookie;
} affinity_modes[] = {
    { "cookie", AFFINITY_MODE_COOKIE, 0 },
    { "domain", AFFINITY_MODE_DOMAIN, 0 },
    { "prefix", AFFINITY_MODE_PREFIX, 1 },
    { "learn", AFFINITY_MODE_LEARN, 1 },
    { NULL, AFFINITY_MODE_UNSET, 0 }
};

static const char *affinity_set_mode(cmd_parms *cmd, void *dconf,
                                     const char *arg, const char *name)
{
    affinity_dir_conf *conf = dconf;
    int i;

    for (i = 0; affinity_modes[i].name; i++) {
        if (!strcasecmp(arg, affinity_modes[i].name)) {
            break;
        }
    }
    if (!affinity_modes[i].name) {
        return apr_psprintf(cmd->pool, "AffinityMode: unknown mode \"%s\"; "
                            "use cookie, domain, prefix NAME or learn NAME",
                            arg);
    }
    if (affinity_modes[i].takes_cookie && !name) {
        return apr_psprintf(cmd->pool, "AffinityMode %s needs the name of the "
                            "application's session cookie, e.g. "
                            "AffinityMode %s JSESSIONID", affinity_modes[i].name,
                            affinity_modes[i].name);
    }
    if (!affinity_modes[i].takes_cookie && name) {
        return apr_psprintf(cmd->pool, "AffinityMode %s takes no cookie name "
                            "(\"%s\"); name the route cookie with "
                            "AffinityCookie", affinity_modes[i].name, name);
    }
    if (name && !affinity_cookie_name_valid(name)) {
        return apr_psprintf(cmd->pool, "AffinityMode %s: \"%s\" is not a valid "
                            "cookie name; use an RFC 6265 token (letters, "
                            "digits and !#$%%&'*+-.^_`|~, no spaces)",
                            affinity_modes[i].name, name);
    }
    conf->mode = affinity_modes[i].mode;
    conf->mode_cookie = name;
    affinity_set_at(cmd, conf, AFFINITY_DIRECTIVE_MODE);
    if (conf->mode == AFFINITY_MODE_LEARN) {
        affinity_store_learn_used();
    }
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
                   "cookie (default), domain, prefix NAME or learn NAME "
                   "(NAME: the application's session cookie)"),
    AP_INIT_TAKE1("AffinityStore", affinity_set_store, NULL, RSRC_CONF,
                  "learn mode's store: a mod_socache provider and its "
                  "arguments, e.g. shmcb, memcache:HOST:PORT, redis:HOST:PORT"),
    AP_INIT_TAKE1("AffinityStoreLocal", affinity_set_store_local, NULL,
                  RSRC_CONF,
                  "bytes of shared memory for learn mode's local tier in "
                  "front of memcache or redis (default 4194304; 0: none)"),
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

/* ---- <Proxy> sections a request reaches without the proxy walk ---------- */

/* mod_proxy's module record, to read its sections: a symbol of mod_proxy's
 * is not ours to link to (load order) */
static module *affinity_proxy_mod;

void affinity_config_proxy_found(void)
{
    affinity_proxy_mod = ap_find_linked_module("mod_proxy.c");
}

/* One matcher for <Proxy>/<ProxyMatch> sections, as httpd's proxy walk
 * matches them against a proxy URL: the regex, else the wildcard, else the
 * path as a plain prefix (so <Proxy balancer://app> also applies to
 * balancer://app2).  The request-time merge below, the status page and the
 * startup checks all use it, so that they agree on which sections apply. */
int affinity_proxy_section_matches(const proxy_dir_conf *pd, const char *url)
{
    if (pd->r) {
        return !ap_regexec(pd->r, url, 0, NULL, 0);
    }
    if (!pd->p) {
        return 0;
    }
    if (pd->p_is_fnmatch) {
        return apr_fnmatch(pd->p, url, 0) == APR_SUCCESS;
    }
    return !strncmp(url, pd->p, strlen(pd->p));
}

const affinity_dir_conf *affinity_config_proxy_merge(apr_pool_t *p,
                                                     server_rec *s,
                                                     const char *url,
                                                     const affinity_dir_conf *base)
{
    /* the check_config hook runs before post_config has found mod_proxy */
    module *proxy = affinity_proxy_mod ? affinity_proxy_mod
                                       : ap_find_linked_module("mod_proxy.c");
    proxy_server_conf *sconf;
    const affinity_dir_conf *conf = base;
    int i;

    if (!proxy || !(sconf = ap_get_module_config(s->module_config, proxy))
        || !sconf->sec_proxy) {
        return base;
    }
    for (i = 0; i < sconf->sec_proxy->nelts; i++) {
        ap_conf_vector_t *sec = APR_ARRAY_IDX(sconf->sec_proxy, i,
                                              ap_conf_vector_t *);
        const proxy_dir_conf *pd = ap_get_module_config(sec, proxy);
        affinity_dir_conf *ours = ap_get_module_config(sec, &affinity_module);

        if (!pd || !ours || !affinity_proxy_section_matches(pd, url)) {
            continue;
        }
        conf = conf ? affinity_merge_dir_config(p, (void *)conf, ours) : ours;
    }
    return conf;
}

const affinity_dir_conf *affinity_config_balancer(apr_pool_t *p, server_rec *s,
                                                  const proxy_balancer *b)
{
    const affinity_dir_conf *conf = ap_get_module_config(s->lookup_defaults,
                                                         &affinity_module);

    if (!conf) {
        conf = affinity_create_dir_config(p, NULL);
    }
    return affinity_config_proxy_merge(p, s, apr_pstrcat(p, b->s->name, "/",
                                                         NULL), conf);
}

/* httpd merges <Proxy> sections into a request's configuration only when
 * r->filename is already a proxy URL at map_to_storage (proxy walk):
 * ProxyPass, ProxyPassMatch and server/vhost RewriteRule [P].  A request
 * handed to the balancer by SetHandler "proxy:balancer://NAME" or by a
 * per-directory RewriteRule [P] (both decided after that) never gets them,
 * and would run with the mode and salt of its <Directory>/<Location> (for
 * cookie mode with no salt: an ID that is the member's SHA1(host:port)).
 * So our slot of every section the walk would have merged, matched as it
 * matches them, in order, is merged here on top of the request's own;
 * other modules' slots are left as they are.  The startup check
 * (affinity_config_check) merges the same way for SetHandler sections. */
void affinity_config_proxy_sections(request_rec *r, const char *url)
{
    const affinity_dir_conf *add;
    ap_conf_vector_t *v;

    add = affinity_config_proxy_merge(r->pool, r->server, url, NULL);
    if (!add) {
        return;
    }
    v = ap_create_per_dir_config(r->pool);
    ap_set_module_config(v, &affinity_module, (void *)add);
    r->per_dir_config = ap_merge_per_dir_configs(r->pool, r->per_dir_config, v);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                  "AFF0099: the <Proxy> sections of %s applied (the request "
                  "reaches the balancer without httpd's proxy walk)", url);
}
