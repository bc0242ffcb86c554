# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Every path of the module once (for --asan and valgrind)."""

import os
import random
import signal

from lib.cases import hostile_cases
from lib.client import Client, member_of, parse_set_cookies, raw_request
from lib.manager import add_member, edit_member, manager_nonce
from lib.verdict import Verdict


# ---- functional drive for valgrind / sanitizers ------------------------------

def scenario_drive(env):
    """Every path of the module once or more, slowly enough for valgrind:
    new sessions, cookie hits, garbage and hostile cookies, manager edits
    (drain, disable, lbfactor, add a member), failover to a dead member."""
    v = Verdict("functional drive (every path once)")
    rnd = random.Random(3)
    c = Client(env, timeout=60)
    jar = {}
    nonce = manager_nonce(env)
    reps = env.scale(10, 2)

    def hit(sid, extra=None):
        hdr = {}
        if sid in jar:
            hdr["Cookie"] = "%s=%s" % (env.cookie, jar[sid])
        if extra:
            hdr["Cookie"] = extra
        st, hd, body = c.get("/app/?d=" + sid, hdr)
        v.requests += 1
        if st is None or st >= 500:
            v.failures += 1
            return None
        for x in parse_set_cookies(env, hd):
            jar[sid] = x
        return member_of(body)

    for rep in range(reps):
        for i in range(40):
            hit("s%d" % i)
        for i in range(40):
            hit("s%d" % i)
        for case in hostile_cases(env, rnd)[:-2]:
            st, hd, body, dt = raw_request(env, "/app/?hostile", case[1], timeout=60)
            v.requests += 1
            if st is None or st >= 500:
                v.failures += 1
        for op in (("m3", "w_status_N", "1"), ("m3", "w_status_D", "1"),
                   ("m1", "w_lf", "5"), ("m3", "w_status_D", "0"),
                   ("m3", "w_status_N", "0"), ("m1", "w_lf", "1"),
                   ("m2", "w_wr", "routed-m2"), ("m2", "w_wr", ""),
                   ("m2", "w_rr", "nope"), ("m2", "w_rr", "")):
            edit_member(env, nonce, op[0], **{op[1]: op[2]})
            for i in range(10):
                hit("s%d" % i)
                hit("n%d-%d" % (rep, i))
        if rep == 0:
            add_member(env, nonce, "m5")
            edit_member(env, nonce, "m5", w_status_D="0")
            for i in range(20):
                hit("a%d" % i)
    # AffinityCookieRemove / NoCache run on /strip
    strip_cookies = ["a=1;b=2;c=3;d=4;%s=%s;e=5" % (env.cookie, env.ids["m1"]),
                     "a;b;c;d;e;f;g;h;i;j;k;l;m;n;o;p;q;r;s;t;%s=" % env.cookie,
                     "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t, %s=x" % env.cookie]
    for i in range(30):
        st, hd, body = c.get("/strip/?x=%d" % i,
                             {"Cookie": strip_cookies[i % len(strip_cookies)]})
        v.requests += 1
        if st is None or st >= 500:
            v.failures += 1
    # failover: kill m4 and ask with its cookie
    os.kill(env.members["m4"]["pid"], signal.SIGKILL)
    for i in range(20):
        hit("k%d" % i, "%s=%s" % (env.cookie, env.ids["m4"]))
    v.fail_count(v.failures, "%d failed requests")
    return v


# a spare member for the add
SETUP = {"drive": (4, 1, "fixed")}
SCENARIOS = {"drive": scenario_drive}
