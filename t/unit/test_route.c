/* Unit tests for affinity_route.c: the pure logic, without httpd.
 * Prints TAP; run through prove (make unit).  The domain-mode vectors were
 * computed by an independent model of the documented hash (exact integer
 * arithmetic in Python): if one fails, sites would be remapped. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr_general.h"
#include "apr_strings.h"

#include "mod_affinity.h"

static int tests_run, tests_failed;

static void ok(int cond, const char *what)
{
    tests_run++;
    if (!cond) {
        tests_failed++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", tests_run, what);
}

static void is_str(const char *got, const char *want, const char *what)
{
    int same = (got == NULL && want == NULL)
               || (got && want && !strcmp(got, want));
    ok(same, what);
    if (!same) {
        printf("#   got:  %s\n#   want: %s\n", got ? got : "(null)",
               want ? want : "(null)");
    }
}

static const char *route_hex(apr_pool_t *p, const char *salt,
                             const char *identity)
{
    unsigned char id[AFFINITY_ID_LEN];
    char *hex = apr_palloc(p, AFFINITY_ID_HEX_LEN + 1);

    affinity_route_id(id, salt, strlen(salt), identity, strlen(identity));
    affinity_id_to_hex(hex, id);
    return hex;
}

static void test_route_ids(apr_pool_t *p)
{
    unsigned char id[AFFINITY_ID_LEN], back[AFFINITY_ID_LEN];
    const char *hex;

    /* sha1_hex("127.0.0.1:8080"): Perlbal::Plugin::SessionAffinity's ID */
    is_str(route_hex(p, "", "127.0.0.1:8080"),
           "56852a5456d1b09e1eb11c0ca39d8fbce6480106", "unsalted host:port ID");
    is_str(route_hex(p, "", "10.0.0.11:8080"),
           "665cd0b26d5a5a8903f09fc2013eb480e11db3fe", "unsalted ID, other member");
    is_str(route_hex(p, "s3cret", "blue"),
           "d0fb8650f0e84576e5e2e58d6294bb353483bb81", "salt bytes come first");

    hex = route_hex(p, "", "127.0.0.1:8080");
    ok(affinity_id_from_hex(back, hex, strlen(hex)), "own hex parses back");
    affinity_route_id(id, "", 0, "127.0.0.1:8080", 14);
    ok(!memcmp(id, back, AFFINITY_ID_LEN), "and gives the same bytes");

    ok(!affinity_id_from_hex(back, "56852A5456D1B09E1EB11C0CA39D8FBCE6480106", 40),
       "uppercase is not the canonical form");
    ok(!affinity_id_from_hex(back, "56852a5456d1b09e1eb11c0ca39d8fbce648010", 39),
       "39 digits refused");
    ok(!affinity_id_from_hex(back, "56852a5456d1b09e1eb11c0ca39d8fbce64801060", 41),
       "41 digits refused");
    ok(!affinity_id_from_hex(back, "56852a5456d1b09e1eb11c0ca39d8fbce648010g", 40),
       "non-hex digit refused");
    ok(!affinity_id_from_hex(back, "", 0), "empty refused");
}

/* The decoder reads eight digits at a time: every byte value at every
 * position against a plain one-digit-at-a-time decoder. */
static int ref_digit(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                                 : -1;
}

static void test_id_from_hex_bytes(void)
{
    const char *base = "0123456789abcdeffedcba9876543210a5b6c7d8";
    unsigned char got[AFFINITY_ID_LEN], want[AFFINITY_ID_LEN];
    char s[AFFINITY_PREFIX_LEN + 2];
    int pos, c, i, bad = 0, untouched = 1, prefix_bad = 0;

    for (pos = 0; pos < AFFINITY_ID_HEX_LEN; pos++) {
        for (c = 0; c < 256; c++) {
            int valid = 1;

            memcpy(s, base, AFFINITY_ID_HEX_LEN);
            s[AFFINITY_ID_HEX_LEN] = AFFINITY_PREFIX_SEP;
            s[AFFINITY_ID_HEX_LEN + 1] = 'x';
            s[pos] = (char)c;
            for (i = 0; i < AFFINITY_ID_LEN; i++) {
                int hi = ref_digit((unsigned char)s[2 * i]);
                int lo = ref_digit((unsigned char)s[2 * i + 1]);

                valid &= hi >= 0 && lo >= 0;
                want[i] = (unsigned char)((hi & 15) << 4 | (lo & 15));
            }
            memset(got, 0x5a, sizeof(got));
            if (affinity_id_from_hex(got, s, AFFINITY_ID_HEX_LEN) != valid
                || (valid && memcmp(got, want, AFFINITY_ID_LEN))) {
                bad++;
            }
            /* prefix mode asks the same question without decoding */
            if (affinity_prefix_parse(NULL, s, AFFINITY_ID_HEX_LEN + 2) != valid) {
                prefix_bad++;
            }
            for (i = 0; !valid && i < AFFINITY_ID_LEN; i++) {
                untouched &= got[i] == 0x5a;
            }
        }
    }
    ok(!bad, "every byte at every position decodes as one digit at a time does");
    ok(untouched, "a refused value leaves the ID untouched");
    ok(!prefix_bad, "a prefix is 40 such digits, as the decoder reads them");
}

typedef struct {
    char values[8][64];
    int n;
} collected;

static int collect(void *baton, const char *value, apr_size_t len)
{
    collected *c = baton;

    if (c->n < 8 && len < 64) {
        memcpy(c->values[c->n], value, len);
        c->values[c->n][len] = '\0';
    }
    c->n++;
    return 0;
}

static int stop_first(void *baton, const char *value, apr_size_t len)
{
    (void)value; (void)len;
    ++*(int *)baton;
    return 1;
}

