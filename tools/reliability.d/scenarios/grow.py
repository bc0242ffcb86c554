# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Members added live under load, fast, in one child."""

import http.client
import time

from lib.load import Load
from lib.manager import manager_nonce, manager_state, post_manager
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict


# ---- grow: members added live under load, in one child ---------------------

def scenario_grow(env):
    """balancer-manager adds a member under the balancer's global mutex only,
    while request threads run the lbmethod under the thread mutex: in the
    child that serves the POST, a finder can meet the new slot before its
    worker is complete.  Many adds, fast, under load, one child (see the
    httpd config for this scenario): any crash or sanitizer report fails.
    env "adds" members are added (the balancer's growth), 30 ms apart at
    least."""
    lbm = env.e.get("lbmethod", "affinity")
    nadds = env.e.get("adds", 30)
    v = Verdict("grow: %d members added live under load (lbmethod=%s%s)"
                % (nadds, lbm, ", %s mode" % env.e.get("mode", "cookie")
                   if lbm == "affinity" else ""))
    dur = max(env.scale(20, 10), nadds * 0.04 / 0.8)
    nonce = manager_nonce(env)
    base = max(m["port"] for m in env.members.values())
    off = file_size(env.error_log)
    added = []

    def adder():
        for i in range(nadds):
            # never listened on
            url = "http://127.0.%d.%d:%d" % (i // 250, 2 + i % 250, base)
            try:
                st = post_manager(env, {"b": env.balancer, "nonce": nonce,
                                        "b_wyes": "1", "b_nwrkr": url})
            except (OSError, http.client.HTTPException) as e:
                st = type(e).__name__
            added.append(st)
            time.sleep(dur * 0.8 / nadds)
        return len(added)

    load = Load(env, sessions=env.scale(400, 200), threads=16, duration=dur,
                new_rate=0.5)
    load.run([(0.5, adder)])
    v.requests = len(load.records)
    v.failures = sum(1 for r in load.records
                     if r.status is None or r.status >= 500 or r.retried)
    if v.failures:
        kinds = {}
        for r in load.records:
            if r.status is None or r.status >= 500 or r.retried:
                k = r.err or ("retried" if r.retried else str(r.status))
                kinds[k] = kinds.get(k, 0) + 1
        v.fail("%d failed requests (%s)" % (v.failures, ", ".join(
            "%s %d" % kv for kv in sorted(kinds.items()))))
    if sum(1 for s in added if s == 200) != nadds:
        v.fail("adds answered %s" % sorted(set(map(str, added))))
    try:
        n = len(manager_state(env))
        if n != len(env.members) + nadds:
            v.fail("the manager lists %d members, not %d"
                   % (n, len(env.members) + nadds))
    except (OSError, http.client.HTTPException) as e:
        v.fail("manager page: %s" % type(e).__name__)
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: %d crash line(s), first: %s" % (len(crashes), crashes[0]))
    v.notes.append("%d members added, %d crash(es)"
                   % (sum(1 for s in added if s == 200), len(crashes)))
    if lbm != "affinity":
        # the control shows what httpd itself does: informative only
        v.notes += ["control: " + p for p in v.problems]
        v.problems = []
    return v


SCENARIOS = {"grow": scenario_grow}
