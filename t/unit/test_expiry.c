/* Unit tests for affinity_expiry.c: dated, signed cookie values and the
 * stock "SESSION.ROUTE" form, without httpd.  Prints TAP; run through prove
 * (make unit).  The vectors were computed by an independent model of the
 * format documented in docs/modes.md (Python's hmac and hashlib): if one fails,
 * every cookie issued so far stops verifying. */

#include <stdio.h>
#include <string.h>

#include "apr_general.h"

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
    int same = !strcmp(got, want);

    ok(same, what);
    if (!same) {
        printf("#   got:  %s\n#   want: %s\n", got, want);
    }
}

#define APP "balancer://app"

static const char *vector_app =
    "d0fb8650f0e84576e5e2e58d6294bb353483bb81.5f5e1000.5f5e1234.8a45ec1de93425477e89d8f3";
static const char *vector_other =
    "d0fb8650f0e84576e5e2e58d6294bb353483bb81.5f5e1000.5f5e1234.0bf6d0e117ce96eaab781594";
static const char *vector_nosalt =
    "56852a5456d1b09e1eb11c0ca39d8fbce6480106.00000000.ffffffff.0cc5b01905a1a7e2c6eecd49";

static void id_of(unsigned char id[AFFINITY_ID_LEN], const char *salt,
                  const char *identity)
{
    affinity_route_id(id, salt, strlen(salt), identity, strlen(identity));
}

static void test_vectors(void)
{
    affinity_mac_key key, other, nokey;
    unsigned char id[AFFINITY_ID_LEN];
    char buf[AFFINITY_STAMPED_LEN + 1];

    ok(AFFINITY_STAMPED_LEN == 83, "a dated value is 83 characters");

    affinity_mac_key_init(&key, "s3cret", 6, APP, strlen(APP));
    id_of(id, "s3cret", "blue");
    affinity_stamp_format(buf, &key, id, 0x5f5e1000, 0x5f5e1234);
    is_str(buf, vector_app, "format and MAC as documented");
    affinity_mac_key_init(&other, "s3cret", 6, "balancer://other", 16);
    affinity_stamp_format(buf, &other, id, 0x5f5e1000, 0x5f5e1234);
    is_str(buf, vector_other, "the balancer name is in the MAC");

    affinity_mac_key_init(&nokey, "", 0, "", 0);
    id_of(id, "", "127.0.0.1:8080");
    affinity_stamp_format(buf, &nokey, id, 0, 0xffffffffu);
    is_str(buf, vector_nosalt, "empty salt and name, extreme dates");
}

static void test_parse_verify(void)
{
    affinity_mac_key key, other, prefix, salt2;
    affinity_stamp st;
    char v[AFFINITY_STAMPED_LEN + 2];
    int i, all_flips_fail = 1;

    affinity_mac_key_init(&key, "s3cret", 6, APP, strlen(APP));
    affinity_mac_key_init(&other, "s3cret", 6, "balancer://other", 16);
    affinity_mac_key_init(&prefix, "s3cret", 6, "balancer://ap", 13);
    affinity_mac_key_init(&salt2, "s3cre", 5, APP, strlen(APP));

    ok(affinity_stamp_parse(&st, vector_app, strlen(vector_app)), "vector parses");
    ok(st.first == 0x5f5e1000 && st.last == 0x5f5e1234, "dates read back");
    ok(affinity_stamp_verify(&st, &key), "and verifies");
    ok(!affinity_stamp_verify(&st, &other), "not on another balancer");
    ok(!affinity_stamp_verify(&st, &prefix),
       "not on a balancer whose name is a prefix");
    ok(!affinity_stamp_verify(&st, &salt2), "not with another salt");

    /* every single-character change: unparsable or unverifiable */
    for (i = 0; i < AFFINITY_STAMPED_LEN; i++) {
        const char *alphabet = "0123456789abcdef.";
        int k;
        for (k = 0; alphabet[k]; k++) {
            if (alphabet[k] == vector_app[i]) {
                continue;
            }
            memcpy(v, vector_app, AFFINITY_STAMPED_LEN);
            v[i] = alphabet[k];
            if (affinity_stamp_parse(&st, v, AFFINITY_STAMPED_LEN)
                && affinity_stamp_verify(&st, &key)) {
                all_flips_fail = 0;
                printf("# accepted: %.*s\n", AFFINITY_STAMPED_LEN, v);
            }
        }
    }
    ok(all_flips_fail, "no one-character change of the value verifies");

    ok(!affinity_stamp_parse(&st, vector_app, AFFINITY_STAMPED_LEN - 1),
       "truncated by one refused");
    ok(!affinity_stamp_parse(&st, vector_app, AFFINITY_ID_HEX_LEN),
       "the bare ID is not a dated value");
    memcpy(v, vector_app, AFFINITY_STAMPED_LEN);
    v[AFFINITY_STAMPED_LEN] = '0';
    ok(!affinity_stamp_parse(&st, v, AFFINITY_STAMPED_LEN + 1),
       "one character longer refused");
    memcpy(v, vector_app, AFFINITY_STAMPED_LEN);
    v[45] = 'A';
    ok(!affinity_stamp_parse(&st, v, AFFINITY_STAMPED_LEN),
       "uppercase hex in a date refused");
    memcpy(v, vector_app, AFFINITY_STAMPED_LEN);
    v[AFFINITY_ID_HEX_LEN] = '-';
    ok(!affinity_stamp_parse(&st, v, AFFINITY_STAMPED_LEN),
       "another separator refused");
}

