#!/usr/bin/env python3
"""explain on one connection flooded with RSTs: wall time, CPU and peak memory, terminal and --json.

Two shapes a production capture can hold, both a single connection of about N
packets after its handshake and request:

* storm: bare RSTs from the client, the sequence number walking (a blind
  injector, or a stack answering every segment of a dead flow);
* loop: RST/ACKs from the client, each answered by the server's ACK (two
  stateful boxes answering each other).

Every packet of such a connection is a RST or right after one. explain lets a
flood's repeats go like any long middle, counted (`facts.Connection.elide`,
`_follow`), so memory stays flat; the terminal draws its ladder from its
beginning, its first RST and its end (`report/connection_ladder.drawn_from`),
and matches each segment's sightings once per key
(`report/journey.match_journeys`).

    python bench/bench_floods.py [--packets 200000] [--shape storm|loop|both]
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capture import _frame, _ip4, _tcp
from bench_explain_vs_tshark import _cell, measure

SYN, ACK, PSH, RST = 0x02, 0x10, 0x08, 0x04


def generate(path: Path, n_packets: int, loop: bool) -> int:
    """Write the flood (Linux cooked v2, as the lab's `tcpdump -i any`); return the frames written."""
    client, server = socket.inet_aton("10.1.0.10"), socket.inet_aton("10.1.0.70")
    t = 1_700_000_000.0
    written = 0
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=276)

        def emit(from_client: bool, seq: int, ack: int, flags: int, length: int = 0) -> None:
            nonlocal t, written
            t += 0.0001
            src, dst = (client, server) if from_client else (server, client)
            sport, dport = (40000, 80) if from_client else (80, 40000)
            w.writepkt(_frame("sll2", _ip4(src, dst, 6, _tcp(sport, dport, seq, ack, flags, b"x" * length)),
                              from_client), ts=t)
            written += 1

        emit(True, 1000, 0, SYN)
        emit(False, 5000, 1001, SYN | ACK)
        emit(True, 1001, 5001, ACK)
        emit(True, 1001, 5001, PSH | ACK, 100)
        k = 0
        while written < n_packets:
            if loop:
                emit(True, 1101, 5001, RST | ACK)
                emit(False, 5001, 1101, ACK)
            else:
                emit(True, 1101 + k, 0, RST)
            k += 1
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--shape", choices=("storm", "loop", "both"), default="both")
    args = ap.parse_args()
    shapes = ["storm", "loop"] if args.shape == "both" else [args.shape]
    print(f"{'flood':<8} {'frames':>10} {'explain (terminal): wall, CPU, max RSS':>38}   "
          f"{'explain --json: wall, CPU, max RSS':>34}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            path = Path(tmp) / f"{shape}.pcap"
            written = generate(path, args.packets, shape == "loop")
            plain = measure([sys.executable, "-m", "orchestrator", "explain", str(path)])
            json = measure([sys.executable, "-m", "orchestrator", "explain", "--json", str(path)])
            print(f"{shape:<8} {written:>10,} {_cell(plain):>38}   {_cell(json):>34}", flush=True)
    print(f"(cpus {os.cpu_count()}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
