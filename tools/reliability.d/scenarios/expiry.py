# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""AffinityCookieMaxIdle under load: refresh bound, idle expiry."""

import re
import time

from lib.client import Client, parse_set_cookies
from lib.load import Load
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict


# ---- i: session lifetime under load ------------------------------------------

DATED = re.compile(r"^([0-9a-f]{40})\.([0-9a-f]{8})\.([0-9a-f]{8})\.[0-9a-f]{24}$")


def scenario_expiry(env):
    """AffinityCookieMaxIdle of a few seconds (env max_idle) under load:
    active sessions are refreshed, never idled out, and get at most about
    4 Set-Cookie per MaxIdle (+ the first); each keeps its member and its
    first date.  Then some sit idle for longer than MaxIdle: each comes back
    expired, with a new cookie."""
    v = Verdict("i. session lifetime under load (MaxIdle %d s)" % env.e["max_idle"])
    max_idle = env.e["max_idle"]
    dur = env.scale(30, 10)
    off = file_size(env.error_log)
    load = Load(env, sessions=env.scale(240, 96), threads=8, duration=dur)
    load.run()
    per = {}
    for r in load.records:
        v.requests += 1
        if r.status is None or r.status != 200:
            v.failures += 1
            continue
        per.setdefault(r.sid, []).append(r)
    fivexx = sum(1 for r in load.records if r.status and r.status >= 500)
    v.fail_count(fivexx, "%d 5xx")
    v.fail_count(v.failures, "%d requests failed")
    over = moved = first_moved = undated = 0
    worst = 0.0
    for sid, recs in per.items():
        sets = [c for r in recs for c in r.set_ids]
        span = recs[-1].t1 - recs[0].t0
        # a refresh needs the last date more than MaxIdle/4 old: at most
        # 4 per MaxIdle, +1 for the first cookie, +1 for a second boundary
        bound = 1 + 4 * span / max_idle + 1
        worst = max(worst, len(sets) / bound)
        if len(sets) > bound:
            over += 1
        if len({r.member for r in recs}) > 1:
            moved += 1
        firsts = set()
        for c in sets:
            m = DATED.match(c)
            if not m:
                undated += 1
            else:
                firsts.add(m.group(2))
        if len(firsts) > 1:
            first_moved += 1
    v.fail_count(over, "%d sessions got more Set-Cookie than 4 per MaxIdle + 2")
    v.fail_count(moved, "%d active sessions changed member")
    v.fail_count(first_moved, "%d sessions' first date moved on refresh")
    v.fail_count(undated, "%d cookies not in the dated form")
    expired_active = 0
    with open(env.access_log, "rb") as f:
        for line in f:
            if b" expired " in line:
                expired_active += 1
    v.fail_count(expired_active, "%d active requests logged expired")
    refreshes = sum(len([c for r in recs for c in r.set_ids]) - 1 for recs in per.values())
    v.notes.append("%d sessions, %d refreshes, Set-Cookie at most %.0f%% of the bound"
                   % (len(per), refreshes, 100 * worst))

    # idle for longer than MaxIdle: expired
    time.sleep(max_idle + 1.5)
    sample = sorted(per)[:20]
    c = Client(env)
    not_expired = 0
    for sid in sample:
        cookie = [x for r in per[sid] for x in r.set_ids][-1]
        st, headers, _ = c.get("/app/?s=idle-" + sid, {"Cookie": "%s=%s" % (env.cookie, cookie)})
        new = parse_set_cookies(env, headers or [])
        m = DATED.match(new[0]) if len(new) == 1 else None
        if st != 200 or not m or m.group(2) == DATED.match(cookie).group(2):
            not_expired += 1
    c.close()
    time.sleep(0.5)
    with open(env.access_log, "rb") as f:
        idle_lines = [l for l in f if b"?s=idle-" in l]
    logged = sum(1 for l in idle_lines if b" expired " in l)
    if not_expired or logged != len(sample):
        v.fail("after %d s idle: %d of %d sessions not given a new dated cookie, "
               "%d logged expired" % (max_idle + 1, not_expired, len(sample), logged))
    v.requests += len(sample)
    v.notes.append("%d idle sessions expired" % logged)
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    return v


SCENARIOS = {"expiry": scenario_expiry}
