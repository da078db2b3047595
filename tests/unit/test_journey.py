"""Each segment's journey across the capture points, and the ladder drawn from it (no Docker)."""
from __future__ import annotations

import json
from typing import Any

from orchestrator.report import html, pages
from orchestrator.report.console import ladder_lines
from orchestrator.report.journey import match_journeys
from orchestrator.report.ladder import Arrow, Note, build_ladder
from tests.conftest import ROOT
from tests.unit.test_pages import assert_valid_mermaid

HOSTS = {"client": {"address": "10.213.7.10"}, "router": {"address": "10.213.7.200"},
         "server": {"address": "10.213.7.70"}}


def seg(t: float, src: str, dst: str, flags: str, direction: str, seq: int = 0,
        ack: int | None = None) -> dict[str, Any]:
    return {"t": t, "src": src, "dst": dst, "sport": 40000 if src == "client" else 80,
            "dport": 40000 if dst == "client" else 80, "flags": flags, "seq": seq, "ack": ack,
            "relative": True, "len": 0, "dir": direction}


def doc(packets: dict[str, list[dict[str, Any]]], events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"scenario": "demo", "hosts": HOSTS, "packets": packets, "events": events or []}


def firewall() -> dict[str, Any]:
    """The router's REJECT: the SYN goes in and not out; the RST comes out of the router, never from the server."""
    return doc({"client": [seg(0.0, "client", "server", "S", "out"),
                           seg(0.00005, "server", "client", "R.", "in", 0, 1)],
                "router": [seg(0.00002, "client", "server", "S", "in"),
                           seg(0.00004, "server", "client", "R.", "out", 0, 1)],
                "server": []},
               [{"host": "client", "call": "connect", "sock": "c", "errno": "ECONNREFUSED", "t": 0.0, "start": 5.0,
                 "end": 5.0001, "ok": False}])


def test_a_forwarded_segment_is_one_journey_through_every_point() -> None:
    packets = {"client": [seg(0.0, "client", "server", "S", "out")],
               "router": [seg(0.00002, "client", "server", "S", "in"), seg(0.00003, "client", "server", "S", "out")],
               "server": [seg(0.00005, "client", "server", "S", "in")]}
    (j,) = match_journeys(packets)
    assert [s.point for s in j.sightings] == ["client", "router", "router", "server"]
    assert (j.start, j.stop, j.forged, j.stopped) == ("client", "server", False, False)


def test_firewall_syn_stops_at_the_router_and_the_rst_starts_there() -> None:
    syn, rst = match_journeys(firewall()["packets"])
    assert (syn.start, syn.stop, syn.stopped) == ("client", "router", True)
    assert (rst.start, rst.stop, rst.forged) == ("router", "client", True)
    ladder = build_ladder(firewall())
    a_syn, a_rst = ladder.arrows
    assert (a_syn.src, a_syn.dst, a_syn.stopped, a_syn.seen) == ("client", "router", True, ("client", "router"))
    assert (a_rst.src, a_rst.dst, a_rst.forged, a_rst.rst) == ("router", "client", True, True)
    note = next(r for r in ladder.rows if isinstance(r, Note) and r.kind == "rst")
    assert note.text == "RST+ACK forged at router (as server) · client: connect → ECONNREFUSED"
    assert [p.name for p in ladder.participants] == ["client", "router", "server"], "the server is a lifeline too"


def test_a_retransmission_is_not_mistaken_for_the_segment_the_router_dropped() -> None:
    """The first SYN dies at the router; the one sent again 1 s later reaches the server."""
    packets = {"client": [seg(0.0, "client", "server", "S", "out"), seg(1.0, "client", "server", "S", "out")],
               "router": [seg(0.00002, "client", "server", "S", "in"), seg(1.00002, "client", "server", "S", "in"),
                          seg(1.00003, "client", "server", "S", "out")],
               "server": [seg(1.00005, "client", "server", "S", "in")]}
    first, again = match_journeys(packets)
    assert (first.stop, first.stopped) == ("router", True)
    assert (again.stop, again.stopped) == ("server", False) and len(again.sightings) == 4


def test_kernel_reason_is_drawn_beside_the_rst_when_the_result_has_it() -> None:
    d = doc({"client": [seg(0.0, "client", "server", "S", "out"), seg(0.0001, "server", "client", "R.", "in", 0, 1)]})
    d["packets"]["client"][1]["kernel"] = {"reason": "NO_SOCKET", "sent_by_tcp_stack": True}
    note = next(r for r in build_ladder(d).rows if isinstance(r, Note) and r.kind == "rst")
    assert note.text == "RST+ACK from server · kernel: NO_SOCKET"


def test_three_drawings_of_the_firewall_show_the_stop_and_the_forgery() -> None:
    ladder = build_ladder(firewall())
    svg = html.svg_ladder(ladder)
    assert svg.count('class="participant"') == 3 and svg.count('class="life"') == 3
    assert 'class="seg stopped" data-first="1" data-last="1" data-from="client" data-to="router"' in svg
    assert 'class="seg rst forged" data-first="2" data-last="2" data-from="router" data-to="client"' in svg
    assert 'class="origin"' in svg and 'class="stop"' in svg
    text = pages.mermaid(ladder)
    assert_valid_mermaid(text)
    assert "P1-)P2: [S] seq=0 (no further)" in text and "P2-xP1: [R.] seq=0 ack=1" in text
    lines = [line.plain for line in ladder_lines(ladder, 120)]
    syn = next(line for line in lines if "[S]" in line)
    rst = next(line for line in lines if "[R.]" in line)
    assert "────✕│" in syn and syn.rstrip().endswith("│") and "◆" in rst and "✕" in rst


