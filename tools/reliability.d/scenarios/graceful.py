# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Graceful restarts under load."""

import os
import re
import signal
import time

from lib.load import Load
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict, check_sessions


# ---- c: graceful restart under load ------------------------------------------

def scenario_graceful(env):
    label = env.e.get("label", "")
    v = Verdict("c. graceful restart under load" + (" (%s)" % label if label else ""))
    dur = env.scale(20, 9)
    restarts = env.scale(4, 2)
    off = file_size(env.error_log)
    load = Load(env, sessions=env.scale(300, 160), threads=8, duration=dur)

    def graceful():
        os.kill(env.httpd_pid(), signal.SIGUSR1)
        return time.monotonic()

    acts = [(dur * (i + 1) / (restarts + 1), graceful) for i in range(restarts)]
    load.run(acts)
    check_sessions(env, load.records, v, lambda m, t0, t1: True,
                   new_ok=lambda m, t0, t1: True)
    fivexx = sum(1 for r in load.records if r.status and r.status >= 500)
    cut = sum(1 for r in load.records if r.status is None)
    v.fail_count(fivexx, "%d 5xx")
    v.fail_count(cut, "%d requests without a response")
    # every session that had a member kept it
    first = {}
    changed = set()
    for r in load.records:
        if r.status == 200:
            if r.sid in first and first[r.sid] != r.member:
                changed.add(r.sid)
            first.setdefault(r.sid, r.member)
    if changed:
        v.fail("%d sessions changed member" % len(changed))
    with open(env.error_log, "rb") as f:
        f.seek(off)
        text = f.read().decode("latin-1")
    n = len(re.findall(r"AH00493|Graceful restart requested", text))
    resumed = len(re.findall(r"AH00489|resuming normal operations", text))
    if n < restarts or resumed < restarts:
        v.fail("only %d graceful restarts seen in the error log" % min(n, resumed))
    if env.salt is None and text.count("AFF0005") < restarts:
        v.fail("AffinitySalt random: the kept-salt notice (AFF0005) is missing")
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d graceful restarts" % n)
    v.notes.append("%d sessions kept their member" % len(first))
    v.notes.append("keep-alive closes retried %d" % load.ka_retries)
    return v


SCENARIOS = {"graceful": scenario_graceful}
