"""The origin side of tests/test_wireguard_netns.py, run inside the test's origin namespace:
HTTP, HTTPS, a TCP echo server, a server-first (banner) TCP server and a tiny DNS server, all on
ADDR. Prints one line of JSON with the ports once everything listens; runs until killed.

    python3 wg_origin.py ADDR CERT KEY
"""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading

DNS_ANSWER_IP = "192.0.2.77"  # TEST-NET-1: what the tiny DNS server answers for every A query


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/bytes/"):  # /bytes/N: N bytes, for flow control through the tunnel
            n = int(self.path[7:])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = bytes(range(256)) * 256
            while n > 0:
                self.wfile.write(chunk[:n])
                n -= len(chunk)
            return
        body = json.dumps({"path": self.path, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(b"echo:" + data)


class Banner(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"220 banner first\r\n")
        data = self.request.recv(65536)
        if data:
            self.request.sendall(b"250 got " + data)


class TCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def dns_server(sock: socket.socket) -> None:
    while True:
        q, addr = sock.recvfrom(2048)
        # the question section ends 4 bytes after the name's terminating zero
        end = q.index(b"\0", 12) + 5
        answer = (q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end]
                  + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(DNS_ANSWER_IP))
        sock.sendto(answer, addr)


def main() -> None:
    addr, cert, key = sys.argv[1:4]
    http_srv = http.server.ThreadingHTTPServer((addr, 0), Handler)
    https_srv = http.server.ThreadingHTTPServer((addr, 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    https_srv.socket = ctx.wrap_socket(https_srv.socket, server_side=True)
    echo, banner = TCP((addr, 0), Echo), TCP((addr, 0), Banner)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((addr, 0))
    for srv in (http_srv, https_srv, echo, banner):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Thread(target=dns_server, args=(dns,), daemon=True).start()
    ports = {"http": http_srv.server_address[1], "https": https_srv.server_address[1],
             "echo": echo.server_address[1], "banner": banner.server_address[1], "dns": dns.getsockname()[1]}
    print(json.dumps(ports), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