def test_reference_firewall_reset_draws_the_syn_stopping_at_the_router() -> None:
    d = json.loads((ROOT / "captures/reference/firewall-reset/result.json").read_text())
    syn, rst = (a for a in build_ladder(d).rows if isinstance(a, Arrow))
    assert (syn.src, syn.dst, syn.stopped) == ("client", "router", True)
    assert (rst.src, rst.dst, rst.forged) == ("router", "client", True)


def test_the_witnessed_reasons_of_the_sender_are_written_beside_its_rst() -> None:
    d = doc({"client": [seg(0.0, "client", "server", "S", "out"), seg(0.0001, "server", "client", "R.", "in", 0, 1)]})
    d["checks"] = [{"kind": "reasons", "subject": "server", "expected": "NO_SOCKET", "observed": "NO_SOCKET",
                    "passed": True, "witnessed": True},
                   {"kind": "reasons", "subject": "client", "expected": "x", "observed": "not witnessed: no tracefs",
                    "passed": False, "witnessed": False}]
    note = next(r for r in build_ladder(d).rows if isinstance(r, Note) and r.kind == "rst")
    assert note.text == "RST+ACK from server · kernel: NO_SOCKET"
    firewall_doc = firewall()
    firewall_doc["checks"] = [{"kind": "reasons", "subject": "server", "expected": "no RST sent by its TCP",
                               "observed": "no RST sent by its TCP", "passed": True, "witnessed": True}]
    note = next(r for r in build_ladder(firewall_doc).rows if isinstance(r, Note) and r.kind == "rst")
    assert "kernel: no RST sent by server's TCP" in note.text


def test_a_segment_translated_by_nat_at_the_router_is_one_journey() -> None:
    """SNAT: in at the router from the client's address, out with the router's: the same flags, numbers, length."""
    before = seg(0.0, "client", "server", "S", "out")
    after = {**seg(0.00003, "router", "server", "S", "out"), "sport": 61000}
    packets = {"client": [before], "router": [{**before, "t": 0.00002, "dir": "in"}, after],
               "server": [{**after, "t": 0.00005, "dir": "in"}]}
    (j,) = match_journeys(packets)
    assert (j.start, j.stop, j.translated_at, j.stopped) == ("client", "server", "router", False)
    (arrow,) = build_ladder(doc(packets)).arrows
    assert arrow.label == "[S] seq=0 (NAT at router)" and arrow.seen == ("client", "router", "server")


def test_every_reference_scenario_ladder_is_valid_mermaid_across_points() -> None:
    for path in sorted((ROOT / "captures/reference").glob("*/result.json")):
        assert_valid_mermaid(pages.mermaid(build_ladder(json.loads(path.read_text()))))


def _scanned(packets: dict[str, list[dict[str, Any]]]) -> list[tuple[tuple[str, int], ...]]:
    """The matching rule of match_journeys's docstring, applied by scanning every journey so far: the oracle
    its indexes must agree with. A sighting joins the journey of the same segment (addresses, ports, flags,
    numbers, length) last seen closest before it within WINDOW, at a point and direction it was not seen at
    before (the first such journey on a tie); failing that, one that came into this point and leaves it
    translated within NAT_WINDOW."""
    from orchestrator.report.journey import NAT_WINDOW, WINDOW, _same_segment

    sightings = sorted(((float(p["t"]), point, i, p) for point, records in packets.items()
                        for i, p in enumerate(records)), key=lambda s: (s[0], s[1], s[2]))
    every: list[tuple[list[dict[str, Any]], list[tuple[str, int, float, str | None]]]] = []
    for t, point, i, p in sightings:
        d = p.get("dir")
        best = None
        best_gap = WINDOW
        for forms, path in every:
            gap = t - path[-1][2]
            if gap < best_gap and _same_segment(forms[-1], p) and not any(
                    s[0] == point and (s[3] == d or d is None) for s in path):
                best, best_gap = (forms, path), gap
        if best is None and d == "out":
            for forms, path in every:
                last = path[-1]
                if (last[0] == point and last[3] == "in" and 0 <= t - last[2] < NAT_WINDOW
                        and _same_segment(forms[-1], p, translated=True) and forms[-1] != p
                        and not any(s[0] == point and s[3] == "out" for s in path)):
                    best = (forms, path)
                    break
        if best is None:
            best = ([p], [])
            every.append(best)
        else:
            best[0].append(p)
        best[1].append((point, i, t, d))
    return [tuple((s[0], s[1]) for s in path) for _forms, path in every]


def test_matching_agrees_with_a_scan_of_every_journey_on_bursts_of_one_segment() -> None:
    """Indexed and listed once per key, journeys are matched as a scan of all of them matches them: random
    captures at three points, thick with one segment repeated (a RST loop, copies at the same instant, the
    same numbers raw and relative, NAT at the router)."""
    import random

    rng = random.Random(17)
    for _ in range(150):
        packets: dict[str, list[dict[str, Any]]] = {"client": [], "router": [], "server": []}
        t = 0.0
        for _n in range(rng.randint(1, 60)):
            t += rng.choice((0.0, 0.0, 0.00001, 0.0002, 0.003, 0.06))
            point = rng.choice(("client", "router", "server"))
            src, dst = rng.choice((("client", "server"), ("server", "client")))
            p = seg(t, src, dst, rng.choice(("R.", "R", ".")), rng.choice(("in", "out", "out", None)),
                    rng.choice((0, 1)), rng.choice((1, None)))
            p["relative"] = rng.random() < 0.8
            if rng.random() < 0.1:
                p["sport"] = 61000            # translated at the router
            packets[point].append(p)
        for point in packets:
            packets[point].sort(key=lambda p: p["t"])
        got = [tuple((s.point, s.index) for s in j.sightings) for j in match_journeys(packets)]
        assert got == _scanned(packets), packets
