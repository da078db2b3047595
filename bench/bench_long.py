#!/usr/bin/env python3
"""explain on long connections: the memory a connection takes must not grow with its length.

Generates two raw-IP captures of about N packets each, written as they are made, and runs
`python -m orchestrator explain --json FILE` on each in its own process (and
`tshark -r FILE -Y tcp.flags.reset==1` beside it when tshark is installed), printing wall time, CPU and
peak memory:

* one: a single download, 1,000-byte segments acknowledged every second one, reset by the client at
  the end (the whole file is one connection waiting for its verdict);
* many: `--connections` downloads interleaved, every 5,000th segment of each after a jump of 100 KB
  (frames the capture dropped: each connection is kept for a possible out-of-window segment), one in
  ten reset at its end, the others closed with FINs.

    python bench/bench_long.py [--packets 750000] [--connections 100] [--keep DIR]
"""
from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capture import _ip4, _tcp
from bench_explain_vs_tshark import _cell, measure

SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01
SERVER = 0x0A000002
PORT = 9099       # no dissector of tshark's reassembles it (on port 80 its HTTP reassembly of the bodies goes quadratic)
_DONE = object()


def _segment(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, payload: int = 0) -> bytes:
    return _ip4(src.to_bytes(4, "big"), dst.to_bytes(4, "big"), 6, _tcp(sport, dport, seq, ack, flags, b"x" * payload))


class _Writer:
    """A raw-IP pcap written a frame at a time, each 0.5 ms after the one before."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        self.t = 1_700_000_000.0
        self.frames = 0

    def emit(self, frame: bytes) -> None:
        self.t += 0.0005
        sec, usec = int(self.t), round((self.t - int(self.t)) * 1e6)
        self.f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        self.frames += 1

    def close(self) -> None:
        self.f.close()


def _download(w: _Writer, client: int, port: int, segments: int, reset: bool, drops: bool) -> Iterator[None]:
    """One download as a generator: each next() writes its next frame or two (interleaved by the caller)."""
    c, s = 1_000, 5_000_000
    w.emit(_segment(client, SERVER, port, PORT, c, 0, SYN))
    w.emit(_segment(SERVER, client, PORT, port, s, c + 1, SYN | ACK))
    w.emit(_segment(client, SERVER, port, PORT, c + 1, s + 1, ACK))
    w.emit(_segment(client, SERVER, port, PORT, c + 1, s + 1, PSH | ACK, 200))
    c, s = c + 201, s + 1
    yield
    for k in range(segments):
        if drops and k % 5000 == 4999:
            s += 100_000
        w.emit(_segment(SERVER, client, PORT, port, s, c, ACK, 1000))
        s += 1000
        if k % 2:
            w.emit(_segment(client, SERVER, port, PORT, c, s, ACK))
        yield
    if reset:
        w.emit(_segment(client, SERVER, port, PORT, c, s, RST | ACK))
    else:
        w.emit(_segment(client, SERVER, port, PORT, c, s, FIN | ACK))
        w.emit(_segment(SERVER, client, PORT, port, s, c + 1, FIN | ACK))
        w.emit(_segment(client, SERVER, port, PORT, c + 1, s + 1, ACK))


def one(path: Path, packets: int) -> int:
    w = _Writer(path)
    for _ in _download(w, 0x0A000001, 40000, packets * 2 // 3, reset=True, drops=False):
        pass
    w.close()
    return w.frames


def many(path: Path, packets: int, connections: int) -> int:
    w = _Writer(path)
    each = packets * 2 // 3 // connections
    running = [_download(w, 0x0A000001 + k // 1000, 40000 + k % 1000, each, reset=k % 10 == 0, drops=True)
               for k in range(connections)]
    while running:
        running = [d for d in running if next(d, _DONE) is not _DONE]
    w.close()
    return w.frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=750_000)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--keep", type=Path, help="write the captures here and keep them")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rstlab-bench-long-"))
    folder.mkdir(parents=True, exist_ok=True)
    shapes: list[tuple[str, Callable[[Path], int]]] = [
        ("one", lambda p: one(p, args.packets)),
        (f"many ({args.connections})", lambda p: many(p, args.packets, args.connections))]
    tshark = shutil.which("tshark")
    print(f"{'capture':<16} {'packets':>9}  {'explain --json: wall, CPU, peak':>34}"
          + (f"  {'tshark: wall, CPU, peak':>34}" if tshark else ""))
    try:
        for name, make in shapes:
            path = folder / f"long-{name.split()[0]}.pcap"
            frames = make(path)
            mine = measure([sys.executable, "-m", "orchestrator", "explain", "--json", str(path)])
            line = f"{name:<16} {frames:>9,}  {_cell(mine):>34}"
            if tshark:
                line += f"  {_cell(measure([tshark, '-r', str(path), '-Y', 'tcp.flags.reset==1'])):>34}"
            print(line, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
