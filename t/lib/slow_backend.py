#!/usr/bin/env python3
# A slow member for t/hash_bound.t: answers every GET after DELAY seconds
# with "X-Backend: NAME", counting the requests it answered (GET /count
# answers the count, at once).  Exits by itself after LIFETIME seconds.
#
#   slow_backend.py NAME PORTFILE DELAY LIFETIME
import http.server
import os
import socketserver
import sys
import threading
import time

name, portfile, delay, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
count = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        global count
        if self.path == "/count":
            body = str(count).encode()
        else:
            time.sleep(delay)
            with lock:
                count += 1
            body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("X-Backend", name)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
threading.Timer(lifetime, lambda: os._exit(0)).start()
srv.serve_forever()