static void test_cookie_scan(void)
{
    collected c;
    int calls = 0;

    memset(&c, 0, sizeof(c));
    ok(affinity_cookie_scan("a=1; ROUTEID=abc; b=2", "ROUTEID", collect, &c) == 1
       && !strcmp(c.values[0], "abc"), "value found among others");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan("ROUTEID=one;ROUTEID=\"two\" ;  ROUTEID = three",
                         "ROUTEID", collect, &c);
    ok(c.n == 3 && !strcmp(c.values[0], "one") && !strcmp(c.values[1], "two")
       && !strcmp(c.values[2], "three"),
       "repeated names in order, quotes and blanks removed");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan("XROUTEID=1; ROUTEIDX=2; routeid=3; ROUTEID", "ROUTEID",
                         collect, &c);
    ok(c.n == 0, "no prefix, suffix or case matches; pair without = skipped");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan(";;; ; ROUTEID=; =x; ROUTEID=\"", "ROUTEID", collect, &c);
    ok(c.n == 2 && !strcmp(c.values[0], "") && !strcmp(c.values[1], "\""),
       "empty value and lone quote are values, not crashes");

    affinity_cookie_scan("ROUTEID=1; ROUTEID=2", "ROUTEID", stop_first, &calls);
    ok(calls == 1, "callback can stop the scan");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan("x=1, ROUTEID=two,ROUTEID=three", "ROUTEID", collect, &c);
    ok(c.n == 1 && !strcmp(c.values[0], "two,ROUTEID=three"),
       "', ' (httpd's join of two lines) separates, a bare ',' does not");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan("pref=x,ROUTEID=b3; ROUTEID=b2", "ROUTEID", collect, &c);
    ok(c.n == 1 && !strcmp(c.values[0], "b2"),
       "issue 9.8: a cookie hidden in another's value after ',' is not read");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan("a=1, ROUTEID=id; b=2", "ROUTEID", collect, &c);
    ok(c.n == 1 && !strcmp(c.values[0], "id"),
       "the cookie in the second of two joined Cookie lines is read");

    memset(&c, 0, sizeof(c));
    affinity_cookie_scan("a=\"x,y\",ROUTEID=1;ROUTEID=2,", "ROUTEID", collect, &c);
    ok(c.n == 1 && !strcmp(c.values[0], "2,"), "a trailing bare comma is value");

    memset(&c, 0, sizeof(c));
    ok(affinity_cookie_scan("", "ROUTEID", collect, &c) == 0, "empty header");
}

static void test_cookie_strip(apr_pool_t *p)
{
    int removed;
    const char *h = "a=1; b=2";

    is_str(affinity_cookie_strip(p, "a=1; ROUTEID=x; b=2", "ROUTEID", &removed),
           "a=1; b=2", "middle pair removed");
    ok(removed, "removed flag set");
    is_str(affinity_cookie_strip(p, "ROUTEID=x;a=1", "ROUTEID", &removed),
           "a=1", "first pair removed");
    is_str(affinity_cookie_strip(p, "a=1;  ROUTEID=x ", "ROUTEID", &removed),
           "a=1", "last pair removed");
    is_str(affinity_cookie_strip(p, "ROUTEID=x; ROUTEID=y", "ROUTEID", &removed),
           NULL, "nothing left gives NULL");
    ok(affinity_cookie_strip(p, h, "ROUTEID", &removed) == h && !removed,
       "no match returns the header itself");
    is_str(affinity_cookie_strip(p, "ROUTEIDX=1; ROUTEID=2; flag", "ROUTEID",
                                 &removed),
           "ROUTEIDX=1; flag", "similar names and bare flags kept");
    is_str(affinity_cookie_strip(p, "a;b;c;d;e;f;g;h;ROUTEID=", "ROUTEID", &removed),
           "a;b;c;d;e;f;g;h", "separators between untouched pairs kept as sent");
    is_str(affinity_cookie_strip(p, "a;ROUTEID=;b;ROUTEID=;c;ROUTEID=;d", "ROUTEID",
                                 &removed),
           "a; b; c; d", "'; ' where a pair was cut, within bounds");
    is_str(affinity_cookie_strip(p, "x=1, ROUTEID=y, z=\"a;b\"", "ROUTEID", &removed),
           "x=1; z=\"a;b\"", "joined lines rejoined with '; ', z's bytes kept");
    is_str(affinity_cookie_strip(p, "x=1;ROUTEID", "ROUTEID", &removed),
           "x=1;ROUTEID", "a bare flag of the same name is not a pair");
    is_str(affinity_cookie_strip(p, "pref=x,ROUTEID=b3; ROUTEID=b2", "ROUTEID",
                                 &removed),
           "pref=x,ROUTEID=b3", "issue 9.8: pref keeps its bytes");
    is_str(affinity_cookie_strip(p, "a=1, ROUTEID=id; b=2", "ROUTEID", &removed),
           "a=1; b=2", "issue 9.8: two Cookie lines become one, joined by '; '");
    is_str(affinity_cookie_strip(p, "a=1, b=2; ROUTEID=id", "ROUTEID", &removed),
           "a=1; b=2", "a join between kept pairs becomes '; ' too");
    is_str(affinity_cookie_strip(p, " ;a=1 ;; b=2 ; ROUTEID=1;", "ROUTEID", &removed),
           "a=1 ;; b=2", "blanks and stray separators at the ends trimmed");
}

