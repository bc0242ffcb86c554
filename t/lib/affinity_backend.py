#!/usr/bin/env python3
# A member for the tests that Apache::Test's own vhosts cannot be: on a unix
# socket, or on [::1].  Answers every GET with 200, "X-Backend: NAME" and
# NAME as the body, like the vhost backends.  Exits by itself after
# --lifetime seconds, whatever happens to the test that started it.
#
#   affinity_backend.py NAME (--unix PATH | --ipv6 PORT | --ipv4 PORT)
#                       [--lifetime S]
import argparse
import http.server
import os
import socket
import socketserver
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (self.server.name + "\n").encode()
        self.send_response(200)
        self.send_header("X-Backend", self.server.name)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class IPv6Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


class IPv4Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--unix")
    ap.add_argument("--ipv6", type=int)
    ap.add_argument("--ipv4", type=int)
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()
    if a.unix:
        if os.path.exists(a.unix):
            os.unlink(a.unix)
        srv = UnixServer(a.unix, Handler)
        os.chmod(a.unix, 0o666)
    elif a.ipv4:
        srv = IPv4Server(("127.0.0.1", a.ipv4), Handler)
    else:
        srv = IPv6Server(("::1", a.ipv6), Handler)
    srv.name = a.name
    timer = threading.Timer(a.lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    try:
        srv.serve_forever()
    finally:
        if a.unix and os.path.exists(a.unix):
            os.unlink(a.unix)


if __name__ == "__main__":
    main()
