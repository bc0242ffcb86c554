# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""One HTTP exchange: the keep-alive client, a raw request with hand-made
header lines, the backend's name and the affinity Set-Cookies of an answer."""

import http.client
import re
import socket
import time

from lib.env import HOST


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


# ---- raw requests: header lines as given ----------------------------------

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
