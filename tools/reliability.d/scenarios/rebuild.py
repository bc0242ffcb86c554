# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""One balancer from three sections with two salts, edits and an add, many threads."""

import os
import random
import re
import threading
import time

from lib.client import Client, member_of, parse_set_cookies
from lib.env import HOST, route_id
from lib.manager import add_member, edit_member, manager_nonce
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict


# ---- rebuild-stress: route tables rebuilt under load, in one child ---------

def scenario_rebuild(env):
    """One balancer reached from three sections: /sa/ and /sb/ with one salt,
    /sc/ with another (tools/reliability writes them; secrets[0] and
    secrets[1] are the two salts).  Many threads of one child serve them
    while balancer-manager edits routes and adds a member: the tables are
    rebuilt under load.  Every response's X-Route (AFFINITY_ROUTE as the
    response leaves) and every access-log AFFINITY_ROUTE (as the request
    ends) must be sha1(salt of the section . identity of the member that
    answered), the identity being the route in force or 127.0.0.1:port.  A
    request that overlapped an edit of its member's route may carry the
    ID of any route that member had (a route read mid-strcpy); every other
    request exactly the one in force.
    Garbage, another salt's or another member's ID fail the scenario, and
    so does a rebuild count that grows with requests rather than edits."""
    v = Verdict("rebuild-stress: 3 sections, 2 salts, route edits and a "
                "member added live, one child")
    dur = env.scale(30, 10)
    threads = env.scale(24, 16)
    salt_a, salt_b = (x.encode() for x in env.e["secrets"][:2])
    sections = [("/sa/", salt_a), ("/sb/", salt_a), ("/sc/", salt_b)]
    nonce = manager_nonce(env)
    live = [m for m in env.members if env.members[m]["in_balancer"]]
    spare = [m for m in env.members if not env.members[m]["in_balancer"]][0]
    by_port = {str(m["port"]): name for name, m in env.members.items()}
    # route history: member -> [(edit start, edit end, route)], initial ""
    routes = {m: [] for m in env.members}
    edits_done = []
    errors = []
    stop = threading.Event()
    off = file_size(env.error_log)
    log_path = os.path.join(env.dir, "logs", "rebuild_log")
    log_off = file_size(log_path)

    def editor():
        plan = [("m1", "r1-x"), ("m2", "r2-x"), ("m1", ""), ("add", None),
                ("m1", "r1-y"), ("m2", ""), (spare, "r5-x"), ("m3", "r3-x"),
                ("m1", ""), ("m3", ""), (spare, "")]
        rnd = random.Random(11)
        i = 0
        while not stop.is_set() and i < 500:
            op = plan[i % len(plan)]
            i += 1
            if op[0] == "add":
                if i > len(plan):
                    continue
                try:
                    st = add_member(env, nonce, spare)
                    st2 = edit_member(env, nonce, spare, w_status_D="0")
                except OSError as e:
                    errors.append(str(e))
                    continue
                if st != 200 or st2 != 200:
                    errors.append("add answered %s, enable %s" % (st, st2))
                edits_done.append(("add", spare))
            else:
                if op[0] == spare and not any(e[0] == "add" for e in edits_done):
                    continue
                t0 = time.monotonic()
                try:
                    st = edit_member(env, nonce, op[0], w_wr=op[1])
                except OSError as e:
                    errors.append(str(e))
                    continue
                routes[op[0]].append((t0, time.monotonic(), op[1]))
                if st != 200:
                    errors.append("route edit answered %s" % st)
                edits_done.append(op)
            stop.wait(rnd.uniform(0.1, 0.25))

    records = []
    lock = threading.Lock()
    t_start = time.monotonic()
    deadline = t_start + dur

    def client(ti):
        rnd = random.Random(500 + ti)
        c = Client(env)
        jar = {}
        mine = []
        n = 0
        while time.monotonic() < deadline and n < 10 ** 6:
            path, salt = sections[(ti + n) % 3]
            hdrs = {}
            if salt in jar and rnd.random() < 0.7:
                hdrs["Cookie"] = "%s=%s" % (env.cookie, jar[salt])
            qid = "%d-%d" % (ti, n)
            n += 1
            t0 = time.monotonic()
            status, headers, body = c.get(path + "?q=" + qid, hdrs)
            t1 = time.monotonic()
            xr = None
            member = None
            if status == 200:
                member = member_of(body)
                xr = [val for k, val in headers if k.lower() == "x-route"]
                xr = xr[0] if len(xr) == 1 else repr(xr)
                ids = parse_set_cookies(env, headers)
                if ids:
                    jar[salt] = ids[-1]
            mine.append((qid, t0, t1, path, salt, status, member, xr))
        c.close()
        with lock:
            records.extend(mine)

    ed = threading.Thread(target=editor, daemon=True)
    ed.start()
    ts = [threading.Thread(target=client, args=(i,), daemon=True)
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(dur + 60)
    stop.set()
    ed.join(10)

    def allowed(member, salt, t0, t1):
        """(set of IDs possible, exact?) for a request served by member."""
        port = env.members[member]["port"]
        ident = lambda rt: rt if rt else "%s:%d" % (HOST, port)
        cur = ""
        overlap = []
        for (a, b, rt) in routes[member]:
            if b < t0:
                cur = rt
            elif a <= t1:
                overlap.append(rt)
        if overlap:
            # balancer-manager strcpy()s the route in place: a finder that
            # read it mid-write may have seen any route the member had
            overlap = [""] + [rt for (_, _, rt) in routes[member]]
        ids = {route_id(salt, ident(rt)) for rt in [cur] + overlap}
        return ids, not overlap

    wrong_hdr = []
    ambiguous = 0
    by_qid = {}
    for (qid, t0, t1, path, salt, status, member, xr) in records:
        v.requests += 1
        by_qid[qid] = (t0, t1, path, salt, member)
        if status != 200 or member not in env.members:
            v.failures += 1
            continue
        ids, exact = allowed(member, salt, t0, t1)
        if not exact:
            ambiguous += 1
        if xr not in ids:
            wrong_hdr.append("%s %s from %s: X-Route %r, expected %s"
                             % (path, qid, member, xr, " or ".join(sorted(ids))))
    v.fail_count(v.failures, "%d requests failed")
    if wrong_hdr:
        v.fail("%d X-Route headers are not the serving member's ID (first: %s)"
               % (len(wrong_hdr), wrong_hdr[0]))
    # the access log: "GET /sa/?q=QID HTTP/1.1|ROUTE|WORKER|STATUS"
    wrong_log = []
    seen = 0
    deadline_log = time.monotonic() + 10
    while True:
        try:
            with open(log_path, "rb") as f:
                f.seek(log_off)
                lines = f.read().decode("latin-1").splitlines()
        except OSError:
            lines = []
        if len(lines) >= len(records) or time.monotonic() > deadline_log:
            break
        time.sleep(0.2)
    for line in lines:
        parts = line.split("|")
        m = re.match(r"GET \S*\?q=(\S+) ", parts[0])
        if not m or m.group(1) not in by_qid or len(parts) != 4:
            continue
        t0, t1, path, salt, member = by_qid[m.group(1)]
        seen += 1
        wm = re.match(r"http://127\.0\.0\.1:(\d+)", parts[2])
        logged_member = by_port.get(wm.group(1)) if wm else None
        if member is None or logged_member != member:
            if member is not None:
                wrong_log.append("%s: worker %s but %s answered" % (line, parts[2], member))
            continue
        ids, _ = allowed(member, salt, t0, t1)
        if parts[1] not in ids:
            wrong_log.append("%s: expected %s" % (line, " or ".join(sorted(ids))))
    if seen < v.requests - v.failures:
        v.fail("only %d of %d requests found in the access log" % (seen, v.requests))
    if wrong_log:
        v.fail("%d access-log AFFINITY_ROUTEs are not the serving member's ID "
               "(first: %s)" % (len(wrong_log), wrong_log[0]))
    if errors:
        v.fail("balancer-manager: " + errors[0])
    if not any(e[0] == "add" for e in edits_done):
        v.fail("the member was not added")
    served_spare = sum(1 for r in records if r[6] == spare)
    if served_spare == 0:
        v.fail("the member added live never served")
    # rebuilds follow edits, not requests: per table (two salts) one build,
    # then at most one per edit, plus a few for edits caught mid-write
    with open(env.error_log, "rb") as f:
        f.seek(off)
        text = f.read().decode("latin-1")
    builds = len(re.findall(r"AFF0011: balancer://app: route table built", text))
    route_edits = sum(1 for e in edits_done if e[0] != "add")
    limit = 2 * (route_edits + 2) + 10
    if builds > limit:
        v.fail("%d route table builds for %d edits (limit %d)"
               % (builds, len(edits_done), limit))
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d threads, %d route edits and 1 member added in %d s"
                   % (threads, route_edits, dur))
    v.notes.append("%d X-Route headers and %d log lines checked, 0 wrong"
                   % (v.requests - v.failures, seen) if not (wrong_hdr or wrong_log)
                   else "%d wrong headers, %d wrong log lines"
                   % (len(wrong_hdr), len(wrong_log)))
    v.notes.append("%d overlapped a route edit of their member" % ambiguous)
    v.notes.append("%d table builds" % builds)
    v.notes.append("added member served %d" % served_spare)
    return v


# the front-end runs it as "rebuild-stress"
SETUP = {"rebuild": None}
SCENARIOS = {"rebuild": scenario_rebuild}
