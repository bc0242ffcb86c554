# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Members added slowly (slow_add.so) while requests of the same child choose."""

import http.client
import time

from lib.load import Load
from lib.manager import manager_nonce, manager_state, post_manager
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict


def scenario_add_race(env):
    """The window of scenario grow, made wide on purpose: slow_add.so
    (preloaded) holds each add for SLOW_ADD_MS inside
    ap_proxy_define_worker(), after the new slot is counted in
    balancer->workers and before its worker has any shared data (->s NULL).
    One child, so every request meets the half-added member.  The module must
    neither crash nor fail a request; the stock byrequests (control) shows
    what httpd itself does."""
    lbm = env.e.get("lbmethod", "affinity")
    mode = env.e.get("mode", "prefix" if env.prefix else "cookie")
    # scenario grow's window: many adds, each meeting a walk with some chance
    adds = env.e.get("adds", 4) if env.e.get("filler") else 4
    v = Verdict("add-race: %d slow adds under load (lbmethod=%s%s)"
                % (adds, lbm, ", %s mode" % mode if lbm == "affinity" else ""))
    dur = env.scale(12, 8)
    nonce = manager_nonce(env)
    base = max(m["port"] for m in env.members.values())
    off = file_size(env.error_log)
    added = []
    spans = []

    def adder():
        for i in range(adds):
            # never listened on; the path marks it for slow_add.so
            url = "http://127.0.0.%d:%d/slow-add" % (2 + i, base)
            t0 = time.monotonic()
            try:
                st = post_manager(env, {"b": env.balancer, "nonce": nonce,
                                        "b_wyes": "1", "b_nwrkr": url})
            except (OSError, http.client.HTTPException) as e:
                st = type(e).__name__
            spans.append((t0, time.monotonic()))
            added.append(st)
            time.sleep(dur * 0.6 / adds)
        return len(added)

    # with filler members (scenario grow's window): every request a new
    # session, so that a walk over the members is nearly always under way
    load = Load(env, sessions=env.scale(200, 120), threads=12, duration=dur,
                new_rate=1.0 if env.e.get("filler") else 0.2)
    load.run([(1.0, adder)])
    v.requests = len(load.records)
    bad = [r for r in load.records
           if r.status is None or r.status >= 500 or r.retried]
    v.failures = len(bad)
    if bad:
        kinds = {}
        for r in bad:
            k = r.err or ("retried" if r.retried else str(r.status))
            kinds[k] = kinds.get(k, 0) + 1
        v.fail("%d failed requests (%s)" % (v.failures, ", ".join(
            "%s %d" % kv for kv in sorted(kinds.items()))))
    # requests sent while an add held its slot half made: the race is real
    during = [r for r in load.records
              if any(a <= r.t0 < b for a, b in spans)]
    v.notes.append("adds took %s ms" % "/".join("%d" % ((b - a) * 1000)
                                                 for a, b in spans))
    v.notes.append("%d requests sent during an add (%d failed)"
                   % (len(during), len([r for r in during if r in bad])))
    if not during:
        v.fail("no request was sent while an add was under way")
    if sum(1 for s in added if s == 200) != adds:
        v.fail("adds answered %s" % sorted(set(map(str, added))))
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: %d crash line(s), first: %s" % (len(crashes), crashes[0]))
    else:
        try:
            n = len(manager_state(env)) - env.e.get("filler", 0)
            if n != len(env.members) + adds:
                v.fail("the manager lists %d members, not %d"
                       % (n, len(env.members) + adds))
        except (OSError, http.client.HTTPException) as e:
            v.fail("manager page: %s" % type(e).__name__)
    v.notes.append("%d members added" % sum(1 for s in added if s == 200))
    if lbm != "affinity":
        # the control shows what httpd itself does: informative only
        v.notes += ["control: " + p for p in v.problems]
        v.problems = []
    return v


SCENARIOS = {"add-race": scenario_add_race}
