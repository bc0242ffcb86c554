/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * mod_affinity.h: the pure logic of mod_affinity, free of httpd.
 *
 * Route IDs, cookie parsing, directive value checks, the ID index and the
 * domain-mode hash live here (affinity_route.c) so that unit tests and
 * fuzzers can drive them with nothing but APR and APR-util.
 */

#ifndef MOD_AFFINITY_H
#define MOD_AFFINITY_H

#include "apr.h"
#include "apr_pools.h"
#include "apr_sha1.h"
#include "apr_time.h"

#include <string.h>

/* Internal to the module (and its unit tests and fuzzers, which link the
 * files statically): nothing here is exported from the .so. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden)
#endif

#define AFFINITY_ID_LEN     20              /* SHA1 digest bytes */
#define AFFINITY_ID_HEX_LEN (2 * AFFINITY_ID_LEN)

#define AFFINITY_DEFAULT_COOKIE "ROUTEID"
#define AFFINITY_DEFAULT_ATTRS  "Path=/; HttpOnly"

/* ---- Route IDs ---------------------------------------------------------- */

/* id = SHA1(salt bytes, then identity bytes) */
void affinity_route_id(unsigned char id[AFFINITY_ID_LEN],
                       const char *salt, apr_size_t salt_len,
                       const char *identity, apr_size_t identity_len);

/* Lowercase hex, NUL-terminated: hex must hold AFFINITY_ID_HEX_LEN + 1. */
void affinity_id_to_hex(char *hex, const unsigned char id[AFFINITY_ID_LEN]);

/* Parse exactly AFFINITY_ID_HEX_LEN lowercase hex digits; the canonical form
 * is the only one accepted.  Returns 1 on success, 0 otherwise. */
int affinity_id_from_hex(unsigned char id[AFFINITY_ID_LEN],
                         const char *s, apr_size_t len);

/* ---- Cookies ------------------------------------------------------------- */

/* Called for each value of the wanted cookie, in header order, with any
 * surrounding double quotes removed.  Return non-zero to stop the scan. */
typedef int affinity_cookie_fn(void *baton, const char *value, apr_size_t len);

/* How a Cookie header is cut into pairs (affinity_cookie_scan and
 * affinity_cookie_strip agree): a pair ends at ';', or at ", " (a comma and
 * a space), which is how httpd joins repeated Cookie header lines; any other
 * comma belongs to the pair it is in ("pref=x,ROUTEID=1" is one pair named
 * pref).  Blanks around a pair, its name and its value are not part of
 * them; a pair without '=' has no name. */

/* Scans one Cookie header value ("a=1; b=2").  Returns how many values of
 * the cookie were seen. */
int affinity_cookie_scan(const char *header, const char *name,
                         affinity_cookie_fn *fn, void *baton);

/* Returns the header without any pair named name, or NULL when nothing else
 * is left.  The other pairs keep their bytes; between two of them the bytes
 * that separated them are kept when they are only ';' and blanks, and
 * become "; " where a pair was taken out or httpd had joined two lines with
 * ", " (RFC 6265's separator, as HTTP/2 joins cookies).  *removed tells
 * whether anything was taken out; when not, the header itself is returned. */
const char *affinity_cookie_strip(apr_pool_t *p, const char *header,
                                  const char *name, int *removed);

/* RFC 6265 cookie-name (an RFC 2616 token).  Returns 1 when valid. */
int affinity_cookie_name_valid(const char *name);

/* Checks AffinityCookie ATTRIBUTES and returns the attribute string to send
 * (Path=/ prepended when there is no Path), or NULL with *err set. */
const char *affinity_cookie_attrs(apr_pool_t *p, const char *attrs,
                                  const char **err);

/* Cache-Control for a response that sets a route cookie, so that a shared
 * cache never stores one client's route.  existing: the member's
 * directives, every Cache-Control line joined with ", " (NULL when there is
 * none).  Directives are split at commas outside quoted strings.  Returned
 * unchanged when a directive is a plain private or a no-store; otherwise
 * every directive but public and a qualified private (private="...",
 * which a shared cache may still store) is kept, trimmed, joined with
 * ", ", and "private" is added. */
const char *affinity_cache_control_private(apr_pool_t *p, const char *existing);

/* ---- Prefix mode: route IDs on the application's cookie ----------------- */

