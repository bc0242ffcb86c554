/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_check.c: the configuration check.
 *
 * The check runs from test_config (so `apache2ctl -t` prints it) and at
 * every start and graceful restart (the real post_config pass).  It looks
 * for configurations that httpd accepts but that quietly break stickiness,
 * and says so with one tagged warning per finding, naming the file and line
 * of the directive or the balancer.  AffinityWarnings -AFFnnnn turns a
 * warning off where the operator has judged it.
 *
 * A mode tells the checks what they need through its affinity_mode (does
 * it set the route cookie, which directives mean nothing in it: AFF0045);
 * the checks never name a mode.  To add a check (a new directive): write
 * one function taking the affinity_ck (the servers' <Proxy> sections, and
 * the ways requests reach each affinity balancer with the configuration in
 * force there), report through affinity_finding(), list the function in
 * affinity_checks[] and its tag in affinity_silenceable[], and add the tag
 * to docs/troubleshooting.md's table.  A directive records where it was
 * set with affinity_set_at() (affinity_directives.c) so that the warning
 * can name its file and line.
 */

#include "apr_atomic.h"
#include "apr_fnmatch.h"
#include "apr_hash.h"
#include "apr_lib.h"

#include "http_core.h"
#include "ap_provider.h"

#include "affinity_private.h"

APLOG_USE_MODULE(affinity);

/* Warnings AffinityWarnings may turn off (AFF0009 is per request). */
static const int affinity_silenceable[] = {
    2, 3, 9, 40, 41, 42, 43, 44, 45, 47, 48, 49, 50, 132, 0
};

int affinity_warning_known(int tag)
{
    int i;

    for (i = 0; affinity_silenceable[i]; i++) {
        if (affinity_silenceable[i] == tag) {
            return 1;
        }
    }
    return 0;
}

/* ---- What the checks look at -------------------------------------------- */

/* A <Proxy> section (one entry even when virtual hosts inherit it). */
typedef struct {
    server_rec *s;                  /* where it was first seen */
    const proxy_dir_conf *pd;       /* its path or regex */
    const affinity_dir_conf *own;   /* only what the section itself sets */
    const affinity_dir_conf *in_force;  /* with the server's, for warnings */
    int ours;                       /* sets an Affinity* directive */
    int affinity;                   /* applies to an lbmethod=affinity balancer */
    unsigned int unused;            /* directives no effect in all their modes */
    const affinity_mode *named;     /* of those modes, the one a message names */
    const proxy_balancer *other;    /* a balancer it applies to that is not ours */
} affinity_ck_section;

/* A way requests reach an affinity balancer: a ProxyPass path in a server. */
typedef struct {
    server_rec *s;
    proxy_balancer *balancer;
    const char *path;
    const affinity_dir_conf *conf;  /* in force for those requests */
    int shadowed;                   /* main server's, inherited by a vhost */
} affinity_ck_user;

typedef struct {
    apr_pool_t *p;
    server_rec *main_s;
    module *proxy;
    apr_array_header_t *sections;   /* affinity_ck_section * */
    apr_array_header_t *users;      /* affinity_ck_user */
    apr_hash_t *said;               /* findings already logged */
    const affinity_dir_conf *empty; /* nothing set */
} affinity_ck;

/* The lbmethod this module registered (mod_affinity.c), as httpd hands it
 * to balancers. */
static const proxy_balancer_method *affinity_ours(void)
{
    return ap_lookup_provider(PROXY_LBMETHOD, AFFINITY_LBMETHOD, "0");
}

static int affinity_is_ours(const proxy_balancer *b)
{
    return b->lbmethod && b->lbmethod == affinity_ours();
}

static proxy_server_conf *affinity_psf(const affinity_ck *ck, server_rec *s)
{
    return ap_get_module_config(s->module_config, ck->proxy);
}

/* A section's record, or an empty one: httpd makes ours only for sections
 * that hold one of our directives. */
static const affinity_dir_conf *affinity_conf_of(const affinity_ck *ck,
                                                 const ap_conf_vector_t *v)
{
    const affinity_dir_conf *conf = ap_get_module_config(v, &affinity_module);

    return conf ? conf : ck->empty;
}

static const affinity_dir_conf *affinity_merge(apr_pool_t *p,
                                               const affinity_dir_conf *base,
                                               const affinity_dir_conf *add)
{
    return affinity_merge_dir_config(p, (void *)base, (void *)add);
}

/* The balancer a proxy URL (balancer://name/path) names in this server. */
static proxy_balancer *affinity_balancer_named(apr_pool_t *p,
                                               proxy_server_conf *psf,
                                               const char *url)
{
    char *name, *slash;
    int i;

    if (!url || strncasecmp(url, "balancer://", 11) || !psf->balancers) {
        return NULL;
    }
    name = apr_pstrdup(p, url);
    if ((slash = strchr(name + 11, '/'))) {
        *slash = '\0';
    }
    ap_str_tolower(name);
    for (i = 0; i < psf->balancers->nelts; i++) {
        proxy_balancer *b = &APR_ARRAY_IDX(psf->balancers, i, proxy_balancer);
        if (!strcmp(b->s->name, name)) {
            return b;
        }
    }
    return NULL;
}

/* Does a <Proxy> section apply to requests to this balancer?  For its root,
 * or for the bare name (ProxyPass /app balancer://app asks for it). */
static int affinity_section_applies(apr_pool_t *p, const proxy_dir_conf *pd,
                                    const proxy_balancer *b)
{
    return affinity_proxy_section_matches(pd, apr_pstrcat(p, b->s->name, "/",
                                                          NULL))
           || affinity_proxy_section_matches(pd, b->s->name);
}

/* What is in force for requests to balancer b through server s: the
 * server's settings, then every <Proxy> section that applies, in order. */
static const affinity_dir_conf *affinity_balancer_conf(const affinity_ck *ck,
                                                       server_rec *s,
                                                       const proxy_balancer *b)
{
    return affinity_config_balancer(ck->p, s, b);
}

static int affinity_sets_any(const affinity_dir_conf *conf)
{
    int i;

    for (i = 0; i < AFFINITY_DIRECTIVE_COUNT; i++) {
        if (i != AFFINITY_DIRECTIVE_WARNINGS && conf->set_at[i]) {
            return 1;
        }
    }
    return 0;
}

static void affinity_add_user(affinity_ck *ck, server_rec *s,
                              proxy_server_conf *psf, const struct proxy_alias *a)
{
    core_server_config *core = ap_get_core_module_config(s->module_config);
    proxy_balancer *b;
    const affinity_dir_conf *conf;
    affinity_ck_user *u;
    int i;

    if (!a || a->regex || !a->fake || *a->fake != '/'
        || !(b = affinity_balancer_named(ck->p, psf, a->real))
        || !affinity_is_ours(b)) {
        return;
    }
    for (i = 0; i < ck->users->nelts; i++) {
        u = &APR_ARRAY_IDX(ck->users, i, affinity_ck_user);
        if (u->s == s && u->balancer == b && !strcmp(u->path, a->fake)) {
            return;
        }
    }
    /* <Location> sections come after <Proxy> ones and win over them */
    conf = affinity_balancer_conf(ck, s, b);
    for (i = 0; core->sec_url && i < core->sec_url->nelts; i++) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(core->sec_url, i, ap_conf_vector_t *);
        core_dir_config *cd = ap_get_core_module_config(v);

        if (cd && cd->d && !cd->r && !cd->d_is_fnmatch
            && !strncmp(a->fake, cd->d, strlen(cd->d))) {
            conf = affinity_merge(ck->p, conf, affinity_conf_of(ck, v));
        }
    }
    u = apr_array_push(ck->users);
    u->shadowed = 0;
    u->s = s;
    u->balancer = b;
    u->path = a->fake;
    u->conf = conf;
}

static int affinity_bits(unsigned int v)
{
    int n = 0;

    for (; v; v &= v - 1) {
        n++;
    }
    return n;
}

