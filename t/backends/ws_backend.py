#!/usr/bin/env python3
"""A websocket member for t/websocket.t: answers the opening handshake on
127.0.0.1 (RFC 6455 4.2.2), naming itself in X-Backend, then waits for the
peer to close.

    ws_backend.py LIFETIME NAME=PORT [NAME=PORT...]

Listens on every PORT and exits by itself after LIFETIME seconds."""

import base64
import hashlib
import socket
import sys
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def serve(conn, name):
    conn.settimeout(10)
    try:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 16384:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        key = None
        for line in data.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"sec-websocket-key":
                key = v.strip().decode("ascii", "replace")
        if key is None:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return
        accept = base64.b64encode(
            hashlib.sha1((key + GUID).encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n"
                      % (accept, name)).encode())
        # the tunnel is open: wait until the peer closes it
        while conn.recv(4096):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def listen(sock, name, deadline):
    sock.settimeout(0.5)
    while time.time() < deadline:
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


def main():
    lifetime = float(sys.argv[1])
    deadline = time.time() + lifetime
    threads = []
    for arg in sys.argv[2:]:
        name, _, port = arg.partition("=")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(port)))
        sock.listen(16)
        t = threading.Thread(target=listen, args=(sock, name, deadline),
                             daemon=True)
        t.start()
        threads.append(t)
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