/* A prefix is the 40-hex route ID and '~' in front of the value. */
#define AFFINITY_PREFIX_SEP '~'
#define AFFINITY_PREFIX_LEN (AFFINITY_ID_HEX_LEN + 1)

/* Does the value start with a prefix?  Returns 1 and puts the ID's bytes in
 * id (when not NULL) if so, 0 otherwise. */
int affinity_prefix_parse(unsigned char id[AFFINITY_ID_LEN],
                          const char *value, apr_size_t len);

/* The value past all its leading prefixes (value itself when none).  The
 * response side never lets a value carry more than one, so a value with
 * several was not made here, and its application value is what follows. */
const char *affinity_prefix_skip(const char *value, apr_size_t len);

/* The Cookie header with the prefixes cut off every value of the named
 * cookie that has any (inside double quotes too: "ID~abc" becomes "abc"),
 * every other byte copied.  Pairs are found exactly as affinity_cookie_scan()
 * finds them, and each value of the cookie is handed to fn (when not NULL)
 * as affinity_cookie_scan() would hand it, prefixes included, before it is
 * cut, so that one pass over the header does both; fn cannot stop the pass
 * (its return value is ignored).  *seen says how many values the cookie
 * had, *cut how many lost prefixes; when none did, the original header is
 * returned. */
const char *affinity_prefix_strip(apr_pool_t *p, const char *header,
                                  const char *name, affinity_cookie_fn *fn,
                                  void *baton, int *seen, int *cut);

/* One Set-Cookie header as a member sent it, read as RFC 6265 5.2 does:
 * offsets into the header; the value as sent (quotes kept).  (The same
 * interface as the response branch's parser: one of the two goes at merge.) */
typedef struct {
    apr_size_t name_off, name_len;
    apr_size_t value_off, value_len;
    apr_size_t attrs_off;           /* the ';' that ends the pair, or the end */
    int deletion;                   /* it removes the cookie: see below */
} affinity_set_cookie_t;

/* Parses a Set-Cookie header.  Returns 0, *out untouched, when it sets no
 * cookie a browser would keep (no '=' before the first ';', or an empty
 * name).  deletion: the value is empty (or ""), or the last valid Max-Age is
 * <= 0, or, without a valid Max-Age, the last valid Expires is not after
 * now. */
int affinity_set_cookie_parse(const char *header, apr_time_t now,
                              affinity_set_cookie_t *out);

/* The Set-Cookie header with the value of the named cookie given the prefix
 * id_hex~ (replacing any prefixes the value already has), or NULL when the
 * header must pass untouched: another cookie, a deletion, or no cookie at
 * all.  Everything but the value is copied byte for byte; a quoted value
 * stays inside its quotes. */
const char *affinity_set_cookie_prefix(apr_pool_t *p, const char *header,
                                       const char *name, const char *id_hex,
                                       apr_time_t now);
/* The same for a header already parsed (sc) and known to set NAME, not
 * to delete it. */
const char *affinity_set_cookie_prefix_parsed(apr_pool_t *p,
                                              const char *header,
                                              const affinity_set_cookie_t *sc,
                                              const char *id_hex);

/* ---- Learn mode: what the store holds ------------------------------------ */

/* HMAC-SHA1 (RFC 2104), the module's one (affinity_route.c): a key is
 * absorbed once into the inner and outer SHA1 states, which a caller may
 * keep and copy per message (the dated cookie values do, per balancer;
 * learn mode's old keys, per configuration). */
typedef struct {
    apr_sha1_ctx_t inner, outer;
} affinity_hmac_key;

void affinity_hmac_sha1_key(affinity_hmac_key *hk, const void *key,
                            apr_size_t key_len);
/* The MAC of what inner has absorbed (a copy of hk->inner plus the
 * message): inner is consumed. */
void affinity_hmac_sha1_final(unsigned char mac[AFFINITY_ID_LEN],
                              apr_sha1_ctx_t *inner,
                              const affinity_hmac_key *hk);
/* HMAC-SHA1 of data under key, in one call. */
void affinity_hmac_sha1(unsigned char mac[AFFINITY_ID_LEN],
                        const void *key, apr_size_t key_len,
                        const void *data, apr_size_t len);

