#!/usr/bin/env python3
"""A client with a keep-alive pool of one connection (the standard library's http.client).

    python3 keepalive-pool-race.client.py HOST PORT MODE GATE

Sends GET / twice, reusing the pooled connection as pools do. Before the
second request it waits for a line on the FIFO GATE (created if missing): the
scenario releases it at the moment it wants, e.g. once the server's FIN has
arrived. MODE:
  reuse         reuse the pooled connection as it is (the race)
  idle-timeout  the pool drops a connection idle longer than 0.5 s, shorter
                than the server's 1 s, and connects again (fix 1)
  retry         a GET that fails on a reused connection before any response
                is retried once on a new connection, as urllib3 and Go's
                net/http do for idempotent requests (fix 2)
Prints one line per outcome: "request N: 200 OK" or "request N: Error: message".
"""
from __future__ import annotations

import http.client
import os
import sys
import time

CLIENT_IDLE_TIMEOUT = 0.5
IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}


class Pool:
    """One pooled keep-alive connection, with an optional idle timeout."""

    def __init__(self, host: str, port: int, idle_timeout: float | None) -> None:
        self.host, self.port, self.idle_timeout = host, port, idle_timeout
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def connection(self) -> tuple[http.client.HTTPConnection, bool]:
        idle = time.monotonic() - self.last_used
        if self.conn is not None and self.idle_timeout is not None and idle > self.idle_timeout:
            print(f"pool: dropped a connection idle longer than {self.idle_timeout} s", flush=True)
            self.conn.close()
            self.conn = None
        if self.conn is not None:
            return self.conn, True
        self.conn = http.client.HTTPConnection(self.host, self.port)
        return self.conn, False

    def get(self, n: int, retry: bool) -> None:
        conn, reused = self.connection()
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            print(f"request {n}: {type(exc).__name__}: {exc}", flush=True)
            conn.close()
            self.conn = None
            if retry and reused and "GET" in IDEMPOTENT:
                print(f"request {n}: retried on a new connection", flush=True)
                self.get(n, retry=False)
            return
        self.last_used = time.monotonic()
        print(f"request {n}: {response.status} {response.reason}", flush=True)


def main() -> int:
    host, port, mode, gate = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if not os.path.exists(gate):
        os.mkfifo(gate)
    pool = Pool(host, port, CLIENT_IDLE_TIMEOUT if mode == "idle-timeout" else None)
    pool.get(1, retry=False)
    with open(gate) as g:
        g.readline()
    pool.get(2, retry=mode == "retry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