static void test_member_set_cookie(void)
{
    /* 2026-11-29 12:00:00 GMT */
    apr_time_t now = apr_time_from_sec(1795953600);
    affinity_set_cookie_t sc;
    const char *h;

    h = " ROUTEID = abc ; Path=/; HttpOnly";
    ok(affinity_set_cookie_parse(h, now, &sc) == 1, "a cookie");
    ok(sc.name_len == 7 && !strncmp(h + sc.name_off, "ROUTEID", 7), "name trimmed");
    ok(sc.value_len == 3 && !strncmp(h + sc.value_off, "abc", 3), "value trimmed");
    ok(h[sc.attrs_off] == ';' && sc.attrs_off == 15, "attributes start at ';'");
    ok(!sc.deletion, "a value without expiry sets");

    h = "sid=\"q\"";
    ok(affinity_set_cookie_parse(h, now, &sc) && sc.value_len == 3
       && sc.attrs_off == strlen(h), "quotes kept in the value; no attributes");

    ok(!affinity_set_cookie_parse("novalue; Path=/", now, &sc), "no '=': no cookie");
    ok(!affinity_set_cookie_parse(" =x", now, &sc), "empty name: no cookie");
    ok(!affinity_set_cookie_parse("", now, &sc), "empty header: no cookie");
    ok(!affinity_set_cookie_parse("a; b=c", now, &sc),
       "'=' only in an attribute: no cookie");

    ok(affinity_set_cookie_parse("R=; Path=/", now, &sc) && sc.deletion,
       "empty value deletes");
    ok(affinity_set_cookie_parse("R=\"\"", now, &sc) && sc.deletion,
       "empty quoted value deletes");
    ok(affinity_set_cookie_parse("R=1; Max-Age=0", now, &sc) && sc.deletion,
       "Max-Age=0 deletes");
    ok(affinity_set_cookie_parse("R=1; max-age = -5", now, &sc) && sc.deletion,
       "negative Max-Age deletes, any case, blanks");
    ok(affinity_set_cookie_parse("R=1; Max-Age=-0", now, &sc) && sc.deletion,
       "-0 is <= 0");
    ok(affinity_set_cookie_parse("R=1; Max-Age=000000000000000000000000000001",
                                 now, &sc) && !sc.deletion,
       "long positive Max-Age keeps, without overflow");
    ok(affinity_set_cookie_parse("R=1; Max-Age=99999999999999999999999", now, &sc)
       && !sc.deletion, "huge Max-Age keeps");
    ok(affinity_set_cookie_parse("R=1; Max-Age=1x", now, &sc) && !sc.deletion,
       "invalid Max-Age ignored");
    ok(affinity_set_cookie_parse("R=1; Max-Age=-", now, &sc) && !sc.deletion,
       "a lone '-' is not a Max-Age");
    ok(affinity_set_cookie_parse("R=1; Max-Age=0; Max-Age=60", now, &sc)
       && !sc.deletion, "the last Max-Age wins");
    ok(affinity_set_cookie_parse("R=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                                 now, &sc) && sc.deletion,
       "Expires at the epoch deletes (apr_date_parse_rfc reads it as 0)");
    ok(affinity_set_cookie_parse("R=1; expires=Thu, 01-Jan-1970 00:00:01 GMT",
                                 now, &sc) && sc.deletion,
       "Expires in the past, cookie-style date, deletes");
    ok(affinity_set_cookie_parse("R=1; Expires=Sun, 29 Nov 2026 11:59:59 GMT",
                                 now, &sc) && sc.deletion,
       "a second before now deletes");
    ok(affinity_set_cookie_parse("R=1; Expires=Sun, 29 Nov 2026 12:00:01 GMT",
                                 now, &sc) && !sc.deletion,
       "a second after now keeps");
    ok(affinity_set_cookie_parse("R=1; Expires=yesterday", now, &sc)
       && !sc.deletion, "a bad date is ignored");
    ok(affinity_set_cookie_parse("R=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
                                 "Max-Age=3600", now, &sc) && !sc.deletion,
       "Max-Age wins over Expires");
    ok(affinity_set_cookie_parse("R=1; Max-Age=0x; Expires=Thu, 01 Jan 1970 "
                                 "00:00:00 GMT", now, &sc) && sc.deletion,
       "an invalid Max-Age leaves Expires in force");
}

static void test_directive_values(apr_pool_t *p)
{
    const char *err = NULL;

    ok(affinity_cookie_name_valid("ROUTEID"), "ROUTEID is a token");
    ok(affinity_cookie_name_valid("__Host-route.id~1"), "prefix and punctuation");
    ok(!affinity_cookie_name_valid(""), "empty name refused");
    ok(!affinity_cookie_name_valid("a b"), "space refused");
    ok(!affinity_cookie_name_valid("a=b"), "= refused");
    ok(!affinity_cookie_name_valid("a;b"), "; refused");
    ok(!affinity_cookie_name_valid("caf\xc3\xa9"), "non-ASCII refused");
    ok(!affinity_cookie_name_valid("a\tb"), "tab refused");

    is_str(affinity_cookie_attrs(p, "Path=/; HttpOnly", &err), "Path=/; HttpOnly",
           "default attributes unchanged");
    is_str(affinity_cookie_attrs(p, "HttpOnly; Secure", &err),
           "Path=/; HttpOnly; Secure", "Path=/ added when missing");
    is_str(affinity_cookie_attrs(p, "secure; path=/app", &err), "secure; path=/app",
           "path in any case counts");
    is_str(affinity_cookie_attrs(p, "Pathological=1", &err), "Path=/; Pathological=1",
           "an attribute merely starting with Path does not");
    is_str(affinity_cookie_attrs(p, " ; Secure; ", &err), "Path=/; Secure",
           "stray separators trimmed");
    is_str(affinity_cookie_attrs(p, "", &err), "Path=/", "empty gives Path=/");
    ok(affinity_cookie_attrs(p, "Path=/\r\nX-Injected: 1", &err) == NULL && err,
       "CR LF refused");
    ok(affinity_cookie_attrs(p, "Path=/\x7f", &err) == NULL, "DEL refused");

    is_str(affinity_cache_control_private(p, NULL), "private", "no Cache-Control");
    is_str(affinity_cache_control_private(p, "public, max-age=60"),
           "max-age=60, private", "public dropped, private added");
    is_str(affinity_cache_control_private(p, "no-store"), "no-store",
           "no-store left alone");
    is_str(affinity_cache_control_private(p, "max-age=5, PRIVATE"),
           "max-age=5, PRIVATE", "private already there");
    is_str(affinity_cache_control_private(p, "a,b,c,d,e,f,g,h"),
           "a, b, c, d, e, f, g, h, private", "tight commas widened within bounds");
    is_str(affinity_cache_control_private(p, "s-maxage=9, publicity=1"),
           "s-maxage=9, publicity=1, private", "only the public directive dropped");
    is_str(affinity_cache_control_private(p, "public, max-age=600, no-store"),
           "public, max-age=600, no-store",
           "issue 9.2: two Cache-Control lines joined, no-store in the second");
    is_str(affinity_cache_control_private(p, "public, max-age=600, private"),
           "public, max-age=600, private", "private in the second line kept");
    is_str(affinity_cache_control_private(p, "public, private=\"X-Foo\", max-age=9"),
           "max-age=9, private",
           "a qualified private does not cover the cookie: made plain");
    is_str(affinity_cache_control_private(p, "no-cache=\"a, private, b\", public"),
           "no-cache=\"a, private, b\", private",
           "commas and names inside a quoted string are not directives");
    is_str(affinity_cache_control_private(p, "x=\"q\\\", public\", s-maxage=1"),
           "x=\"q\\\", public\", s-maxage=1, private",
           "an escaped quote does not end the quoted string");
    is_str(affinity_cache_control_private(p, "No-Store=1"), "No-Store=1",
           "no-store in any case, even with a value");
    is_str(affinity_cache_control_private(p, ", ,"), "private",
           "nothing but commas");
}

static void test_index(apr_pool_t *p)
{
    affinity_index *ix = affinity_index_make(p, 1000);
    unsigned char id[AFFINITY_ID_LEN];
    char ident[32];
    int i, all = 1, misses = 1;

    for (i = 0; i < 1000; i++) {
        apr_snprintf(ident, sizeof(ident), "10.0.%d.%d:8080", i / 256, i % 256);
        affinity_route_id(id, "", 0, ident, strlen(ident));
        affinity_index_put(ix, id, i);
    }
    for (i = 0; i < 1000; i++) {
        apr_snprintf(ident, sizeof(ident), "10.0.%d.%d:8080", i / 256, i % 256);
        affinity_route_id(id, "", 0, ident, strlen(ident));
        all &= affinity_index_get(ix, id) == i;
        affinity_route_id(id, "other", 5, ident, strlen(ident));
        misses &= affinity_index_get(ix, id) == -1;
    }
    ok(all, "1000 IDs found at their slots");
    ok(misses, "1000 unknown IDs missed");

    affinity_route_id(id, "", 0, "10.0.0.0:8080", 13);
    affinity_index_put(ix, id, 4242);
    ok(affinity_index_get(ix, id) == 0, "duplicate ID keeps the first slot");

    ix = affinity_index_make(p, 0);
    ok(affinity_index_get(ix, id) == -1, "empty table misses");
}

static const struct {
    const char *ident;
    apr_uint64_t weight;
} members[] = {
    {"10.0.0.21:8080", 100}, {"10.0.0.22:8080", 200}, {"10.0.0.23:8080", 100},
    {"blue", 100}, {"10.0.0.25:8080", 300}
};
#define NMEMBERS (sizeof(members) / sizeof(members[0]))

static int pick(const char *host, const char *salt, int skip)
{
    apr_uint64_t key = affinity_host_key(host), best_w = 0, best_c = 0;
    int i, best = -1;

    for (i = 0; i < (int)NMEMBERS; i++) {
        apr_uint64_t seed, cost;
        if (i == skip) {
            continue;
        }
        seed = affinity_member_seed(salt, strlen(salt), members[i].ident,
                                    strlen(members[i].ident));
        cost = affinity_rendezvous_cost(key, seed);
        if (best < 0 || affinity_rendezvous_beats(members[i].weight, cost,
                                                  best_w, best_c)) {
            best = i;
            best_w = members[i].weight;
            best_c = cost;
        }
    }
    return best;
}

static void test_domain_vectors(void)
{
    static const struct {
        const char *host;
        int unsalted, salted;
    } v[] = {
        {"example.com", 1, 3}, {"www.example.org", 1, 3},
        {"shop.example.net", 1, 1}, {"a.b.c.d", 3, 2}, {"plone.org", 3, 4},
        {"xn--bcher-kva.example", 2, 0}, {"localhost", 1, 2},
        {"Example.COM.", 1, 3}
    };
    int i;
    char what[128];

    ok(affinity_host_key("example.com") == APR_UINT64_C(0x9591d6421994d599),
       "host key vector");
    ok(affinity_member_seed("salt", 4, "10.0.0.21:8080", 14)
       == APR_UINT64_C(0x1fb594942916dd2a), "member seed vector");
    ok(affinity_rendezvous_cost(affinity_host_key("example.com"),
                                affinity_member_seed("", 0, "10.0.0.21:8080", 14))
       == APR_UINT64_C(0xbf3b3c98), "rendezvous cost vector");
    ok(affinity_host_key("EXAMPLE.com.") == affinity_host_key("example.com"),
       "host key folds case and one trailing dot");

    for (i = 0; i < (int)(sizeof(v) / sizeof(v[0])); i++) {
        int u = pick(v[i].host, "", -1), s = pick(v[i].host, "s3cret", -1);
        apr_snprintf(what, sizeof(what), "%s -> member %d unsalted, %d salted",
                     v[i].host, v[i].unsalted, v[i].salted);
        ok(u == v[i].unsalted && s == v[i].salted, what);
    }
}

static void test_domain_properties(void)
{
    int counts[NMEMBERS] = {0};
    int i, moved_wrong = 0, moved = 0, n = 20000;
    apr_uint64_t total_w = 0;
    char host[64];
    int shares_ok = 1;

    for (i = 0; i < n; i++) {
        int a, b;
        apr_snprintf(host, sizeof(host), "site%d.example.com", i);
        a = pick(host, "", -1);
        counts[a]++;
        b = pick(host, "", 1);          /* member 1 removed */
        if (a != 1 && a != b) {
            moved_wrong++;
        }
        moved += a != b;
    }
    for (i = 0; i < (int)NMEMBERS; i++) {
        total_w += members[i].weight;
    }
    for (i = 0; i < (int)NMEMBERS; i++) {
        double want = (double)n * members[i].weight / total_w;
        if (counts[i] < want * 0.93 || counts[i] > want * 1.07) {
            shares_ok = 0;
            printf("# member %d: %d hosts, want about %.0f\n", i, counts[i], want);
        }
    }
    ok(shares_ok, "shares follow weights within 7% over 20000 hosts");
    ok(moved_wrong == 0, "removing a member moves only its own hosts");
    ok(moved == counts[1], "and moves all of them");
}

#define ID_A "56852a5456d1b09e1eb11c0ca39d8fbce6480106"
#define ID_B "665cd0b26d5a5a8903f09fc2013eb480e11db3fe"

typedef struct {
    int n;
    char v[4][64];
} strip_values;

static int strip_record(void *baton, const char *value, apr_size_t len)
{
    strip_values *got = baton;

    if (got->n < 4 && len < sizeof(got->v[0])) {
        memcpy(got->v[got->n], value, len);
        got->v[got->n][len] = '\0';
    }
    got->n++;
    return 1;                       /* ignored: the pass goes on */
}

static void test_prefix_parse(apr_pool_t *p)
{
    unsigned char id[AFFINITY_ID_LEN], want[AFFINITY_ID_LEN];
    const char *v;
    int cut, seen;

    affinity_id_from_hex(want, ID_A, AFFINITY_ID_HEX_LEN);
    ok(affinity_prefix_parse(id, ID_A "~abc", 44) && !memcmp(id, want, 20),
       "prefix: 40 hex and ~ give the ID");
    ok(affinity_prefix_parse(NULL, ID_A "~", 41), "prefix: empty rest is fine");
    ok(!affinity_prefix_parse(NULL, ID_A "abc", 43), "prefix: no ~, no prefix");
    ok(!affinity_prefix_parse(NULL, ID_A, 40), "prefix: bare ID is no prefix");
    ok(!affinity_prefix_parse(NULL, "56852A5456D1B09E1EB11C0CA39D8FBCE6480106~x", 42),
       "prefix: uppercase hex is no prefix");
    ok(!affinity_prefix_parse(NULL, "6852a5456d1b09e1eb11c0ca39d8fbce6480106~x", 41),
       "prefix: 39 hex is no prefix");

    v = affinity_prefix_strip(p, "a=1; JSESSIONID=" ID_A "~abc; b=2",
                              "JSESSIONID", NULL, NULL, &seen, &cut);
    is_str(v, "a=1; JSESSIONID=abc; b=2", "strip: prefix cut, the rest byte for byte");
    ok(cut == 1 && seen == 1, "strip: one value, one cut");
    v = affinity_prefix_strip(p, "JSESSIONID=\"" ID_A "~abc\"", "JSESSIONID",
                              NULL, NULL, &seen, &cut);
    is_str(v, "JSESSIONID=\"abc\"", "strip: inside quotes");
    v = affinity_prefix_strip(p, "JSESSIONID=" ID_A "~" ID_B "~abc", "JSESSIONID",
                              NULL, NULL, &seen, &cut);
    is_str(v, "JSESSIONID=abc", "strip: every leading prefix of a value");
    ok(cut == 1, "strip: counted per value");
    {
        strip_values got = { 0 };

        v = affinity_prefix_strip(p, "X=" ID_A "~abc;JSESSIONID = " ID_B "~z, "
                                  "JSESSIONID=abc; JSESSIONID=\"" ID_A "~y\"",
                                  "JSESSIONID", strip_record, &got, &seen, &cut);
        is_str(v, "X=" ID_A "~abc;JSESSIONID = z, JSESSIONID=abc; JSESSIONID=\"y\"",
               "strip: every value of the name, other cookies untouched");
        ok(cut == 2 && seen == 3, "strip: three values seen, two cut");
        ok(got.n == 3 && !strcmp(got.v[0], ID_B "~z") && !strcmp(got.v[1], "abc")
           && !strcmp(got.v[2], ID_A "~y"),
           "strip: each value handed out in order, prefix included, quotes off");
    }
    is_str(affinity_prefix_skip(ID_A "~" ID_B "~x~" ID_A, 126), "x~" ID_A,
           "skip: past the leading prefixes only");
    {
        const char *h = "JSESSIONID=abc; other=" ID_A "~x";

        ok(affinity_prefix_strip(p, h, "JSESSIONID", NULL, NULL, &seen, &cut) == h
           && cut == 0 && seen == 1,
           "strip: nothing to cut returns the header itself");
    }
}

static void test_set_cookie(apr_pool_t *p)
{
    affinity_set_cookie_t sc;
    apr_time_t now = APR_INT64_C(1700000000) * APR_USEC_PER_SEC;

    ok(affinity_set_cookie_parse(" SID = \"abc\" ; Path=/", now, &sc)
       && sc.name_off == 1 && sc.name_len == 3 && sc.value_off == 7
       && sc.value_len == 5 && sc.attrs_off == 13 && !sc.deletion,
       "set-cookie: name, value as sent (quotes kept), attributes");
    ok(!affinity_set_cookie_parse("novalue; Path=/", now, &sc),
       "set-cookie: no = before ; sets nothing");
    ok(!affinity_set_cookie_parse(" =abc", now, &sc), "set-cookie: empty name sets nothing");
    ok(affinity_set_cookie_parse("SID=; Path=/", now, &sc) && sc.deletion,
       "set-cookie: empty value is a deletion");
    ok(affinity_set_cookie_parse("SID=\"\"", now, &sc) && sc.deletion,
       "set-cookie: empty quoted value is a deletion");
    ok(affinity_set_cookie_parse("SID=x; Max-Age=0", now, &sc) && sc.deletion,
       "set-cookie: Max-Age=0 is a deletion");
    ok(affinity_set_cookie_parse("SID=x; max-age=-5", now, &sc) && sc.deletion,
       "set-cookie: negative Max-Age is a deletion");
    ok(affinity_set_cookie_parse("SID=x; Max-Age=60", now, &sc) && !sc.deletion,
       "set-cookie: positive Max-Age is not");
    ok(affinity_set_cookie_parse("SID=x; Max-Age=6x0", now, &sc) && !sc.deletion,
       "set-cookie: malformed Max-Age is ignored");
    ok(affinity_set_cookie_parse("SID=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT", now, &sc)
       && sc.deletion, "set-cookie: Expires at the epoch is a deletion");
    ok(affinity_set_cookie_parse("SID=x; Expires=Sun, 06 Nov 1994 08:49:37 GMT", now, &sc)
       && sc.deletion, "set-cookie: Expires in the past is a deletion");
    ok(affinity_set_cookie_parse("SID=x; Expires=Fri, 31 Dec 9999 23:59:59 GMT", now, &sc)
       && !sc.deletion, "set-cookie: Expires in the future is not");
    ok(affinity_set_cookie_parse("SID=x; Expires=garbage", now, &sc) && !sc.deletion,
       "set-cookie: unreadable Expires is ignored");
    ok(affinity_set_cookie_parse("SID=x; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                                 now, &sc) && !sc.deletion,
       "set-cookie: Max-Age wins over Expires");
    ok(affinity_set_cookie_parse("SID=x; Max-Age=0; Max-Age=60", now, &sc) && !sc.deletion,
       "set-cookie: the last Max-Age counts");

    is_str(affinity_set_cookie_prefix(p, "SID=abc; Path=/; HttpOnly", "SID", ID_A, now),
           "SID=" ID_A "~abc; Path=/; HttpOnly", "rewrite: value prefixed, attributes kept");
    is_str(affinity_set_cookie_prefix(p, "SID=\"abc\";Path=/", "SID", ID_A, now),
           "SID=\"" ID_A "~abc\";Path=/", "rewrite: quoted stays quoted");
    is_str(affinity_set_cookie_prefix(p, "SID=" ID_B "~abc", "SID", ID_A, now),
           "SID=" ID_A "~abc", "rewrite: existing prefix replaced");
    is_str(affinity_set_cookie_prefix(p, "SID=" ID_B "~" ID_A "~abc", "SID", ID_A, now),
           "SID=" ID_A "~abc", "rewrite: never two prefixes");
    is_str(affinity_set_cookie_prefix(p, "SID=; Path=/", "SID", ID_A, now), NULL,
           "rewrite: deletion untouched");
    is_str(affinity_set_cookie_prefix(p, "SID=x; Max-Age=0", "SID", ID_A, now), NULL,
           "rewrite: Max-Age=0 untouched");
    is_str(affinity_set_cookie_prefix(p, "SIDX=abc", "SID", ID_A, now), NULL,
           "rewrite: other cookie untouched");
    is_str(affinity_set_cookie_prefix(p, "sid=abc", "SID", ID_A, now), NULL,
           "rewrite: names are case-sensitive");
    is_str(affinity_set_cookie_prefix(p, "  SID =  abc  ; Secure", "SID", ID_A, now),
           "  SID =  " ID_A "~abc  ; Secure", "rewrite: blanks kept byte for byte");
}

static const char *hexn(char *out, const unsigned char *b, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", b[i]);
    }
    return out;
}

/* SipHash-2-4-128: the reference implementation's vectors.h
 * (vectors_sip128, github.com/veorq/SipHash): key 00..0f, message 00..i-1 */
static const char *const sip128_vectors[64] = {
        "a3817f04ba25a8e66df67214c7550293",
        "da87c1d86b99af44347659119b22fc45",
        "8177228da4a45dc7fca38bdef60affe4",
        "9c70b60c5267a94e5f33b6b02985ed51",
        "f88164c12d9c8faf7d0f6e7c7bcd5579",
        "1368875980776f8854527a07690e9627",
        "14eeca338b208613485ea0308fd7a15e",
        "a1f1ebbed8dbc153c0b84aa61ff08239",
        "3b62a9ba6258f5610f83e264f31497b4",
        "264499060ad9baabc47f8b02bb6d71ed",
        "00110dc378146956c95447d3f3d0fbba",
        "0151c568386b6677a2b4dc6f81e5dc18",
        "d626b266905ef35882634df68532c125",
        "9869e247e9c08b10d029934fc4b952f7",
        "31fcefac66d7de9c7ec7485fe4494902",
        "5493e99933b0a8117e08ec0f97cfc3d9",
        "6ee2a4ca67b054bbfd3315bf85230577",
        "473d06e8738db89854c066c47ae47740",
        "a426e5e423bf4885294da481feaef723",
        "78017731cf65fab074d5208952512eb1",
        "9e25fc833f2290733e9344a5e83839eb",
        "568e495abe525a218a2214cd3e071d12",
        "4a29b54552d16b9a469c10528eff0aae",
        "c9d184ddd5a9f5e0cf8ce29a9abf691c",
        "2db479ae78bd50d8882a8a178a6132ad",
        "8ece5f042d5e447b5051b9eacb8d8f6f",
        "9c0b53b4b3c307e87eaee08678141f66",
        "abf248af69a6eae4bfd3eb2f129eeb94",
        "0664da1668574b88b935f3027358aef4",
        "aa4b9dc4bf337de90cd4fd3c467c6ab7",
        "ea5c7f471faf6bde2b1ad7d4686d2287",
        "2939b0183223fafc1723de4f52c43d35",
        "7c3956ca5eeafc3e363e9d556546eb68",
        "77c6077146f01c32b6b69d5f4ea9ffcf",
        "37a6986cb8847edf0925f0f1309b54de",
        "a705f0e69da9a8f907241a2e923c8cc8",
        "3dc47d1f29c448461e9e76ed904f6711",
        "0d62bf01e6fc0e1a0d3c4751c5d3692b",
        "8c03468bca7c669ee4fd5e084bbee7b5",
        "528a5bb93baf2c9c4473cce5d0d22bd9",
        "df6a301e95c95dad97ae0cc8c6913bd8",
        "801189902c857f39e73591285e70b6db",
        "e617346ac9c231bb3650ae34ccca0c5b",
        "27d93437efb721aa401821dcec5adf89",
        "89237d9ded9c5e78d8b1c9b166cc7342",
        "4a6d8091bf5e7d651189fa94a250b14c",
        "0e33f96055e7ae893ffc0e3dcf492902",
        "e61c432b720b19d18ec8d84bdc63151b",
        "f7e5aef549f782cf379055a608269b16",
        "438d030fd0b7a54fa837f2ad201a6403",
        "a590d3ee4fbf04e3247e0d27f286423f",
        "5fe2c1a172fe93c4b15cd37caef9f538",
        "2c97325cbd06b36eb2133dd08b3a017c",
        "92c814227a6bca949ff0659f002ad39e",
        "dce850110bd8328cfbd50841d6911d87",
        "67f14984c7da791248e32bb5922583da",
        "1938f2cf72d54ee97e94166fa91d2a36",
        "74481e9646ed49fe0f6224301604698e",
        "57fca5de98a9d6d8006438d0583d8a1d",
        "9fecde1cefdc1cbed4763674d9575359",
        "e3040c00eb28f15366ca73cbd872e740",
        "7697009a6a831dfecca91c5993670f7a",
        "5853542321f567a005d547a4f04759bd",
        "5150d1772f50834a503e069a973fbd7c",
};

static void test_siphash(void)
{
    unsigned char key[16], msg[64], out[16], out2[16];
    char hex[33];
    int i, bad = 0, split_bad = 0;

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char)i;
    }
    for (i = 0; i < 64; i++) {
        msg[i] = (unsigned char)i;
    }
    for (i = 0; i < 64; i++) {
        int cut;

        affinity_siphash128(out, key, msg, (apr_size_t)i);
        if (strcmp(hexn(hex, out, 16), sip128_vectors[i])) {
            printf("# SipHash-2-4-128 of %d bytes: got %s, want %s\n", i,
                   hex, sip128_vectors[i]);
            bad++;
        }
        /* every split of the message into three updates */
        for (cut = 0; cut <= i; cut++) {
            affinity_siphash h;
            int cut2 = cut + (i - cut) / 2;

            affinity_siphash_init(&h, key);
            affinity_siphash_update(&h, msg, (apr_size_t)cut);
            affinity_siphash_update(&h, msg + cut, (apr_size_t)(cut2 - cut));
            affinity_siphash_update(&h, msg + cut2, (apr_size_t)(i - cut2));
            affinity_siphash_final(&h, out2);
            split_bad += memcmp(out, out2, 16) != 0;
        }
    }
    ok(bad == 0, "siphash: the 64 reference SipHash-2-4-128 vectors");
    ok(split_bad == 0, "siphash: streaming in pieces gives the one-call value");
}