/* SipHash-2-4 with a 128-bit output (Aumasson and Bernstein, the
 * reference implementation's siphash(..., outlen 16)): learn mode's store
 * keys.  Streaming, so that a key's parts need no copying together. */
#define AFFINITY_SIPHASH_KEY_LEN 16
#define AFFINITY_SIPHASH_LEN     16
typedef struct {
    apr_uint64_t v0, v1, v2, v3;
    apr_uint64_t tail;                  /* bytes not absorbed yet (LE) */
    apr_size_t len;                     /* bytes in all */
} affinity_siphash;

void affinity_siphash_init(affinity_siphash *h,
                           const unsigned char key[AFFINITY_SIPHASH_KEY_LEN]);
void affinity_siphash_update(affinity_siphash *h, const void *data,
                             apr_size_t len);
void affinity_siphash_final(affinity_siphash *h,
                            unsigned char out[AFFINITY_SIPHASH_LEN]);
/* The same in one call. */
void affinity_siphash128(unsigned char out[AFFINITY_SIPHASH_LEN],
                         const unsigned char key[AFFINITY_SIPHASH_KEY_LEN],
                         const void *data, apr_size_t len);

/* The store key of a session value: SipHash-2-4-128 over the balancer's
 * name, a NUL and the value, under a key derived from the salt once per
 * configuration (affinity_learn_secret_init), so the store (and anyone who
 * reads it) never sees a session ID, and two balancers never share an
 * entry.  Versions up to 0.1.0 used HMAC-SHA1 keyed with the salt over
 * the same bytes (20 bytes, four SHA1 blocks per key:
 * affinity_learn_old_key_kind); learn mode still looks entries up under
 * that key on a miss and rewrites them under the new one. */
#define AFFINITY_LEARN_KEY_LEN      AFFINITY_SIPHASH_LEN
#define AFFINITY_LEARN_OLD_KEY_LEN  AFFINITY_ID_LEN
/* The label of the SipHash key: key = the first 16 bytes of
 * HMAC-SHA1(salt, label). */
#define AFFINITY_LEARN_SECRET_LABEL "mod_affinity learn key siphash-2-4"
typedef struct {
    unsigned char k[AFFINITY_SIPHASH_KEY_LEN];
    affinity_hmac_key old;              /* the salt's HMAC states, for the
                                         * old keys */
} affinity_learn_secret;

void affinity_learn_secret_init(affinity_learn_secret *ls, const char *salt,
                                apr_size_t salt_len);
void affinity_learn_key(unsigned char key[AFFINITY_LEARN_KEY_LEN],
                        const affinity_learn_secret *ls,
                        const char *balancer, const char *value,
                        apr_size_t len);
/* The same for a value of another carrier kind ("header"): balancer, NUL,
 * NUL, kind, NUL, value, so that it never shares a key with a cookie
 * value of the same bytes; kind NULL is affinity_learn_key. */
void affinity_learn_key_kind(unsigned char key[AFFINITY_LEARN_KEY_LEN],
                             const affinity_learn_secret *ls,
                             const char *balancer, const char *kind,
                             const char *value, apr_size_t len);
/* The key of the same value before (HMAC-SHA1 keyed with the salt over
 * the same bytes), for entries written by earlier versions: two SHA1
 * blocks for short names and values, the salt's being in ls. */
void affinity_learn_old_key_kind(unsigned char key[AFFINITY_LEARN_OLD_KEY_LEN],
                                 const affinity_learn_secret *ls,
                                 const char *balancer, const char *kind,
                                 const char *value, apr_size_t len);


/* An entry: the member's route ID (20 bytes), then the time it was written
 * (seconds since the epoch, 8 bytes big-endian): the refresh rule needs the
 * age, and the providers do not say when an entry expires. */
#define AFFINITY_LEARN_ENTRY_LEN (AFFINITY_ID_LEN + 8)
void affinity_learn_entry_encode(unsigned char entry[AFFINITY_LEARN_ENTRY_LEN],
                                 const unsigned char id[AFFINITY_ID_LEN],
                                 apr_int64_t written);
/* Returns 1 and fills id and *written when entry is one of ours, else 0. */
int affinity_learn_entry_decode(const unsigned char *entry, apr_size_t len,
                                unsigned char id[AFFINITY_ID_LEN],
                                apr_int64_t *written);

