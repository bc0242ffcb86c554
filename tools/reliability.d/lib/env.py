# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""The environment tools/reliability wrote (env.json), free loopback
ports, the log helper and the route ID."""

import hashlib
import json
import os
import random
import socket
import sys
import time


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
