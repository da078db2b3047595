"""explain streams a capture: the same verdicts as from a capture read whole, in memory that
grows with the connections and not with the packets, with progress reported as data."""
from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator import pcapfile
from orchestrator.capture import read_capture
from orchestrator.explain import explain_capture, explain_file
from orchestrator.report.reading import ReadingProgress
from tests.conftest import ROOT, WILD

CAPTURES = sorted([*(ROOT / "tests" / "fixtures").rglob("*.pcap*"), *(ROOT / "captures" / "reference").rglob("*.pcap*"),
                   *(WILD.glob("w*") if WILD.is_dir() else [])])

SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01


def test_every_capture_is_explained_the_same_streamed_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fixture, reference and wild capture: the file streamed in 997-byte chunks (records
    cut everywhere) gives the very verdicts, evidence and notes of the capture read whole."""
    assert len(CAPTURES) > 100
    monkeypatch.setattr(pcapfile, "CHUNK", 997)
    for path in CAPTURES:
        assert explain_file(path) == explain_capture(read_capture(path)), path


def _segment(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
             payload: int = 0) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      65535, 0, 0) + b"x" * payload
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0,
                       src.to_bytes(4, "big"), dst.to_bytes(4, "big")) + tcp


def _record(t: float, frame: bytes) -> bytes:
    """One pcap record: the frame stamped `t` (epoch seconds, to the microsecond)."""
    sec, usec = int(t), round((t - int(t)) * 1e6)
    return struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame


def _raw_pcap(path: Path, records: list[bytes]) -> int:
    """Write a pcap of raw IPv4 frames (link type 101) from its records; return how many there are."""
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101) + b"".join(records))
    return len(records)


def _capture(path: Path, exchanges: int, connections: int = 10) -> int:
    """A raw-IP pcap of `connections` long connections, each `exchanges` data segments and
    acknowledgments, then a FIN; and one connection reset after its handshake."""
    client, server = 0x0A000001, 0x0A000002
    t = 1_700_000_000.0
    records: list[bytes] = []

    def emit(frame: bytes) -> None:
        nonlocal t
        t += 0.001
        records.append(_record(t, frame))

    for port in range(40000, 40000 + connections):
        c, s = port * 1000, port * 7000
        emit(_segment(client, server, port, 80, c, 0, SYN))
        emit(_segment(server, client, 80, port, s, c + 1, SYN | ACK))
        emit(_segment(client, server, port, 80, c + 1, s + 1, ACK))
        for i in range(exchanges):
            emit(_segment(client, server, port, 80, c + 1 + 100 * i, s + 1, PSH | ACK, 100))
            emit(_segment(server, client, 80, port, s + 1, c + 101 + 100 * i, ACK))
        end = c + 1 + 100 * exchanges
        emit(_segment(client, server, port, 80, end, s + 1, FIN | ACK))
        emit(_segment(server, client, 80, port, s + 1, end + 1, FIN | ACK))
        emit(_segment(client, server, port, 80, end + 1, s + 2, ACK))
    emit(_segment(client, server, 50000, 80, 5, 0, SYN))
    emit(_segment(server, client, 80, 50000, 9, 6, SYN | ACK))
    emit(_segment(client, server, 50000, 80, 6, 10, ACK))
    emit(_segment(server, client, 80, 50000, 10, 6, RST | ACK))
    return _raw_pcap(path, records)


def _peak(path: Path) -> tuple[int, int]:
    """(traced peak bytes, packets) of explaining `path`."""
    tracemalloc.start()
    try:
        result = explain_file(path)
        return tracemalloc.get_traced_memory()[1], result.packets
    finally:
        tracemalloc.stop()


def test_memory_grows_with_connections_not_packets(tmp_path: Path) -> None:
    """6,000 and 60,000 packets on the same eleven connections: the peak stays below a bound that
    has no term for packets (chunks of the file, and a little per connection); read whole, the
    60,000 packets alone would take about 100 MB."""
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    _capture(small, 300)
    n = _capture(big, 3000)
    assert n > 60_000
    (peak_small, _), (peak_big, packets) = _peak(small), _peak(big)
    bound = 4 * pcapfile.CHUNK + 2 * 1024 * 1024 + 11 * 16 * 1024   # chunks being joined, code, connections
    assert packets == n and peak_small < bound
    assert peak_big < bound, (peak_big, bound)
    result = explain_file(big)
    assert [e.rst_from for e in result.explanations] == ["10.0.0.2:80"] and result.connections == 11


def test_progress_is_reported_as_data_up_to_the_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.pcap"
    _capture(path, 500)
    monkeypatch.setattr("orchestrator.pcapfile.CHUNK", 4096)
    seen: list[tuple[int, int]] = []
    explain_file(path, progress=lambda done, total: seen.append((done, total)))
    total = 2 * path.stat().st_size
    assert len(seen) > 10 and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (total, total)


def test_several_points_report_their_reading_and_their_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`explain a.pcap b.pcap` reads each file four times and then explains the points: one progress, in bytes up
    to four times the files' sizes, a chunk at a time, then a step for the paths and one for each point."""
    from orchestrator.explain.multi import PASSES, explain_point_files

    path = tmp_path / "c.pcap"
    _capture(path, 500)
    monkeypatch.setattr("orchestrator.pcapfile.CHUNK", 4096)
    seen: list[tuple[int, int]] = []
    explain_point_files([str(path), str(path)], ["a", "b"], [frozenset(), frozenset()],
                        lambda done, total: seen.append((done, total)))
    reading = PASSES * 2 * path.stat().st_size
    total = reading + 3
    assert len(seen) > 4 * PASSES * 2 and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert [d for d, _ in seen if d > reading] == [reading + 1, reading + 2, reading + 3]