static void test_learn(void)
{
    unsigned char mac[AFFINITY_ID_LEN], id[AFFINITY_ID_LEN];
    unsigned char lk[AFFINITY_LEARN_KEY_LEN], lk2[AFFINITY_LEARN_KEY_LEN];
    affinity_learn_secret ls, ls2, ls0;
    unsigned char entry[AFFINITY_LEARN_ENTRY_LEN], key[80];
    char hex[AFFINITY_ID_HEX_LEN + 1];
    apr_int64_t w;

    /* RFC 2202 test cases 1, 2 and 6 */
    memset(key, 0x0b, 20);
    affinity_hmac_sha1(mac, key, 20, "Hi There", 8);
    affinity_id_to_hex(hex, mac);
    is_str(hex, "b617318655057264e28bc0b6fb378c8ef146be00", "hmac: RFC 2202 case 1");
    affinity_hmac_sha1(mac, "Jefe", 4, "what do ya want for nothing?", 28);
    affinity_id_to_hex(hex, mac);
    is_str(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", "hmac: RFC 2202 case 2");
    memset(key, 0xaa, 80);
    affinity_hmac_sha1(mac, key, 80,
                       "Test Using Larger Than Block-Size Key - Hash Key First", 54);
    affinity_id_to_hex(hex, mac);
    is_str(hex, "aa4ae5e15272d00e95705637ce8a3b55ed402112", "hmac: RFC 2202 case 6 (long key)");

    /* learn keys: vectors from an independent model (Python's hmac and a
     * SipHash written from the paper, itself checked against the reference
     * vectors): if one fails, every entry in every store is lost */
    affinity_learn_secret_init(&ls, "salt", 4);
    affinity_learn_secret_init(&ls2, "pepper", 6);
    affinity_learn_secret_init(&ls0, "", 0);
    is_str(hexn(hex, ls.k, sizeof(ls.k)), "4c447f52f33c0dca3853b372b131bbf8",
           "learn secret: HMAC-SHA1(salt, label), 16 bytes");
    affinity_learn_key(lk, &ls, "balancer://a", "abc", 3);
    is_str(hexn(hex, lk, sizeof(lk)), "0a33a159b7807065e84ad94e38470b22",
           "learn key: SipHash-2-4-128 of balancer NUL value");
    affinity_learn_key_kind(lk2, &ls, "balancer://a", "header", "abc", 3);
    is_str(hexn(hex, lk2, sizeof(lk2)), "5812dd46515c8d63bceae3c84f4fdf8b",
           "learn key: header kind");
    affinity_learn_key(lk2, &ls0, "balancer://a", "abc", 3);
    is_str(hexn(hex, lk2, sizeof(lk2)), "d9f6e016b0ac9ba0bf43a643d3b1fdec",
           "learn key: no salt");
    affinity_learn_old_key_kind(mac, &ls, "balancer://a", NULL, "abc", 3);
    is_str(hexn(hex, mac, sizeof(mac)), "38c64ec7647179180ba6e96a6527fc0048f8e06c",
           "old learn key: HMAC-SHA1(salt, balancer NUL value), as 0.1.0 made it");
    affinity_learn_old_key_kind(mac, &ls, "balancer://a", "header", "abc", 3);
    is_str(hexn(hex, mac, sizeof(mac)), "4904ba7c05475883197c0b1afd481ecab6012bfe",
           "old learn key: header kind, as 0.1.0 made it");

    affinity_learn_key(lk2, &ls, "balancer://b", "abc", 3);
    ok(memcmp(lk, lk2, sizeof(lk)) != 0, "learn key: the balancer's name counts");
    affinity_learn_key(lk2, &ls2, "balancer://a", "abc", 3);
    ok(memcmp(lk, lk2, sizeof(lk)) != 0, "learn key: the salt counts");
    affinity_learn_key(lk2, &ls, "balancer://a", "abc", 3);
    ok(memcmp(lk, lk2, sizeof(lk)) == 0, "learn key: stable");
    affinity_learn_key_kind(lk2, &ls, "balancer://a", NULL, "abc", 3);
    ok(memcmp(lk, lk2, sizeof(lk)) == 0, "learn key: no kind is the cookie key");
    affinity_learn_key_kind(lk2, &ls, "balancer://a", "header", "abc", 3);
    ok(memcmp(lk, lk2, sizeof(lk)) != 0, "learn key: a header value is not the cookie value");
    {
        unsigned char k3[AFFINITY_LEARN_KEY_LEN];
        affinity_learn_key(k3, &ls, "balancer://a", "\0header\0abc", 11);
        ok(memcmp(k3, lk2, sizeof(k3)) == 0,
           "learn key: header key input is balancer NUL NUL kind NUL value");
    }
    {
        static char big[5000];
        unsigned char o1[AFFINITY_LEARN_OLD_KEY_LEN], o2[AFFINITY_LEARN_OLD_KEY_LEN];
        memset(big, 'x', sizeof(big));
        affinity_learn_key(lk2, &ls, "balancer://a", big, sizeof(big));
        affinity_learn_key(lk, &ls, "balancer://a", big, sizeof(big) - 1);
        ok(memcmp(lk, lk2, sizeof(lk)) != 0, "learn key: long values hashed whole");
        affinity_learn_old_key_kind(o1, &ls, "balancer://a", NULL, big, sizeof(big));
        affinity_learn_old_key_kind(o2, &ls, "balancer://a", NULL, big, sizeof(big) - 1);
        ok(memcmp(o1, o2, sizeof(o1)) != 0, "old learn key: long values hashed whole");
        /* the old key is HMAC-SHA1 of the concatenation, whatever its size */
        {
            char *cat = malloc(13 + sizeof(big));
            memcpy(cat, "balancer://a", 13);
            memcpy(cat + 13, big, sizeof(big));
            affinity_hmac_sha1(o2, "salt", 4, cat, 13 + sizeof(big));
            ok(!memcmp(o1, o2, sizeof(o1)), "old learn key: HMAC of balancer NUL value");
            free(cat);
        }
    }

    affinity_learn_entry_encode(entry, mac, APR_INT64_C(1700000000));
    ok(affinity_learn_entry_decode(entry, sizeof(entry), id, &w)
       && !memcmp(id, mac, sizeof(id)) && w == APR_INT64_C(1700000000),
       "entry: round trip");
    ok(!affinity_learn_entry_decode(entry, sizeof(entry) - 1, id, &w),
       "entry: wrong length refused");
    ok(affinity_learn_entry_age(1000, 1000, 1800) == 0, "age: fresh");
    ok(affinity_learn_entry_age(1000, 1449, 1800) == 0, "age: under a quarter");
    ok(affinity_learn_entry_age(1000, 1450, 1800) == 1, "age: a quarter: rewrite");
    ok(affinity_learn_entry_age(1000, 2799, 1800) == 1, "age: just alive");
    ok(affinity_learn_entry_age(1000, 2800, 1800) == -1, "age: expired");
    ok(affinity_learn_entry_age(1000, 900, 1800) == 0, "age: clock stepped back");
}

/* A model: decode the code point by the length the lead byte announces and
 * accept it only when it is in range, not a surrogate and not overlong. */
static int model_utf8_len(const unsigned char *s, apr_size_t len)
{
    apr_uint32_t cp;
    apr_size_t n, i;

    if (!len) {
        return 0;
    }
    if (s[0] < 0x80) {
        return 1;
    }
    n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
        : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || len < n) {
        return 0;
    }
    cp = s[0] & (0x7f >> n);
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800)
        || (n == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return (int)n;
}

