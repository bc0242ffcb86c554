#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Clients and checks for tools/reliability (which starts and stops the
servers; this file only talks HTTP to 127.0.0.1 and reads their logs).

    driver.py ports N [--consecutive]       print N free loopback ports
    driver.py SCENARIO ENV.json             run one scenario, print one
                                            result line (JSON) on stdout

Every loop is bounded by a count and a deadline.  A client session is a
cookie jar: it sends the affinity cookie it was last given, and each request
is recorded (times, cookie sent, status, member that answered, affinity
Set-Cookie received) so the checks can replay what happened.
"""

import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

HOST = "127.0.0.1"


def log(msg):
    print("  " + msg, file=sys.stderr, flush=True)


# ---- ports -------------------------------------------------------------------

def free_port(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cmd_ports(n, consecutive):
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(500):
        if consecutive:
            base = rnd.randrange(20000, 60000 - n)
            ports = list(range(base, base + n))
        else:
            ports = sorted(set(rnd.randrange(20000, 60000) for _ in range(n)))
            if len(ports) != n:
                continue
        if all(free_port(p) for p in ports):
            print(" ".join(map(str, ports)))
            return 0
    print("no free ports", file=sys.stderr)
    return 1


# ---- environment -------------------------------------------------------------

class Env:
    """What tools/reliability set up: see write_env in the bash script."""

    def __init__(self, path):
        with open(path) as f:
            e = json.load(f)
        self.e = e
        self.port = e["port"]
        self.quick = e["quick"]
        self.dir = e["dir"]
        self.cookie = e["cookie"]
        # prefix mode: the cookie is the application's, its values "ID~value"
        self.prefix = e.get("prefix", False)
        self.salt = e["salt"].encode() if e.get("salt") is not None else None
        self.members = e["members"]            # name -> {port, pid, in_balancer}
        self.pidfile = e["pidfile"]
        self.error_log = e["error_log"]
        self.access_log = e["access_log"]
        self.balancer = e.get("balancer", "app")
        self.ids = {}
        if self.salt is not None:
            for name, m in self.members.items():
                self.ids[name] = route_id(self.salt, "%s:%d" % (HOST, m["port"]))
        self.names_by_id = {v: k for k, v in self.ids.items()}

    def scale(self, full, quick):
        return quick if self.quick else full

    def httpd_pid(self):
        with open(self.pidfile) as f:
            return int(f.read().strip())


def route_id(salt, identity):
    return hashlib.sha1(salt + identity.encode()).hexdigest()


def httpd_pids(parent):
    pids = [parent]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return sorted(pids)


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


CRASH_RE = re.compile(r"exit signal|Segmentation fault|AH00052|AH00060|"
                      r"ERROR: AddressSanitizer|runtime error:|"
                      r"seems to have died|AH00045", re.I)


def error_log_crashes(env, start=0):
    """Lines of the error log (from byte offset start) that tell of a child
    that crashed or a sanitizer report."""
    try:
        with open(env.error_log, "rb") as f:
            f.seek(start)
            text = f.read().decode("latin-1")
    except OSError:
        return []
    return [l for l in text.splitlines() if CRASH_RE.search(l)]


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# ---- one HTTP exchange -------------------------------------------------------

def member_of(body):
    """The backends answer their name on the first line."""
    return body.decode("latin-1").split("\n", 1)[0].strip()


def parse_set_cookies(env, headers):
    """The affinity Set-Cookie values (the IDs) among the headers."""
    out = []
    prefix = env.cookie + "="
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(prefix):
            out.append(v[len(prefix):].split(";", 1)[0].strip())
    return out


class Client:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, env, timeout=10):
        self.env = env
        self.timeout = timeout
        self.conn = None
        self.reused = False
        self.ka_retries = 0
        self.last_retried = False

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None

    def get(self, path, headers=None):
        """(status, headers, body) or (None, None, error string).  A request
        on a reused connection the server had closed before answering is
        sent again once on a new connection, as HTTP clients do (httpd also
        closes the connection without an answer on purpose when a member
        dies mid-request, so that the client retries).  last_retried tells."""
        self.last_retried = False
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.env.port,
                                                       timeout=self.timeout)
                self.reused = False
            reused = self.reused
            try:
                self.conn.request("GET", path, headers=headers or {})
                resp = self.conn.getresponse()
                body = resp.read()
                self.reused = True
                if resp.will_close:
                    self.close()
                return resp.status, resp.getheaders(), body
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, ConnectionAbortedError) as e:
                self.close()
                if attempt == 0 and reused:
                    self.ka_retries += 1
                    self.last_retried = True
                    continue
                return None, None, type(e).__name__
            except (OSError, http.client.HTTPException) as e:
                self.close()
                return None, None, type(e).__name__
        return None, None, "unreachable"


def post_manager(env, params, client=None):
    """A balancer-manager POST as a browser sends it: nonce, Referer."""
    c = client or Client(env)
    path = "/balancer-manager"
    body = urllib.parse.urlencode(params)
    conn = http.client.HTTPConnection(HOST, env.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": "http://%s:%d%s" % (HOST, env.port, path)})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def manager_nonce(env, balancer=None):
    b = balancer or env.balancer
    status, _, body = Client(env).get("/balancer-manager")
    if status != 200:
        raise RuntimeError("balancer-manager answered %s" % status)
    m = re.search(r"b=%s&(?:amp;)?nonce=([0-9a-f-]+)" % re.escape(b),
                  body.decode("latin-1"))
    if not m:
        raise RuntimeError("no nonce for balancer %s on the manager page" % b)
    return m.group(1)


def manager_state(env, balancer=None):
    """{worker URL: status string} as the manager page shows them."""
    status, _, body = Client(env).get("/balancer-manager")
    text = body.decode("latin-1")
    out = {}
    for m in re.finditer(r"<td><a href=\"/balancer-manager\?b=%s&(?:amp;)?w="
                         r"([^&\"]+)[^>]*>[^<]*</a></td>(.*?)</tr>"
                         % re.escape(balancer or env.balancer), text, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", m.group(2), re.S)
        out[urllib.parse.unquote(m.group(1))] = cells
    return out


def member_url(env, name):
    return "http://%s:%d" % (HOST, env.members[name]["port"])


def edit_member(env, nonce, name, **fields):
    params = {"b": env.balancer, "w": member_url(env, name), "nonce": nonce}
    params.update(fields)
    return post_manager(env, params)


def add_member(env, nonce, name):
    return post_manager(env, {"b": env.balancer, "nonce": nonce, "b_wyes": "1",
                              "b_nwrkr": member_url(env, name)})


# ---- load: sessions in threads -----------------------------------------------

class Rec:
    __slots__ = ("t0", "t1", "sid", "sent", "status", "member", "set_ids",
                 "err", "headers", "body", "retried")


class Load:
    """nthreads threads, each with its own connection and its own sessions,
    requesting round robin until the deadline (or max_requests each).
    new_rate: chance that a session is dropped for a fresh client."""

    def __init__(self, env, sessions, threads, duration, new_rate=0.0,
                 keep_headers=False, path="/app/", max_requests=10 ** 6,
                 extra_headers=None):
        self.env = env
        self.sessions = sessions
        self.threads = threads
        self.duration = duration
        self.new_rate = new_rate
        self.keep_headers = keep_headers
        self.path = path
        self.max_requests = max_requests
        self.extra_headers = extra_headers or {}
        self.records = []
        self.ka_retries = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t_start = None

    def _worker(self, ti):
        env = self.env
        rnd = random.Random(1000 + ti)
        mine = ["t%ds%d" % (ti, i) for i in range(self.sessions // self.threads)]
        jar = {sid: None for sid in mine}
        serial = 0
        client = Client(env)
        recs = []
        deadline = self.t_start + self.duration
        n = 0
        while n < self.max_requests and not self.stop.is_set():
            for k, sid in enumerate(mine):
                if time.monotonic() >= deadline or n >= self.max_requests:
                    break
                if self.new_rate and rnd.random() < self.new_rate:
                    serial += 1
                    sid = "t%dn%d" % (ti, serial)
                    mine[k] = sid
                    jar[sid] = None
                cookie = jar[sid]
                hdrs = dict(self.extra_headers)
                if cookie:
                    hdrs["Cookie"] = "%s=%s" % (env.cookie, cookie)
                r = Rec()
                r.sid = sid
                r.sent = cookie
                r.t0 = time.monotonic()
                status, headers, body = client.get(self.path + "?s=" + sid, hdrs)
                r.t1 = time.monotonic()
                r.status = status
                r.retried = client.last_retried
                if status is None:
                    r.err = body
                    r.member = None
                    r.set_ids = []
                    r.headers = None
                    r.body = None
                else:
                    r.err = None
                    r.member = member_of(body) if status == 200 else None
                    r.set_ids = parse_set_cookies(env, headers)
                    if r.set_ids:
                        jar[sid] = r.set_ids[-1]
                    r.headers = headers if self.keep_headers else None
                    r.body = body if self.keep_headers else None
                recs.append(r)
                n += 1
            if time.monotonic() >= deadline:
                break
        client.close()
        with self.lock:
            self.records.extend(recs)
            self.ka_retries += client.ka_retries

    def run(self, actions=()):
        """actions: (seconds after start, callable) run from this thread
        while the load runs; returns {label: time} of each action."""
        self.t_start = time.monotonic()
        ts = [threading.Thread(target=self._worker, args=(i,), daemon=True)
              for i in range(self.threads)]
        for t in ts:
            t.start()
        done = {}
        for at, fn in sorted(actions, key=lambda a: a[0]):
            delay = self.t_start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            done[fn.__name__ if hasattr(fn, "__name__") else str(at)] = fn()
        for t in ts:
            t.join(self.duration + 60)
        self.records.sort(key=lambda r: r.t0)
        return done


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
    if v.moved:
        v.fail("%d requests moved off a usable member" % v.moved)
    if needless:
        v.fail("%d Set-Cookies for a cookie that was honoured" % needless)
    if reached_down:
        v.fail("%d requests reached a member that was not usable" % reached_down)
    if new_bad:
        v.fail("%d new sessions given to a draining/disabled member" % new_bad)
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
    if v.failures:
        v.fail("%d failed requests" % v.failures)
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
    if fivexx:
        v.fail("%d 5xx" % fivexx)
    if cut:
        v.fail("%d requests without a response" % cut)
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


# ---- d: hostile Cookie headers -----------------------------------------------

def raw_request(env, path, header_lines, timeout=10):
    """Send exactly these header lines (bytes, no CR/LF inside); returns
    (status, headers dict-list, body, seconds) or (None, .., error)."""
    req = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + \
        ("%s:%d" % (HOST, env.port)).encode() + b"\r\n"
    for h in header_lines:
        req += h + b"\r\n"
    req += b"Connection: close\r\n\r\n"
    t0 = time.monotonic()
    s = socket.create_connection((HOST, env.port), timeout=timeout)
    try:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        return None, None, type(e).__name__, time.monotonic() - t0
    finally:
        s.close()
    dt = time.monotonic() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0] if lines else b"")
    if not m:
        return None, None, "no status line", dt
    headers = []
    for l in lines[1:]:
        k, _, val = l.partition(b":")
        headers.append((k.decode("latin-1").strip(), val.decode("latin-1").strip()))
    return int(m.group(1)), headers, body, dt


def hostile_cases(env, rnd):
    """(label, [header lines], expected member or None, may_400)."""
    name = env.cookie.encode()
    ids = env.ids
    good = ids["m1"].encode()
    cases = []

    def ck(v):
        return [b"Cookie: " + v]

    rbytes = bytes(rnd.choice([c for c in range(0x20, 0x100) if c != 0x7f])
                   for _ in range(4000))
    cases.append(("random bytes", ck(rbytes), None, False))
    ctl = bytes(rnd.choice(list(range(0x01, 0x09)) + list(range(0x0b, 0x0d)) +
                           list(range(0x0e, 0x20)) + [0x7f, 0x80, 0xff, 0x3b, 0x3d])
                for _ in range(2000))
    cases.append(("control and high bytes", ck(ctl), None, True))
    many = b"; ".join(b"c%d=%d" % (i, i) for i in range(5000))
    cases.append(("5000 cookies, then a valid ID", ck(many + b"; " + name + b"=" + good),
                  "m1", False))
    cases.append(("1900 cookies in 8 KB", ck(b"a=1;" * 1900 + name + b"=" + good),
                  "m1", False))
    cases.append(("8 KB value", ck(name + b"=" + b"a" * 8000), None, False))
    cases.append(("8 KB value, 40 hex first", ck(name + b"=" + good + b"a" * 7960),
                  None, False))
    rep = b"; ".join([name + b"=x"] * 600)
    cases.append(("name x600, valid ID last", ck(rep + b"; " + name + b"=" + good),
                  "m1", False))
    rep2 = b"; ".join([name + b"=" + ids["m2"].upper().encode()] * 150)
    cases.append(("name x150 uppercase IDs", ck(rep2), None, False))
    cases.append(("quoted ID", ck(name + b'="' + good + b'"'), "m1", False))
    cases.append(("half-quoted ID", ck(name + b'="' + good), None, False))
    cases.append(("doubly quoted", ck(name + b'=""' + good + b'""'), None, False))
    cases.append(("quotes only", ck(b'"' * 3000), None, False))
    cases.append(("missing =", ck(name + b"; " + name + good + b"; ;;;; =; ==="),
                  None, False))
    for n in (0, 1, 39, 41, 80):
        cases.append(("ID of length %d" % n,
                      ck(name + b"=" + (good * 2)[:n]), None, False))
    cases.append(("ID upper case", ck(name + b"=" + good.upper()), None, False))
    cases.append(("ID with g", ck(name + b"=" + good[:39] + b"g"), None, False))
    cases.append(("ID with blanks", ck(name + b" \t= \t" + good + b" \t"), "m1", False))
    cases.append(("90 Cookie headers x 60 cookies",
                  [b"Cookie: " + b"; ".join(b"k%d_%d=v" % (h, i) for i in range(60))
                   for h in range(90)] + ck(name + b"=" + good), "m1", False))
    cases.append(("64 KB value", ck(name + b"=" + b"c" * 65000), None, False))
    cases.append(("header over the limit", ck(name + b"=" + b"b" * 70000), None, True))
    cases.append(("empty Cookie", [b"Cookie:"], None, False))
    cases.append(("two Cookie headers, the ID first in the second",
                  [b"Cookie: a=1", b"Cookie: " + name + b"=" + good], "m1", False))
    cases.append(("two Cookie headers, a bad value then a valid one",
                  [b"Cookie: " + name + b"=bad", b"Cookie: " + name + b"=" + good],
                  "m1", False))
    return cases


def scenario_hostile(env):
    v = Verdict("d. hostile Cookie headers")
    rounds = env.scale(60, 15)
    rnd = random.Random(42)
    cases = hostile_cases(env, rnd)
    off = file_size(env.error_log)
    aoff = file_size(env.access_log)
    wrong = leaked = nocache_missing = 0
    statuses = {}
    for n in range(rounds):
        for ci, (label, lines, expect, may400) in enumerate(cases):
            # a normal request as the baseline for cost
            st, hd, body, dt = raw_request(env, "/app/?h=normal&n=%d" % n,
                                           [b"Cookie: " + env.cookie.encode() +
                                            b"=" + env.ids["m2"].encode()])
            v.requests += 1
            if st != 200:
                v.failures += 1
                v.fail("normal request: %s" % (st or body))
            st, hd, body, dt = raw_request(env, "/app/?h=%d&n=%d" % (ci, n), lines)
            v.requests += 1
            statuses.setdefault(label, set()).add(st)
            if st is None or st >= 500:
                v.failures += 1
                continue
            if st == 400 and may400:
                continue
            if st != 200:
                v.failures += 1
                continue
            member = member_of(body)
            sets = parse_set_cookies(env, hd)
            if expect:
                if member != expect or sets:
                    wrong += 1
            elif len(sets) != 1 or env.names_by_id.get(sets[0]) != member:
                wrong += 1
            # the same on /strip (AffinityCookieRemove On, AffinityNoCache
            # On): the member must not see the affinity cookie
            st, hd, body, dt = raw_request(env, "/strip/?h=%d&n=%d" % (ci, n), lines)
            v.requests += 1
            if st is None or st >= 500:
                v.failures += 1
                continue
            if st != 200:
                continue
            fwd = body.decode("latin-1").split("\n")[1:2]
            if fwd and any(p.split("=", 1)[0].strip() == env.cookie
                           for p in re.split(r"[;,]", fwd[0]) if "=" in p):
                leaked += 1
            sets = parse_set_cookies(env, hd)
            if sets and not any(k.lower() == "cache-control" and "private" in val
                                for k, val in hd):
                nocache_missing += 1
    if v.failures:
        bad = {k: sorted(x for x in s if x is None or x >= 500 or x not in (200, 400))
               for k, s in statuses.items()}
        v.fail("%d failed requests: %s" % (v.failures,
               ", ".join("%s %s" % (k, s) for k, s in bad.items() if s)))
    if wrong:
        v.fail("%d responses routed against the rules" % wrong)
    if leaked:
        v.fail("%d times the affinity cookie reached the member despite "
               "AffinityCookieRemove On" % leaked)
    if nocache_missing:
        v.fail("%d new cookies without Cache-Control: private (AffinityNoCache On)"
               % nocache_missing)
    v.moved = wrong
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    # cost: server time (%D) per case against the normal requests
    per = {}
    with open(env.access_log, "rb") as f:
        f.seek(aoff)
        for line in f.read().decode("latin-1").splitlines():
            m = re.search(r'"GET /app/\?h=(\w+)&n=\d+ HTTP/1.1" (\d+) (\d+)', line)
            if m:
                per.setdefault(m.group(1), []).append(int(m.group(3)))
    base = statistics.median(per.get("normal", [1]))
    worst_label, worst = None, 0
    for k, ds in per.items():
        if k == "normal":
            continue
        med = statistics.median(ds)
        if med > worst:
            worst, worst_label = med, cases[int(k)][0]
    bound = 3 * base + 2000
    if worst > bound:
        v.fail("cost: '%s' takes %d us (median) against %d us normal"
               % (worst_label, worst, base))
    v.notes.append("%d cases" % len(cases))
    v.notes.append("server time normal %d us, worst %d us (%s)"
                   % (base, worst, worst_label))
    v.notes.append("400 only for the header over the limit" if
                   all(400 not in s for k, s in statuses.items()
                       if k not in ("header over the limit", "control and high bytes"))
                   else "unexpected 400s")
    return v


# ---- e: memory flat ------------------------------------------------------------

WRK_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mixed.lua")


def run_wrk(env, seconds, conns, close=False):
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "10s",
           "-s", WRK_LUA, "http://%s:%d/app/" % (HOST, env.port)]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    e = dict(os.environ)
    e["REL_IDS"] = " ".join(env.ids.values())
    e["REL_COOKIE"] = env.cookie
    out = subprocess.run(cmd, capture_output=True, text=True, env=e,
                         timeout=seconds + 60).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                     r"timeout (\d+)", out)
    errs = tuple(map(int, sock.groups())) if sock else (0, 0, 0, 0)
    if non2xx or sock:
        log("wrk%s: %s" % (" (close)" if close else "", out.strip().replace("\n", " | ")))
    return n, int(non2xx.group(1)) if non2xx else 0, errs


def scenario_memory(env):
    """RSS of all httpd processes over 10^5+ (quick) or 6 x 10^5 requests of
    a mixed load: valid cookies, new clients (half of them on new
    connections), garbage cookies.  The same run with the stock byrequests
    lbmethod (the control, run first) shows what httpd and malloc themselves
    add: allocator growth comes in steps that level off, a leak grows with
    the request count."""
    control = env.e.get("lbmethod", "affinity") != "affinity"
    v = Verdict("e. memory flat" + (" (control: lbmethod=%s)" % env.e["lbmethod"]
                                    if control else ""))
    target = env.scale(600000, 100000)
    parent = env.httpd_pid()
    off = file_size(env.error_log)
    chunk = env.scale(8, 4)
    kinds = dict.fromkeys(("non-2xx", "connect", "read", "write", "timeout"), 0)

    def load_chunk(seconds):
        res = {}

        def go(key, conns, close):
            try:
                res[key] = run_wrk(env, seconds, conns, close)
            except Exception as e:      # counted as a failed chunk
                res[key] = (0, 1, (0, 0, 0, 0))
                log("wrk: %s" % e)

        # 12 connections in all, fewer than a child's 16 threads: the event
        # MPM closes a keep-alive connection whose next request finds no idle
        # worker in its child (event.c: "the client can re-connect"), which
        # wrk counts as a read error, with the stock byrequests control too
        ts = [threading.Thread(target=go, args=("ka", 8, False)),
              threading.Thread(target=go, args=("close", 4, True))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(seconds + 90)
        n = sum(r[0] for r in res.values())
        for r in res.values():
            kinds["non-2xx"] += r[1]
            for k, c in zip(("connect", "read", "write", "timeout"), r[2]):
                kinds[k] += c
        return n, sum(r[1] + sum(r[2]) for r in res.values())

    def sample():
        pids = httpd_pids(parent)
        return pids, sum(rss_kb(p) for p in pids)

    # warm-up: every child and most threads have served, pools have grown
    wn, wbad = 0, 0
    for _ in range(env.scale(3, 4)):
        n, b = load_chunk(chunk)
        wn += n
        wbad += b
    pids0, rss0 = sample()
    samples = [rss0]
    chunk_requests = []
    total, bad = 0, wbad
    chunks = 0
    while total < target and chunks < 60:
        n, b = load_chunk(chunk)
        total += n
        bad += b
        chunks += 1
        samples.append(sample()[1])
        chunk_requests.append(n)
    pids1, rss1 = sample()
    v.requests = total + wn
    v.failures = bad
    growth = rss1 - rss0
    per_req = growth * 1024.0 / max(total, 1)
    if total < target:
        v.fail("only %d requests" % total)
    if bad:
        v.fail("%d non-2xx or socket errors (%s)"
               % (bad, ", ".join("%s %d" % kv for kv in kinds.items() if kv[1])))
    if pids1 != pids0:
        v.fail("httpd processes changed during the run (%s -> %s)" % (pids0, pids1))
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d processes, RSS %d -> %d KiB (%+d KiB, %.1f bytes/request) "
                   "over %d requests after %d warm-up"
                   % (len(pids1), rss0, rss1, growth, per_req, total, wn))
    cfile = env.e.get("control_file")
    if control:
        if cfile:
            with open(cfile, "w") as f:
                json.dump({"growth": growth, "requests": total}, f)
    elif env.e.get("asan"):
        v.notes.append("RSS not judged under ASan (quarantine, shadow memory)")
    else:
        # a leak of 16 bytes a request shows as 1.6 MB over 10^5 requests;
        # allocator steps of a healthy httpd stay within 1 MiB of the control
        limit = 1024
        if cfile and os.path.exists(cfile):
            with open(cfile) as f:
                c = json.load(f)
            cg = c["growth"] * total / max(c["requests"], 1)
            v.notes.append("control (stock byrequests): %+d KiB" % c["growth"])
            # a leak grows RSS in every chunk; an allocator step (a thread's
            # free list or a malloc arena reaching a new high) comes once
            steady = min(((b - a) * 1024.0 / max(n, 1)
                          for a, b, n in zip(samples, samples[1:], chunk_requests)),
                         default=0)
            v.notes.append("smallest growth of a chunk %.1f bytes/request" % steady)
            if growth > max(cg, 0) + limit and steady > 2:
                v.fail("RSS grew %d KiB, %d KiB more than the control, in every chunk"
                       % (growth, growth - cg))
        if growth > 4 * limit:
            v.fail("RSS grew %d KiB" % growth)
    v.notes.append("samples KiB: " + " ".join(str(s) for s in samples))
    return v


# ---- f: security -----------------------------------------------------------------

def common_prefix(a, b):
    n = 0
    while n < len(a) and a[n] == b[n]:
        n += 1
    return n


def hamming(a, b):
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def scenario_security(env):
    v = Verdict("f. security")
    names = sorted(env.members, key=lambda m: env.members[m]["port"])
    ports = [env.members[m]["port"] for m in names]
    off = file_size(env.error_log)
    counts = {}

    # 1. the IDs the server hands out, one per member
    seen = {}
    c = Client(env)
    all_headers = []
    for i in range(2000):
        st, hd, body = c.get("/app/?id=%d" % i)
        v.requests += 1
        if st != 200:
            v.failures += 1
            continue
        all_headers.append(hd)
        for x in parse_set_cookies(env, hd):
            seen[member_of(body)] = x
        if len(seen) == len(names):
            break
    if len(seen) != len(names):
        v.fail("only %d of %d members handed out an ID" % (len(seen), len(names)))
    ids = [seen[m] for m in names if m in seen]
    for m in names:
        if m in seen and seen[m] != env.ids[m]:
            v.fail("ID of %s is not SHA1(salt . host:port)" % m)
        unsalted = hashlib.sha1(("%s:%d" % (HOST, env.members[m]["port"])).encode()).hexdigest()
        if seen.get(m) == unsalted:
            v.fail("the ID of %s is the unsalted SHA1 of its address" % m)
    prefixes = [common_prefix(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    dists = [hamming(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    if prefixes and max(prefixes) > 4:
        v.fail("IDs of consecutive ports share %d hex digits" % max(prefixes))
    if dists and (min(dists) < 48 or max(dists) > 112
                  or abs(statistics.mean(dists) - 80) > 8):
        v.fail("Hamming distances %d..%d mean %.1f" % (min(dists), max(dists),
                                                       statistics.mean(dists)))
    if dists:
        v.notes.append("%d members on ports %d-%d: common prefix max %d hex, "
                       "Hamming %d..%d bits (mean %.1f)"
                       % (len(ids), ports[0], ports[-1], max(prefixes),
                          min(dists), max(dists), statistics.mean(dists)))

    # 2. a forged ID of a disabled or stopped member never reaches it
    nonce = manager_nonce(env)
    dis, stp = names[2], names[3]
    edit_member(env, nonce, dis, w_status_D="1")
    edit_member(env, nonce, stp, w_status_S="1")
    logs = {m: os.path.join(env.dir, "backend-%s.access" % m) for m in (dis, stp)}
    before = {m: file_size(p) for m, p in logs.items()}
    reached = 0
    forged = [env.ids[dis], env.ids[stp]]
    cookies = ["%s=%s" % (env.cookie, forged[0]), "%s=%s" % (env.cookie, forged[1]),
               "%s=%s; %s=%s" % (env.cookie, forged[0], env.cookie, forged[1]),
               "%s=\"%s\"" % (env.cookie, forged[1])]
    for i in range(env.scale(400, 120)):
        st, hd, body = c.get("/app/?forged=%d" % i,
                             {"Cookie": cookies[i % len(cookies)]})
        v.requests += 1
        if st != 200:
            v.failures += 1
            continue
        all_headers.append(hd)
        m = member_of(body)
        sets = parse_set_cookies(env, hd)
        if m in (dis, stp):
            reached += 1
        if len(sets) != 1 or sets[0] != env.ids.get(m):
            v.fail("forged cookie answered without a new cookie for the member")
            break
    time.sleep(0.2)
    grew = [m for m, p in logs.items() if file_size(p) != before[m]]
    if reached or grew:
        v.moved = reached
        v.fail("forged IDs reached %s" % (grew or reached))
    v.notes.append("forged IDs of a disabled and a stopped member: 0 reached them"
                   if not (reached or grew) else "forged IDs reached a member")

    # 3. more kinds of response: garbage cookie, valid cookie, a dead
    #    member, no member at all, a path outside the balancer, the manager
    for i in range(50):
        for hdr in ({"Cookie": "%s=%s" % (env.cookie, env.ids[names[0]])},
                    {"Cookie": "%s=zz%d" % (env.cookie, i)}, {}):
            st, hd, body = c.get("/app/?more=%d" % i, hdr)
            v.requests += 1
            if st is not None:
                all_headers.append(hd)
    # the second balancer (string salt) hands out and honours its own IDs
    app2 = {}
    for i in range(20):
        st, hd, body = c.get("/app2/?x=%d" % i,
                             {"Cookie": "%s=%s" % (env.cookie, app2[1])} if app2 else {})
        v.requests += 1
        if st is not None:
            all_headers.append(hd)
            for x in parse_set_cookies(env, hd):
                app2 = {1: x}
    os.kill(env.members[names[1]]["pid"], signal.SIGKILL)
    for i in range(20):
        st, hd, body = c.get("/app/?dead=%d" % i,
                             {"Cookie": "%s=%s" % (env.cookie, env.ids[names[1]])})
        v.requests += 1
        if st is not None:
            all_headers.append(hd)
            if st >= 500:
                v.failures += 1
    for m in names:
        if m not in (dis, stp, names[1]):
            edit_member(env, nonce, m, w_status_S="1")
    for i in range(5):
        st, hd, body = c.get("/app/?none=%d" % i)
        v.requests += 1
        if st is not None:
            all_headers.append(hd)
            counts[st] = counts.get(st, 0) + 1
            if st == 503 and parse_set_cookies(env, hd):
                v.fail("a 503 no member served carries an affinity cookie")
            if st == 503 and any(h.lower() == "set-cookie" for h, _ in hd):
                v.fail("a 503 carries a Set-Cookie")
    for p in ("/nothing", "/app"):
        st, hd, body = c.get(p)
        if st is not None:
            all_headers.append(hd)
    if 503 not in counts:
        v.fail("with every member stopped the server did not answer 503")

    # 4. nothing in the headers names a member: address, port, URL, index
    forbidden = [HOST, "balancer://", "localhost"] + [str(p) for p in ports]
    allowed = {"date", "server", "content-type", "content-length", "connection",
               "keep-alive", "set-cookie", "cache-control", "location"}
    leaks, unknown = set(), set()
    for hd in all_headers:
        for k, val in hd:
            if k.lower() not in allowed:
                unknown.add(k)
            for f in forbidden:
                if re.search(r"(?<![0-9])%s(?![0-9])" % re.escape(f), val):
                    leaks.add("%s: %s" % (k, val))
            if k.lower() == "set-cookie" and val.startswith(env.cookie + "=") and \
                    not re.fullmatch(re.escape(env.cookie) +
                                     r"=[0-9a-f]{40}; Path=/; HttpOnly", val):
                leaks.add("odd Set-Cookie: " + val)
    if leaks:
        v.fail("headers name a member: " + "; ".join(sorted(leaks)[:3]))
    if unknown:
        v.fail("unexpected response headers: " + ", ".join(sorted(unknown)))
    v.notes.append("%d responses' headers checked, no address/port/index"
                   % len(all_headers))

    # 5. the salt is in no log, at LogLevel trace8, after a graceful restart
    os.kill(env.httpd_pid(), signal.SIGUSR1)
    for i in range(50):
        time.sleep(0.2)
        with open(env.error_log, "rb") as f:
            if f.read().count(b"AH00489") >= 2:
                break
    secrets = [s.encode() for s in env.e["secrets"]]
    forms = []
    for s in secrets:
        forms += [s, s.hex().encode(), s.hex().upper().encode()]
        import base64
        forms.append(base64.b64encode(s).rstrip(b"="))
    found = []
    size = 0
    for root, _, files in os.walk(os.path.join(env.dir, "logs")):
        for fn in files:
            with open(os.path.join(root, fn), "rb") as f:
                data = f.read()
            size += len(data)
            for s in forms:
                if s in data:
                    found.append(fn)
    if found:
        v.fail("the salt appears in " + ", ".join(sorted(set(found))))
    if size < 100000:
        v.fail("the trace8 logs are suspiciously small (%d bytes)" % size)
    v.notes.append("salt absent from %d KB of logs at LogLevel trace8" % (size // 1024))
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    return v


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
    if v.failures:
        v.fail("%d failed requests" % v.failures)
    return v


# ---- grow: members added live under load, in one child ---------------------

def scenario_grow(env):
    """balancer-manager adds a member under the balancer's global mutex only,
    while request threads run the lbmethod under the thread mutex: in the
    child that serves the POST, a finder can meet the new slot before its
    worker is complete.  Many adds, fast, under load, one child (see the
    httpd config for this scenario): any crash or sanitizer report fails."""
    lbm = env.e.get("lbmethod", "affinity")
    v = Verdict("grow: 30 members added live under load (lbmethod=%s%s)"
                % (lbm, ", prefix mode" if env.prefix else ""))
    dur = env.scale(20, 10)
    nonce = manager_nonce(env)
    base = max(m["port"] for m in env.members.values())
    off = file_size(env.error_log)
    added = []

    def adder():
        for i in range(30):
            url = "http://127.0.0.%d:%d" % (2 + i, base)    # never listened on
            try:
                st = post_manager(env, {"b": env.balancer, "nonce": nonce,
                                        "b_wyes": "1", "b_nwrkr": url})
            except (OSError, http.client.HTTPException) as e:
                st = type(e).__name__
            added.append(st)
            time.sleep(dur * 0.8 / 30)
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
    if sum(1 for s in added if s == 200) != 30:
        v.fail("adds answered %s" % sorted(set(map(str, added))))
    try:
        n = len(manager_state(env))
        if n != len(env.members) + 30:
            v.fail("the manager lists %d members, not %d"
                   % (n, len(env.members) + 30))
    except (OSError, http.client.HTTPException) as e:
        v.fail("manager page: %s" % type(e).__name__)
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d members added" % len(added))
    if lbm != "affinity":
        # the control shows what httpd itself does: informative only
        v.notes += ["control: " + p for p in v.problems]
        v.problems = []
    return v


# ---- prefix mode: hostile application cookies -----------------------------------

PREFIX_RE = re.compile(r"^[0-9a-f]{40}~")


def prefix_hostile_cases(env, rnd):
    """(label, [header lines], expected member or None, may_400)."""
    name = env.cookie.encode()
    good = env.ids["m1"].encode()
    unknown = hashlib.sha1(b"no such member").hexdigest().encode()
    cases = []

    def ck(v):
        return [b"Cookie: " + v]

    def jv(v):
        return ck(name + b"=" + v)

    cases.append(("3000 tildes", jv(b"~" * 3000), None, False))
    cases.append(("ID~ then 3000 tildes", jv(good + b"~" * 3001), "m1", False))
    cases.append(("150 stacked prefixes", jv((good + b"~") * 150 + b"x"), "m1", False))
    cases.append(("stacked unknown then good", jv(unknown + b"~" + good + b"~x"), None, False))
    cases.append(("bad hex", jv(good[:39] + b"g~x"), None, False))
    cases.append(("upper-case hex", jv(good.upper() + b"~x"), None, False))
    cases.append(("39 hex", jv(good[:39] + b"~x"), None, False))
    cases.append(("41 hex", jv(good + b"0~x"), None, False))
    cases.append(("ID without ~", jv(good + b"x"), None, False))
    cases.append(("bare ID~", jv(good + b"~"), "m1", False))
    cases.append(("quoted", jv(b'"' + good + b'~x"'), "m1", False))
    cases.append(("half-quoted", jv(b'"' + good + b'~x'), None, False))
    cases.append(("quote inside", jv(good + b'~"x"'), "m1", False))
    cases.append(("quotes only", jv(b'"' * 3000), None, False))
    cases.append(("empty value", jv(b""), None, False))
    cases.append(("64 KB after the prefix", jv(good + b"~" + b"v" * 65000), "m1", False))
    cases.append(("140 unknown prefixes, then m1",
                  ck(b"; ".join(name + b"=" + unknown + b"~%d" % i for i in range(140))
                     + b"; " + name + b"=" + good + b"~z"), "m1", False))
    # httpd joins repeated Cookie headers into one, which must stay within
    # LimitRequestFieldSize (64 KB here)
    cases.append(("15 headers x 60 unknown prefixes, then m1",
                  [b"Cookie: " + b"; ".join(name + b"=" + unknown + b"~%d_%d" % (h, i)
                                            for i in range(60)) for h in range(15)]
                  + jv(good + b"~z"), "m1", False))
    cases.append(("1200 other cookies with prefixes (64 KB)",
                  ck(b"; ".join(b"c%d=" % i + good + b"~" for i in range(1200))), None, False))
    cases.append(("1200 occurrences, the last one m1",
                  ck(b"; ".join([name + b"=" + good[:39] + b"~"] * 1199
                                + [name + b"=" + good + b"~q"])), "m1", False))
    rbytes = bytes(rnd.choice([c for c in range(0x20, 0x7f)]) for _ in range(3000))
    cases.append(("random printable bytes", jv(rbytes), None, False))
    cases.append(("over the limit", jv(good + b"~" + b"b" * 70000), None, True))
    return cases


def forwarded_prefixes(body, name):
    """Values of name the member saw that still start with a prefix."""
    lines = body.decode("latin-1").split("\n")
    if len(lines) < 2:
        return 0
    n = 0
    for pair in re.split(r"[;,]", lines[1]):
        k, eq, val = pair.partition("=")
        if eq and k.strip() == name:
            val = val.strip()
            if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                val = val[1:-1]
            n += bool(PREFIX_RE.match(val))
    return n


def scenario_prefix_hostile(env):
    v = Verdict("d. hostile application cookies (prefix mode)")
    rounds = env.scale(20, 4)
    rnd = random.Random(43)
    cases = prefix_hostile_cases(env, rnd)
    off = file_size(env.error_log)
    wrong = leaked = 0
    bad = {}
    for n in range(rounds):
        for ci, (label, lines, expect, may400) in enumerate(cases):
            for path in ("/app/", "/strip/"):
                st, hd, body, dt = raw_request(env, "%s?h=%d&n=%d" % (path, ci, n), lines)
                v.requests += 1
                if st is None or st >= 500 or (st != 200 and not (st == 400 and may400)):
                    v.failures += 1
                    bad.setdefault(label, set()).add(st)
                    continue
                if st != 200:
                    continue
                if path == "/app/":
                    if expect and member_of(body) != expect:
                        wrong += 1
                elif forwarded_prefixes(body, env.cookie):
                    leaked += 1
    if v.failures:
        v.fail("%d failed requests: %s" % (v.failures, ", ".join(
            "%s %s" % (k, sorted(map(str, s))) for k, s in bad.items())))
    if wrong:
        v.fail("%d responses routed against the rules" % wrong)
    if leaked:
        v.fail("%d times a prefix reached the member" % leaked)
    v.moved = wrong
    crashes = error_log_crashes(env, off)
    if crashes:
        v.fail("error log: " + crashes[0])
    v.notes.append("%d cases x %d rounds" % (len(cases), rounds))
    return v


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
    if v.failures:
        v.fail("%d requests failed" % v.failures)
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
    if fivexx:
        v.fail("%d 5xx" % fivexx)
    if v.failures:
        v.fail("%d requests failed" % v.failures)
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
    if over:
        v.fail("%d sessions got more Set-Cookie than 4 per MaxIdle + 2" % over)
    if moved:
        v.fail("%d active sessions changed member" % moved)
    if first_moved:
        v.fail("%d sessions' first date moved on refresh" % first_moved)
    if undated:
        v.fail("%d cookies not in the dated form" % undated)
    expired_active = 0
    with open(env.access_log, "rb") as f:
        for line in f:
            if b" expired " in line:
                expired_active += 1
    if expired_active:
        v.fail("%d active requests logged expired" % expired_active)
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


def scenario_add_race(env):
    """The window of scenario grow, made wide on purpose: slow_add.so
    (preloaded) holds each add for SLOW_ADD_MS inside
    ap_proxy_define_worker(), after the new slot is counted in
    balancer->workers and before its worker has any shared data (->s NULL).
    One child, so every request meets the half-added member.  The module must
    neither crash nor fail a request; the stock byrequests (control) shows
    what httpd itself does."""
    lbm = env.e.get("lbmethod", "affinity")
    mode = "prefix" if env.prefix else "cookie"
    adds = 4
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

    load = Load(env, sessions=env.scale(200, 120), threads=12, duration=dur,
                new_rate=0.2)
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
            n = len(manager_state(env))
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


# ---- j: deploying a member ------------------------------------------------------

def scenario_deploy(env):
    """docs/deploying.md under load: a member drained with a short
    AffinityDrainTimeout (env drain_timeout) while clients keep their
    sessions; its progress watched on affinity-status (?member=) until
    "safe to stop"; then stopped, started again and re-enabled.  No request
    may fail, no session may move before the deadline or more than once,
    and every move is logged AFFINITY_STATUS=drained."""
    timeout = env.e["drain_timeout"]
    v = Verdict("j. deploying a member (AffinityDrainTimeout %d s)" % timeout)
    victim = "m2"
    url = member_url(env, victim)
    dur = env.scale(45, 24)
    load = Load(env, sessions=env.scale(300, 120), threads=8, duration=dur,
                new_rate=0.0005)
    t = {}
    restarted = {}

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
        d = env.e["dir"]
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
    v.requests = len(recs)
    bad = [r for r in recs if r.status != 200]
    v.failures = len(bad)
    if bad:
        v.fail("%d failed requests (first: %s)" % (len(bad), bad[0].status or bad[0].err))
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
    return v


SCENARIOS = {"kill": scenario_kill, "edits": scenario_edits,
             "graceful": scenario_graceful, "hostile": scenario_hostile,
             "memory": scenario_memory, "security": scenario_security,
             "drive": scenario_drive, "grow": scenario_grow,
             "add-race": scenario_add_race,
             "prefix-hostile": scenario_prefix_hostile,
             "rebuild": scenario_rebuild,
             "expiry": scenario_expiry, "deploy": scenario_deploy}


def main(argv):
    if len(argv) >= 2 and argv[0] == "ports":
        return cmd_ports(int(argv[1]), "--consecutive" in argv)
    if len(argv) == 2 and argv[0] in SCENARIOS:
        env = Env(argv[1])
        try:
            v = SCENARIOS[argv[0]](env)
        except Exception as e:       # a broken run is a failed scenario
            import traceback
            traceback.print_exc()
            v = Verdict(argv[0])
            v.fail("driver error: %s: %s" % (type(e).__name__, e))
        print(v.line(), flush=True)
        return 0 if not v.problems else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
