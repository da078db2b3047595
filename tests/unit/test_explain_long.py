"""explain on one long connection: its middle is let go before its first RST (`facts.Connection.elide`), so
memory stays bounded however long it runs, and the verdict reads as it reads with every packet held."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.explain import explain_file, facts
from orchestrator.report.explain_console import print_explanations
from orchestrator.report.explain_html import explain_page
from tests.unit.test_stream import _raw_pcap, _record, _segment

SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01
CLIENT, SERVER, BACKEND = 0x0A000001, 0x0A000002, 0x0A000004


def _long(path: Path, segments: int, ending: str, copies: bool = False, drops: bool = False, after: int = 0) -> int:
    """A raw-IP pcap of one download: a handshake, a 200-byte request, `segments` answers of 1,000 bytes each
    acknowledged every second one, then `ending`: `abort` (the client resets it with everything read),
    `retransmission` (the client falls silent, the server sends its next segment 14 times and then resets:
    Windows' give-up), `idle` (a FIN from the client after the data, and a quiet spell before the server's
    reset), `stray` (the server's next segment lands 2^30 bytes ahead, beyond any window, and the client
    answers it with a duplicate ACK; then both close with FINs: no RST at all), `stray-first` (the same
    before the answers), `close` (FINs only), `injected` (a bare RST "from" the server far outside its
    sequence space before the answers, which the client drops and the download carries on past, and the
    client's reset at the end), `unnat` (the server is a NATed service address, 10.0.0.4:8080 its backend: one
    of the backend's segments arrives un-NATed, from 10.0.0.4:8080, 2^30 bytes beyond and acknowledging the
    client's next byte, as conntrack marked it INVALID; the client's bare RST answers it, and its next request to
    the service address draws the backend's RST through NAT: conntrack-invalid-unnat, the Kubernetes reset of
    large downloads; `after` answers still come between the client's RST and its request, as if that RST had
    not taken). `copies`: each frame twice (a mirror port). `drops`: every 5,000th segment follows 100 the
    capture missed (a jump of 100,000 bytes, as a capture that drops frames shows). Returns the frames written."""
    t = 1_700_000_000.0
    records: list[bytes] = []

    def emit(frame: bytes, dt: float = 0.0005) -> None:
        nonlocal t
        t += dt
        record = _record(t, frame)
        records.append(record)
        if copies:
            records.append(record)

    c, s = 1_000, 5_000_000
    emit(_segment(CLIENT, SERVER, 40000, 80, c, 0, SYN))
    emit(_segment(SERVER, CLIENT, 80, 40000, s, c + 1, SYN | ACK))
    emit(_segment(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK))
    emit(_segment(CLIENT, SERVER, 40000, 80, c + 1, s + 1, PSH | ACK, 200))
    c, s = c + 201, s + 1

    def stray() -> None:
        emit(_segment(SERVER, CLIENT, 80, 40000, s + (1 << 30), c, PSH | ACK, 100), 0.01)
        emit(_segment(CLIENT, SERVER, 40000, 80, c, s, ACK))

    def answers(n: int) -> None:
        nonlocal s
        for k in range(n):
            if drops and k % 5000 == 4999:
                s += 100_000
            emit(_segment(SERVER, CLIENT, 80, 40000, s, c, ACK, 1000))
            s += 1000
            if k % 2:
                emit(_segment(CLIENT, SERVER, 40000, 80, c, s, ACK))

    if ending == "stray-first":
        stray()
    elif ending == "injected":
        emit(_segment(SERVER, CLIENT, 80, 40000, s + (1 << 31), 0, RST), 0.01)
    answers(segments)
    if ending == "unnat":
        emit(_segment(BACKEND, CLIENT, 8080, 40000, s + (1 << 30), c, PSH | ACK, 100), 0.01)
        emit(_segment(CLIENT, BACKEND, 40000, 8080, c, 0, RST))
        answers(after)
        emit(_segment(CLIENT, SERVER, 40000, 80, c, s, PSH | ACK, 100), 1.0)
        emit(_segment(SERVER, CLIENT, 80, 40000, s, 0, RST))
    elif ending in ("abort", "injected"):
        emit(_segment(CLIENT, SERVER, 40000, 80, c, s, RST | ACK), 0.01)
    elif ending == "retransmission":
        gap = 0.3
        for _ in range(14):
            emit(_segment(SERVER, CLIENT, 80, 40000, s, c, ACK, 1000), gap)
            gap = min(gap * 2, 15.0)
        emit(_segment(SERVER, CLIENT, 80, 40000, s + 1000, c, RST | ACK), gap)
    elif ending == "idle":
        emit(_segment(CLIENT, SERVER, 40000, 80, c, s, FIN | ACK), 0.01)
        emit(_segment(SERVER, CLIENT, 80, 40000, s, c + 1, ACK))
        emit(_segment(SERVER, CLIENT, 80, 40000, s, c + 1, RST | ACK), 30.0)
    elif ending == "stray":
        stray()
    if ending in ("stray", "stray-first", "close"):
        emit(_segment(CLIENT, SERVER, 40000, 80, c, s, FIN | ACK), 0.01)
        emit(_segment(SERVER, CLIENT, 80, 40000, s, c + 1, FIN | ACK))
        emit(_segment(CLIENT, SERVER, 40000, 80, c + 1, s + 1, ACK))
    return _raw_pcap(path, records)


def _verdicts(path: Path) -> tuple[list[dict[str, object]], int]:
    """The verdicts of `path` as `--json` has them, and how many packets were let go."""
    explanations = list(explain_file(path).explanations)
    return [e.as_dict() for e in explanations], sum(n for e in explanations for n, _, _ in e.elided)


@pytest.mark.parametrize("ending", ["abort", "retransmission", "idle", "stray", "stray-first", "injected"])
@pytest.mark.parametrize("copies", [False, True])
def test_a_long_connection_reads_as_it_reads_held_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         ending: str, copies: bool) -> None:
    """8,000 segments (12,000 packets) then each ending: cut back to 100 + 200 packets, the verdict (cause, sentence with its
    byte counts, evidence, notes, Zeek's row, the packet count) is the one given with all of them held."""
    path = tmp_path / "long.pcap"
    _long(path, 8_000, ending, copies)
    monkeypatch.setattr(facts, "LONG_HEAD", 10**9)
    whole, kept_whole = _verdicts(path)
    monkeypatch.setattr(facts, "LONG_HEAD", 100)
    monkeypatch.setattr(facts, "LONG_TAIL", 200)
    cut, let_go = _verdicts(path)
    # the one held whole, the other cut back; but a stray whose out-of-window segment is found early is held
    # whole from there on (Connection.held), so nothing of it is let go
    assert (kept_whole, let_go > 10_000) == (0, ending != "stray-first")
    assert cut == whole
    if ending == "injected":     # two incidents: the RST carried past, then the reset at the end
        assert len(cut) == 2 and cut[1]["packets"] == 12_001
        assert any("carried on past this RST" in n for n in cut[0]["notes"])      # type: ignore[attr-defined]
        assert cut[1]["cause"] == "ambiguous" and "after receiving 8000000 bytes" in str(cut[1]["explanation"])
        return
    assert len(cut) == 1
    more = {"abort": 1, "retransmission": 15, "idle": 3, "stray": 5, "stray-first": 5}[ending]
    assert cut[0]["packets"] == 4 + 12_000 + more
    expected = {"abort": "ambiguous", "retransmission": "retransmission-abort", "idle": "ambiguous",
                "stray": "conntrack-invalid-liberal", "stray-first": "conntrack-invalid-liberal"}[ending]
    assert cut[0]["cause"] == expected
    if ending == "abort":         # the byte count comes from the middle's sums: 8,000,000 bytes read
        assert "after receiving 8000000 bytes" in str(cut[0]["explanation"])


# the child reports its own peak: VmHWM belongs to the memory it got at exec (its rusage would count the
# parent's size at the fork too)
_PEAK = """
import contextlib, os, sys
from orchestrator.cli import main
with open(os.devnull, "w") as out, contextlib.redirect_stdout(out):
    status = main(["explain", "--json", sys.argv[1]])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(status, peak.split()[1])
"""


def _peak(path: Path) -> int:
    """The most memory (KB) `explain --json` took on `path`, in a process of its own."""
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
    status, peak = done.stdout.split()
    assert status == "0", done.stderr
    return int(peak)


@pytest.mark.parametrize("ending", ["abort", "injected"])
def test_memory_does_not_grow_with_a_connection_s_length(tmp_path: Path, ending: str) -> None:
    """20,000 and 200,000 segments of one connection reset at the end (30,000 and 300,000 packets), and the
    same after a RST it carried on past: the peak grows by less than 10 MB (held whole, the 270,000 more
    packets took 137 MB more)."""
    short, long = tmp_path / "short.pcap", tmp_path / "long.pcap"
    _long(short, 20_000, ending)
    _long(long, 200_000, ending)
    small, big = _peak(short), _peak(long)
    assert big - small < 10 * 1024, (small, big)


def test_a_capture_that_dropped_frames_is_cut_back_too(tmp_path: Path) -> None:
    """A long connection without a RST whose sequence numbers jump where the capture missed frames is kept for
    a possible out-of-window segment: cut back as it goes, it gets no verdict (the jumps are within the
    windows) and takes the memory of a short one."""
    short, long = tmp_path / "short.pcap", tmp_path / "long.pcap"
    _long(short, 20_000, "close", drops=True)
    _long(long, 200_000, "close", drops=True)
    assert list(explain_file(long).explanations) == []
    small, big = _peak(short), _peak(long)
    assert big - small < 10 * 1024, (small, big)


def test_the_ladder_says_what_was_let_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal's ladder of a cut connection counts every segment and notes the ones not kept, at their
    time; the page's ladder and packet table say so too."""
    path = tmp_path / "long.pcap"
    _long(path, 8_000, "abort")
    monkeypatch.setattr(facts, "LONG_HEAD", 100)
    monkeypatch.setattr(facts, "LONG_TAIL", 200)
    result = explain_file(path)
    e = result.explanations[0]
    assert sum(n for n, _, _ in e.elided) == 12_005 - len(e.segments)
    screen = io.StringIO()
    print_explanations(Console(file=screen, width=160), [result], every=True)
    text = screen.getvalue()
    assert "ladder: 12005 segments" in text
    assert f"… {12_005 - len(e.segments):,} segments of a long connection not kept" in text
    assert json.loads(json.dumps(e.as_dict()))["packets"] == 12_005
    page = explain_page([result])
    assert f"{12_005 - len(e.segments):,} packets of this long connection's middle were not kept" in page
    assert "segments of a long connection not kept" in page      # the ladder's note, in the picture


def test_a_connection_that_cannot_be_cut_back_is_not_tried_at_every_packet(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 copies of one SYN (the same ISN: one connection, all kept, since SYNs are): the connection is
    looked at again only after as many packets as a tail holds, not at every one (that made a 60,000-SYN
    flood take 24 s instead of 1.3)."""
    t = 1_700_000_000.0
    records = []
    for _ in range(20_000):
        t += 0.01                       # apart enough not to be taken for a mirror port's copies
        records.append(_record(t, _segment(CLIENT, SERVER, 40000, 80, 12345, 0, SYN)))
    path = tmp_path / "flood.pcap"
    _raw_pcap(path, records)
    looks = 0
    elide = facts.Connection.elide

    def counted(self: facts.Connection, stray: bool = False) -> None:
        nonlocal looks
        looks += 1
        elide(self, stray)

    monkeypatch.setattr(facts.Connection, "elide", counted)
    [e] = explain_file(path).explanations
    assert e.packets == 20_000 and e.elided == ()
    assert looks <= (20_000 - facts.LONG_HEAD) // facts.LONG_TAIL + 1, looks


def _flood(path: Path, resets: int, loop: bool = False, shape: str = "", ids: bool = True) -> int:
    """One connection opened, a request, then `resets` RSTs from the client: bare ones with the sequence number
    walking (a RST storm), or, with `loop`, RST/ACKs each answered by the server's ACK (two boxes answering each
    other). `shape` "injected": the client's RST/ACK, then bare RSTs "from" the server with TTL 250 where its
    packets come with 64 (a box on the path answering for a flow it saw closed); "lonely": nothing but the
    same bare RST from the server, again and again (w25); "text": RST/ACKs from the server, each with 20 bytes of
    text (a stack's diagnostic), after the client's request. Each frame has an IP ID of its own (the same one twice
    within 5 ms is a mirror port's copy), or, without `ids`, 0 (DF set, no ID)."""
    t = 1_700_000_000.0
    records: list[bytes] = []

    def emit(frame: bytes, ttl: int = 64) -> None:
        nonlocal t
        t += 0.0001
        ident = (len(records) & 0xFFFF if ids else 0).to_bytes(2, "big")
        records.append(_record(t, frame[:4] + ident + frame[6:8] + bytes([ttl]) + frame[9:]))

    if shape == "lonely":
        for _ in range(resets):
            emit(_segment(SERVER, CLIENT, 80, 40000, 5001, 0, RST))
        return _raw_pcap(path, records)
    emit(_segment(CLIENT, SERVER, 40000, 80, 1000, 0, SYN))
    emit(_segment(SERVER, CLIENT, 80, 40000, 5000, 1001, SYN | ACK))
    emit(_segment(CLIENT, SERVER, 40000, 80, 1001, 5001, ACK))
    emit(_segment(CLIENT, SERVER, 40000, 80, 1001, 5001, PSH | ACK, 100))
    if shape == "injected":
        emit(_segment(SERVER, CLIENT, 80, 40000, 5001, 1101, ACK))
        emit(_segment(CLIENT, SERVER, 40000, 80, 1101, 5001, RST | ACK))
    for k in range(resets):
        if shape == "injected":
            emit(_segment(SERVER, CLIENT, 80, 40000, 5001 + k, 0, RST), 250)
        elif shape == "text":
            emit(_segment(SERVER, CLIENT, 80, 40000, 5001, 1101, RST | ACK, 20))
        elif loop:
            emit(_segment(CLIENT, SERVER, 40000, 80, 1101, 5001, RST | ACK))
            emit(_segment(SERVER, CLIENT, 80, 40000, 5001, 1101, ACK))
        else:
            emit(_segment(CLIENT, SERVER, 40000, 80, 1101 + k, 0, RST))
    return _raw_pcap(path, records)


FLOODS = {"storm": (False, ""), "loop": (True, ""), "injected": (False, "injected"), "lonely": (False, "lonely"),
          "text": (False, "text")}


@pytest.mark.parametrize("flood", list(FLOODS))
def test_a_flood_of_resets_reads_as_it_reads_held_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        flood: str) -> None:
    """A RST that repeats the one before, with no new sequence space between, cannot start a carry-on, so a flood
    of them is let go like any long middle (the RSTs counted, by sender and TTL): 4,000 RSTs, cut back to a few
    hundred packets, give the verdict (cause, sentence, evidence, the notes' counts, Zeek's row, the packet
    and reset counts) they give held whole."""
    path = tmp_path / "flood.pcap"
    frames = _flood(path, 4_000, *FLOODS[flood])
    monkeypatch.setattr(facts, "LONG_HEAD", 10**9)
    whole, kept_whole = _verdicts(path)
    monkeypatch.setattr(facts, "LONG_HEAD", 100)
    monkeypatch.setattr(facts, "LONG_TAIL", 200)
    monkeypatch.setattr(facts, "LONG_AFTER_RST", 50)
    cut, let_go = _verdicts(path)
    assert (kept_whole, let_go > frames - 1_000) == (0, True)
    assert cut == whole and len(cut) == 1
    v = cut[0]
    resets = 4_001 if flood == "injected" else 4_000       # injected: the client's own RST/ACK came first
    assert (v["packets"], v["resets"]) == (frames, resets)
    notes = " ".join(v["notes"])  # type: ignore[arg-type]
    if flood == "injected":
        assert "4000 later RSTs in 10.0.0.2's name arrived with TTL 250 (IP ID 0x0006, " in notes
        assert "while its other packets arrive with TTL 64: sent in its name by a box on the path" in notes
    elif flood == "lonely":
        assert "the same bare RST (seq 5001) 4000 times" in str(v["explanation"])
    else:
        assert f"{resets - 1} more RSTs followed the first" in notes


@pytest.mark.parametrize("flood", ["storm", "loop"])
def test_memory_does_not_grow_with_a_flood_of_resets(tmp_path: Path, flood: str) -> None:
    """20,000 and 200,000 RSTs on one connection: the peak grows by less than 10 MB (3 MB and 1 MB; held whole,
    the 180,000 more took 95 MB more, and 160 MB as a loop). Without IP IDs: the chains of consecutive ones
    (survey.IdRuns) are bounded by the ID space, 65,536, and fill it in a flood this fast."""
    short, long = tmp_path / "short.pcap", tmp_path / "long.pcap"
    _flood(short, 20_000, *FLOODS[flood], ids=False)
    _flood(long, 200_000, *FLOODS[flood], ids=False)
    small, big = _peak(short), _peak(long)
    assert big - small < 10 * 1024, (small, big)


@pytest.mark.parametrize("loop", [False, True])
def test_a_flood_of_resets_is_drawn_from_its_beginning_its_first_rst_and_its_end(tmp_path: Path, loop: bool,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection of more than LADDER_MAX segments is drawn from its ends and its first RST: the same arrows
    as from all of them, every segment counted, the ones left out in one note, and the segments after it
    numbered as they are on the wire."""
    from orchestrator.report import connection_ladder as cl
    from orchestrator.report.ladder import Arrow, Note

    path = tmp_path / "flood.pcap"
    frames = _flood(path, 1_500, loop)
    monkeypatch.setattr(facts, "LONG_HEAD", 10**9)      # held whole (a stray found is, and so was a flood)
    e = explain_file(path).explanations[0]
    assert len(e.segments) == frames
    whole = cl.connection_ladder(e, 0.0, "flood", 12)
    monkeypatch.setattr(cl, "LADDER_MAX", 400)
    monkeypatch.setattr(cl, "LADDER_EDGE", 100)
    monkeypatch.setattr(cl, "LADDER_AROUND", 20)
    shown, left = cl.drawn_from(e.segments)
    assert len(shown) == 200, "the first 100 (the first RST among them) and the last 100"
    assert [n for n, _, _ in left] == [frames - 200] and left[0][1] is e.segments[100]
    late = [e.segments[3]] * 600 + list(e.segments[4:])        # a first RST after 600 segments
    shown, left = cl.drawn_from(late)
    assert shown[100:141] == late[580:621] and shown[120] is late[600] and len(shown) == 241
    assert [n for n, _, _ in left] == [480, len(late) - 721]
    thin = cl.connection_ladder(e, 0.0, "flood", 12)
    assert (thin.total, thin.drawn) == (whole.total, whole.drawn) and thin.total == frames

    def arrows(ladder: cl.Ladder) -> list[tuple[float, str]]:
        return [(r.t, r.label) for r in ladder.rows if isinstance(r, Arrow)]

    assert arrows(thin) == arrows(whole)
    notes = [r.text for r in thin.rows if isinstance(r, Note) and r.kind == "omitted"]
    assert f"… {frames - 200:,} segments not drawn" in " ".join(notes)
    assert f"(segments {frames - 99}–" in notes[-1], "numbered on the wire, not in the drawing"


@pytest.mark.parametrize("after", [0, 6_000])
def test_a_long_download_a_stray_reset_reads_as_it_reads_held_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   after: int) -> None:
    """The connection the client's port opened is cut back like any long one, but for the packets before the
    client's RST to the stray (the numbers the stray carries are there, and the stray is classified only a
    second later, when the download may have gone on): both verdicts, the stray's and the service
    connection's, are the ones given with every packet held."""
    path = tmp_path / "unnat.pcap"
    _long(path, 8_000, "unnat", after=after)
    monkeypatch.setattr(facts, "LONG_HEAD", 10**9)
    whole, kept_whole = _verdicts(path)
    monkeypatch.setattr(facts, "LONG_HEAD", 100)
    monkeypatch.setattr(facts, "LONG_TAIL", 200)
    cut, let_go = _verdicts(path)
    assert (kept_whole, let_go > 10_000) == (0, True)
    assert cut == whole
    assert [v["cause"] for v in cut] == ["conntrack-invalid-unnat", "conntrack-invalid-unnat"], cut
    sentences = " ".join(str(v["explanation"]) for v in cut)
    assert "without reverse NAT, 2^30 bytes beyond that connection's sequence space (out of window)" in sentences
    assert "was already dead" in sentences


def test_memory_does_not_grow_with_the_download_a_stray_came_in(tmp_path: Path) -> None:
    """20,000 and 200,000 segments before the stray: the peak grows by less than 10 MB (held whole, as a
    connection a twin end opened was, 144 MB more)."""
    short, long = tmp_path / "short.pcap", tmp_path / "long.pcap"
    _long(short, 20_000, "unnat")
    _long(long, 200_000, "unnat")
    small, big = _peak(short), _peak(long)
    assert big - small < 10 * 1024, (small, big)
