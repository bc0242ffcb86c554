# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Security: what the cookie tells and what a forged one gets."""

import hashlib
import os
import re
import signal
import statistics
import time

from lib.client import Client, member_of, parse_set_cookies
from lib.env import HOST
from lib.manager import edit_member, manager_nonce
from lib.procs import error_log_crashes, file_size
from lib.verdict import Verdict


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


# eight members on consecutive ports; the salt from a file
SETUP = {"security": (8, 0, "file")}
SCENARIOS = {"security": scenario_security}
