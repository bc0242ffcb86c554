# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Load: sessions in threads (Load, each request recorded in a Rec) and wrk."""

import os
import random
import re
import subprocess
import threading
import time

from lib.client import Client, member_of, parse_set_cookies
from lib.env import HOST, log


# ---- load: sessions in threads -----------------------------------------------

class Rec:
    __slots__ = ("t0", "t1", "sid", "sent", "status", "member", "set_ids",
                 "err", "headers", "body", "retried")


class Load:
    """nthreads threads, each with its own connection and its own sessions,
    requesting round robin until the deadline (or max_requests each).
    new_rate: chance that a session is dropped for a fresh client.
    key_header: also send the session's name in this header (hash mode's
    key)."""

    def __init__(self, env, sessions, threads, duration, new_rate=0.0,
                 keep_headers=False, path="/app/", max_requests=10 ** 6,
                 extra_headers=None, key_header=None):
        self.env = env
        self.sessions = sessions
        self.threads = threads
        self.duration = duration
        self.new_rate = new_rate
        self.keep_headers = keep_headers
        self.path = path
        self.max_requests = max_requests
        self.extra_headers = extra_headers or {}
        self.key_header = key_header
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
                if self.key_header:
                    hdrs[self.key_header] = sid
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


# ---- wrk: a mixed load at full speed ----------------------------------------

WRK_LUA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "mixed.lua")


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