static void affinity_gather(affinity_ck *ck)
{
    apr_hash_t *seen = apr_hash_make(ck->p);
    const affinity_mode *mode;
    server_rec *s;
    int i, j;

    for (s = ck->main_s; s; s = s->next) {
        proxy_server_conf *psf = affinity_psf(ck, s);
        core_server_config *core = ap_get_core_module_config(s->module_config);

        if (!psf) {
            continue;
        }
        for (i = 0; psf->sec_proxy && i < psf->sec_proxy->nelts; i++) {
            ap_conf_vector_t *v = APR_ARRAY_IDX(psf->sec_proxy, i, ap_conf_vector_t *);
            affinity_ck_section *sec;

            if (apr_hash_get(seen, &v, sizeof(v))) {
                sec = apr_hash_get(seen, &v, sizeof(v));
            }
            else {
                sec = apr_pcalloc(ck->p, sizeof(*sec));
                APR_ARRAY_PUSH(ck->sections, affinity_ck_section *) = sec;
                sec->s = s;
                sec->pd = ap_get_module_config(v, ck->proxy);
                sec->own = affinity_conf_of(ck, v);
                sec->in_force = affinity_merge(ck->p,
                                               affinity_conf_of(ck, s->lookup_defaults),
                                               sec->own);
                sec->ours = affinity_sets_any(sec->own);
                apr_hash_set(seen, apr_pmemdup(ck->p, &v, sizeof(v)), sizeof(v),
                             sec);
            }
            /* which balancers of this server it applies to (sections are
             * inherited by virtual hosts: every server counts) */
            for (j = 0; sec->pd && psf->balancers && j < psf->balancers->nelts; j++) {
                proxy_balancer *b = &APR_ARRAY_IDX(psf->balancers, j, proxy_balancer);

                if (!affinity_section_applies(ck->p, sec->pd, b)) {
                    continue;
                }
                if (!affinity_is_ours(b)) {
                    sec->other = b;
                    continue;
                }
                mode = affinity_mode_of(affinity_balancer_conf(ck, s, b));
                sec->unused = sec->affinity++ ? sec->unused & mode->unused_directives
                                              : mode->unused_directives;
                /* the mode where fewest directives are without effect */
                if (!sec->named
                    || affinity_bits(mode->unused_directives)
                       < affinity_bits(sec->named->unused_directives)) {
                    sec->named = mode;
                }
            }
        }
        for (i = 0; psf->aliases && i < psf->aliases->nelts; i++) {
            affinity_add_user(ck, s, psf,
                              &APR_ARRAY_IDX(psf->aliases, i, struct proxy_alias));
        }
        for (i = 0; core->sec_url && i < core->sec_url->nelts; i++) {
            ap_conf_vector_t *v = APR_ARRAY_IDX(core->sec_url, i, ap_conf_vector_t *);
            const proxy_dir_conf *pd = ap_get_module_config(v, ck->proxy);

            if (pd && pd->alias) {
                affinity_add_user(ck, s, psf, pd->alias);
            }
        }
    }
    /* A virtual host inherits the main server's ProxyPass: say it once, for
     * the virtual hosts, which are the ones that serve the requests. */
    for (i = 0; i < ck->users->nelts; i++) {
        affinity_ck_user *u = &APR_ARRAY_IDX(ck->users, i, affinity_ck_user);

        for (j = 0; !u->s->is_virtual && j < ck->users->nelts; j++) {
            const affinity_ck_user *v = &APR_ARRAY_IDX(ck->users, j, affinity_ck_user);

            if (v->s->is_virtual && !strcmp(v->path, u->path)
                && !strcmp(v->balancer->s->name, u->balancer->s->name)) {
                u->shadowed = 1;
                break;
            }
        }
    }
}

/* Every configuration record that may hold our directives, each once: the
 * server's own settings and every <Proxy>, <Location> and <Directory>
 * section, with what is in force there (for AffinityWarnings). */
typedef void affinity_conf_fn(affinity_ck *ck, server_rec *s,
                              const affinity_dir_conf *own,
                              const affinity_dir_conf *in_force);

static void affinity_each_conf(affinity_ck *ck, affinity_conf_fn *fn)
{
    apr_hash_t *seen = apr_hash_make(ck->p);
    server_rec *s;
    int i, k;

    for (s = ck->main_s; s; s = s->next) {
        proxy_server_conf *psf = affinity_psf(ck, s);
        core_server_config *core = ap_get_core_module_config(s->module_config);
        const affinity_dir_conf *defaults = affinity_conf_of(ck, s->lookup_defaults);
        apr_array_header_t *lists[3];

        lists[0] = psf ? psf->sec_proxy : NULL;
        lists[1] = core->sec_url;
        lists[2] = core->sec_dir;
        fn(ck, s, defaults, defaults);
        for (k = 0; k < 3; k++) {
            for (i = 0; lists[k] && i < lists[k]->nelts; i++) {
                ap_conf_vector_t *v = APR_ARRAY_IDX(lists[k], i, ap_conf_vector_t *);
                const affinity_dir_conf *own = affinity_conf_of(ck, v);

                if (own == ck->empty || apr_hash_get(seen, &own, sizeof(own))) {
                    continue;
                }
                apr_hash_set(seen, apr_pmemdup(ck->p, &own, sizeof(own)),
                             sizeof(own), "");
                fn(ck, s, own, affinity_merge(ck->p, defaults, own));
            }
        }
    }
}

/* ---- Saying it ---------------------------------------------------------- */

static void affinity_finding(affinity_ck *ck, int tag, int level,
                             server_rec *s, const affinity_dir_conf *in_force,
                             const ap_directive_t *at, const char *fmt, ...)
                             __attribute__((format(printf, 7, 8)));

/* One line per finding, "AFFnnnn: FILE:LINE: what and what to do", said
 * once even when several virtual hosts inherit the mistake. */
static void affinity_finding(affinity_ck *ck, int tag, int level,
                             server_rec *s, const affinity_dir_conf *in_force,
                             const ap_directive_t *at, const char *fmt, ...)
{
    const char *line;
    va_list ap;

    if (in_force && !affinity_warning_on(in_force, tag)) {
        return;
    }
    va_start(ap, fmt);
    line = apr_pvsprintf(ck->p, fmt, ap);
    va_end(ap);
    line = apr_psprintf(ck->p, "AFF%04d: %s%s", tag,
                        at ? apr_psprintf(ck->p, "%s:%d: ", at->filename,
                                          at->line_num) : "", line);
    if (apr_hash_get(ck->said, line, APR_HASH_KEY_STRING)) {
        return;
    }
    apr_hash_set(ck->said, line, APR_HASH_KEY_STRING, "");
    ap_log_error(APLOG_MARK, level, 0, s, "%s", line);
}

static const char *affinity_server_name(apr_pool_t *p, const server_rec *s)
{
    if (!s->is_virtual) {
        return "the main server";
    }
    return apr_psprintf(p, "virtual host %s:%u (%s:%d)",
                        s->server_hostname ? s->server_hostname : "*",
                        (unsigned)(s->addrs ? s->addrs->host_port : s->port),
                        s->defn_name ? s->defn_name : "?", s->defn_line_number);
}

/* The value of a cookie attribute (Path, Domain...), "" for a flag
 * (Secure), NULL when absent. */
static const char *affinity_attr(apr_pool_t *p, const char *attrs,
                                 const char *name)
{
    apr_size_t n = strlen(name);

    while (attrs && *attrs) {
        const char *end = strchr(attrs, ';');
        apr_size_t len = end ? (apr_size_t)(end - attrs) : strlen(attrs);

        while (len && apr_isspace(*attrs)) {
            attrs++;
            len--;
        }
        while (len && apr_isspace(attrs[len - 1])) {
            len--;
        }
        if (len >= n && !strncasecmp(attrs, name, n)) {
            const char *rest = attrs + n;
            apr_size_t left = len - n;

            while (left && apr_isspace(*rest)) {
                rest++;
                left--;
            }
            if (!left) {
                return "";
            }
            if (*rest == '=') {
                rest++;
                left--;
                while (left && apr_isspace(*rest)) {
                    rest++;
                    left--;
                }
                return apr_pstrmemdup(p, rest, left);
            }
        }
        attrs = end ? end + 1 : NULL;
    }
    return NULL;
}

