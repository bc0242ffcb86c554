# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""docs/deploying.md under load: drain with AffinityDrainTimeout, watch until
safe to stop, stop, start, re-enable with slow start (tools/reliability's
setup_scenario adds the directives and the status page for this one)."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

from lib.client import Client, member_of
from lib.env import HOST
from lib.load import Load
from lib.manager import edit_member, manager_nonce, member_url
from lib.procs import error_log_crashes
from lib.verdict import Verdict


# ---- j: deploying a member ---------------------------------------------------

def scenario_deploy(env):
    """docs/deploying.md under load: a member drained with a short
    AffinityDrainTimeout (env drain_timeout) while clients keep their
    sessions; its progress watched on affinity-status (?member=) until
    "safe to stop"; then stopped, started again and re-enabled with
    AffinitySlowStart on (env slow_start).  No request may fail, no session
    may move before the deadline or more than once, every move is logged
    AFFINITY_STATUS=drained, and right after the re-enable the member's
    share of new sessions (a probe of cookieless requests) is below its
    full share."""
    timeout = env.e["drain_timeout"]
    ramp = env.e["slow_start"]
    v = Verdict("j. deploying a member (AffinityDrainTimeout %d s, "
                "AffinitySlowStart %d s)" % (timeout, ramp))
    victim = "m2"
    url = member_url(env, victim)
    dur = env.scale(45, 24)
    load = Load(env, sessions=env.scale(300, 120), threads=8, duration=dur,
                new_rate=0.0005)
    t = {}
    restarted = {}
    probes = {}
    full = 1.0 / sum(1 for m in env.members.values() if m["in_balancer"])

    def probe(label, n):
        """n new sessions (no cookie) in a row: the victim's share, and any
        request that failed."""
        c = Client(env)
        got = failed = 0
        t0 = time.monotonic()
        for i in range(n):
            st, _, body = c.get("%s?s=probe-%s-%d" % (load.path, label, i))
            if st != 200:
                failed += 1
            elif member_of(body) == victim:
                got += 1
        c.close()
        probes[label] = (got, n, failed, time.monotonic() - t0)

    def status():
        st, _, body = Client(env).get("/affinity-status?format=json&member="
                                      + urllib.parse.quote(url, safe=""))
        if st != 200:
            return None
        return json.loads(body)["balancers"][0]["members"][0]

    def deploy():
        t["drain"] = time.monotonic()
        if edit_member(env, manager_nonce(env), victim, w_status_N="1") != 200:
            v.fail("balancer-manager refused the drain")
            return
        polls = 0
        while time.monotonic() < t["drain"] + timeout + 30:
            m = status()
            polls += 1
            if m and m["drain"]["safe_to_stop"]:
                break
            time.sleep(0.5)
        t["safe"] = time.monotonic()
        t["polls"] = polls
        if not (m and m["drain"]["safe_to_stop"]):
            v.fail("never safe to stop")
            return
        os.kill(env.members[victim]["pid"], signal.SIGTERM)
        t["stopped"] = time.monotonic()
        time.sleep(1)
        d = env.dir
        p = subprocess.Popen(["nginx", "-c", "%s/backend-%s.conf" % (d, victim),
                              "-p", d + "/", "-e",
                              "%s/backend-%s.err" % (d, victim)])
        restarted["p"] = p
        for _ in range(50):
            try:
                socket.create_connection((HOST, env.members[victim]["port"]),
                                         0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        t["started"] = time.monotonic()
        if edit_member(env, manager_nonce(env), victim, w_status_N="0") != 200:
            v.fail("balancer-manager refused the re-enable")
        t["enabled"] = time.monotonic()
        m = status()
        t["ratio"] = m["slow_start"]["ratio"] if m else None
        probe("early", 200)
        # the end of the ramp: the member at its full share (a note)
        time.sleep(max(0.0, t["enabled"] + ramp + 0.5 - time.monotonic()))
        probe("late", 200)

    try:
        load.run([(2, deploy)])
    finally:
        if "p" in restarted:
            restarted["p"].terminate()
            restarted["p"].wait(10)
    if "enabled" not in t:
        v.fail("the deploy did not finish before the load ended")
        return v
    recs = load.records
    v.requests = len(recs) + sum(p[1] for p in probes.values())
    bad = [r for r in recs if r.status != 200]
    v.failures = len(bad) + sum(p[2] for p in probes.values())
    if bad:
        v.fail("%d failed requests (first: %s)" % (len(bad), bad[0].status or bad[0].err))
    for label, (got, n, failed, _) in probes.items():
        if failed:
            v.fail("%d of %d %s probe requests failed" % (failed, n, label))
    if t.get("ratio") is None or t["ratio"] >= 1:
        v.fail("right after the re-enable the JSON shows no ramp (slow_start.ratio %s)"
               % t.get("ratio"))
    first = probes.get("early")
    if not first or first[0] / first[1] >= full:
        v.fail("right after the re-enable the member took %s new sessions, "
               "not below its full share (%.0f%%)"
               % ("%d of %d" % first[:2] if first else "no probe", 100 * full))
    deadline = t["drain"] + timeout
    # per session: its members in order, and when it changed
    seq = {}
    early = moves = 0
    for r in recs:
        if r.status != 200:
            continue
        prev = seq.get(r.sid)
        if prev and prev[-1][0] != r.member:
            moves += 1
            if prev[-1][0] == victim and r.t1 < deadline - 0.5:
                early += 1
            if prev[-1][0] != victim:
                v.moved += 1
        seq.setdefault(r.sid, []).append((r.member, r.t0))
    twice = sum(1 for s in seq.values()
                if sum(1 for a, b in zip(s, s[1:]) if a[0] != b[0]) > 1)
    if twice:
        v.fail("%d sessions moved more than once" % twice)
    if early:
        v.fail("%d sessions moved before the deadline" % early)
    if v.moved:
        v.fail("%d sessions moved off a member that was not draining" % v.moved)
    new_on_victim = sum(1 for r in recs if r.status == 200 and r.member == victim
                        and r.sent is None and t["drain"] + 0.5 < r.t0 < t["enabled"])
    if new_on_victim:
        v.fail("%d new sessions on the draining member" % new_on_victim)
    with open(env.access_log, "rb") as f:
        drained = sum(1 for line in f if b" drained " in line)
    if drained != moves:
        v.fail("%d moves but %d requests logged AFFINITY_STATUS=drained"
               % (moves, drained))
    crashes = error_log_crashes(env, 0)
    if crashes:
        v.fail("error log: " + crashes[0])
    after = sum(1 for r in recs if r.status == 200 and r.member == victim
                and r.t0 > t["enabled"])
    v.notes.append("%d sessions moved once at the deadline" % moves)
    v.notes.append("safe to stop %.1f s after the drain (%d polls)"
                   % (t["safe"] - t["drain"], t["polls"]))
    v.notes.append("stopped, started, re-enabled in %.1f s"
                   % (t["enabled"] - t["stopped"]))
    v.notes.append("%d requests on it after re-enabling" % after)
    if first and "late" in probes:
        v.notes.append("slow start: ratio %.2f right after the re-enable; new "
                       "sessions on it %d of %d (%.1f s) then, %d of %d after "
                       "the %d s ramp (full share %.0f%%)"
                       % (t["ratio"], first[0], first[1], first[3],
                          probes["late"][0], probes["late"][1], ramp, 100 * full))
    return v


SCENARIOS = {"deploy": scenario_deploy}