static void test_dates(void)
{
    affinity_stamp st;
    apr_int64_t now = 1000000;

    memset(&st, 0, sizeof(st));
    st.first = (apr_uint32_t)(now - 100);
    st.last = (apr_uint32_t)(now - 10);
    ok(affinity_stamp_check(&st, now, 0, 0) == AFFINITY_STAMP_OK, "no limits");
    ok(affinity_stamp_check(&st, now, 10, 100) == AFFINITY_STAMP_OK,
       "exactly MaxIdle idle and MaxLife old is still valid");
    ok(affinity_stamp_check(&st, now, 9, 0) == AFFINITY_STAMP_EXPIRED,
       "one second more idle than MaxIdle: expired");
    ok(affinity_stamp_check(&st, now, 0, 99) == AFFINITY_STAMP_EXPIRED,
       "one second older than MaxLife: expired");

    st.first = st.last = (apr_uint32_t)(now + AFFINITY_CLOCK_SKEW);
    ok(affinity_stamp_check(&st, now, 10, 100) == AFFINITY_STAMP_OK,
       "dates up to the skew ahead are accepted");
    st.last = (apr_uint32_t)(now + AFFINITY_CLOCK_SKEW + 1);
    ok(affinity_stamp_check(&st, now, 10, 100) == AFFINITY_STAMP_FUTURE,
       "a last date beyond the skew is in the future");
    st.first = st.last;
    st.last = (apr_uint32_t)now;
    ok(affinity_stamp_check(&st, now, 10, 100) == AFFINITY_STAMP_FUTURE,
       "so is a first date beyond the skew");
    st.first = 0;
    st.last = 0xffffffffu;
    ok(affinity_stamp_check(&st, now, 0, 0) == AFFINITY_STAMP_FUTURE,
       "future even with no limits");

    st.first = 0;
    st.last = (apr_uint32_t)(now - 25);
    ok(!affinity_stamp_refresh_due(st.last, now, 100), "a quarter idle: not yet");
    st.last = (apr_uint32_t)(now - 26);
    ok(affinity_stamp_refresh_due(st.last, now, 100), "past the quarter: refresh");
    st.last = (apr_uint32_t)(now - 1);
    ok(!affinity_stamp_refresh_due(st.last, now, 5), "MaxIdle 5: 1 s is not past 1.25 s");
    st.last = (apr_uint32_t)(now - 2);
    ok(affinity_stamp_refresh_due(st.last, now, 5), "2 s is");
    ok(!affinity_stamp_refresh_due(st.last, now, 0), "never without MaxIdle");
    st.last = (apr_uint32_t)(now + 100);
    ok(!affinity_stamp_refresh_due(st.last, now, 5), "nor with a date ahead");

    ok(affinity_stamp_date(-5) == 0 && affinity_stamp_date(12) == 12
       && affinity_stamp_date((apr_int64_t)1 << 40) == 0xffffffffu,
       "dates clamp to 32 bits");
}