/* RFC 6265 path-match: is the request path under the cookie path? */
static int affinity_path_match(const char *path, const char *cookie_path)
{
    apr_size_t n = strlen(cookie_path);

    return !strncmp(path, cookie_path, n)
           && (!path[n] || (n && cookie_path[n - 1] == '/') || path[n] == '/');
}

/* ---- The checks --------------------------------------------------------- */

/* A member as configured: a unix-socket member's URL alone hides the
 * socket, which is what tells such members apart. */
static const char *affinity_member_name(apr_pool_t *p, const proxy_worker *w)
{
    if (*w->s->uds_path) {
        return apr_psprintf(p, "unix:%.*s|%s", (int)sizeof(w->s->uds_path),
                            w->s->uds_path, AFFINITY_WORKER_NAME(w));
    }
    return AFFINITY_WORKER_NAME(w);
}

/* AFF0002: stickysession set (core stickiness would bypass the finder);
 * AFF0003: members that share an identity and so one ID. */
static void affinity_check_balancers(affinity_ck *ck)
{
    apr_hash_t *seen = apr_hash_make(ck->p);
    server_rec *s;
    int b, i;

    for (s = ck->main_s; s; s = s->next) {
        proxy_server_conf *psf = affinity_psf(ck, s);

        for (b = 0; psf && psf->balancers && b < psf->balancers->nelts; b++) {
            proxy_balancer *balancer = &APR_ARRAY_IDX(psf->balancers, b,
                                                      proxy_balancer);
            const affinity_dir_conf *conf;
            apr_hash_t *identities;

            /* virtual hosts hold copies of the main server's balancers;
             * most copies share the shared-data pointer: key on its value */
            if (!affinity_is_ours(balancer)
                || apr_hash_get(seen, &balancer->s, sizeof(balancer->s))) {
                continue;
            }
            apr_hash_set(seen, &balancer->s, sizeof(balancer->s), "");
            conf = affinity_balancer_conf(ck, s, balancer);

            if (*balancer->s->sticky) {
                affinity_finding(ck, 2, APLOG_WARNING, s, conf, NULL,
                                 "%s uses lbmethod=affinity together with "
                                 "stickysession=%s: httpd's own stickiness then "
                                 "bypasses mod_affinity for matching routes; "
                                 "remove stickysession", balancer->s->name,
                                 balancer->s->sticky);
            }

            identities = apr_hash_make(ck->p);
            for (i = 0; i < balancer->workers->nelts; i++) {
                proxy_worker *w = APR_ARRAY_IDX(balancer->workers, i,
                                                proxy_worker *);
                const char *route = apr_pstrndup(ck->p, w->s->route,
                                                 sizeof(w->s->route));
                const char *identity = affinity_identity(ck->p, w, route);
                proxy_worker *other = apr_hash_get(identities, identity,
                                                   APR_HASH_KEY_STRING);
                if (other) {
                    affinity_finding(ck, 3, APLOG_WARNING, s, conf, NULL,
                                     "%s: members %s and %s share the "
                                     "identity \"%s\" and so one route ID; "
                                     "give them distinct route= values",
                                     balancer->s->name,
                                     affinity_member_name(ck->p, other),
                                     affinity_member_name(ck->p, w), identity);
                }
                else {
                    apr_hash_set(identities, identity, APR_HASH_KEY_STRING, w);
                }
            }
        }
    }
}

/* AFF0040: AffinitySalt /etc/apache2/affinity.salt, "file:" forgotten: the
 * path itself becomes the salt.  A value that starts like a path, or names
 * a file that exists, is taken for one. */
static void affinity_check_salt_conf(affinity_ck *ck, server_rec *s,
                                     const affinity_dir_conf *own,
                                     const affinity_dir_conf *in_force)
{
    const ap_directive_t *at = own->set_at[AFFINITY_DIRECTIVE_SALT];
    const char *args, *arg, *full;
    apr_finfo_t fi;
    int pathlike;

    if (!at || !at->args) {
        return;
    }
    args = at->args;
    arg = ap_getword_conf(ck->p, &args);
    if (!strcasecmp(arg, "none") || !strcasecmp(arg, "random")
        || !strncmp(arg, "file:", 5) || !*arg) {
        return;
    }
    pathlike = *arg == '/' || !strncmp(arg, "./", 2) || !strncmp(arg, "../", 3)
               || !strncmp(arg, "~/", 2);
    if (!pathlike && (full = ap_server_root_relative(ck->p, arg))) {
        pathlike = apr_stat(&fi, full, APR_FINFO_TYPE, ck->p) == APR_SUCCESS
                   && fi.filetype == APR_REG;
    }
    if (pathlike) {
        affinity_finding(ck, 40, APLOG_WARNING, s, in_force, at,
                         "AffinitySalt %s: this looks like a file name, but "
                         "the value itself is the salt (anyone can compute "
                         "the route IDs); did you mean AffinitySalt file:%s?",
                         arg, arg);
    }
}

static void affinity_check_salt(affinity_ck *ck)
{
    affinity_each_conf(ck, affinity_check_salt_conf);
}

/* AFF0043: Max-Age or Expires in the cookie's attributes.  The cookie is
 * sent only when the route changes, so it ends that long after the first
 * visit, however active the client. */
static void affinity_check_lifetime_conf(affinity_ck *ck, server_rec *s,
                                         const affinity_dir_conf *own,
                                         const affinity_dir_conf *in_force)
{
    const ap_directive_t *at = own->set_at[AFFINITY_DIRECTIVE_COOKIE];
    const char *attr;
    int idle = affinity_max_idle_of(in_force);
    int life = affinity_max_life_of(in_force);

    /* AFF0048: an idle limit no shorter than the absolute one never ends a
     * session first.  Said where one of the two is set. */
    if ((own->set_at[AFFINITY_DIRECTIVE_MAX_IDLE]
         || own->set_at[AFFINITY_DIRECTIVE_MAX_LIFE]) && idle && life
        && idle >= life) {
        affinity_finding(ck, 48, APLOG_WARNING, s, in_force,
                         own->set_at[AFFINITY_DIRECTIVE_MAX_IDLE]
                         ? own->set_at[AFFINITY_DIRECTIVE_MAX_IDLE]
                         : own->set_at[AFFINITY_DIRECTIVE_MAX_LIFE],
                         "AffinityCookieMaxIdle %d is not shorter than "
                         "AffinityCookieMaxLife %d: every session reaches its "
                         "MaxLife first, so the idle limit does nothing; "
                         "set AffinityCookieMaxIdle below %d (e.g. 1800) or "
                         "raise AffinityCookieMaxLife", idle, life, life);
    }
    if (!at || !own->cookie_name) {
        return;
    }
    attr = affinity_attr(ck->p, own->cookie_attrs, "Max-Age") ? "Max-Age"
           : affinity_attr(ck->p, own->cookie_attrs, "Expires") ? "Expires"
           : NULL;
    if (attr) {
        affinity_finding(ck, 43, APLOG_WARNING, s, in_force, at,
                         "AffinityCookie %s: the attributes hold %s, but the "
                         "cookie is sent only when the route changes, so an "
                         "active client loses its member when it expires; "
                         "remove %s (without it the cookie lasts until the "
                         "browser closes)", own->cookie_name, attr, attr);
    }
}

static void affinity_check_lifetime(affinity_ck *ck)
{
    affinity_each_conf(ck, affinity_check_lifetime_conf);
}

/* AFF0042: Affinity* directives in a <Proxy> whose balancer does not use
 * lbmethod=affinity (forgotten, or a typo in the name). */