/* What a hit does with an entry written at written (seconds) when the
 * timeout is timeout seconds, at now: 0 use it as is, 1 use it and write it
 * again (older than a quarter of the timeout), -1 it has expired (treat as
 * absent: not every provider expires entries to the second). */
int affinity_learn_entry_age(apr_int64_t written, apr_int64_t now,
                             apr_int64_t timeout);

/* ---- ID index ----------------------------------------------------------- */

/* Open-addressing table from route ID to a small integer (a member slot).
 * Lookup is O(1) in members whatever the key, so random IDs cost a probe
 * or two, never a walk over the members. */
typedef struct affinity_index affinity_index;

affinity_index *affinity_index_make(apr_pool_t *p, int capacity);
/* First put of an ID wins; later duplicates are ignored. */
void affinity_index_put(affinity_index *ix, const unsigned char id[AFFINITY_ID_LEN],
                        int slot);
/* Returns the slot, or -1 when the ID is not in the table. */
int affinity_index_get(const affinity_index *ix,
                       const unsigned char id[AFFINITY_ID_LEN]);

/* ---- Domain mode: weighted rendezvous hashing --------------------------- */

/* FNV-1a 64 over the bytes, then a 64-bit finalizer (see affinity_route.c). */
apr_uint64_t affinity_hash64(const void *data, apr_size_t len);

/* Seed of a member: affinity_hash64(salt bytes, then identity bytes). */
apr_uint64_t affinity_member_seed(const char *salt, apr_size_t salt_len,
                                  const char *identity, apr_size_t identity_len);

/* Host key: lowercased, one trailing dot dropped, then affinity_hash64. */
apr_uint64_t affinity_host_key(const char *host);

/* The -log2(u) part of a member's rendezvous score for a key, in 32.32 fixed
 * point (u in (0,1) derived from key and seed).  Integer only, so every
 * platform agrees bit for bit.  Never 0. */
apr_uint64_t affinity_rendezvous_cost(apr_uint64_t key, apr_uint64_t seed);

/* Does a member of weight wa and cost ca beat one of weight wb and cost cb?
 * Scores are weight / cost; ties go to the smaller cost, then to neither.
 * Inline: it runs once per member per domain-mode request.  Weights are
 * below 2^16 and costs below 2^38, so the products cannot overflow. */
static APR_INLINE int affinity_rendezvous_beats(apr_uint64_t wa, apr_uint64_t ca,
                                                apr_uint64_t wb, apr_uint64_t cb)
{
    apr_uint64_t a = wa * cb, b = wb * ca;

    return a > b || (a == b && ca < cb);
}

/* The same choice as offering every candidate to affinity_rendezvous_cost()
 * and affinity_rendezvous_beats() in order (ties to the first offered), at
 * a fraction of the cost: the cost falls as x = fmix64(key ^ seed) >> 11 | 1
 * grows, so among members of one weight only the largest x can win, and
 * the logarithm is taken for each weight's winner only (and for the rare
 * near tie, where the fixed-point log may round two x to one cost).  Up to
 * AFFINITY_RV_CLASSES distinct weights are grouped; more are compared
 * plainly.  Pure: t/unit/test_route.c and fuzz/fuzz_rendezvous.c hold it
 * to the plain comparison. */
#define AFFINITY_RV_CLASSES 8
typedef struct {
    apr_uint64_t weight;
    apr_uint64_t x;                 /* the largest x of that weight so far */
    int slot;                       /* its slot (the first offered on a tie) */
} affinity_rv_class;
typedef struct {
    apr_uint64_t key;
    int nclasses;
    affinity_rv_class cls[AFFINITY_RV_CLASSES];
    int over_slot;                  /* -1: no weight beyond the classes */
    apr_uint64_t over_weight, over_cost;
} affinity_rv;

void affinity_rv_init(affinity_rv *rv, apr_uint64_t key);
/* The general case of affinity_rv_offer, given x. */
void affinity_rv_offer_x(affinity_rv *rv, apr_uint64_t x, apr_uint64_t weight,
                         int slot);
/* Offers the member in slot (>= 0) with its seed and weight (>= 1).  Inline:
 * it runs once per member per request; a member of the first weight seen
 * that clearly wins or loses (nearly every one) costs one fmix64 and two
 * compares. */