static void test_utf8(apr_pool_t *p)
{
    unsigned char b[4];
    unsigned long i, bad = 0;

    ok(affinity_utf8_len((const unsigned char *)"\xed\xa0\x80", 3) == 0,
       "utf8: a surrogate (ED A0 80) refused");
    ok(affinity_utf8_len((const unsigned char *)"\xed\x9f\xbf", 3) == 3,
       "utf8: U+D7FF accepted");
    ok(affinity_utf8_len((const unsigned char *)"\xe0\x80\xbc", 3) == 0,
       "utf8: an overlong (E0 80 BC) refused");
    ok(affinity_utf8_len((const unsigned char *)"\xc0\xbc", 2) == 0
       && affinity_utf8_len((const unsigned char *)"\xc1\xbf", 2) == 0,
       "utf8: C0 and C1 leads refused");
    ok(affinity_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4) == 0
       && affinity_utf8_len((const unsigned char *)"\xf5\x80\x80\x80", 4) == 0,
       "utf8: above U+10FFFF refused");
    ok(affinity_utf8_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4) == 4,
       "utf8: U+10FFFF accepted");
    ok(affinity_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 3) == 0,
       "utf8: a truncated sequence refused");
    /* every 1- to 3-byte string, and 4-byte ones over every lead and second
     * byte, against the model */
    for (i = 0; i < 0x1000000UL; i++) {
        b[0] = (unsigned char)(i >> 16);
        b[1] = (unsigned char)(i >> 8);
        b[2] = (unsigned char)i;
        b[3] = 0x80;
        bad += affinity_utf8_len(b, 3) != model_utf8_len(b, 3);
        if ((i & 0xff) == 0x80 || (i & 0xff) == 0xbf || (i & 0xff) == 0x41) {
            bad += affinity_utf8_len(b, 4) != model_utf8_len(b, 4);
        }
    }
    ok(bad == 0, "utf8: agrees with a decoding model on every 3-byte string");

    ok(!strcmp(affinity_utf8_clean(p, "caf\xc3\xa9 ok"), "caf\xc3\xa9 ok"),
       "utf8 clean: well-formed text unchanged");
    ok(!strcmp(affinity_utf8_clean(p, "\xed\xa0\x80\xe0\x80\xbcx"),
               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
               "\xef\xbf\xbdx"),
       "utf8 clean: each bad byte becomes U+FFFD");
    ok(!strcmp(affinity_utf8_clean(p, "a\xff"), "a\xef\xbf\xbd"),
       "utf8 clean: a bad last byte");
}