static void affinity_check_sections(affinity_ck *ck)
{
    int i, d;

    for (i = 0; i < ck->sections->nelts; i++) {
        const affinity_ck_section *sec = APR_ARRAY_IDX(ck->sections, i,
                                                       affinity_ck_section *);
        const ap_directive_t *at = NULL;

        if (!sec->ours || sec->affinity || !sec->pd || !sec->pd->p) {
            continue;
        }
        for (d = 0; !at && d < AFFINITY_DIRECTIVE_COUNT; d++) {
            if (d != AFFINITY_DIRECTIVE_WARNINGS) {
                at = sec->own->set_at[d];
            }
        }
        if (sec->other) {
            affinity_finding(ck, 42, APLOG_WARNING, sec->s, sec->in_force, at,
                             "%s in <Proxy %s> has no effect: %s uses "
                             "lbmethod=%s, not affinity; add ProxySet "
                             "lbmethod=affinity to the section",
                             at->directive, sec->pd->p, sec->other->s->name,
                             sec->other->s->lbpname);
        }
        else if (!strncasecmp(sec->pd->p, "balancer:", 9) || sec->pd->r) {
            affinity_finding(ck, 42, APLOG_WARNING, sec->s, sec->in_force, at,
                             "%s in <Proxy %s> has no effect: no balancer of "
                             "that name is defined; check the name against "
                             "the one ProxyPass uses", at->directive,
                             sec->pd->p);
        }
    }
}

/* AFF0045: route-cookie directives without effect in every mode in force
 * where they are set: each mode says which (domain mode reads and sets no
 * cookie at all, prefix mode rides on the application's, where
 * AffinityNoCache still applies). */
static void affinity_check_modes(affinity_ck *ck)
{
    int i, d;

    for (i = 0; i < ck->sections->nelts; i++) {
        const affinity_ck_section *sec = APR_ARRAY_IDX(ck->sections, i,
                                                       affinity_ck_section *);

        if (!sec->affinity || !sec->unused) {
            continue;
        }
        for (d = 0; d < AFFINITY_DIRECTIVE_COUNT; d++) {
            const ap_directive_t *at = sec->own->set_at[d];

            if (!at || !(sec->unused & (1u << d))) {
                continue;
            }
            affinity_finding(ck, 45, APLOG_WARNING, sec->s, sec->in_force, at,
                             "%s in <Proxy %s> has no effect: AffinityMode "
                             "%s is in force there, which sets no route "
                             "cookie of its own; remove it", at->directive,
                             sec->pd->p, sec->named->name);
        }
    }
}

/* AFF0132: AffinityHashBalanceFactor where requests reach a balancer in a
 * mode that picks by no key (cookie, prefix, learn): the bound is never
 * applied there, and an operator who set it believes hot keys are spread.
 * Judged per ProxyPass, with the configuration in force for its requests
 * (set in the <Proxy> section, a <Location> or the server). */
static void affinity_check_bound(affinity_ck *ck)
{
    int i;

    for (i = 0; i < ck->users->nelts; i++) {
        const affinity_ck_user *u = &APR_ARRAY_IDX(ck->users, i, affinity_ck_user);
        const affinity_mode *mode = affinity_mode_of(u->conf);

        if (u->shadowed || affinity_balance_factor_of(u->conf) <= 0
            || (mode->flags & AFFINITY_BOUNDS_LOAD)) {
            continue;
        }
        affinity_finding(ck, 132, APLOG_WARNING, u->s, u->conf,
                         u->conf->set_at[AFFINITY_DIRECTIVE_BALANCE_FACTOR],
                         "AffinityHashBalanceFactor %d has no effect for "
                         "%s at %s in %s: AffinityMode %s is in force "
                         "there, and the bound applies only to hash and "
                         "domain mode; remove it, or set AffinityMode "
                         "hash or domain", u->conf->balance_factor,
                         u->balancer->s->name, u->path,
                         affinity_server_name(ck->p, u->s), mode->name);
    }
}

/* Does the mode in force set the module's route cookie? */
static int affinity_sets_cookie(const affinity_dir_conf *conf)
{
    return (affinity_mode_of(conf)->flags & AFFINITY_SETS_ROUTE_COOKIE) != 0;
}

/* AFF0041: two affinity balancers that one client reaches (one server)
 * with the same cookie name, Path and Domain: each overwrites the other's
 * cookie.  Different Paths that overlap are fine: the client sends both
 * cookies, and each balancer takes the first value naming one of its own
 * members.  AFF0047: a cookie Path the ProxyPass path is not under: the
 * browser never sends the cookie back there. */
static void affinity_check_cookies(affinity_ck *ck)
{
    int i, j;

    for (i = 0; i < ck->users->nelts; i++) {
        const affinity_ck_user *u = &APR_ARRAY_IDX(ck->users, i, affinity_ck_user);
        const char *path, *domain;

        if (u->shadowed || !affinity_sets_cookie(u->conf)) {
            continue;
        }
        path = affinity_attr(ck->p, affinity_cookie_attrs_of(u->conf), "Path");
        domain = affinity_attr(ck->p, affinity_cookie_attrs_of(u->conf), "Domain");
        path = path && *path ? path : "/";
        if (!affinity_path_match(u->path, path)
            && !affinity_path_match(path, u->path)) {
            affinity_finding(ck, 47, APLOG_WARNING, u->s, u->conf,
                             u->conf->set_at[AFFINITY_DIRECTIVE_COOKIE],
                             "%s is reached at %s in %s, but its cookie %s "
                             "has Path=%s: the browser never sends it back "
                             "there, so every request is a new session; use "
                             "a Path that %s is under", u->balancer->s->name,
                             u->path, affinity_server_name(ck->p, u->s),
                             affinity_cookie_name_of(u->conf), path, u->path);
        }
        for (j = i + 1; j < ck->users->nelts; j++) {
            const affinity_ck_user *v = &APR_ARRAY_IDX(ck->users, j, affinity_ck_user);
            const char *vpath, *vdomain;

            if (v->s != u->s || v->shadowed
                || !strcmp(v->balancer->s->name, u->balancer->s->name)
                || !affinity_sets_cookie(v->conf)
                || strcmp(affinity_cookie_name_of(u->conf),
                          affinity_cookie_name_of(v->conf))
                || !affinity_warning_on(v->conf, 41)) {
                continue;
            }
            vpath = affinity_attr(ck->p, affinity_cookie_attrs_of(v->conf), "Path");
            vdomain = affinity_attr(ck->p, affinity_cookie_attrs_of(v->conf), "Domain");
            vpath = vpath && *vpath ? vpath : "/";
            if (strcmp(path, vpath)
                || strcasecmp(domain ? domain : "", vdomain ? vdomain : "")) {
                continue;
            }
            affinity_finding(ck, 41, APLOG_WARNING, u->s, u->conf,
                             u->conf->set_at[AFFINITY_DIRECTIVE_COOKIE]
                             ? u->conf->set_at[AFFINITY_DIRECTIVE_COOKIE]
                             : v->conf->set_at[AFFINITY_DIRECTIVE_COOKIE],
                             "%s (at %s) and %s (at %s) in %s both use the "
                             "cookie %s with Path=%s: each overwrites the "
                             "other's, and a client using both is reassigned "
                             "again and again; give one of them its own name "
                             "with AffinityCookie in its <Proxy> section",
                             u->balancer->s->name, u->path,
                             v->balancer->s->name, v->path,
                             affinity_server_name(ck->p, u->s),
                             affinity_cookie_name_of(u->conf), path);
        }
    }
}

/* Does a directive with this name and an argument starting with one of the
 * words appear in the subtree (not inside <VirtualHost> when top-level)? */
static int affinity_tree_has(const ap_directive_t *d, const char *name,
                             const char *const *words, int skip_vhosts)
{
    for (; d; d = d->next) {
        if (skip_vhosts && !strcasecmp(d->directive, "<VirtualHost")) {
            continue;
        }
        if (!strcasecmp(d->directive, name) && d->args) {
            int i;

            for (i = 0; words[i]; i++) {
                if (!strncasecmp(d->args, words[i], strlen(words[i]))) {
                    return 1;
                }
            }
        }
        if (d->first_child
            && affinity_tree_has(d->first_child, name, words, skip_vhosts)) {
            return 1;
        }
    }
    return 0;
}

