#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""Clients and checks for tools/reliability (which starts and stops the
servers; this file only talks HTTP to 127.0.0.1 and reads their logs).

    driver.py ports N [--consecutive]       print N free loopback ports
    driver.py list                          print the scenarios the front-end
                                            may run by name, one a line:
                                            NAME NMEMBERS SPARE SALT-KIND
    driver.py SCENARIO ENV.json             run one scenario, print one
                                            result line (JSON) on stdout

The scenarios are the files scenarios/*.py: each holds SCENARIOS = {name:
function(env) -> lib.verdict.Verdict} and, for a scenario the front-end runs
by its name, SETUP = {name: (members, spare members, salt kind)} (default
4 members, none spare, a fixed salt; None: only as part of a family the
front-end runs in its own way).  lib/ holds what they
share: the environment, the HTTP client, balancer-manager edits, load,
processes and logs, verdicts.

Every loop is bounded by a count and a deadline.  A client session is a
cookie jar: it sends the affinity cookie it was last given, and each request
is recorded (times, cookie sent, status, member that answered, affinity
Set-Cookie received) so the checks can replay what happened.
"""

import importlib
import os
import sys

from lib.env import Env, cmd_ports
from lib.verdict import Verdict

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SETUP = (4, 0, "fixed")


def scenarios():
    """{name: (function, setup)} from every scenarios/*.py."""
    out = {}
    for f in sorted(os.listdir(os.path.join(HERE, "scenarios"))):
        if not f.endswith(".py") or f.startswith("_"):
            continue
        m = importlib.import_module("scenarios." + f[:-3])
        setup = getattr(m, "SETUP", {})
        for name, fn in m.SCENARIOS.items():
            if name in out:
                raise SystemExit("scenario %s twice (scenarios/%s)" % (name, f))
            out[name] = (fn, setup.get(name, DEFAULT_SETUP))
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "ports":
        return cmd_ports(int(argv[1]), "--consecutive" in argv)
    known = scenarios()
    if argv == ["list"]:
        for name, (_, setup) in sorted(known.items()):
            if setup is not None:
                print(name, *setup)
        return 0
    if len(argv) == 2 and argv[0] in known:
        env = Env(argv[1])
        try:
            v = known[argv[0]][0](env)
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
