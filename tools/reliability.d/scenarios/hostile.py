# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Hostile cookies: Cookie headers (hostile) and application cookies in
prefix mode (prefix-hostile)."""

import hashlib
import random
import re
import statistics

from lib.cases import hostile_cases
from lib.client import member_of, parse_set_cookies, raw_request
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict


def scenario_hostile(env):
    v = Verdict("d. hostile Cookie headers")
    rounds = env.scale(60, 15)
    rnd = random.Random(42)
    cases = hostile_cases(env, rnd)
    off = file_size(env.error_log)
    aoff = file_size(env.access_log)
    wrong = leaked = nocache_missing = 0
    statuses = {}
    for n in range(rounds):
        for ci, (label, lines, expect, may400) in enumerate(cases):
            # a normal request as the baseline for cost
            st, hd, body, dt = raw_request(env, "/app/?h=normal&n=%d" % n,
                                           [b"Cookie: " + env.cookie.encode() +
                                            b"=" + env.ids["m2"].encode()])
            v.requests += 1
            if st != 200:
                v.failures += 1
                v.fail("normal request: %s" % (st or body))
            st, hd, body, dt = raw_request(env, "/app/?h=%d&n=%d" % (ci, n), lines)
            v.requests += 1
            statuses.setdefault(label, set()).add(st)
            if st is None or st >= 500:
                v.failures += 1
                continue
            if st == 400 and may400:
                continue
            if st != 200:
                v.failures += 1
                continue
            member = member_of(body)
            sets = parse_set_cookies(env, hd)
            if expect:
                if member != expect or sets:
                    wrong += 1
            elif len(sets) != 1 or env.names_by_id.get(sets[0]) != member:
                wrong += 1
            # the same on /strip (AffinityCookieRemove On, AffinityNoCache
            # On): the member must not see the affinity cookie
            st, hd, body, dt = raw_request(env, "/strip/?h=%d&n=%d" % (ci, n), lines)
            v.requests += 1
            if st is None or st >= 500:
                v.failures += 1
                continue
            if st != 200:
                continue
            fwd = body.decode("latin-1").split("\n")[1:2]
            if fwd and any(p.split("=", 1)[0].strip() == env.cookie
                           for p in re.split(r"[;,]", fwd[0]) if "=" in p):
                leaked += 1
            sets = parse_set_cookies(env, hd)
            if sets and not any(k.lower() == "cache-control" and "private" in val
                                for k, val in hd):
                nocache_missing += 1
    if v.failures:
        bad = {k: sorted(x for x in s if x is None or x >= 500 or x not in (200, 400))
               for k, s in statuses.items()}
        v.fail("%d failed requests: %s" % (v.failures,
               ", ".join("%s %s" % (k, s) for k, s in bad.items() if s)))
    v.fail_count(wrong, "%d responses routed against the rules")
    if leaked:
        v.fail("%d times the affinity cookie reached the member despite "
               "AffinityCookieRemove On" % leaked)
    if nocache_missing:
        v.fail("%d new cookies without Cache-Control: private (AffinityNoCache On)"
               % nocache_missing)
    v.moved = wrong
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    # cost: server time (%D) per case against the normal requests
    per = {}
    with open(env.access_log, "rb") as f:
        f.seek(aoff)
        for line in f.read().decode("latin-1").splitlines():
            m = re.search(r'"GET /app/\?h=(\w+)&n=\d+ HTTP/1.1" (\d+) (\d+)', line)
            if m:
                per.setdefault(m.group(1), []).append(int(m.group(3)))
    base = statistics.median(per.get("normal", [1]))
    worst_label, worst = None, 0
    for k, ds in per.items():
        if k == "normal":
            continue
        med = statistics.median(ds)
        if med > worst:
            worst, worst_label = med, cases[int(k)][0]
    bound = 3 * base + 2000
    if worst > bound:
        v.fail("cost: '%s' takes %d us (median) against %d us normal"
               % (worst_label, worst, base))
    v.notes.append("%d cases" % len(cases))
    v.notes.append("server time normal %d us, worst %d us (%s)"
                   % (base, worst, worst_label))
    v.notes.append("400 only for the header over the limit" if
                   all(400 not in s for k, s in statuses.items()
                       if k not in ("header over the limit", "control and high bytes"))
                   else "unexpected 400s")
    return v


# ---- prefix mode: hostile application cookies -----------------------------------

PREFIX_RE = re.compile(r"^[0-9a-f]{40}~")


def prefix_hostile_cases(env, rnd):
    """(label, [header lines], expected member or None, may_400)."""
    name = env.cookie.encode()
    good = env.ids["m1"].encode()
    unknown = hashlib.sha1(b"no such member").hexdigest().encode()
    cases = []

    def ck(v):
        return [b"Cookie: " + v]

    def jv(v):
        return ck(name + b"=" + v)

    cases.append(("3000 tildes", jv(b"~" * 3000), None, False))
    cases.append(("ID~ then 3000 tildes", jv(good + b"~" * 3001), "m1", False))
    cases.append(("150 stacked prefixes", jv((good + b"~") * 150 + b"x"), "m1", False))
    cases.append(("stacked unknown then good", jv(unknown + b"~" + good + b"~x"), None, False))
    cases.append(("bad hex", jv(good[:39] + b"g~x"), None, False))
    cases.append(("upper-case hex", jv(good.upper() + b"~x"), None, False))
    cases.append(("39 hex", jv(good[:39] + b"~x"), None, False))
    cases.append(("41 hex", jv(good + b"0~x"), None, False))
    cases.append(("ID without ~", jv(good + b"x"), None, False))
    cases.append(("bare ID~", jv(good + b"~"), "m1", False))
    cases.append(("quoted", jv(b'"' + good + b'~x"'), "m1", False))
    cases.append(("half-quoted", jv(b'"' + good + b'~x'), None, False))
    cases.append(("quote inside", jv(good + b'~"x"'), "m1", False))
    cases.append(("quotes only", jv(b'"' * 3000), None, False))
    cases.append(("empty value", jv(b""), None, False))
    cases.append(("64 KB after the prefix", jv(good + b"~" + b"v" * 65000), "m1", False))
    cases.append(("140 unknown prefixes, then m1",
                  ck(b"; ".join(name + b"=" + unknown + b"~%d" % i for i in range(140))
                     + b"; " + name + b"=" + good + b"~z"), "m1", False))
    # httpd joins repeated Cookie headers into one, which must stay within
    # LimitRequestFieldSize (64 KB here)
    cases.append(("15 headers x 60 unknown prefixes, then m1",
                  [b"Cookie: " + b"; ".join(name + b"=" + unknown + b"~%d_%d" % (h, i)
                                            for i in range(60)) for h in range(15)]
                  + jv(good + b"~z"), "m1", False))
    cases.append(("1200 other cookies with prefixes (64 KB)",
                  ck(b"; ".join(b"c%d=" % i + good + b"~" for i in range(1200))), None, False))
    cases.append(("1200 occurrences, the last one m1",
                  ck(b"; ".join([name + b"=" + good[:39] + b"~"] * 1199
                                + [name + b"=" + good + b"~q"])), "m1", False))
    rbytes = bytes(rnd.choice([c for c in range(0x20, 0x7f)]) for _ in range(3000))
    cases.append(("random printable bytes", jv(rbytes), None, False))
    cases.append(("over the limit", jv(good + b"~" + b"b" * 70000), None, True))
    return cases


def forwarded_prefixes(body, name):
    """Values of name the member saw that still start with a prefix."""
    lines = body.decode("latin-1").split("\n")
    if len(lines) < 2:
        return 0
    n = 0
    for pair in re.split(r"[;,]", lines[1]):
        k, eq, val = pair.partition("=")
        if eq and k.strip() == name:
            val = val.strip()
            if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                val = val[1:-1]
            n += bool(PREFIX_RE.match(val))
    return n


def scenario_prefix_hostile(env):
    v = Verdict("d. hostile application cookies (prefix mode)")
    rounds = env.scale(20, 4)
    rnd = random.Random(43)
    cases = prefix_hostile_cases(env, rnd)
    off = file_size(env.error_log)
    wrong = leaked = 0
    bad = {}
    for n in range(rounds):
        for ci, (label, lines, expect, may400) in enumerate(cases):
            for path in ("/app/", "/strip/"):
                st, hd, body, dt = raw_request(env, "%s?h=%d&n=%d" % (path, ci, n), lines)
                v.requests += 1
                if st is None or st >= 500 or (st != 200 and not (st == 400 and may400)):
                    v.failures += 1
                    bad.setdefault(label, set()).add(st)
                    continue
                if st != 200:
                    continue
                if path == "/app/":
                    if expect and member_of(body) != expect:
                        wrong += 1
                elif forwarded_prefixes(body, env.cookie):
                    leaked += 1
    if v.failures:
        v.fail("%d failed requests: %s" % (v.failures, ", ".join(
            "%s %s" % (k, sorted(map(str, s))) for k, s in bad.items())))
    v.fail_count(wrong, "%d responses routed against the rules")
    v.fail_count(leaked, "%d times a prefix reached the member")
    v.moved = wrong
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d cases x %d rounds" % (len(cases), rounds))
    return v


# prefix-hostile runs in prefix mode: only as part of the front-end's "prefix"
SETUP = {"prefix-hostile": None}
SCENARIOS = {"hostile": scenario_hostile, "prefix-hostile": scenario_prefix_hostile}