/* Does any directive's arguments mention one of the needles? */
static int affinity_tree_mentions(const ap_directive_t *d,
                                  const char *const *needles)
{
    for (; d; d = d->next) {
        int i;

        for (i = 0; d->args && needles[i]; i++) {
            if (ap_strcasestr(d->args, needles[i])) {
                return 1;
            }
        }
        if (d->first_child && affinity_tree_mentions(d->first_child, needles)) {
            return 1;
        }
    }
    return 0;
}

/* The <VirtualHost> section that defined a server. */
static const ap_directive_t *affinity_vhost_node(const ap_directive_t *d,
                                                 const server_rec *s)
{
    if (!s->is_virtual || !s->defn_name) {
        return NULL;
    }
    for (; d; d = d->next) {
        const ap_directive_t *found;

        if (!strcasecmp(d->directive, "<VirtualHost")
            && (unsigned)d->line_num == s->defn_line_number
            && d->filename && !strcmp(d->filename, s->defn_name)) {
            return d;
        }
        if (d->first_child
            && (found = affinity_vhost_node(d->first_child, s))) {
            return found;
        }
    }
    return NULL;
}

/* AFF0044: a Secure cookie for a server that serves plain http only.  Said
 * only when the module can tell: no SSLEngine for that server (or no
 * mod_ssl at all), no https:// ServerName, and nothing in the configuration
 * that speaks of a TLS proxy in front (X-Forwarded-Proto and the like). */
static void affinity_check_secure(affinity_ck *ck)
{
    static const char *const on[] = { "on", "optional", NULL };
    static const char *const front[] = {
        "X-Forwarded-Proto", "X-Forwarded-Ssl", "X-Forwarded-Scheme",
        "X-Url-Scheme", "Front-End-Https", "proto=https", "HTTPS=on",
        "HTTPS on", NULL
    };
    int ssl = ap_find_linked_module("mod_ssl.c") != NULL;
    int ssl_main = ssl && affinity_tree_has(ap_conftree, "SSLEngine", on, 1);
    int tls_in_front = affinity_tree_mentions(ap_conftree, front);
    int i;

    if (tls_in_front || ssl_main) {
        return;
    }
    for (i = 0; i < ck->users->nelts; i++) {
        const affinity_ck_user *u = &APR_ARRAY_IDX(ck->users, i, affinity_ck_user);
        const ap_directive_t *vh;

        if (u->shadowed || !affinity_sets_cookie(u->conf)
            || !affinity_attr(ck->p, affinity_cookie_attrs_of(u->conf), "Secure")
            || (u->s->server_scheme && !strcasecmp(u->s->server_scheme, "https"))) {
            continue;
        }
        vh = affinity_vhost_node(ap_conftree, u->s);
        if (ssl && vh && vh->first_child
            && affinity_tree_has(vh->first_child, "SSLEngine", on, 0)) {
            continue;
        }
        affinity_finding(ck, 44, APLOG_WARNING, u->s, u->conf,
                         u->conf->set_at[AFFINITY_DIRECTIVE_COOKIE],
                         "the cookie %s of %s is Secure, but %s serves plain "
                         "http (%s): browsers never send a Secure cookie back "
                         "over http, so every request is a new session; "
                         "remove Secure or serve the site over https (if TLS "
                         "ends in front of httpd, turn this warning off with "
                         "AffinityWarnings -AFF0044)",
                         affinity_cookie_name_of(u->conf), u->balancer->s->name,
                         affinity_server_name(ck->p, u->s),
                         ssl ? "no SSLEngine on" : "mod_ssl is not loaded");
    }
}

/* ---- Other modules' directives that undo ours (AFF0049, AFF0050) -------- */

/* The first argument of a section directive, without quotes and '>'. */
static const char *affinity_section_arg(apr_pool_t *p, const ap_directive_t *d)
{
    const char *args = d->args ? d->args : "";
    char *arg = ap_getword_conf(p, &args);
    apr_size_t n = strlen(arg);

    if (n && arg[n - 1] == '>') {
        arg[n - 1] = '\0';
        if (n > 1 && arg[n - 2] == '"') {
            arg[n - 2] = '\0';
        }
    }
    return *arg == '"' ? arg + 1 : arg;
}

static int affinity_directive_is(const ap_directive_t *d, const char *const *names)
{
    int i;

    for (i = 0; names[i]; i++) {
        if (!strcasecmp(d->directive, names[i])) {
            return 1;
        }
    }
    return 0;
}

/* Sections proxied requests never walk: their directives reach no
 * balancer. */
static const char *const affinity_file_sections[] = {
    "<Directory", "<DirectoryMatch", "<Files", "<FilesMatch", NULL
};

/* Does an alias (ProxyPass, ProxyPassMatch) take requests for path? */
static int affinity_alias_covers(const struct proxy_alias *a, const char *path)
{
    apr_size_t n = strlen(a->fake);

    if (a->regex) {
        return !ap_regexec(a->regex, path, 0, NULL, 0);
    }
    return n && !strncmp(path, a->fake, n)
           && (a->fake[n - 1] == '/' || !path[n] || path[n] == '/');
}

/* The ProxyPass that takes requests for path in server s, as mod_proxy's
 * translate_name picks it: the first that matches, an exclusion too. */
static const struct proxy_alias *affinity_alias_for(const affinity_ck *ck,
                                                    server_rec *s,
                                                    const char *path)
{
    proxy_server_conf *psf = affinity_psf(ck, s);
    int i;

    for (i = 0; psf && psf->aliases && i < psf->aliases->nelts; i++) {
        const struct proxy_alias *a = &APR_ARRAY_IDX(psf->aliases, i,
                                                     struct proxy_alias);
        if (affinity_alias_covers(a, path)) {
            return a;
        }
    }
    return NULL;
}

/* Does a directive inside <VirtualHost vhost> (NULL: at server level),
 * inside the section sec (NULL: none), apply to requests of user u? */
static int affinity_scope_reaches(affinity_ck *ck, const ap_directive_t *vhost,
                                  const ap_directive_t *sec,
                                  const affinity_ck_user *u)
{
    const char *arg;

    if (vhost && affinity_vhost_node(ap_conftree, u->s) != vhost) {
        return 0;
    }
    if (!sec) {
        return 1;
    }
    arg = affinity_section_arg(ck->p, sec);
    if (!strcasecmp(sec->directive, "<Location")) {
        const struct proxy_alias *a;

        if (!strncmp(u->path, arg, strlen(arg))) {
            return 1;   /* the section covers the ProxyPass path */
        }
        /* a section deeper than the ProxyPass path: if that ProxyPass is
         * the one that takes its requests */
        return !strncmp(arg, u->path, strlen(u->path))
               && (a = affinity_alias_for(ck, u->s, arg))
               && strcmp(a->real, "!")
               && affinity_balancer_named(ck->p, affinity_psf(ck, u->s),
                                          a->real) == u->balancer;
    }
    if (!strcasecmp(sec->directive, "<Proxy")) {
        const char *name = u->balancer->s->name;

        return !strncasecmp(name, arg, strlen(arg))
               || apr_fnmatch(arg, name, 0) == APR_SUCCESS
               || apr_fnmatch(arg, apr_pstrcat(ck->p, name, "/", NULL), 0)
                  == APR_SUCCESS;
    }
    return 1;   /* <LocationMatch>, <ProxyMatch>: may well match it */
}

/* AFF0049: the stock recipe's `Header add Set-Cookie "ROUTEID=..."
 * env=BALANCER_ROUTE_CHANGED`, left behind after a migration.  The client
 * then gets the module's cookie and a second one of the same name that
 * names no member. */
