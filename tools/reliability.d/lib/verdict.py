# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""A scenario's result line, and the session checks several scenarios share
(which member each ID names, moves off a usable member, needless cookies)."""

import json


# ---- checks common to the session scenarios ----------------------------------

class Verdict:
    def __init__(self, name):
        self.name = name
        self.requests = 0
        self.failures = 0
        self.moved = 0
        self.notes = []
        self.problems = []

    def fail(self, msg):
        self.problems.append(msg)

    def fail_count(self, n, msg):
        """A problem when n counted any: msg % n."""
        if n:
            self.fail(msg % n)

    def line(self):
        return json.dumps({"scenario": self.name, "requests": self.requests,
                           "failures": self.failures, "moved": self.moved,
                           "notes": "; ".join(self.notes),
                           "problems": self.problems,
                           "ok": not self.problems})


def learn_ids(env, recs, v):
    """Map every affinity ID seen to the member that served it; with a known
    salt, check it is SHA1(salt . host:port) of that member."""
    seen = dict(env.names_by_id)
    bad = badprefix = 0
    for r in recs:
        if r.status == 200 and r.set_ids:
            if len(r.set_ids) != 1:
                v.fail("%d affinity Set-Cookies in one response" % len(r.set_ids))
            i = r.set_ids[-1]
            # prefix mode: the application's value carries the ID of the
            # member that served
            if env.prefix and not i.startswith(env.ids.get(r.member, "?") + "~"):
                badprefix += 1
            if i in seen and seen[i] != r.member:
                bad += 1
            seen.setdefault(i, r.member)
    if bad:
        v.fail("%d Set-Cookies named another member than the one that "
               "answered" % bad)
    if badprefix:
        v.fail("%d application cookies without the prefix of the member "
               "that answered" % badprefix)
    return seen


def check_sessions(env, recs, v, usable, new_ok=None):
    """usable(member, t0, t1) -> True / False / None (changed during the
    request: not judged).  new_ok(member, t0, t1) -> may a new session be
    given to it (True / False / None).  Counts wrong moves and failures."""
    ids = learn_ids(env, recs, v)
    moved_ok = needless = reached_down = new_bad = ambiguous = 0
    for r in recs:
        v.requests += 1
        if r.status is None or r.status >= 500 or r.status != 200:
            v.failures += 1
            continue
        bound = ids.get(r.sent) if r.sent else None
        if r.set_ids and new_ok:
            ok = new_ok(r.member, r.t0, r.t1)
            if ok is False:
                new_bad += 1
        if bound is None:
            continue
        u = usable(bound, r.t0, r.t1)
        if r.member != bound:
            if u is True:
                v.moved += 1
            elif u is None:
                ambiguous += 1
            else:
                moved_ok += 1
                if not r.set_ids:
                    v.fail("session moved without a new cookie")
        else:
            if r.set_ids:
                needless += 1
            if u is False:
                reached_down += 1
    v.fail_count(v.moved, "%d requests moved off a usable member")
    v.fail_count(needless, "%d Set-Cookies for a cookie that was honoured")
    v.fail_count(reached_down, "%d requests reached a member that was not usable")
    v.fail_count(new_bad, "%d new sessions given to a draining/disabled member")
    v.notes.append("failovers %d" % moved_ok)
    if ambiguous:
        v.notes.append("%d in flight at a change, not judged" % ambiguous)
    return new_bad


def sessions_per_member(env, recs):
    last = {}
    for r in recs:
        if r.status == 200:
            last[r.sid] = r.member
    out = {}
    for m in last.values():
        out[m] = out.get(m, 0) + 1
    return out
