#!/usr/bin/env python3
"""A keep-alive HTTP/1.1 server (Python's http.server) that closes connections idle for IDLE seconds.

    python3 keepalive-pool-race.server.py PORT IDLE CONNECTIONS [--close-gate FIFO]

Serves GET / with a short body and keeps each connection open between
requests, like any HTTP/1.1 server. A connection idle for IDLE seconds is
closed with a plain close(), as nginx (keepalive_timeout) and Go's net/http
(IdleTimeout) do; socketserver's own shutdown(SHUT_WR) first would put a FIN
before any RST. Connections are served one at a time; the server exits after
CONNECTIONS of them. With --close-gate FIFO the idle close, once its timer has
fired, waits for a line on FIFO (created at that moment): the stand-in for an
event loop that is busy between deciding to close and closing, so a scenario
can let a request arrive in between.
"""
from __future__ import annotations

import http.server
import os
import select
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    idle = 1.0
    close_gate: str | None = None

    def handle(self) -> None:
        self.close_connection = False
        while not self.close_connection:
            readable, _, _ = select.select([self.connection], [], [], self.idle)
            if not readable:   # the keep-alive idle timer fired
                if self.close_gate:
                    os.mkfifo(self.close_gate)
                    with open(self.close_gate) as gate:
                        gate.readline()
                return
            self.handle_one_request()

    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.HTTPServer):
    allow_reuse_address = True

    def shutdown_request(self, request: object) -> None:
        request.close()   # type: ignore[attr-defined]  # plain close(), no shutdown(SHUT_WR)


def main() -> int:
    port, Handler.idle, connections = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    if "--close-gate" in sys.argv:
        Handler.close_gate = sys.argv[sys.argv.index("--close-gate") + 1]
    with Server(("0.0.0.0", port), Handler) as server:
        for _ in range(connections):
            server.handle_request()
    return 0


if __name__ == "__main__":
    sys.exit(main())
