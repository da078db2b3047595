"""explain on a capture dense in resets: the verdicts wait for the output in a temporary file, not
in memory, and say exactly what they say when held in memory."""
from __future__ import annotations

import gc
import io
import json
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.capture import ConnectionLog, PacketReader, open_capture, read_capture
from orchestrator.cli import main
from orchestrator.explain import Explanation, explain_capture, explain_file, incidents, store
from orchestrator.explain.analysis import FEW_COLLECTIONS, few_collections, survey_file
from orchestrator.explain.incidents import involves
from orchestrator.explain.multi import explain_points
from orchestrator.explain.paths import Point
from orchestrator.explain.store import Chosen, Explanations, chosen_of
from orchestrator.report.explain_console import print_explanations
from orchestrator.report.explain_html import explain_page
from tests.unit.test_stream import CAPTURES, _raw_pcap, _record, _segment

SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01


def _capture(path: Path, connections: int, exchanges: int = 1) -> int:
    """A raw-IP pcap: per port, a normal connection (handshake, `exchanges` requests and answers, FINs),
    an abortive close (`R.` after as many), a refused SYN (closed port) and an unanswered SYN; two servers."""
    client = 0x0A000001
    t = 1_700_000_000.0
    records: list[bytes] = []

    def emit(frame: bytes, dt: float = 0.001) -> None:
        nonlocal t
        t += dt
        records.append(_record(t, frame))

    for k in range(connections):
        port = 1024 + k % 60000
        server = 0x0A000002 + k % 2
        c, s = (k * 2654435761) & 0xFFFFFFFF, (k * 40503 + 7) & 0xFFFFFFFF
        kind = k % 4
        if kind == 3:                     # unanswered: three SYNs a second apart
            for _ in range(3):
                emit(_segment(client, server, port, 80, c, 0, SYN), 1.0)
            continue
        emit(_segment(client, server, port, 80 if kind != 2 else 81, c, 0, SYN))
        if kind == 2:
            emit(_segment(server, client, 81, port, 0, c + 1, RST | ACK))
            continue
        emit(_segment(server, client, 80, port, s, c + 1, SYN | ACK))
        emit(_segment(client, server, port, 80, c + 1, s + 1, ACK))
        for _ in range(exchanges):
            emit(_segment(client, server, port, 80, c + 1, s + 1, PSH | ACK, 200))
            emit(_segment(server, client, 80, port, s + 1, c + 201, PSH | ACK, 300))
            c, s = c + 200, s + 300
        c, s = c - 200, s - 300
        emit(_segment(client, server, port, 80, c + 201, s + 301, ACK))
        if kind == 1:
            emit(_segment(client, server, port, 80, c + 201, s + 301, RST | ACK))
        else:
            emit(_segment(client, server, port, 80, c + 201, s + 301, FIN | ACK))
            emit(_segment(server, client, 80, port, s + 301, c + 202, FIN | ACK))
            emit(_segment(client, server, port, 80, c + 202, s + 302, ACK))
    return _raw_pcap(path, records)


def _console(result: object, every: bool) -> str:
    screen = io.StringIO()
    print_explanations(Console(file=screen, width=120), [result], every=every)   # type: ignore[list-item]
    return screen.getvalue()


def test_spilled_verdicts_read_back_as_they_were(tmp_path: Path) -> None:
    """Beyond `spill_after` the verdicts go to a temporary file: the `--json` records (ids and incidents),
    the terminal's summary and incidents, `--all`, the page and the incidents' members are the very
    ones of the same capture explained with every verdict held in memory. Without `segments` only the
    examples keep their packets: all but `--all` print the same."""
    path = tmp_path / "c.pcap"
    _capture(path, 400)
    held, spilled = explain_file(path), explain_file(path, spill_after=7)
    lean = explain_file(path, spill_after=7, segments=False)
    assert isinstance(spilled.explanations, Explanations) and spilled.explanations.spilled
    assert not held.explanations.spilled                                  # type: ignore[attr-defined]
    assert len(held.explanations) == 300 and held == spilled == lean      # packets are not compared
    assert _console(spilled, True) == _console(held, True)
    assert sum(len(e.segments) for e in lean.explanations) < sum(len(e.segments) for e in held.explanations) // 10
    for result in (spilled, lean):
        assert [json.dumps(r) for r in result.records()] == [json.dumps(r) for r in held.records()]
        assert _console(result, False) == _console(held, False)
        assert explain_page([result]) == explain_page([held])
    for a, b in zip(incidents(held.explanations), incidents(spilled.explanations), strict=True):
        assert (a.cause, a.client, a.server, a.count, a.ports(), a.span(), a.meaning(), a.example) == (
            b.cause, b.client, b.server, b.count, b.ports(), b.span(), b.meaning(), b.example)
        assert list(a.connections) == list(b.connections) and a.connections[:3] == b.connections[:3]
    assert spilled.explanations[-1] == held.explanations[-1] and spilled.explanations[5:9] == held.explanations[5:9]