static APR_INLINE void affinity_rv_offer(affinity_rv *rv, apr_uint64_t seed,
                                         apr_uint64_t weight, int slot)
{
    apr_uint64_t x = rv->key ^ seed;

    /* affinity_route.c's fmix64 (MurmurHash3's finalizer) */
    x ^= x >> 33;
    x *= APR_UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= APR_UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    x = (x >> 11) | 1;
    if (rv->nclasses && rv->cls[0].weight == weight) {
        affinity_rv_class *c = &rv->cls[0];

        if (x + (x >> 12) < c->x) {
            return;
        }
        if (c->x + (c->x >> 12) < x) {
            c->x = x;
            c->slot = slot;
            return;
        }
    }
    affinity_rv_offer_x(rv, x, weight, slot);
}
/* The winner's slot, or -1 when nothing was offered. */
int affinity_rv_best(const affinity_rv *rv);

/* "Is a member's live route still the one its seed was made from?" in one
 * masked 8-byte compare for routes below 8 bytes (and no route at all),
 * for the hashed picks' walk over every member.  head holds the route's
 * first 8 bytes, NUL padded; mask the bytes up to and including its NUL
 * (the live route may hold an older, longer route's bytes after its NUL). */
typedef struct {
    apr_uint64_t head;
    apr_uint64_t mask;
    int long_route;                 /* 8 bytes or more: compare the rest */
} affinity_route_head;

/* route: NUL terminated, readable for at least 8 bytes */
void affinity_route_head_init(affinity_route_head *h, const char *route);

/* Same answer as !strncmp(route, live, size) for the route h was made from
 * (both readable for size >= 8 bytes). */
static APR_INLINE int affinity_route_head_same(const affinity_route_head *h,
                                               const char *route,
                                               const char *live,
                                               apr_size_t size)
{
    apr_uint64_t v;

    memcpy(&v, live, sizeof(v));
    if ((v & h->mask) != h->head) {
        return 0;
    }
    return !h->long_route || !strncmp(route + sizeof(v), live + sizeof(v),
                                      size - sizeof(v));
}

/* ---- Session lifetime: dated, signed cookie values (affinity_expiry.c) --- */

/* With AffinityCookieMaxIdle or AffinityCookieMaxLife set, the cookie value
 * is "ID.FIRST.LAST.MAC": the 40-hex route ID, the first-issued and
 * last-issued dates as 8 lowercase hex digits each (seconds since the Unix
 * epoch, unsigned 32 bits), and the first AFFINITY_MAC_LEN bytes of
 *   HMAC-SHA1(key, balancer name . NUL . id . first . last)
 * in lowercase hex, where key = SHA1("mod_affinity cookie mac:" . salt), id
 * is the 20 ID bytes and the dates are 4 bytes each, big-endian.  The name
 * comes first so that its part of the hash is done once per balancer: one
 * MAC then costs two SHA1 blocks (for names up to 26 bytes). */
#define AFFINITY_MAC_LEN        12
#define AFFINITY_DATE_HEX_LEN   8
#define AFFINITY_STAMP_HEX_LEN  (AFFINITY_ID_HEX_LEN + 1 + AFFINITY_DATE_HEX_LEN \
                                 + 1 + AFFINITY_DATE_HEX_LEN + 1)
#define AFFINITY_STAMPED_LEN    (AFFINITY_STAMP_HEX_LEN + 2 * AFFINITY_MAC_LEN)
#define AFFINITY_MAC_KEY_PREFIX "mod_affinity cookie mac:"
/* dates further ahead than this are forged or from a broken clock */
#define AFFINITY_CLOCK_SKEW     300

/* The HMAC key of one balancer, absorbed once: the inner SHA1 state after
 * the padded key block and the balancer name, the outer one after its
 * padded key block (affinity_hmac_sha1_key). */
typedef affinity_hmac_key affinity_mac_key;

void affinity_mac_key_init(affinity_mac_key *key, const char *salt,
                           apr_size_t salt_len, const char *balancer,
                           apr_size_t balancer_len);

/* A parsed dated value; the MAC is not checked by the parser. */
typedef struct {
    unsigned char id[AFFINITY_ID_LEN];
    apr_uint32_t first, last;
    unsigned char mac[AFFINITY_MAC_LEN];
} affinity_stamp;

