# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Memory under long load (wrk): RSS of every child, against a control."""

import json
import os
import threading

from lib.env import log
from lib.load import run_wrk
from lib.procs import error_log_crashes, file_size, httpd_pids, rss_kb
from lib.verdict import Verdict


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


SCENARIOS = {"memory": scenario_memory}