static void affinity_check_header(affinity_ck *ck, const ap_directive_t *d,
                                  const ap_directive_t *vhost,
                                  const ap_directive_t *sec)
{
    static const char *const actions[] = {
        "set", "add", "append", "merge", "setifempty", "edit", "edit*", NULL
    };
    const char *args = d->args, *action, *value, *rest;
    int edit, changed, i;

    action = ap_getword_conf(ck->p, &args);
    if (!strcasecmp(action, "always") || !strcasecmp(action, "onsuccess")) {
        action = ap_getword_conf(ck->p, &args);
    }
    for (i = 0; actions[i] && strcasecmp(action, actions[i]); i++) {
    }
    if (!actions[i] || strcasecmp(ap_getword_conf(ck->p, &args), "Set-Cookie")) {
        return;
    }
    edit = !strncasecmp(action, "edit", 4);
    rest = args;
    value = ap_getword_conf(ck->p, &args);
    changed = ap_strcasestr(rest, "BALANCER_ROUTE_CHANGED") != NULL;
    for (i = 0; i < ck->users->nelts; i++) {
        const affinity_ck_user *u = &APR_ARRAY_IDX(ck->users, i, affinity_ck_user);
        const char *name = affinity_cookie_name_of(u->conf);
        const char *eq = apr_pstrcat(ck->p, name, "=", NULL);
        int ours;

        if (!affinity_warning_on(u->conf, 49)
            || !affinity_scope_reaches(ck, vhost, sec, u)) {
            continue;
        }
        if (!strncasecmp(value, "expr=", 5)) {
            value += 5;
        }
        while (apr_isspace(*value)) {
            value++;
        }
        ours = affinity_sets_cookie(u->conf)
               && (edit ? strstr(rest, eq) != NULL
                        : !strncmp(value, eq, strlen(eq)));
        if (!ours && !changed) {
            continue;
        }
        affinity_finding(ck, 49, APLOG_WARNING, u->s, u->conf, d,
                         "Header %s Set-Cookie reaches %s (at %s in %s), "
                         "which sets its route cookie itself: %s; remove "
                         "this line (lbmethod=affinity needs no Set-Cookie "
                         "rule)", action,
                         u->balancer->s->name, u->path,
                         affinity_server_name(ck->p, u->s),
                         ours ? apr_psprintf(ck->p, "a new client gets a "
                                             "second %s cookie that names no "
                                             "member and is treated as "
                                             "invalid", name)
                              : "it is the stock stickysession recipe "
                                "(env=BALANCER_ROUTE_CHANGED), which "
                                "mod_affinity replaces");
        return;     /* once per line */
    }
}

/* AFF0050: <Location /affinity-status> under an earlier ProxyPass (a
 * ProxyPass "/" above all): mod_proxy takes the request at translate_name,
 * before the handler is ever asked, so the page is the application's. */
typedef struct {
    const ap_directive_t *location;
    const ap_directive_t *vhost;
    const char *path;
} affinity_ck_status;

/* The ProxyPass line that made an alias, for the message. */
static const ap_directive_t *affinity_proxypass_node(affinity_ck *ck,
                                                     const ap_directive_t *d,
                                                     const char *fake)
{
    static const char *const names[] = { "ProxyPass", "ProxyPassMatch", NULL };

    for (; d; d = d->next) {
        const ap_directive_t *found;

        if (affinity_directive_is(d, names) && d->args) {
            const char *args = d->args;

            if (!strcmp(ap_getword_conf(ck->p, &args), fake)) {
                return d;
            }
        }
        if (d->first_child && strcasecmp(d->directive, "<Location")
            && strcasecmp(d->directive, "<LocationMatch")
            && (found = affinity_proxypass_node(ck, d->first_child, fake))) {
            return found;
        }
    }
    return NULL;
}

static void affinity_check_status_location(affinity_ck *ck,
                                           const affinity_ck_status *st)
{
    server_rec *s;
    int i;

    for (s = ck->main_s; s; s = s->next) {
        proxy_server_conf *psf = affinity_psf(ck, s);
        core_server_config *core = ap_get_core_module_config(s->module_config);
        const affinity_dir_conf *in_force = affinity_conf_of(ck, s->lookup_defaults);
        const ap_directive_t *vh = affinity_vhost_node(ap_conftree, s), *pp;
        const struct proxy_alias *a;

        if ((st->vhost && st->vhost != vh) || !psf || !psf->aliases) {
            continue;
        }
        for (i = 0; core->sec_url && i < core->sec_url->nelts; i++) {
            ap_conf_vector_t *v = APR_ARRAY_IDX(core->sec_url, i, ap_conf_vector_t *);
            core_dir_config *cd = ap_get_core_module_config(v);

            if (cd && cd->d && !cd->r && !strcmp(cd->d, st->path)) {
                in_force = affinity_merge(ck->p, in_force, affinity_conf_of(ck, v));
            }
        }
        a = affinity_alias_for(ck, s, st->path);
        if (!a || !strcmp(a->real, "!")) {
            continue;       /* not proxied, or excluded first */
        }
        pp = affinity_proxypass_node(ck, vh ? vh->first_child : ap_conftree,
                                     a->fake);
        if (!pp && vh) {
            pp = affinity_proxypass_node(ck, ap_conftree, a->fake);
        }
        affinity_finding(ck, 50, APLOG_WARNING, s, in_force, st->location,
                         "<Location %s> with SetHandler affinity-status in "
                         "%s is covered by ProxyPass%s %s %s%s: its "
                         "requests go to %s, never to the status page; "
                         "put ProxyPass \"%s\" \"!\" before that "
                         "ProxyPass", st->path,
                         affinity_server_name(ck->p, s),
                         a->regex ? "Match" : "", a->fake, a->real,
                         pp ? apr_psprintf(ck->p, " (%s:%d)", pp->filename,
                                           pp->line_num) : "",
                         a->real, st->path);
    }
}

/* Walk the configuration tree: Header lines and status locations, with the
 * <VirtualHost> and the section they are in. */
static void affinity_walk_tree(affinity_ck *ck, const ap_directive_t *d,
                               const ap_directive_t *vhost,
                               const ap_directive_t *sec)
{
    static const char *const url_sections[] = {
        "<Location", "<LocationMatch", "<Proxy", "<ProxyMatch", NULL
    };

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "Header") && d->args) {
            affinity_check_header(ck, d, vhost, sec);
        }
        else if (!strcasecmp(d->directive, "SetHandler") && sec && d->args
                 && !strcasecmp(sec->directive, "<Location")) {
            const char *args = d->args;

            if (!strcasecmp(ap_getword_conf(ck->p, &args), "affinity-status")) {
                affinity_ck_status st;

                st.location = sec;
                st.vhost = vhost;
                st.path = affinity_section_arg(ck->p, sec);
                affinity_check_status_location(ck, &st);
            }
        }
        if (!d->first_child || affinity_directive_is(d, affinity_file_sections)) {
            continue;
        }
        if (!strcasecmp(d->directive, "<VirtualHost")) {
            affinity_walk_tree(ck, d->first_child, d, NULL);
        }
        else if (affinity_directive_is(d, url_sections)) {
            affinity_walk_tree(ck, d->first_child, vhost, d);
        }
        else {
            affinity_walk_tree(ck, d->first_child, vhost, sec);
        }
    }
}

static void affinity_check_other_modules(affinity_ck *ck)
{
    affinity_walk_tree(ck, ap_conftree, NULL, NULL);
}

/* ---- A server-level balancer used from a virtual host (AFF0046) --------- */

/* httpd gives a virtual host that names a server-level balancer its own
 * copy (merge_balancers): members and stickysession are copied, the
 * lbmethod is not.  So `<Proxy balancer://app> ProxySet lbmethod=affinity`
 * at server level with `ProxyPass /app balancer://app` in a <VirtualHost>
 * balances by requests there, silently.  The copy gets the server-level
 * lbmethod here, before mod_proxy_balancer puts balancers in shared
 * memory, unless the virtual host says lbmethod= for it itself. */

#define AFFINITY_ADOPTED_KEY "mod_affinity.adopted"

typedef struct {
    server_rec *s;
    const char *name;
} affinity_adopted;

