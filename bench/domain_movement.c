/* domain_movement: how domain mode spreads host names and how many move
 * when members change, next to the ideal and to Perlbal's
 * nodes[sum(bytes of Host) % N].  Uses the module's own hash
 * (affinity_route.c), so the figures are those of the running code.
 *
 * Usage: domain_movement [HOSTFILE]   (default: 10000 generated names) */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr_general.h"
#include "apr_strings.h"

#include "mod_affinity.h"

#define MAX_MEMBERS 8
#define MAX_HOSTS   200000

typedef struct {
    const char *identity;
    apr_uint64_t weight;
    int present;
} member;

static char **hosts;
static int nhosts;

/* Deterministic, realistic-looking names: word + word + tld. */
static void generate_hosts(apr_pool_t *p, int n)
{
    static const char *w1[] = {"shop", "blog", "news", "mail", "app", "api",
        "cdn", "www", "portal", "my", "dev", "docs", "plone", "wiki", "forum",
        "store", "media", "static", "img", "beta"};
    static const char *w2[] = {"example", "acme", "contoso", "initech", "globex",
        "umbrella", "hooli", "vandelay", "stark", "wayne", "tyrell", "cyberdyne",
        "soylent", "wonka", "oscorp", "aperture", "gringotts", "pied-piper"};
    static const char *tld[] = {"com", "org", "net", "de", "fr", "io", "co.uk",
        "nl", "it", "es"};
    apr_uint64_t s = 42;
    int i;

    hosts = apr_palloc(p, n * sizeof(char *));
    for (i = 0; i < n; i++) {
        s = s * APR_UINT64_C(6364136223846793005) + APR_UINT64_C(1442695040888963407);
        hosts[i] = apr_psprintf(p, "%s%u.%s.%s", w1[(s >> 33) % 20],
                                (unsigned)((s >> 17) % 1000), w2[(s >> 45) % 18],
                                tld[(s >> 55) % 10]);
    }
    nhosts = n;
}

static void read_hosts(apr_pool_t *p, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];

    if (!f) {
        perror(path);
        exit(2);
    }
    hosts = apr_palloc(p, MAX_HOSTS * sizeof(char *));
    while (nhosts < MAX_HOSTS && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (*line) {
            hosts[nhosts++] = apr_pstrdup(p, line);
        }
    }
    fclose(f);
}

/* ours: weighted rendezvous over present members */
static int pick_affinity(const char *host, const member *m, int n)
{
    apr_uint64_t key = affinity_host_key(host), bw = 0, bc = 0;
    int i, best = -1;

    for (i = 0; i < n; i++) {
        apr_uint64_t cost;
        if (!m[i].present) {
            continue;
        }
        cost = affinity_rendezvous_cost(key,
                   affinity_member_seed("", 0, m[i].identity, strlen(m[i].identity)));
        if (best < 0 || affinity_rendezvous_beats(m[i].weight, cost, bw, bc)) {
            best = i;
            bw = m[i].weight;
            bc = cost;
        }
    }
    return best;
}

/* Perlbal: sum of the Host bytes modulo the node list; it has no weights,
 * so a weight of k is modelled by listing the node k times. */
static int pick_perlbal(const char *host, const member *m, int n)
{
    int list[MAX_MEMBERS * 4], len = 0, i;
    unsigned long sum = 0;
    apr_uint64_t k;

    for (i = 0; i < n; i++) {
        for (k = 0; m[i].present && k < m[i].weight; k++) {
            list[len++] = i;
        }
    }
    for (; *host; host++) {
        sum += (unsigned char)*host;
    }
    return list[sum % len];
}

typedef int (*picker)(const char *, const member *, int);

static void assign(picker f, const member *m, int n, int *out)
{
    int i;

    for (i = 0; i < nhosts; i++) {
        out[i] = f(hosts[i], m, n);
    }
}

static double moved(const int *a, const int *b)
{
    int i, c = 0;

    for (i = 0; i < nhosts; i++) {
        c += a[i] != b[i];
    }
    return 100.0 * c / nhosts;
}

/* hosts that moved somewhere other than the member that changed */
static double moved_elsewhere(const int *a, const int *b, int changed)
{
    int i, c = 0;

    for (i = 0; i < nhosts; i++) {
        c += a[i] != b[i] && a[i] != changed && b[i] != changed;
    }
    return 100.0 * c / nhosts;
}