@pytest.mark.parametrize("ahead", [1, 700, 1 << 20])
def test_spilled_records_are_written_in_batches_and_read_back_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       ahead: int) -> None:
    """A store gathers its spilled records up to WRITE_AHEAD bytes before writing them: each record is read back
    as it came, with the store still open too (a read moves the file's position; the next write goes at its
    end all the same), and once sealed."""
    monkeypatch.setattr(store, "WRITE_AHEAD", ahead)
    path = tmp_path / "c.pcap"
    _capture(path, 400)
    every = list(explain_file(path).explanations)
    spilled = Explanations(spill_after=7)
    for n, e in enumerate(every[:100]):
        spilled.add(n, e)
    assert spilled.spilled and spilled.arrival(99) == every[99] and spilled.arrival(50) == every[50]
    for n, e in enumerate(every[100:], 100):
        spilled.add(n, e)
    spilled.seal()
    assert list(spilled) == every and spilled.arrival(3) == every[3]


def test_json_and_counts_of_a_spilled_store_decode_no_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Made for `--json` (`json=True`), a store writes each spilled verdict's JSON beside it (or alone, with
    `verdicts=False`, and then a spilled verdict cannot be read as one): the records are read as text, byte for
    byte what `json.dumps` writes of the records held in memory, and the summary's counts were gathered as the
    verdicts came. Neither decodes a spilled verdict."""
    path = tmp_path / "c.pcap"
    _capture(path, 400)
    held = explain_file(path)
    both = explain_file(path, spill_after=7, segments=False, json=True)
    text_only = explain_file(path, spill_after=7, segments=False, json=True, verdicts=False)
    expected = [json.dumps(r) for r in held.as_json()]
    counts = held.counts_text()
    assert list(both.explanations)[30:40] == list(held.explanations)[30:40]

    def no_decoding(data: bytes) -> object:
        raise AssertionError("a spilled verdict was decoded")

    monkeypatch.setattr("orchestrator.explain.store._decode", no_decoding)
    for spilled in (both, text_only):
        assert list(spilled.json_lines()) == expected
        assert spilled.counts_text() == counts == "300 reset or failed"
        assert spilled.failed == held.failed == 300
    with pytest.raises(LookupError, match="--json text only"):
        list(text_only.explanations)


def _peak(path: Path) -> tuple[int, int]:
    """(traced peak bytes, verdicts) of explaining `path`, the verdicts kept in memory up to 50."""
    tracemalloc.start()
    try:
        result = explain_file(path, spill_after=50)
        return tracemalloc.get_traced_memory()[1], len(result.explanations)
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_verdicts(tmp_path: Path) -> None:
    """500 and 3,000 connections, three in four explained, the abortive closes after 20 data segments
    (as objects, a verdict with its evidence and packets weighs 10 KB and more): the peak grows by less
    than 2 KB per connection (the survey's few bytes, the 4-tuple's in the tracker, a verdict's offset,
    sort key and incident), not by what the verdicts, their packets or the normal connections' packets
    weigh."""
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    _capture(small, 500, exchanges=10)
    _capture(big, 3_000, exchanges=10)
    (peak_small, n_small), (peak_big, n_big) = _peak(small), _peak(big)
    assert (n_small, n_big) == (375, 2_250)
    assert peak_big - peak_small < 2048 * 2_500, (peak_small, peak_big)


def test_the_second_pass_decodes_the_frames_the_first_one_numbered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first pass writes each frame's connection number (-1 for frames that are not TCP) to a
    temporary file in blocks; the second decodes only the wanted connections' frames, tracking no
    others. With blocks of 3 numbers (cut everywhere), every wild capture and the fixtures (ICMP, tunnels,
    other link types, reused 4-tuples) give the verdicts of the capture read whole."""
    monkeypatch.setattr(ConnectionLog, "BLOCK", 3)
    assert len(CAPTURES) > 100
    for path in CAPTURES:
        assert explain_file(path) == explain_capture(read_capture(path)), path


def test_a_reader_without_relative_numbers_gives_the_same_packets_less_those() -> None:
    """`PacketReader(relative=False)` (what several points match by: the numbers on the wire) reads every frame a
    known log numbered, with the same connection numbers and packets, only without relative numbers."""
    relative = 0
    for path in CAPTURES:
        first = survey_file(str(path))
        try:
            with open_capture(str(path)) as f, open_capture(str(path)) as g:
                held = list(PacketReader(f, str(path), known=first.log))
                bare = list(PacketReader(g, str(path), known=first.log, relative=False))
        finally:
            first.close()
        assert [(c, p._replace(rel_seq=None, rel_ack=None)) for c, p in held] == bare, path
        relative += sum(p.rel_seq is not None for _, p in held)
    assert relative > 10_000