/* Parses exactly AFFINITY_STAMPED_LEN bytes of the form above, lowercase
 * hex only.  Returns 1 on success, 0 otherwise. */
int affinity_stamp_parse(affinity_stamp *st, const char *s, apr_size_t len);

/* The MAC of an ID and dates under a balancer's key. */
void affinity_stamp_mac(unsigned char mac[AFFINITY_MAC_LEN],
                        const affinity_mac_key *key,
                        const unsigned char id[AFFINITY_ID_LEN],
                        apr_uint32_t first, apr_uint32_t last);

/* Writes the whole value, NUL-terminated: buf holds AFFINITY_STAMPED_LEN + 1. */
void affinity_stamp_format(char *buf, const affinity_mac_key *key,
                           const unsigned char id[AFFINITY_ID_LEN],
                           apr_uint32_t first, apr_uint32_t last);

/* Does the value's MAC verify under this balancer's key?  Compared in
 * constant time. */
int affinity_stamp_verify(const affinity_stamp *st, const affinity_mac_key *key);

/* Values whose MAC has verified, so that a client sending the same value on
 * every request (it does until the value is re-issued) costs one HMAC, not
 * one per request.  Direct-mapped: the slot is the MAC's first byte, which
 * the client chooses but which buys it nothing, as a slot answers only for
 * the exact text that verified.  Only the MAC is cached: the dates are
 * checked against now on every request all the same.  Belongs to one
 * member table (one key); not locked: its users hold the balancer's thread
 * mutex. */
#define AFFINITY_VERIFIED_SLOTS 256
typedef struct {
    /* the whole value as verified; all zero while empty, which no parsed
     * value equals */
    char text[AFFINITY_VERIFIED_SLOTS][AFFINITY_STAMPED_LEN];
} affinity_verified;

/* affinity_stamp_verify(), answered from c (may be NULL) when text, the
 * AFFINITY_STAMPED_LEN bytes st was parsed from, is there; a value that
 * verifies goes into c.  The slot is compared in constant time over the
 * whole length. */
int affinity_stamp_verify_cached(const affinity_stamp *st, const char *text,
                                 const affinity_mac_key *key,
                                 affinity_verified *c);

typedef enum {
    AFFINITY_STAMP_OK = 0,
    AFFINITY_STAMP_EXPIRED,         /* idle or older than the life */
    AFFINITY_STAMP_FUTURE           /* a date beyond now + the skew */
} affinity_stamp_state;

/* The dates against now (seconds since the epoch); max_idle and max_life
 * in seconds, 0 for no limit.  A date up to AFFINITY_CLOCK_SKEW ahead of
 * now counts as now. */
affinity_stamp_state affinity_stamp_check(const affinity_stamp *st,
                                          apr_int64_t now, apr_int64_t max_idle,
                                          apr_int64_t max_life);

/* Re-issue with a new last date?  Once the last date is more than a quarter
 * of max_idle old (never when max_idle is 0). */
int affinity_stamp_refresh_due(apr_uint32_t last, apr_int64_t now,
                               apr_int64_t max_idle);

/* A date for the cookie: now, clamped to the 32-bit range. */
apr_uint32_t affinity_stamp_date(apr_int64_t now);

/* httpd's stock sticky value "SESSION.ROUTE" (or ".ROUTE"): the route is
 * what follows the first '.', as mod_proxy_balancer reads it.  Returns 1 and
 * sets *route, *route_len when there is a '.' and a non-empty route. */
int affinity_legacy_route(const char *value, apr_size_t len,
                          const char **route, apr_size_t *route_len);

/* ---- UTF-8 for the status page ------------------------------------------ */

/* Length of the well-formed UTF-8 sequence (RFC 3629, Unicode table 3-7) at
 * the start of the len bytes at s, or 0 when there is none: no overlong
 * form (C0, C1, E0 80..9F, F0 80..8F), no surrogate (ED A0..BF), nothing
 * above U+10FFFF (F4 90.., F5..FF), no truncated sequence. */
int affinity_utf8_len(const unsigned char *s, apr_size_t len);

/* in, with every byte that is not part of a well-formed sequence replaced
 * by U+FFFD (EF BF BD); in itself when it is all well-formed. */
const char *affinity_utf8_clean(apr_pool_t *p, const char *in);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif /* MOD_AFFINITY_H */