static int affinity_names_lbmethod(const ap_directive_t *d, const char *name,
                                   int inside)
{
    for (; d; d = d->next) {
        int here = inside
                   || (d->args && ap_strcasestr(d->args, name)
                       && (!strcasecmp(d->directive, "<Proxy")
                           || !strcasecmp(d->directive, "<ProxyMatch")));

        if (d->args && ap_strcasestr(d->args, "lbmethod=")
            && (here || ap_strcasestr(d->args, name))) {
            return 1;
        }
        if (d->first_child
            && affinity_names_lbmethod(d->first_child, name, here)) {
            return 1;
        }
    }
    return 0;
}

static int affinity_check_config_hook(apr_pool_t *pconf, apr_pool_t *plog,
                                      apr_pool_t *ptemp, server_rec *main_s)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    proxy_server_conf *mpsf;
    apr_array_header_t *adopted;
    server_rec *s;
    int i;

    (void)plog;
    (void)ptemp;
    if (!proxy
        || !(mpsf = ap_get_module_config(main_s->module_config, proxy))
        || !mpsf->balancers) {
        return OK;
    }
    adopted = apr_array_make(pconf, 1, sizeof(affinity_adopted));
    for (s = main_s->next; s; s = s->next) {
        proxy_server_conf *psf = ap_get_module_config(s->module_config, proxy);
        const ap_directive_t *vh = NULL;

        for (i = 0; psf && psf->balancers && i < psf->balancers->nelts; i++) {
            proxy_balancer *b = &APR_ARRAY_IDX(psf->balancers, i, proxy_balancer);
            proxy_balancer *top = affinity_balancer_named(ptemp, mpsf, b->s->name);
            affinity_adopted *a;

            if (!top || top->s == b->s || !affinity_is_ours(top)
                || affinity_is_ours(b) || strcmp(b->s->lbpname, "byrequests")) {
                continue;
            }
            if (!vh) {
                vh = affinity_vhost_node(ap_conftree, s);
            }
            if (vh && affinity_names_lbmethod(vh->first_child, b->s->name, 0)) {
                continue;   /* the virtual host chose its own */
            }
            b->lbmethod = top->lbmethod;
            apr_cpystrn(b->s->lbpname, top->s->lbpname, sizeof(b->s->lbpname));
            a = apr_array_push(adopted);
            a->s = s;
            a->name = apr_pstrdup(pconf, b->s->name);
        }
    }
    apr_pool_userdata_setn(adopted, AFFINITY_ADOPTED_KEY, NULL, pconf);
    return OK;
}

static void affinity_check_adopted(affinity_ck *ck)
{
    void *v = NULL;
    apr_array_header_t *adopted;
    int i;

    apr_pool_userdata_get(&v, AFFINITY_ADOPTED_KEY, ck->main_s->process->pconf);
    if (!(adopted = v)) {
        return;
    }
    for (i = 0; i < adopted->nelts; i++) {
        const affinity_adopted *a = &APR_ARRAY_IDX(adopted, i, affinity_adopted);

        affinity_finding(ck, 46, APLOG_INFO, a->s, NULL, NULL,
                         "%s: %s is defined at server level with "
                         "lbmethod=affinity; httpd's copy of it for this "
                         "virtual host had lbmethod=byrequests, and now uses "
                         "affinity too (say lbmethod= on this virtual host's "
                         "ProxyPass to choose otherwise)",
                         affinity_server_name(ck->p, a->s), a->name);
    }
}

/* ---- Expiry without a salt (AFF0060, stops startup) ----------------------- */

/* The salt keys the MAC of the cookie's dates: with expiry in force and no
 * salt, the key is public and anyone can forge a value that never expires.
 * Every configuration a request can get is checked, merged as httpd merges
 * it: each server's defaults (a virtual host's already hold the main
 * server's), each <Proxy>, <Location>, <Directory> and <Files> section over
 * them, with the <Files> and <If> sections nested in it, and for each
 * ProxyPass to an affinity balancer, its <Proxy> sections then the
 * <Location> sections over its path; for a section whose SetHandler hands
 * requests to an affinity balancer, that balancer's <Proxy> sections over
 * it (affinity_config_proxy_sections does so at request time).  What no
 * configuration tells (a per-directory RewriteRule [P], whose target only
 * the request knows; a SetHandler and AffinitySalt none in different
 * sections) the finder refuses at request time: no dated value verifies
 * without a salt (AFF0067). */
typedef struct {
    affinity_ck *ck;
    int bad;
} affinity_salt_ck;

static void affinity_salt_check(affinity_salt_ck *sc, server_rec *s,
                                const affinity_dir_conf *conf,
                                const char *where)
{
    affinity_ck *ck = sc->ck;
    affinity_directive_e which = conf->max_idle > 0 ? AFFINITY_DIRECTIVE_MAX_IDLE
                                                    : AFFINITY_DIRECTIVE_MAX_LIFE;
    const ap_directive_t *life = conf->set_at[which];
    const ap_directive_t *salt = conf->set_at[AFFINITY_DIRECTIVE_SALT];
    const char *name = which == AFFINITY_DIRECTIVE_MAX_IDLE
                       ? "AffinityCookieMaxIdle" : "AffinityCookieMaxLife";
    const char *line, *key;

    if (!affinity_expiry_on(conf) || conf->salt_len) {
        return;
    }
    if (!salt) {
        line = apr_psprintf(ck->p, "AFF0060: %s (%s line %d) needs a salt: the "
                            "salt keys the signature of the cookie's dates; "
                            "add AffinitySalt file:PATH (or a string) in the "
                            "same section or at server level, not "
                            "AffinitySalt none", name,
                            life ? life->filename : "?",
                            life ? life->line_num : 0);
    }
    else {
        line = apr_psprintf(ck->p, "AFF0060: %s (%s line %d) needs a salt, but "
                            "AffinitySalt none (%s line %d) turns it off for "
                            "%s in %s: anyone could then forge dates that "
                            "never expire; give that section a salt "
                            "(AffinitySalt file:PATH), or turn expiry off "
                            "there (%s 0)", name,
                            life ? life->filename : "?",
                            life ? life->line_num : 0, salt->filename,
                            salt->line_num, where, affinity_server_name(ck->p, s),
                            name);
    }
    sc->bad = 1;
    /* once per pair of directives: virtual hosts inherit the main
     * server's sections, and the main server comes first */
    key = apr_psprintf(ck->p, "AFF0060 %pp %pp", (const void *)life,
                       (const void *)salt);
    if (apr_hash_get(ck->said, key, APR_HASH_KEY_STRING)) {
        return;
    }
    apr_hash_set(ck->said, key, APR_HASH_KEY_STRING, "");
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, "%s", line);
}

/* A section's label for the message: its kind and path. */
static const char *affinity_section_label(affinity_ck *ck, int kind,
                                          const ap_conf_vector_t *v)
{
    const core_dir_config *cd = ap_get_core_module_config(v);
    const proxy_dir_conf *pd = ck->proxy ? ap_get_module_config(v, ck->proxy)
                                         : NULL;
    static const char *const kinds[] = {
        "Proxy", "Location", "Directory or Files", "Files", "If"
    };

    if (kind == 0 && pd && pd->p) {
        return apr_psprintf(ck->p, "<Proxy %s>", pd->p);
    }
    if (kind == 4 || !cd || !cd->d) {
        return apr_psprintf(ck->p, "an <%s> section", kinds[kind]);
    }
    return apr_psprintf(ck->p, "<%s %s>", kinds[kind], cd->d);
}

/* The SetHandler directive an expression came from, found in the
 * configuration tree by file and line (the parsed expression keeps no
 * source text). */
static const ap_directive_t *affinity_directive_at(const ap_directive_t *d,
                                                   const ap_expr_info_t *e)
{
    const ap_directive_t *found;

    for (; d; d = d->next) {
        if (d->line_num == (int)e->line_number && d->filename && e->filename
            && !strcmp(d->filename, e->filename)
            && !strcasecmp(d->directive, "SetHandler")) {
            return d;
        }
        if ((found = affinity_directive_at(d->first_child, e))) {
            return found;
        }
    }
    return NULL;
}

