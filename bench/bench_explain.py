#!/usr/bin/env python3
"""Benchmark orchestrator.explain on a generated capture of mixed resets.

Writes a pcap of about N packets (default 100,000), seen from the client's side
(Linux cooked v2 with directions, like `tcpdump -i any` in the lab): many TCP
connections, most of them closing normally, the rest ending in every cause the
explainer knows (closed port, late SYN/ACK, abortive close, data after close,
keepalive and retransmission timeouts, peer restart, a listener resetting its
queue, silent drops). Then times `explain_file` (read + analysis) and the
analysis alone, and reports peak memory and what was found.

    python bench/bench_explain.py [--packets 100000] [--runs 3] [--budget 2.0]

Exits 1 when the best full run exceeds --budget seconds.
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capture import _frame, _ip4, _tcp

from orchestrator.capture import read_capture
from orchestrator.explain import explain_capture, explain_file

SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01
KINDS = ("normal", "closed-port", "connect-timeout", "abort", "data-after-close", "keepalive",
         "retransmission", "peer-restart", "silent-drop", "listener", "normal", "normal", "normal")


RESET_KINDS = tuple(k for k in KINDS if k != "normal")


def kind_of(conn: int, reset_share: float | None) -> str:
    """The kind of the conn-th connection: KINDS in turn (about seven in ten end in a reset or go
    unanswered), or, given `reset_share`, that share of them spread evenly, each of RESET_KINDS in
    turn, and the others closing normally (a production-like mix)."""
    if reset_share is None:
        return KINDS[conn % len(KINDS)]
    resets = int(conn * reset_share)
    if resets == int((conn - 1) * reset_share):
        return "normal"
    return RESET_KINDS[resets % len(RESET_KINDS)]


def generate(path: Path, n_packets: int, reset_share: float | None = None) -> tuple[int, Counter[str]]:
    """Write about n_packets frames; return how many were written and the kinds of connection
    (`reset_share`: see kind_of)."""
    client = socket.inet_aton("10.1.0.10")
    server = socket.inet_aton("10.1.0.70")
    written = 0
    kinds: Counter[str] = Counter()
    t = 1_700_000_000.0
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=276)

        def emit(from_client: bool, sport: int, dport: int, seq: int, ack: int, flags: int,
                 length: int = 0, dt: float = 0.0001) -> None:
            nonlocal written, t
            t += dt
            src, dst = (client, server) if from_client else (server, client)
            ports = (sport, dport) if from_client else (dport, sport)
            l4 = _tcp(ports[0], ports[1], seq, ack, flags, b"x" * length)
            w.writepkt(_frame("sll2", _ip4(src, dst, 6, l4), from_client), ts=t)
            written += 1

        conn = 0
        while written < n_packets:
            conn += 1
            kind = kind_of(conn, reset_share)
            kinds[kind] += 1
            sp, dp = 1024 + conn % 60000, 80 if kind != "closed-port" else 81
            c, s = (conn * 2654435761) & 0xFFFFFFFF, (conn * 40503 + 7) & 0xFFFFFFFF

            def out(seq: int, ack: int, flags: int, length: int = 0, dt: float = 0.0001,
                    sp: int = sp, dp: int = dp) -> None:
                emit(True, sp, dp, seq, ack, flags, length, dt)

            def back(seq: int, ack: int, flags: int, length: int = 0, dt: float = 0.0001,
                     sp: int = sp, dp: int = dp) -> None:
                emit(False, sp, dp, seq, ack, flags, length, dt)

            if kind == "silent-drop":
                for dt in (0.0001, 1.0, 1.0):
                    out(c, 0, SYN, dt=dt)
                continue
            out(c, 0, SYN)
            if kind == "closed-port":
                back(0, c + 1, RST | ACK)
                continue
            if kind == "connect-timeout":
                back(s, c + 1, SYN | ACK, dt=1.0)
                out(c + 1, 0, RST)
                continue
            back(s, c + 1, SYN | ACK)
            out(c + 1, s + 1, ACK)
            if kind == "listener":                  # two queued connections reset together
                sp2 = 1024 + (sp - 1024 + 30000) % 60000   # another port of the same range
                emit(True, sp2, dp, c + 7, 0, SYN)
                emit(False, sp2, dp, s + 7, c + 8, SYN | ACK)
                emit(True, sp2, dp, c + 8, s + 8, ACK)
                back(s + 1, c + 1, RST | ACK, dt=0.5)
                emit(False, sp2, dp, s + 8, c + 8, RST | ACK)
                continue
            out(c + 1, s + 1, PSH | ACK, 200)
            if kind == "retransmission":
                for dt in (0.2, 0.4, 0.8, 1.6):
                    out(c + 1, s + 1, PSH | ACK, 200, dt=dt)
                back(s + 1, c + 1, PSH | ACK, 100, dt=2.0)
                out(s + 1, 0, RST)
                continue
            back(s + 1, c + 201, PSH | ACK, 300)
            out(c + 201, s + 301, ACK)
            if kind == "abort":
                out(c + 201, s + 301, RST | ACK)
            elif kind == "data-after-close":
                back(s + 301, c + 201, FIN | ACK)
                out(c + 201, s + 302, ACK)
                out(c + 201, s + 302, PSH | ACK, 100, dt=0.2)
                back(s + 302, 0, RST)
            elif kind == "keepalive":
                out(c + 200, s + 301, ACK, dt=1.0)
                out(c + 200, s + 301, ACK, dt=1.0)
                out(c + 201, s + 301, RST | ACK, dt=1.0)
            elif kind == "peer-restart":
                out(c + 201, s + 301, PSH | ACK, 100, dt=0.5)
                back(s + 301, 0, RST)
            else:
                out(c + 201, s + 301, FIN | ACK)
                back(s + 301, c + 202, FIN | ACK)
                out(c + 202, s + 302, ACK)
    return written, kinds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds allowed for one explain_file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pcap"
        t0 = time.perf_counter()
        frames, kinds = generate(path, args.packets)
        size = path.stat().st_size
        print(f"generated {frames:,} frames, {sum(kinds.values()):,} connections, {size / 1e6:.1f} MB "
              f"in {time.perf_counter() - t0:.2f} s")

        full, full_cpu, analysis, analysis_cpu = [], [], [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            result = explain_file(str(path))
            full.append(time.perf_counter() - t0)
            full_cpu.append(time.process_time() - c0)
            capture = read_capture(path)
            t0, c0 = time.perf_counter(), time.process_time()
            explain_capture(capture)
            analysis.append(time.perf_counter() - t0)
            analysis_cpu.append(time.process_time() - c0)
            del capture

        tracemalloc.start()
        result = explain_file(str(path))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    found = Counter(e.cause for e in result.explanations)
    print(f"{result.packets:,} TCP packets, {result.connections:,} connections, "
          f"{len(result.explanations):,} explained: "
          + ", ".join(f"{cause} {n}" for cause, n in found.most_common()))
    best = min(full)
    print(f"explain_file: best {best:.3f} s wall ({min(full_cpu):.3f} s CPU), mean {sum(full) / len(full):.3f} s "
          f"over {args.runs} runs -> {result.packets / best:,.0f} packets/s")
    print(f"of which the analysis (after read_capture): best {min(analysis):.3f} s wall "
          f"({min(analysis_cpu):.3f} s CPU); load average {os.getloadavg()[0]:.1f}")
    print(f"peak traced memory {peak / 1e6:.1f} MB (file {size / 1e6:.1f} MB), "
          f"max RSS {rss_kb / 1024:.1f} MB, cpus {os.cpu_count()}")
    if best > args.budget:
        print(f"SLOW: {best:.3f} s > budget {args.budget:.1f} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
