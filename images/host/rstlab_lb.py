#!/usr/bin/env python3
"""RST Lab L4 load balancer: relays one TCP connection to a backend and ends it at idle.

Standard library only; runs on the router (`exec` from a scenario):

    python3 rstlab_lb.py --listen PORT --backend HOST:PORT --idle SECONDS --on-idle reset|silent

It accepts one client on PORT, opens its own connection to the backend (two
legs, as a proxying load balancer has) and copies bytes both ways. When no
byte has moved in either direction for SECONDS, its idle timer fires:

* reset: both legs are closed with SO_LINGER {1, 0}, so each end gets a RST
  at once (Azure Load Balancer's "TCP reset on idle").
* silent: both sockets are dropped in TCP repair mode (needs CAP_NET_ADMIN),
  which closes them without sending anything: the balancer forgets the flow
  and neither end is told (the default of most cloud balancers and NATs). What
  becomes of the ends' later segments is the host's firewall's business.

One JSON line per event on stdout (listening, accepted, connected, idle, eof,
error), each with time.time(); exits 0 once the connection is over.
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

TCP_REPAIR = getattr(socket, "TCP_REPAIR", 19)


def say(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def end(legs: list[socket.socket], how: str) -> None:
    """Close both legs: with a RST each (reset) or without a packet (silent)."""
    for leg in legs:   # every leg set first, then closed back to back: the two RSTs leave together
        if how == "reset":
            leg.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("@ii", 1, 0))
        else:
            leg.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    for leg in legs:
        leg.close()


def relay(client: socket.socket, backend: socket.socket, idle: float, on_idle: str) -> None:
    """Copy both ways until both sides are done, a side fails, or the idle timer fires."""
    peer = {client: backend, backend: client}
    name = {client: "client", backend: "backend"}
    open_reads = {client, backend}
    last = time.monotonic()
    while open_reads:
        left = idle - (time.monotonic() - last)
        if left <= 0:
            say("idle", after=round(time.monotonic() - last, 3), action=on_idle)
            end([client, backend], on_idle)
            return
        ready, _, _ = select.select(list(open_reads), [], [], left)
        for sock in ready:
            try:
                data = sock.recv(65536)
                if data:
                    peer[sock].sendall(data)
            except OSError as exc:
                say("error", side=name[sock], errno=exc.errno, error=exc.strerror)
                end([peer[sock]], "reset")
                sock.close()
                return
            last = time.monotonic()
            if not data:
                say("eof", side=name[sock])
                open_reads.discard(sock)
                peer[sock].shutdown(socket.SHUT_WR)
    client.close()
    backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, metavar="PORT")
    parser.add_argument("--backend", required=True, metavar="HOST:PORT")
    parser.add_argument("--idle", type=float, required=True, metavar="SECONDS")
    parser.add_argument("--on-idle", choices=("reset", "silent"), required=True)
    opts = parser.parse_args(argv)
    host, _, port = opts.backend.rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", opts.listen))
    listener.listen(1)
    say("listening", port=opts.listen)
    client, addr = listener.accept()
    listener.close()
    say("accepted", client=list(addr))
    backend = socket.create_connection((host, int(port)))
    say("connected", backend=list(backend.getpeername()), local=list(backend.getsockname()))
    relay(client, backend, opts.idle, opts.on_idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
