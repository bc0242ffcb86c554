# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""balancer-manager edits under load (drain, disable, route, add)."""

import random
import threading
import time

from lib.load import Load
from lib.manager import add_member, edit_member, manager_nonce
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict, check_sessions


# ---- b: balancer-manager edits under load ------------------------------------

class Timeline:
    """Member states over time, from the edits' [start, end] windows."""

    def __init__(self, initial):
        self.state = {m: dict(s) for m, s in initial.items()}
        self.changes = []             # (t_start, t_end, member, key, value)

    def record(self, t0, t1, member, key, value):
        self.changes.append((t0, t1, member, key, value))

    def at(self, member, t0, t1):
        """The member's state through [t0, t1], or None if an edit of it
        overlapped."""
        st = dict(self.state[member])
        for (a, b, m, k, val) in self.changes:
            if m != member:
                continue
            if a <= t1 and b >= t0:
                return None
            if b < t0:
                st[k] = val
        return st


def scenario_edits(env):
    v = Verdict("b. balancer-manager edits under load")
    dur = env.scale(30, 12)
    initial = {m: {"present": env.members[m]["in_balancer"], "D": False,
                   "N": False, "S": False} for m in env.members}
    # a member added live starts disabled
    tl = Timeline(initial)
    nonce = manager_nonce(env)
    new = [m for m in env.members if not env.members[m]["in_balancer"]]
    plan = [("m3", "D", True), ("m4", "N", True), ("m1", "lf", 3),
            ("add", new[0], None), (new[0], "D", False),
            ("m3", "D", False), ("m4", "N", False), ("m1", "lf", 1),
            ("m3", "S", True), (new[0], "N", True), ("m2", "lf", 4),
            ("m3", "S", False), (new[0], "N", False), ("m4", "D", True),
            ("m2", "lf", 1), ("m4", "D", False), (new[0], "D", True),
            (new[0], "D", False)]
    edits = []
    errors = []
    stop = threading.Event()

    def editor():
        rnd = random.Random(7)
        i = 0
        added = False
        while not stop.is_set() and i < 1000:
            op = plan[i % len(plan)]
            i += 1
            if op[0] == "add" and added:
                continue
            t0 = time.monotonic()
            try:
                if op[0] == "add":
                    st = add_member(env, nonce, op[1])
                    key, member, val = ("present", op[1], True)
                    added = True
                elif op[1] == "lf":
                    st = edit_member(env, nonce, op[0], w_lf=str(op[2]))
                    key, member, val = ("lf", op[0], op[2])
                else:
                    st = edit_member(env, nonce, op[0],
                                     **{"w_status_" + op[1]: "1" if op[2] else "0"})
                    key, member, val = (op[1], op[0], op[2])
            except OSError as e:
                errors.append(str(e))
                continue
            t1 = time.monotonic()
            if st != 200:
                errors.append("manager answered %s" % st)
            if key == "present":
                # present, and disabled, in one step
                tl.record(t0, t1, member, "present", True)
                tl.record(t0, t1, member, "D", True)
            elif key != "lf":
                tl.record(t0, t1, member, key, val)
            edits.append((t0, op))
            stop.wait(rnd.uniform(0.2, 0.4))

    load = Load(env, sessions=env.scale(300, 160), threads=8, duration=dur,
                new_rate=0.05)
    off = file_size(env.error_log)
    th = threading.Thread(target=editor, daemon=True)

    def start_editor():
        th.start()
        return True

    load.run([(1.0, start_editor)])
    stop.set()
    th.join(10)

    def usable(m, t0, t1):
        st = tl.at(m, t0, t1)
        if st is None:
            return None
        return st["present"] and not st["D"] and not st["S"]

    def new_ok(m, t0, t1):
        st = tl.at(m, t0, t1)
        if st is None:
            return None
        return st["present"] and not (st["D"] or st["S"] or st["N"])

    new_bad = check_sessions(env, load.records, v, usable, new_ok)
    v.fail_count(v.failures, "%d failed requests")
    if errors:
        v.fail("balancer-manager: " + errors[0])
    served_new = sum(1 for r in load.records if r.member == new[0])
    if served_new == 0:
        v.fail("the member added live never served")
    if load.ka_retries:
        v.failures += load.ka_retries
        v.fail("%d connections closed under the client" % load.ka_retries)
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d edits" % len(edits))
    v.notes.append("new sessions to draining/disabled %d" % new_bad)
    v.notes.append("added member served %d" % served_new)
    return v


# members, spare members (not in the balancer, for the add), salt
SETUP = {"edits": (4, 1, "fixed")}
SCENARIOS = {"edits": scenario_edits}