/* affinity_rv against the plain walk: many keys, member sets of 1 to 300
 * members, one to a dozen distinct weights (beyond AFFINITY_RV_CLASSES),
 * duplicate seeds (exact ties: the first offered wins) and seeds that put
 * members in the near-tie window. */
static apr_uint64_t rv_rand_state = APR_UINT64_C(0x9e3779b97f4a7c15);
static apr_uint64_t rv_rand(void)
{
    apr_uint64_t z = (rv_rand_state += APR_UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * APR_UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * APR_UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* fmix64's inverse, to make seeds whose x lands next to another's */
static apr_uint64_t rv_unfmix(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= APR_UINT64_C(0x9cb4b2f8129337db);
    h ^= h >> 33;
    h *= APR_UINT64_C(0x4f74430c22a54005);
    h ^= h >> 33;
    return h;
}

static apr_uint64_t rv_fmix(apr_uint64_t h)
{
    h ^= h >> 33;
    h *= APR_UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= APR_UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static int rv_plain(apr_uint64_t key, const apr_uint64_t *seed,
                    const apr_uint64_t *weight, int n)
{
    apr_uint64_t bw = 0, bc = 0;
    int i, best = -1;

    for (i = 0; i < n; i++) {
        apr_uint64_t c = affinity_rendezvous_cost(key, seed[i]);

        if (best < 0 || affinity_rendezvous_beats(weight[i], c, bw, bc)) {
            best = i;
            bw = weight[i];
            bc = c;
        }
    }
    return best;
}

static void test_rendezvous_fast(void)
{
    static apr_uint64_t seed[300], weight[300];
    int round, bad = 0, checked = 0;

    for (round = 0; round < 4000; round++) {
        int n = 1 + (int)(rv_rand() % (round % 10 == 0 ? 300 : 40));
        int nweights = 1 + (int)(rv_rand() % (round % 3 ? 3 : 12));
        int k, i;

        for (i = 0; i < n; i++) {
            seed[i] = rv_rand();
            if (i && rv_rand() % 8 == 0) {
                seed[i] = seed[rv_rand() % i];          /* exact tie */
            }
            weight[i] = 1 + (rv_rand() % nweights) * 37;
        }
        for (k = 0; k < 50; k++) {
            apr_uint64_t key = rv_rand();
            affinity_rv rv;

            if (k % 5 == 0 && n > 1) {
                /* near ties: members whose x is within 2^-10 of another's */
                for (i = 1; i < n; i += 2) {
                    apr_uint64_t h = rv_fmix(key ^ seed[i - 1]);
                    apr_uint64_t d = (h >> 10) >> (rv_rand() % 40);

                    h = rv_rand() % 2 ? h - d : h + d;
                    seed[i] = rv_unfmix(h) ^ key;
                }
            }

            affinity_rv_init(&rv, key);
            for (i = 0; i < n; i++) {
                affinity_rv_offer(&rv, seed[i], weight[i], i);
            }
            checked++;
            if (affinity_rv_best(&rv) != rv_plain(key, seed, weight, n)) {
                bad++;
            }
        }
    }
    {
        char what[128];

        snprintf(what, sizeof(what), "affinity_rv agrees with the plain walk "
                 "(%d picks, %d differ)", checked, bad);
        ok(bad == 0, what);
    }
}

/* affinity_route_head_same() against the plain comparison the member
 * table makes (affinity_member_current: the built copy, NUL padded, against
 * the live bytes with strncmp), for routes of every length around 8 bytes
 * and live routes left by balancer-manager's strcpy over longer ones (an
 * older route's bytes after the NUL). */
static void test_route_head(void)
{
    enum { SIZE = 64 };
    int round, bad = 0, checked = 0;

    for (round = 0; round < 200000; round++) {
        char built[SIZE], live[SIZE];
        affinity_route_head h;
        int blen = (int)(rv_rand() % 20), llen, i;

        /* a built copy as apr_cpystrn into zeroed memory leaves it */
        memset(built, 0, sizeof(built));
        for (i = 0; i < blen; i++) {
            built[i] = (char)('a' + rv_rand() % 3);
        }
        /* the live bytes: garbage, then a route strcpy'd over them */
        for (i = 0; i < SIZE; i++) {
            live[i] = (char)(rv_rand() % 4 ? 'a' + rv_rand() % 3 : 0);
        }
        switch (rv_rand() % 4) {
        case 0:                     /* the same route */
            memcpy(live, built, (apr_size_t)blen + 1);
            break;
        case 1:                     /* one byte changed, or cut short */
            memcpy(live, built, (apr_size_t)blen + 1);
            i = blen ? (int)(rv_rand() % (unsigned)(blen + 1)) : 0;
            live[i] = (char)(live[i] ? (rv_rand() % 2 ? 0 : live[i] + 1) : 'a');
            break;
        case 2:                     /* another route of its own length */
            llen = (int)(rv_rand() % 20);
            for (i = 0; i < llen; i++) {
                live[i] = (char)('a' + rv_rand() % 3);
            }
            live[llen] = 0;
            break;
        default:                    /* left as garbage */
            live[SIZE - 1] = 0;
            break;
        }
        affinity_route_head_init(&h, built);
        checked++;
        if (affinity_route_head_same(&h, built, live, SIZE)
            != !strncmp(built, live, SIZE)) {
            bad++;
        }
    }
    {
        char what[128];

        snprintf(what, sizeof(what), "affinity_route_head_same agrees with "
                 "strncmp (%d routes, %d differ)", checked, bad);
        ok(bad == 0, what);
    }
}

int main(void)
{
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);

    test_route_ids(p);
    test_id_from_hex_bytes();
    test_cookie_scan();
    test_cookie_strip(p);
    test_member_set_cookie();
    test_directive_values(p);
    test_index(p);
    test_domain_vectors();
    test_rendezvous_fast();
    test_route_head();
    test_domain_properties();
    test_prefix_parse(p);
    test_set_cookie(p);
    test_siphash();
    test_learn();
    test_utf8(p);

    printf("1..%d\n", tests_run);
    apr_pool_destroy(p);
    apr_terminate();
    return tests_failed ? 1 : 0;
}
