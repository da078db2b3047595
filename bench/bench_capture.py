#!/usr/bin/env python3
"""Benchmark orchestrator.capture.read_capture on a synthetic capture.

Writes a pcap of N packets (default 100,000) with dpkt's writer: many TCP
connections (handshake, data, FIN close; every 4th one ends with RST/ACK,
every 7th is a closed-port SYN -> RST/ACK) plus a few UDP frames, then times
read_capture on it and reports packets/s and peak memory.

    python bench/bench_capture.py [--packets 100000] [--linktype sll2|ethernet] [--runs 3]

Exits 1 when the best run exceeds --budget seconds (default 2.0).
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import struct
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from orchestrator.capture import read_capture

SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01
LINKTYPES = {"ethernet": dpkt.pcap.DLT_EN10MB, "sll2": 276}


def _ip4(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                       src, dst) + payload


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
    # 32-byte header (with a timestamp option), as Linux sends
    opts = b"\x01\x01\x08\x0a" + struct.pack(">II", seq & 0xFFFF, ack & 0xFFFF)
    return struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                       8 << 4, flags, 502, 0, 0) + opts + data


def _frame(linktype: str, l3: bytes, outgoing: bool) -> bytes:
    if linktype == "ethernet":
        return b"\x02\x42\xac\x11\x00\x02\x02\x42\xac\x11\x00\x03\x08\x00" + l3
    return struct.pack(">HHIHBB8s", 0x0800, 0, 3, 1, 4 if outgoing else 0, 6,
                       b"\x02\x42\xac\x11\x00\x02") + l3


def generate(path: Path, n_packets: int, linktype: str) -> int:
    """Write about n_packets frames; return how many were written."""
    client = socket.inet_aton("172.17.0.2")
    server = socket.inet_aton("172.17.0.3")
    payload = b"x" * 200
    written = 0
    t = 1_700_000_000.0
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=LINKTYPES[linktype])

        def emit(from_client: bool, l4: bytes, proto: int = 6) -> None:
            nonlocal written, t
            src, dst = (client, server) if from_client else (server, client)
            w.writepkt(_frame(linktype, _ip4(src, dst, proto, l4), from_client), ts=t)
            written += 1
            t += 0.00001

        conn = 0
        while written < n_packets:
            conn += 1
            sport = 20000 + conn % 40000
            cisn, sisn = (conn * 2654435761) & 0xFFFFFFFF, (conn * 40503) & 0xFFFFFFFF
            if conn % 7 == 0:          # closed port
                emit(True, _tcp(sport, 9, cisn, 0, SYN))
                emit(False, _tcp(9, sport, 0, cisn + 1, RST | ACK))
                continue
            if conn % 50 == 0:         # something that is not TCP
                emit(True, struct.pack(">HHHH", sport, 53, 12, 0) + b"dns?", proto=17)
            emit(True, _tcp(sport, 7, cisn, 0, SYN))
            emit(False, _tcp(7, sport, sisn, cisn + 1, SYN | ACK))
            emit(True, _tcp(sport, 7, cisn + 1, sisn + 1, ACK))
            emit(True, _tcp(sport, 7, cisn + 1, sisn + 1, PSH | ACK, payload))
            emit(False, _tcp(7, sport, sisn + 1, cisn + 201, PSH | ACK, payload))
            if conn % 4 == 0:          # abortive close
                emit(True, _tcp(sport, 7, cisn + 201, sisn + 201, RST | ACK))
                continue
            emit(True, _tcp(sport, 7, cisn + 201, sisn + 201, FIN | ACK))
            emit(False, _tcp(7, sport, sisn + 201, cisn + 202, FIN | ACK))
            emit(True, _tcp(sport, 7, cisn + 202, sisn + 202, ACK))
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--linktype", choices=sorted(LINKTYPES), default="sll2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds allowed for one parse")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pcap"
        t0 = time.perf_counter()
        frames = generate(path, args.packets, args.linktype)
        gen_s = time.perf_counter() - t0
        size = path.stat().st_size
        print(f"generated {frames:,} frames ({args.linktype}), {size / 1e6:.1f} MB "
              f"in {gen_s:.2f} s")

        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            cap = read_capture(path)
            times.append(time.perf_counter() - t0)
            del cap
        best, mean = min(times), sum(times) / len(times)

        tracemalloc.start()
        cap = read_capture(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    n = len(cap.packets)
    print(f"parsed {n:,} TCP packets (+{cap.other} other), truncated={cap.truncated}")
    print(f"read_capture: best {best:.3f} s, mean {mean:.3f} s over {args.runs} runs "
          f"-> {n / best:,.0f} packets/s")
    print(f"peak traced memory {peak / 1e6:.1f} MB (file {size / 1e6:.1f} MB), "
          f"max RSS {rss_kb / 1024:.1f} MB, cpus {os.cpu_count()}")
    if best > args.budget:
        print(f"SLOW: {best:.3f} s > budget {args.budget:.1f} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
