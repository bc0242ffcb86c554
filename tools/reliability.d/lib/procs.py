# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""httpd's processes and logs: children, RSS, crash lines in the error log."""

import os
import re


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
