# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""A member killed under load."""

import os
import signal
import time

from lib.load import Load
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict, check_sessions, learn_ids


# ---- a: a member killed under load -------------------------------------------

def scenario_kill(env):
    v = Verdict("a. member killed under load")
    dur = env.scale(20, 8)
    victim = "m2"
    pid = env.members[victim]["pid"]
    load = Load(env, sessions=env.scale(400, 200), threads=8, duration=dur)
    t_kill = {}

    def kill():
        t_kill["t"] = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return t_kill["t"]

    off = file_size(env.error_log)
    load.run([(dur * 0.4, kill)])
    tk = t_kill["t"]

    def usable(m, t0, t1):
        if m != victim:
            return True
        if t0 >= tk:
            return False
        if t1 < tk:
            return True
        return None

    check_sessions(env, load.records, v, usable,
                   new_ok=lambda m, t0, t1: (m != victim) if t0 >= tk else True)
    ids = learn_ids(env, load.records, v)
    # failures (5xx, no answer, or a connection httpd cut so that the client
    # retries): only requests in flight on the victim, at most 0.05 %
    failed = [r for r in load.records
              if r.status is None or r.status >= 500 or r.retried]
    v.failures = len(failed)
    other = [r for r in failed if not (r.sent and ids.get(r.sent) == victim)]
    if other:
        v.fail("%d failures on sessions of members that stayed up" % len(other))
    late = [r for r in failed if r.t0 > tk + 0.5 or r.t1 < tk]
    if late:
        v.fail("%d failures not in flight at the kill" % len(late))
    limit = 0.0005 * v.requests
    if v.failures > limit:
        v.fail("%d failures > 0.05%% of %d" % (v.failures, v.requests))
    # every session of the victim that asked again moved, with a new cookie
    victims, moved = set(), set()
    for r in load.records:
        if r.t1 < tk and r.status == 200 and r.member == victim:
            victims.add(r.sid)
    for r in load.records:
        if r.sid in victims and r.t1 > tk and r.status == 200 and r.set_ids \
                and r.member != victim:
            moved.add(r.sid)
    stuck = [s for s in victims if s not in moved
             and any(r.sid == s and r.t0 > tk for r in load.records)]
    if stuck:
        v.fail("%d sessions of the killed member never got a new member"
               % len(stuck))
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d cut by httpd mid-request (client retried)"
                   % sum(1 for r in failed if r.retried))
    v.notes.append("%d sessions of the killed member moved with a new cookie"
                   % len(moved))
    v.notes.append("limit %.1f" % limit)
    return v


SCENARIOS = {"kill": scenario_kill}