int main(int argc, char **argv)
{
    apr_pool_t *p;
    member base[MAX_MEMBERS] = {
        {"10.0.0.21:8080", 1, 1}, {"10.0.0.22:8080", 2, 1},
        {"10.0.0.23:8080", 1, 1}, {"10.0.0.24:8080", 1, 1},
        {"10.0.0.25:8080", 1, 1}, {"10.0.0.26:8080", 1, 0}
    };
    member m[MAX_MEMBERS];
    int *a0, *a1, *p0, *p1;
    int i, n = 6, counts[MAX_MEMBERS] = {0}, pcounts[MAX_MEMBERS] = {0};
    apr_uint64_t total = 0;
    double ideal;

    apr_initialize();
    apr_pool_create(&p, NULL);
    if (argc > 1) {
        read_hosts(p, argv[1]);
    }
    else {
        generate_hosts(p, 10000);
    }
    a0 = apr_palloc(p, nhosts * sizeof(int));
    a1 = apr_palloc(p, nhosts * sizeof(int));
    p0 = apr_palloc(p, nhosts * sizeof(int));
    p1 = apr_palloc(p, nhosts * sizeof(int));

    assign(pick_affinity, base, n, a0);
    assign(pick_perlbal, base, n, p0);
    for (i = 0; i < nhosts; i++) {
        counts[a0[i]]++;
        pcounts[p0[i]]++;
    }
    for (i = 0; i < n; i++) {
        total += base[i].present ? base[i].weight : 0;
    }

    printf("%d host names over 5 members (m2 has loadfactor 2)\n\n", nhosts);
    printf("| member | weight | ideal share | affinity | Perlbal sum%%N |\n");
    printf("|---|---|---|---|---|\n");
    for (i = 0; i < 5; i++) {
        printf("| m%d | %d | %.1f%% | %.1f%% | %.1f%% |\n", i + 1,
               (int)base[i].weight, 100.0 * base[i].weight / total,
               100.0 * counts[i] / nhosts, 100.0 * pcounts[i] / nhosts);
    }

    printf("\n| change | ideal moved | affinity moved | affinity moved between "
           "unchanged members | Perlbal moved |\n|---|---|---|---|---|\n");

    /* disable m3 */
    memcpy(m, base, sizeof(m));
    m[2].present = 0;
    assign(pick_affinity, m, n, a1);
    assign(pick_perlbal, m, n, p1);
    printf("| m3 disabled | %.1f%% | %.1f%% | %.2f%% | %.1f%% |\n",
           100.0 * base[2].weight / total, moved(a0, a1),
           moved_elsewhere(a0, a1, 2), moved(p0, p1));

    /* add m6 */
    memcpy(m, base, sizeof(m));
    m[5].present = 1;
    assign(pick_affinity, m, n, a1);
    assign(pick_perlbal, m, n, p1);
    ideal = 100.0 * m[5].weight / (total + m[5].weight);
    printf("| m6 added | %.1f%% | %.1f%% | %.2f%% | %.1f%% |\n", ideal,
           moved(a0, a1), moved_elsewhere(a0, a1, 5), moved(p0, p1));

    /* m1: loadfactor 1 -> 2 */
    memcpy(m, base, sizeof(m));
    m[0].weight = 2;
    assign(pick_affinity, m, n, a1);
    assign(pick_perlbal, m, n, p1);
    ideal = 100.0 * (2.0 / (total + 1) - 1.0 / total);
    printf("| m1 loadfactor 1 -> 2 | %.1f%% | %.1f%% | %.2f%% | %.1f%% |\n",
           ideal, moved(a0, a1), moved_elsewhere(a0, a1, 0), moved(p0, p1));

    /* case and trailing-dot variants */
    {
        int same = 0, psame = 0;
        for (i = 0; i < nhosts; i++) {
            char *up = apr_pstrcat(p, hosts[i], ".", NULL), *c;
            for (c = up; *c; c++) {
                if (*c >= 'a' && *c <= 'z' && (c - up) % 2) {
                    *c -= 32;
                }
            }
            same += pick_affinity(up, base, n) == a0[i];
            psame += pick_perlbal(up, base, n) == p0[i];
        }
        printf("\nSame member for a mixed-case, trailing-dot variant of each "
               "name: affinity %.1f%%, Perlbal %.1f%%\n",
               100.0 * same / nhosts, 100.0 * psame / nhosts);
    }

    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