def test_a_selection_of_a_spilled_store_reads_as_the_same_selection_held(tmp_path: Path) -> None:
    """`--host` / `--conn` on a big capture: the chosen verdicts of a spilled store are read back when printed
    (`store.Chosen`), not copied out, and the terminal (in full), the page, the counts and the incidents are
    those of the same selection of the verdicts held in memory."""
    path = tmp_path / "c.pcap"
    _capture(path, 400)
    held, spilled = explain_file(path), explain_file(path, spill_after=7)

    def keep(e: Explanation) -> bool:
        return involves(e, host="10.0.0.3")

    mine, theirs = replace(held, explanations=tuple(filter(keep, held.explanations))), replace(
        spilled, explanations=chosen_of(spilled.explanations, keep))
    # the odd connections go to 10.0.0.3: its aborts and unanswered SYNs
    assert isinstance(theirs.explanations, Chosen) and len(theirs.explanations) == len(mine.explanations) == 200
    assert theirs.counts_text() == mine.counts_text()
    for every in (True, False):
        screens = []
        for result in (mine, theirs):
            screen = io.StringIO()
            print_explanations(Console(file=screen, width=120), [result], every=every, selection="--host 10.0.0.3")
            screens.append(screen.getvalue())
        assert screens[0] == screens[1]
    assert explain_page([theirs], "--host 10.0.0.3") == explain_page([mine], "--host 10.0.0.3")
    for a, b in zip(incidents(mine.explanations), incidents(theirs.explanations), strict=True):
        assert (a.cause, a.client, a.server, a.count, a.ports(), a.span(), a.example) == (
            b.cause, b.client, b.server, b.count, b.ports(), b.span(), b.example)
        assert list(a.connections) == list(b.connections)


def _printing_peak(path: Path, selection: str) -> int:
    """Traced peak bytes of printing every verdict of `path` (spilled), or the ones `selection` keeps, in full."""
    result = explain_file(path, spill_after=7)
    with open(os.devnull, "w", encoding="utf-8") as sink:
        tracemalloc.start()
        try:
            if selection:
                result = replace(result, explanations=chosen_of(result.explanations,
                                                                lambda e: involves(e, host=selection)))
            print_explanations(Console(file=sink, width=120), [result], every=not selection, selection=selection)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_printing_every_verdict_holds_a_few_at_a_time(tmp_path: Path) -> None:
    """`--all` and a selection print each connection as it is read back: 300 and 1,500 verdicts in full take
    the same memory within 1 KB a verdict (their blocks of text were all made before the first was printed,
    some 20 KB a verdict, and a selection's verdicts were copied out with their packets)."""
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    _capture(small, 400)
    _capture(big, 2_000)
    for selection in ("", "10.0.0.3"):
        peak_small, peak_big = _printing_peak(small, selection), _printing_peak(big, selection)
        assert peak_big - peak_small < 1024 * 1_200, (selection, peak_small, peak_big)


def _cyclic_garbage(work: Callable[[], object]) -> int:
    """How many objects `work` leaves in reference cycles (found by the collector, which is kept off meanwhile)."""
    gc.collect()
    gc.disable()
    try:
        work()
        return gc.collect()
    finally:
        gc.enable()


def test_explaining_makes_no_reference_cycles(tmp_path: Path) -> None:
    """`few_collections` runs the cyclic collector a hundred times less often while a capture is explained
    (a scan's 100,000 SYNs took 5.1 s, 1.7 s with it): safe only because explaining, one file streamed or
    several points in memory, leaves nothing for the collector to find. The connection tracker's two
    directions pointed at each other, four cyclic lists a connection."""
    path = tmp_path / "c.pcap"
    _capture(path, 300)
    files = [path, *CAPTURES[:40]]
    router = next(p for p in CAPTURES if p.name == "router.pcap" and "firewall-reset" in str(p))
    ends = [router.parent / "client.pcap", router, router.parent / "server.pcap"]

    def work() -> None:
        for f in files:
            explain_file(f, spill_after=50)
        captures = [read_capture(f) for f in ends]
        explain_points(captures, [Point(f.stem, c.packets) for f, c in zip(ends, captures, strict=True)])

    work()                                   # the first time creates classes and caches (their garbage is not ours)
    assert _cyclic_garbage(work) == 0
    before = gc.get_threshold()
    with few_collections():
        assert gc.get_threshold()[0] == FEW_COLLECTIONS
    assert gc.get_threshold() == before


def test_the_explain_command_runs_the_collector_seldom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command layer sets the collector's threshold around all `explain` does (the analysis functions
    leave the process's settings alone), and gives the old one back."""
    path = tmp_path / "c.pcap"
    _capture(path, 8)
    seen: list[int] = []
    real = explain_file

    def spy(*args: Any, **kwargs: Any) -> object:
        seen.append(gc.get_threshold()[0])
        return real(*args, **kwargs)

    monkeypatch.setattr("orchestrator.explain.explain_file", spy)
    before = gc.get_threshold()
    assert main(["explain", str(path)], console=Console(file=io.StringIO()), err=Console(file=io.StringIO())) == 0
    assert seen == [FEW_COLLECTIONS] and gc.get_threshold() == before
    explain_file(path)
    assert gc.get_threshold() == before