def test_several_points_are_read_a_chunk_at_a_time_too(tmp_path: Path) -> None:
    """Two captures of 60,000 packets of long connections and one reset: `explain a.pcap b.pcap` holds the
    packets of the connections worth explaining or sharing a segment with a RST, and takes the memory one file
    does, and a little more for the second file's survey (read whole, the two took 54 MB traced)."""
    from orchestrator.explain.multi import explain_point_files

    big, copy = tmp_path / "big.pcap", tmp_path / "copy.pcap"
    n = _capture(big, 3000)
    copy.write_bytes(big.read_bytes())
    tracemalloc.start()
    try:
        paths, results = explain_point_files([str(big), str(copy)], ["a", "b"], [frozenset(), frozenset()])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bound = 4 * pcapfile.CHUNK + 3 * 1024 * 1024 + 11 * 16 * 1024     # one file's (above), and 1 MiB
    assert peak < bound, (peak, bound)
    assert [r.packets for r in results] == [n, n] and paths.matched == 1
    assert sorted(s.point for r in paths.connections[0].resets for s in r.seen) == ["a", "b"]


def test_the_progress_bar_shows_on_a_terminal_only_and_only_after_the_delay() -> None:
    clock = iter([0.0, 0.5, 2.0, 2.5, 3.0]).__next__
    screen = io.StringIO()
    with ReadingProgress(Console(file=screen, force_terminal=True), "big.pcap", delay=1.0, clock=clock) as show:
        show(10, 100)                 # 0.5 s: nothing yet
        assert screen.getvalue() == ""
        show(50, 100)                 # 2.0 s: the bar appears
    assert "big.pcap" in screen.getvalue()
    plain = io.StringIO()
    with ReadingProgress(Console(file=plain, force_terminal=False), "big.pcap", delay=0.0) as show:
        show(50, 100)
    assert plain.getvalue() == ""


def test_several_points_keep_only_the_syns_an_unanswered_one_may_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two captures of 3,000 answered connections and one SYN never answered, sent three times: `explain a.pcap
    b.pcap` follows the unanswered SYN across the points as the points held whole do, keeping of the 3,003 SYNs of
    each file only its three (kept all, two captures of two million packets took 345 MB, now 117 MB)."""
    from orchestrator.explain import multi
    from orchestrator.explain.paths import Point

    client, server = 0x0A000001, 0x0A000002
    records: list[bytes] = []
    t = 1_700_000_000.0
    for port in range(20000, 23000):
        c, s = port * 1000, port * 7000
        for frame in (_segment(client, server, port, 80, c, 0, SYN), _segment(server, client, 80, port, s, c + 1, SYN | ACK),
                      _segment(client, server, port, 80, c + 1, s + 1, ACK)):
            t += 0.001
            records.append(_record(t, frame))
    for gap in (0.0, 1.0, 2.0):
        t += gap
        records.append(_record(t, _segment(client, server, 30000, 80, 777, 0, SYN)))
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    _raw_pcap(a, records)
    b.write_bytes(a.read_bytes())
    kept: list[list[int]] = []
    follow = multi.follow_syns

    def counting(results: Any, points: Any, hosts: Any, syns: list[list[Any]]) -> Any:
        kept.extend([p.seq for p in found] for found in syns)
        return follow(results, points, hosts, syns)

    monkeypatch.setattr(multi, "follow_syns", counting)
    _, streamed = multi.explain_point_files([str(a), str(b)], ["a", "b"], [frozenset(), frozenset()])
    assert kept == [[777] * 3, [777] * 3]
    monkeypatch.undo()
    captures = [read_capture(a), read_capture(b)]
    _, whole = multi.explain_points(captures, [Point(n, c.packets) for n, c in zip("ab", captures, strict=True)])
    drops = [[e for e in r.explanations if e.cause == "silent-drop"] for r in streamed]
    assert [len(d) for d in drops] == [1, 1]
    assert "Across the capture points, the SYN was seen at a, b" in drops[0][0].sentence
    assert drops == [[e for e in r.explanations if e.cause == "silent-drop"] for r in whole]