/* The affinity balancer a SetHandler "proxy:balancer://NAME..." hands its
 * requests to, and the URL its <Proxy> sections are matched against: as
 * at request time (affinity_mode_learn.c), the handler's URL followed by
 * r->filename, of which only the leading "/" is known here.  NULL for any
 * other handler, and for one built from variables, which only a request
 * can tell (the request-time guard, AFF0067, covers it). */
static const char *affinity_handler_url(affinity_ck *ck, server_rec *s,
                                        const ap_expr_info_t *e,
                                        const ap_directive_t **where)
{
    const ap_directive_t *d;
    const char *args, *word;
    proxy_balancer *b;
    proxy_server_conf *psf;

    if (!e || !ck->proxy || !(psf = affinity_psf(ck, s))
        || !(d = affinity_directive_at(ap_conftree, e)) || !d->args) {
        return NULL;
    }
    args = d->args;
    word = ap_getword_conf(ck->p, &args);
    if (strncasecmp(word, "proxy:" BALANCER_PREFIX,
                    sizeof("proxy:" BALANCER_PREFIX) - 1)
        || strpbrk(word, "%$\\")
        || !(b = affinity_balancer_named(ck->p, psf, word + 6))
        || !affinity_is_ours(b)) {
        return NULL;
    }
    *where = d;
    word += 6;
    return word[strlen(word) - 1] == '/' ? word
                                         : apr_pstrcat(ck->p, word, "/", NULL);
}

/* conf, with the <Proxy> sections of the balancer SetHandler h names
 * merged over it, checked for expiry without a salt. */
static void affinity_salt_handler(affinity_salt_ck *sc, server_rec *s,
                                  const affinity_dir_conf *conf,
                                  const ap_expr_info_t *h, const char *label)
{
    affinity_ck *ck = sc->ck;
    const ap_directive_t *d = NULL;
    const char *url = affinity_handler_url(ck, s, h, &d);
    const affinity_dir_conf *merged;

    if (!url) {
        return;
    }
    merged = affinity_config_proxy_merge(ck->p, s, url, conf);
    affinity_salt_check(sc, s, merged,
                        apr_psprintf(ck->p, "%s with SetHandler %s (%s line "
                                     "%d)", label, d->args, d->filename,
                                     d->line_num));
}

/* A section over base, then what is nested in it (kind: index in
 * affinity_section_label's kinds).  handler: the SetHandler in force from
 * an enclosing section.  Where it hands requests to an affinity balancer,
 * the balancer's <Proxy> sections are merged over the section as the
 * request-time merge does (affinity_config_proxy_sections), and that is
 * checked too. */
static void affinity_salt_walk(affinity_salt_ck *sc, server_rec *s,
                               const affinity_dir_conf *base,
                               const ap_expr_info_t *handler,
                               apr_array_header_t *list, int kind)
{
    affinity_ck *ck = sc->ck;
    int i;

    for (i = 0; list && i < list->nelts; i++) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(list, i, ap_conf_vector_t *);
        const affinity_dir_conf *own = affinity_conf_of(ck, v);
        const affinity_dir_conf *conf = base;
        const core_dir_config *cd = ap_get_core_module_config(v);
        const ap_expr_info_t *h = cd && cd->expr_handler ? cd->expr_handler
                                                         : handler;
        const char *label = affinity_section_label(ck, kind, v);

        if (own != ck->empty) {
            conf = affinity_merge(ck->p, base, own);
            affinity_salt_check(sc, s, conf, label);
        }
        /* <Proxy> sections are proxy-walked, never handed over */
        if (kind != 0) {
            affinity_salt_handler(sc, s, conf, h, label);
        }
        if (cd) {
            affinity_salt_walk(sc, s, conf, h, cd->sec_file, 3);
            affinity_salt_walk(sc, s, conf, h, cd->sec_if, 4);
        }
    }
}

int affinity_config_check(apr_pool_t *p, server_rec *main_s)
{
    affinity_ck ck;
    affinity_salt_ck sc;
    server_rec *s;
    int i;

    memset(&ck, 0, sizeof(ck));
    ck.proxy = ap_find_linked_module("mod_proxy.c");
    ck.p = p;
    ck.main_s = main_s;
    ck.sections = apr_array_make(p, 8, sizeof(affinity_ck_section *));
    ck.users = apr_array_make(p, 8, sizeof(affinity_ck_user));
    ck.said = apr_hash_make(p);
    ck.empty = affinity_create_dir_config(p, NULL);
    sc.ck = &ck;
    sc.bad = 0;
    for (s = main_s; s; s = s->next) {
        core_server_config *core = ap_get_core_module_config(s->module_config);
        proxy_server_conf *psf = ck.proxy ? affinity_psf(&ck, s) : NULL;
        const affinity_dir_conf *defaults = affinity_conf_of(&ck, s->lookup_defaults);

        const core_dir_config *cd = ap_get_core_module_config(s->lookup_defaults);
        const ap_expr_info_t *h = cd ? cd->expr_handler : NULL;

        affinity_salt_check(&sc, s, defaults, "the server's own settings");
        affinity_salt_handler(&sc, s, defaults, h, "the server's own settings");
        /* <If> at server level hangs on the server's defaults */
        affinity_salt_walk(&sc, s, defaults, h, cd ? cd->sec_if : NULL, 4);
        affinity_salt_walk(&sc, s, defaults, NULL, psf ? psf->sec_proxy : NULL, 0);
        affinity_salt_walk(&sc, s, defaults, h, core->sec_url, 1);
        affinity_salt_walk(&sc, s, defaults, h, core->sec_dir, 2);
    }
    if (ck.proxy) {
        affinity_gather(&ck);
        for (i = 0; i < ck.users->nelts; i++) {
            const affinity_ck_user *u = &APR_ARRAY_IDX(ck.users, i, affinity_ck_user);

            affinity_salt_check(&sc, u->s, u->conf,
                                apr_psprintf(p, "ProxyPass %s %s", u->path,
                                             u->balancer->s->name));
        }
    }
    return sc.bad ? !OK : OK;
}

/* ---- Running them ------------------------------------------------------- */

typedef void affinity_check_fn(affinity_ck *ck);

/* In the order they are reported.  A new mode adds its checks here. */
static affinity_check_fn *const affinity_checks[] = {
    affinity_check_balancers,       /* AFF0002, AFF0003 */
    affinity_check_salt,            /* AFF0040 */
    affinity_check_sections,        /* AFF0042 */
    affinity_check_modes,           /* AFF0045 */
    affinity_check_bound,           /* AFF0132 */
    affinity_check_cookies,         /* AFF0041, AFF0047 */
    affinity_check_lifetime,        /* AFF0043 */
    affinity_check_secure,          /* AFF0044 */
    affinity_check_adopted,         /* AFF0046 */
    affinity_check_other_modules,   /* AFF0049, AFF0050 */
    NULL
};

void affinity_check_config(apr_pool_t *p, server_rec *s)
{
    affinity_ck ck;
    int i;

    ck.proxy = ap_find_linked_module("mod_proxy.c");
    if (!ck.proxy) {
        return;
    }
    ck.p = p;
    ck.main_s = s;
    ck.sections = apr_array_make(p, 8, sizeof(affinity_ck_section *));
    ck.users = apr_array_make(p, 8, sizeof(affinity_ck_user));
    ck.said = apr_hash_make(p);
    ck.empty = affinity_create_dir_config(p, NULL);
    affinity_gather(&ck);
    for (i = 0; affinity_checks[i]; i++) {
        affinity_checks[i](&ck);
    }
}

/* apache2ctl -t: the same check, printed before "Syntax OK". */
static void affinity_test_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *p;

    apr_pool_create(&p, pconf);
    affinity_check_config(p, s);
    apr_pool_destroy(p);
}

void affinity_check_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_check_config(affinity_check_config_hook, NULL, NULL,
                         APR_HOOK_MIDDLE);
    ap_hook_test_config(affinity_test_config, NULL, NULL, APR_HOOK_MIDDLE);
}