/* The cache of verified values answers only for the exact text that
 * verified, and only what verified goes in. */
static void test_verified_cache(void)
{
    static affinity_verified c;     /* 21 kB: not on the stack */
    affinity_mac_key key, salt2;
    affinity_stamp st, forged_st;
    char forged[AFFINITY_STAMPED_LEN + 1];
    int i, all_refused = 1;

    affinity_mac_key_init(&key, "s3cret", 6, APP, strlen(APP));
    affinity_mac_key_init(&salt2, "s3cre", 5, APP, strlen(APP));
    ok(affinity_stamp_parse(&st, vector_app, AFFINITY_STAMPED_LEN), "vector parses");

    /* a forged value is never put in: the genuine one is not there after it */
    memcpy(forged, vector_app, AFFINITY_STAMPED_LEN + 1);
    forged[AFFINITY_STAMPED_LEN - 1] = forged[AFFINITY_STAMPED_LEN - 1] == '0' ? '1' : '0';
    ok(affinity_stamp_parse(&forged_st, forged, AFFINITY_STAMPED_LEN)
       && !affinity_stamp_verify_cached(&forged_st, forged, &key, &c),
       "a forged MAC does not verify through the cache");
    for (i = 0; i < AFFINITY_VERIFIED_SLOTS; i++) {
        if (c.text[i][0]) {
            all_refused = 0;
        }
    }
    ok(all_refused, "and is not cached");

    ok(affinity_stamp_verify_cached(&st, vector_app, &key, &c), "the genuine value verifies");
    ok(!memcmp(c.text[st.mac[0]], vector_app, AFFINITY_STAMPED_LEN),
       "and is cached whole, in the slot of its MAC's first byte");
    /* a verdict from the cache, not from the key: salt2 would refuse it */
    ok(affinity_stamp_verify_cached(&st, vector_app, &salt2, &c),
       "the same text is then answered from the cache");

    /* every value that differs from the cached one in one byte and still
     * parses falls to the MAC (same slot when the MAC's first byte is kept) */
    all_refused = 1;
    for (i = 0; i < AFFINITY_STAMPED_LEN; i++) {
        const char *alt = "0123456789abcdef";
        int k;

        for (k = 0; k < 16; k++) {
            memcpy(forged, vector_app, AFFINITY_STAMPED_LEN + 1);
            if (forged[i] == '.' || forged[i] == alt[k]) {
                continue;
            }
            forged[i] = alt[k];
            if (affinity_stamp_parse(&forged_st, forged, AFFINITY_STAMPED_LEN)
                && affinity_stamp_verify_cached(&forged_st, forged, &key, &c)) {
                all_refused = 0;
            }
        }
    }
    ok(all_refused, "every one-digit change of a cached value is refused");
    ok(!memcmp(c.text[st.mac[0]], vector_app, AFFINITY_STAMPED_LEN),
       "and leaves the cached value in place");
    ok(affinity_stamp_verify_cached(&st, vector_app, &key, NULL),
       "no cache: the plain check");
}

static void test_legacy(void)
{
    const char *route;
    apr_size_t len;

    ok(affinity_legacy_route(".1", 2, &route, &len) && len == 1 && *route == '1',
       ".ROUTE");
    ok(affinity_legacy_route("abc.node2", 9, &route, &len) && len == 5
       && !memcmp(route, "node2", 5), "SESSION.ROUTE");
    ok(affinity_legacy_route("a.b.c", 5, &route, &len) && len == 3
       && !memcmp(route, "b.c", 3), "the route follows the first dot, as httpd reads it");
    ok(!affinity_legacy_route("abc.", 4, &route, &len), "empty route refused");
    ok(!affinity_legacy_route("node2", 5, &route, &len), "no dot: no route");
    ok(!affinity_legacy_route("", 0, &route, &len), "empty value");
}

int main(void)
{
    apr_initialize();

    test_vectors();
    test_parse_verify();
    test_dates();
    test_verified_cache();
    test_legacy();

    printf("1..%d\n", tests_run);
    apr_terminate();
    return tests_failed ? 1 : 0;
}
