/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_config.c: the per-directory configuration record (create,
 * merge), and the one answer to "which configuration applies": the
 * <Proxy> section matcher, the merge of a balancer's sections, "the
 * configuration of this balancer", and the AffinityMode arguments the
 * modes share.  The directives themselves are in affinity_directives.c.
 */

#include "apr_fnmatch.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

void *affinity_create_dir_config(apr_pool_t *p, char *dir)
{
    affinity_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)dir;
    conf->remove = -1;
    conf->nocache = -1;
    conf->max_idle = -1;
    conf->max_life = -1;
    conf->legacy_routes = -1;
    conf->upgrade = -1;
    conf->slow_start = -1;
    conf->status_ids = -1;
    conf->store_timeout = -1;
    conf->drain_timeout = -1;
    conf->balance_factor = -1;
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
        conf->learn_secret = add->learn_secret;
    }
    else {
        conf->salt = base->salt;
        conf->salt_len = base->salt_len;
        conf->salt_kind = base->salt_kind;
        conf->learn_secret = base->learn_secret;
    }
    conf->remove = add->remove != -1 ? add->remove : base->remove;
    conf->nocache = add->nocache != -1 ? add->nocache : base->nocache;
    conf->max_idle = add->max_idle != -1 ? add->max_idle : base->max_idle;
    conf->max_life = add->max_life != -1 ? add->max_life : base->max_life;
    conf->legacy_routes = add->legacy_routes != -1 ? add->legacy_routes
                                                   : base->legacy_routes;
    conf->upgrade = add->upgrade != -1 ? add->upgrade : base->upgrade;
    conf->slow_start = add->slow_start != -1 ? add->slow_start
                                             : base->slow_start;
    conf->store_timeout = add->store_timeout != -1 ? add->store_timeout
                                                   : base->store_timeout;
    conf->drain_timeout = add->drain_timeout != -1 ? add->drain_timeout
                                                   : base->drain_timeout;
    conf->status_ids = add->status_ids != -1 ? add->status_ids
                                             : base->status_ids;
    conf->balance_factor = add->balance_factor != -1 ? add->balance_factor
                                                     : base->balance_factor;
    /* a mode and its cookie NAME go together */
    if (add->mode) {
        conf->mode = add->mode;
        conf->mode_cookie = add->mode_cookie;
        conf->mode_header = add->mode_header;
        conf->hash_expr = add->hash_expr;
    }
    else {
        conf->mode = base->mode;
        conf->mode_cookie = base->mode_cookie;
        conf->mode_header = base->mode_header;
        conf->hash_expr = base->hash_expr;
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

/* ---- AffinityMode's arguments -------------------------------------------- */

const char *affinity_mode_no_arg(cmd_parms *cmd, affinity_dir_conf *conf,
                                 const char *mode, const char *arg)
{
    if (arg) {
        return apr_psprintf(cmd->pool, "AffinityMode %s takes no cookie name "
                            "(\"%s\"); name the route cookie with "
                            "AffinityCookie", mode, arg);
    }
    conf->mode_cookie = NULL;
    conf->mode_header = NULL;
    return NULL;
}

const char *affinity_mode_cookie_arg(cmd_parms *cmd, affinity_dir_conf *conf,
                                     const char *mode, const char *arg)
{
    if (!arg) {
        return apr_psprintf(cmd->pool, "AffinityMode %s needs the name of the "
                            "application's session cookie, e.g. "
                            "AffinityMode %s JSESSIONID", mode, mode);
    }
    if (!affinity_cookie_name_valid(arg)) {
        return apr_psprintf(cmd->pool, "AffinityMode %s: \"%s\" is not a valid "
                            "cookie name; use an RFC 6265 token (letters, "
                            "digits and !#$%%&'*+-.^_`|~, no spaces)", mode,
                            arg);
    }
    conf->mode_cookie = arg;
    conf->mode_header = NULL;
    return NULL;
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
