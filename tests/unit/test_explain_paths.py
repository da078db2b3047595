"""`explain a.pcap b.pcap …`: one connection matched across capture points (NAT included), and where each RST
entered the path, checked against the kernel witness of the reference run (which host's TCP sent each RST, or
none: forged on the path)."""
from __future__ import annotations

import json
import math
import random
import shutil
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.capture import Capture, Packet, read_capture
from orchestrator.explain import AMBIGUOUS, CaptureExplanation, explain_capture
from orchestrator.explain.multi import explain_points, settle
from orchestrator.explain.paths import Paths, Point, point_names, rst_paths
from orchestrator.explain.result import _seconds
from orchestrator.report.results_folder import capture_host
from orchestrator.witness import event_from_record, explain_agrees, witness_packets
from tests.conftest import ROOT
from tests.unit.test_explain import assert_one_line_error, cli

REFERENCE = ROOT / "captures" / "reference"
SCENARIOS = sorted(p.parent.name for p in REFERENCE.glob("*/result.json"))
ROUTED = ("conntrack-invalid-unnat", "firewall-reset", "lb-idle-reset", "middlebox-injection", "nat-idle-expiry",
          "keepalive-timeout", "retransmission-timeout")


def _doc(scenario: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REFERENCE / scenario / "result.json").read_text())
    return doc


def _capture(scenario: str, point: str, shift: float = 0.0) -> Capture:
    capture = read_capture(REFERENCE / scenario / f"{point}.pcap")
    if not shift:
        return capture
    moved = tuple(p._replace(time=p.time + shift) for p in capture.packets)
    return Capture(capture.path, capture.linktype, moved, capture.other, capture.truncated, capture.icmp)


def _points(scenario: str, names: list[str] | None = None, addresses: bool = True,
            shifts: dict[str, float] | None = None) -> tuple[list[Point], list[Capture]]:
    doc = _doc(scenario)
    hosts = {h: v["address"] for h, v in doc["hosts"].items()}
    names = names or sorted(doc["captures"])   # client, router, server: one order whatever the run's
    captures = [_capture(scenario, n, (shifts or {}).get(n, 0.0)) for n in names]
    return ([Point(n, c.packets, frozenset([hosts[n]]) if addresses else frozenset())
             for n, c in zip(names, captures, strict=True)], captures)


def _explain(points: list[Point], captures: list[Capture]) -> tuple[Paths, list[CaptureExplanation]]:
    return explain_points(captures, points)


def _addr(scenario: str, host: str) -> str:
    """A host's address in the reference run (each run moves the lab to a /24 of its own)."""
    return str(_doc(scenario)["hosts"][host]["address"])


def _named(scenario: str, endpoint: str) -> str:
    """ADDR:PORT as HOST:PORT, an ephemeral port (the client's, the router's NAT) as HOST:*."""
    names = {v["address"]: h for h, v in _doc(scenario)["hosts"].items()}
    addr, _, port = endpoint.rpartition(":")
    return f"{names.get(addr, addr)}:{'*' if int(port) >= 32768 else port}"


def _legs(scenario: str, legs: tuple[str, ...]) -> set[str]:
    """Each leg "POINT: A:P > B:Q" with addresses as host names and ephemeral ports as *."""
    out = set()
    for leg in legs:
        point, _, flow = leg.partition(": ")
        src, _, dst = flow.partition(" > ")
        out.add(f"{point}: {_named(scenario, src)} > {_named(scenario, dst)}")
    return out


def _said(e: Any) -> str:
    return e.cause if e.cause != AMBIGUOUS else "ambiguous: " + " or ".join(c.cause for c in e.candidates)


# --- every scenario's capture set, against the kernel ------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_rst_is_placed_where_the_kernel_says_it_was_made(scenario: str) -> None:
    """Every RST of every capture point gets a path; a RST the sender's TCP sent (tcp_send_reset) entered at
    that sender's own capture point, one no TCP sent (netfilter, a middlebox) is forged, by the router."""
    doc = _doc(scenario)
    hosts = {h: v["address"] for h, v in doc["hosts"].items()}
    events = [event_from_record(r) for r in doc["kernel_witness"]["events"]]
    points, captures = _points(scenario)
    paths = rst_paths(points)
    checked = 0
    for i, (point, capture) in enumerate(zip(points, captures, strict=True)):
        words = witness_packets(capture.packets, events, hosts)
        for index, word in words.items():
            path = paths.by_point[i].get(index)
            assert path is not None, f"{scenario} @ {point.name} #{index + 1}: no path"
            where = f"{scenario} @ {point.name} #{index + 1}: {path.verdict}"
            if word.forged:
                assert path.forged is True and path.entered == "router", where
                assert "forged by router" in path.verdict, where
            else:
                assert path.forged is False and path.entered == word.sender, where
            checked += 1
    assert checked == sum(1 for c in captures for p in c.packets if p.is_rst)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_explained_together_every_verdict_agrees_with_the_kernel(scenario: str) -> None:
    """The unit counterpart of tests/integration/test_explain_kernel.py on the reference run, with every
    capture point of the scenario given at once."""
    doc = _doc(scenario)
    hosts = {h: v["address"] for h, v in doc["hosts"].items()}
    events = [event_from_record(r) for r in doc["kernel_witness"]["events"]]
    points, captures = _points(scenario)
    _, results = _explain(points, captures)
    for point, capture, result in zip(points, captures, results, strict=True):
        words = witness_packets(capture.packets, events, hosts)
        for e in result.explanations:
            if e.rst_time is None:
                continue
            first = next(p for p in capture.packets if p.is_rst and p.time == e.rst_time)
            word = words[first.index]
            assert explain_agrees(word.reason, e.cause, [c.cause for c in e.candidates]), \
                f"{scenario} @ {point.name}: kernel {word.reason}, explain {_said(e)}"


def test_closed_port_is_decided_with_the_servers_capture() -> None:
    alone = explain_capture(_capture("closed-port", "client"))
    assert [_said(e) for e in alone.explanations] == ["ambiguous: closed-port or firewall-reset"]
    points, captures = _points("closed-port", ["client", "server"])
    paths, results = _explain(points, captures)
    assert [[_said(e) for e in r.explanations] for r in results] == [["closed-port"], ["closed-port"]]
    (conn,) = paths.connections
    (rst,) = conn.resets
    assert conn.points == ("client", "server") and rst.forged is False and rst.entered == "server"
    assert [(s.point, s.how) for s in rst.seen] == [("server", "leaving"), ("client", "arriving")]
    assert "its kernel answered the SYN with RST itself" in results[0].explanations[0].sentence


def test_firewall_reset_is_decided_with_the_servers_capture_alone() -> None:
    """No router capture: the server's capture holds nothing of the connection (the SYN never reached it)."""
    points, captures = _points("firewall-reset", ["client", "server"])
    _, results = _explain(points, captures)
    assert [_said(e) for e in results[0].explanations] == ["firewall-reset"]
    rst = results[0].explanations[0].path
    assert rst is not None and rst.forged is True and rst.not_seen == ("server",)
    assert rst.entered == "between server and client"
    assert "not at server (it holds no packet of this connection)" in rst.verdict


def test_a_verdict_is_written_as_json_dumps_writes_its_fields() -> None:
    """`Explanation.json_fields` (a `--json` record's members, written without a dict) is what `json.dumps`
    writes of the same mapping: its path across points, None, non-ASCII text, quotes and a backslash too."""
    points, captures = _points("firewall-reset", ["client", "router", "server"])
    _, results = _explain(points, captures)
    e = results[0].explanations[0]
    odd = replace(e, client=None, rst_side=None, rst_time=None, notes=("… \"quoted\" \\ \u00e9", "ü"),
                  forged=("TTL 255 — \t",))
    for verdict in (e, odd):
        fields = verdict.json_fields(t0=captures[0].packets[0].time)
        assert "{" + fields + "}" == json.dumps(json.loads("{" + fields + "}"))
    assert e.path is not None and e.as_dict()["path"] == json.loads(json.dumps(e.path.as_dict()))
    assert odd.as_dict()["notes"][0] == '… "quoted" \\ é' and odd.as_dict()["rst_time"] is None


def test_times_are_written_as_json_dumps_writes_them_rounded() -> None:
    """The fast road for a time in a `--json` record gives `repr(round(t, 6))` (json.dumps's float), at the
    edges of where it is taken, on ties of the sixth decimal and on 200,000 random times and doubles."""
    rnd = random.Random(17)
    times = [0.0, -0.0, 1e-4, -1e-4, 0.00009999999, 0.000100000001, 1e9, 999999999.9999996, 0.0078125, -0.0078125,
             2.5e-6, 1.0000005, 123456.0000005, 5e-7, 3.0, -12.5, 1e-9, 4e15]
    times += [rnd.uniform(-1e4, 1e6) for _ in range(100_000)]
    times += [rnd.randrange(-10**9, 10**9) / 2 ** rnd.randrange(0, 30) for _ in range(50_000)]
    times += [struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0] for _ in range(50_000)]
    finite = [t for t in times if math.isfinite(t)]
    assert [_seconds(t) for t in finite] == [repr(round(t, 6)) for t in finite]


def test_firewall_reset_with_the_router_names_it() -> None:
    points, captures = _points("firewall-reset", ["client", "router", "server"])
    paths, results = _explain(points, captures)
    assert [[_said(e) for e in r.explanations] for r in results] == [["firewall-reset"], ["firewall-reset"], []]
    (conn,) = paths.connections
    (rst,) = conn.resets
    assert rst.first_seen == "router" and rst.entered == "router" and rst.not_seen == ("server",)
    server = _addr("firewall-reset", "server")
    assert rst.verdict.startswith(f"RST in {server}:8000's name seen at router (leaving), client (arriving); "
                                  "not at server")
    assert rst.verdict.endswith("forged by router")


def test_without_the_hosts_addresses_a_closed_port_is_said_to_be_undecided() -> None:
    """A capture host that sent only the RST could be the server or a firewall in its name: not guessed."""
    points, captures = _points("closed-port", ["client", "server"], addresses=False)
    paths, results = _explain(points, captures)
    (rst,) = paths.connections[0].resets
    assert rst.forged is None and "itself or a firewall in its name" in rst.why
    assert [_said(e) for e in results[0].explanations] == ["ambiguous: closed-port or firewall-reset"]


def test_a_point_that_saw_only_part_takes_the_cause_another_point_decides() -> None:
    """retransmission-timeout: the server never saw the client's retransmissions (the router dropped them), so
    alone it fits peer-restart or retransmission-timeout; the client's capture of the same RST decides."""
    alone = explain_capture(_capture("retransmission-timeout", "server"))
    assert [_said(e) for e in alone.explanations] == ["ambiguous: peer-restart or retransmission-timeout"]
    points, captures = _points("retransmission-timeout")
    _, results = _explain(points, captures)
    assert [[_said(e) for e in r.explanations] for r in results] == [["retransmission-timeout"]] * 3
    server = results[2].explanations[0]
    assert server.notes[-1] == ("this capture alone fits peer-restart or retransmission-timeout; client's capture "
                                "of the same connection decides it (see client)")
    assert [c.cause for c in server.candidates] == ["retransmission-timeout"]


def test_a_proxys_ends_take_the_cause_its_own_capture_decides() -> None:
    points, captures = _points("lb-idle-reset")
    _, results = _explain(points, captures)
    assert [[_said(e) for e in r.explanations] for r in results] == [["lb-idle-reset"], ["lb-idle-reset"] * 2,
                                                                      ["lb-idle-reset"]]
    assert "router's capture of the same connection decides it" in results[0].explanations[0].notes[-1]


def test_points_that_decide_differently_settle_nothing() -> None:
    """Two points deciding two causes for one RST: neither is taken over the other, and a third point that
    lists both stays ambiguous."""
    points, captures = _points("retransmission-timeout")
    paths = rst_paths(points)
    raw = [explain_capture(c, p.addresses, paths.by_point[i])
           for i, (c, p) in enumerate(zip(captures, points, strict=True))]
    client, _, server = raw
    assert server.explanations[0].cause == AMBIGUOUS
    restart = replace(client, explanations=(replace(client.explanations[0], cause="peer-restart"),))
    settled = settle([client, restart, server], ["client", "other", "server"])
    assert [_said(e) for r in settled for e in r.explanations] == [
        "retransmission-timeout", "peer-restart", "ambiguous: peer-restart or retransmission-timeout"]
    assert [_said(e) for r in settle([client, server], ["client", "server"]) for e in r.explanations] == [
        "retransmission-timeout", "retransmission-timeout"]


# --- NAT ----------------------------------------------------------------------------------


def test_a_connection_is_matched_through_source_nat() -> None:
    points, captures = _points("nat-idle-expiry", ["client", "router", "server"])
    paths, results = _explain(points, captures)
    assert len(paths.connections) == 1 and all(c.translated for c in paths.connections)   # the one with a RST
    (conn,) = [c for c in paths.connections if c.resets]
    assert conn.points == ("client", "router", "server")
    assert {"router: router:* > server:8002", "server: router:* > server:8002"} <= _legs("nat-idle-expiry", conn.legs)
    assert len({leg.split(" > ")[0].rpartition(":")[2] for leg in conn.legs}) == 1, "NAT kept the port"
    (rst,) = conn.resets
    assert rst.forged is True and rst.entered == "router" and rst.not_seen == ("server",)
    assert [_said(e) for e in results[0].explanations] == ["firewall-reset"]


def test_nat_without_the_router_capture_still_matches_both_ends() -> None:
    points, captures = _points("nat-idle-expiry", ["client", "server"])
    paths, _ = _explain(points, captures)
    (conn,) = [c for c in paths.connections if c.resets]
    assert conn.translated and conn.points == ("client", "server")
    (rst,) = conn.resets
    assert rst.forged is True and rst.entered == "between server and client"


def test_a_segment_that_escaped_reverse_nat_and_its_answer_are_one_connection() -> None:
    """conntrack-invalid-unnat: the client's socket talks to router:80; the stray segment from server:8000 and
    the client's RST to it are another four-tuple at the client, yet the same connection (its sequence numbers)."""
    points, captures = _points("conntrack-invalid-unnat")
    paths, _ = _explain(points, captures)
    (conn,) = [c for c in paths.connections if c.resets]
    assert {"client: client:* > router:80", "client: client:* > server:8000"} <= _legs("conntrack-invalid-unnat",
                                                                                     conn.legs)
    client_ports = {leg.split(" > ")[0].rpartition(":")[2] for leg in conn.legs if leg.startswith("client: ")}
    assert len(client_ports) == 1, "both four-tuples are the client socket's"
    client_rst, server_rst = conn.resets
    assert (client_rst.side, client_rst.entered, client_rst.forged) == ("client", "client", False)
    assert (server_rst.side, server_rst.entered, server_rst.forged) == ("server", "server", False)
    assert [(s.point, s.how, s.translated) for s in server_rst.seen] == [
        ("server", "leaving", False), ("router", "forwarded", True), ("client", "arriving", False)]


def test_a_proxys_own_resets_are_its_own_on_both_of_its_connections() -> None:
    """lb-idle-reset: the router is a TCP endpoint (a proxy): two connections, no shared sequence numbers."""
    points, captures = _points("lb-idle-reset", ["client", "router", "server"])
    paths, _ = _explain(points, captures)
    with_rst = [c for c in paths.connections if c.resets]
    assert [c.points for c in with_rst] == [("client", "router"), ("router", "server")]
    assert all(not c.translated for c in paths.connections)
    assert [(r.entered, r.forged) for c in with_rst for r in c.resets] == [("router", False), ("router", False)]


def test_injected_rsts_in_both_names_are_the_routers() -> None:
    points, captures = _points("middlebox-injection")
    paths, _ = _explain(points, captures)
    verdicts = [(_named("middlebox-injection", r.claimed), r.entered, r.forged) for c in paths.connections
                for r in c.resets]
    assert sorted(verdicts) == sorted([("server:8000", "router", True), ("client:*", "client", False),
                                       ("client:*", "router", True), ("server:8001", "router", True)])


def test_without_directions_the_end_hosts_captures_still_tell() -> None:
    """Captures that do not record directions (Ethernet, not Linux cooked): the RST is absent from the claimed
    sender's own capture, which holds the connection: made on the path."""
    points, _ = _points("middlebox-injection")
    flat = [Point(p.name, [q._replace(direction=None, ifindex=None) for q in p.packets], p.addresses)
            for p in points]
    paths = rst_paths(flat)
    verdicts = [(_named("middlebox-injection", r.claimed), r.entered, r.forged) for c in paths.connections
                for r in c.resets]
    assert sorted(verdicts) == sorted([("server:8000", "between server and router", True),
                                       ("client:*", "client", False),
                                       ("client:*", "between client and router", True),
                                       ("server:8001", "between server and router", True)])


# --- no false matches, no clocks ---------------------------------------------------------------


def test_unrelated_captures_match_nothing() -> None:
    a, ca = _points("closed-port", ["client"])
    b, cb = _points("linger-abort", ["server"])
    paths, results = _explain(a + b, ca + cb)
    assert paths.matched == 0 and not any(c.resets for c in paths.connections)
    assert [_said(e) for e in results[0].explanations] == ["ambiguous: closed-port or firewall-reset"]
    assert all(e.path is None for r in results for e in r.explanations)


def _packet(index: int, src: str, sport: int, dst: str, dport: int, flags: str, seq: int, ack: int = 0,
            direction: str | None = None) -> Packet:
    return Packet(index, 1000.0 + index * 0.1, src, dst, sport, dport, flags, seq, ack, 0, 64240, None, None,
                  direction, None, 64, 0, True, index + 1)


def test_the_same_four_tuple_with_other_sequence_numbers_is_another_connection() -> None:
    a = [_packet(0, "10.0.0.1", 40000, "10.0.0.2", 80, "S", 1000),
         _packet(1, "10.0.0.2", 80, "10.0.0.1", 40000, "R.", 0, 1001)]
    b = [_packet(0, "10.0.0.1", 40000, "10.0.0.2", 80, "S", 77777),
         _packet(1, "10.0.0.2", 80, "10.0.0.1", 40000, "R.", 0, 77778)]
    paths = rst_paths([Point("a", a), Point("b", b)])
    assert paths.matched == 0 and paths.by_point == ({}, {})


def test_a_scanners_fixed_sequence_number_joins_nothing() -> None:
    """One SYN sequence number to many ports from one source port (a crafted scan) at two points whose
    targets differ: the shared end and the equal segments must not make them one translated connection."""
    def scan(target: str) -> list[Packet]:
        out: list[Packet] = []
        for port in range(1, 6):
            out.append(_packet(len(out), "10.0.0.1", 40000, target, port, "S", 4242))
            out.append(_packet(len(out), target, port, "10.0.0.1", 40000, "R.", 0, 4243))
        return out
    paths = rst_paths([Point("a", scan("10.0.0.2")), Point("b", scan("10.0.0.3"))])
    assert paths.matched == 0 and not any(c.translated for c in paths.connections)


@pytest.mark.parametrize("shift", [-3600.25, 0.5, 86400.0])
def test_a_clock_offset_between_files_changes_nothing(shift: float) -> None:
    for scenario in ("firewall-reset", "nat-idle-expiry", "middlebox-injection", "closed-port"):
        points, captures = _points(scenario)
        base, base_results = _explain(points, captures)
        moved_points, moved_captures = _points(scenario, shifts={points[0].name: shift})
        moved, moved_results = _explain(moved_points, moved_captures)
        assert [r.verdict for c in moved.connections for r in c.resets] == \
               [r.verdict for c in base.connections for r in c.resets]
        assert [[_said(e) for e in r.explanations] for r in moved_results] == \
               [[_said(e) for e in r.explanations] for r in base_results]


def _shifted_pcap(src: Path, dst: Path, seconds: int) -> None:
    """A copy of a classic pcap (little-endian, as tcpdump writes here) with every timestamp moved."""
    data = bytearray(src.read_bytes())
    assert bytes(data[:4]) in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    at = 24
    while at + 16 <= len(data):
        sec, _, incl, _ = struct.unpack_from("<IIII", data, at)
        struct.pack_into("<I", data, at, sec + seconds)
        at += 16 + incl
    dst.write_bytes(bytes(data))


def test_point_names_are_the_file_names_unless_two_share_one() -> None:
    assert point_names(["a/client.pcap", "b/router.pcapng"]) == ["client", "router"]
    assert point_names(["x/client.pcap", "y/client.pcap", "z.pcap"]) == ["x/client.pcap", "y/client.pcap", "z"]


def test_a_lab_pcap_names_its_host_from_the_result_beside_it(tmp_path: Path) -> None:
    assert capture_host(REFERENCE / "firewall-reset" / "server.pcap") == ("server", _addr("firewall-reset", "server"))
    alone = tmp_path / "server.pcap"
    shutil.copy(REFERENCE / "firewall-reset" / "server.pcap", alone)
    assert capture_host(alone) is None
    (tmp_path / "result.json").write_text("{not json")
    assert capture_host(alone) is None


# --- the command line ----------------------------------------------------------------------


def test_cli_several_points_say_where_the_rst_came_from() -> None:
    files = [str(REFERENCE / "firewall-reset" / f"{n}.pcap") for n in ("client", "router", "server")]
    proc = cli("explain", *files)
    assert proc.returncode == 0, proc.stderr
    assert "3 capture points: 1 connection with a RST found in more than one, 1 RST followed" in proc.stdout
    server = _addr("firewall-reset", "server")
    assert f"path: RST in {server}:8000's name seen at router (leaving), client (arriving)" in proc.stdout
    assert "forged by router" in proc.stdout and AMBIGUOUS not in proc.stdout


def test_cli_json_carries_each_rsts_path() -> None:
    files = [str(REFERENCE / "nat-idle-expiry" / f"{n}.pcap") for n in ("server", "client", "router")]
    proc = cli("explain", "--json", *files)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert [(Path(r["file"]).stem, r["cause"]) for r in records] == [("client", "firewall-reset"),
                                                                      ("router", "firewall-reset")]
    for r in records:
        path = r["path"]
        assert path["forged"] is True and path["entered"] == "router" and path["first_seen"] == "router"
        assert [s["point"] for s in path["seen_at"]] == ["router", "client"] and path["not_seen_at"] == ["server"]


def test_cli_names_a_files_capture_host_with_file_equals_address(tmp_path: Path) -> None:
    """Copies outside the lab's folder (no result.json beside them): the empty server capture says nothing of
    where it was taken until --at says it."""
    for n in ("client", "server"):
        _shifted_pcap(REFERENCE / "firewall-reset" / f"{n}.pcap", tmp_path / f"{n}.pcap", 7 if n == "server" else 0)
    client, server = str(tmp_path / "client.pcap"), str(tmp_path / "server.pcap")
    unknown = json.loads(cli("explain", "--json", client, server).stdout)
    assert [r["cause"] for r in unknown] == [AMBIGUOUS] and "path" not in unknown[0]
    named = cli("explain", "--json", "--at", f"{server}={_addr('firewall-reset', 'server')}", client, server)
    assert named.returncode == 0, named.stderr
    (record,) = json.loads(named.stdout)
    assert record["cause"] == "firewall-reset" and record["path"]["not_seen_at"] == ["server"]


def test_cli_an_unreadable_file_among_capture_points_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "router.pcap"
    bad.write_bytes(b"\x00" * 40)
    good = str(REFERENCE / "firewall-reset" / "client.pcap")
    assert_one_line_error(cli("explain", good, str(bad)), "router.pcap")
    assert_one_line_error(cli("explain", good, str(tmp_path / "gone.pcap")), "no such file")


def test_cli_at_must_name_one_of_the_files_and_a_file_comes_once() -> None:
    good = str(REFERENCE / "firewall-reset" / "client.pcap")
    other = str(REFERENCE / "firewall-reset" / "server.pcap")
    assert_one_line_error(cli("explain", "--at", "nosuch.pcap=10.0.0.1", good, other), "not one of the files")
    assert_one_line_error(cli("explain", "--at", f"{other}=server", good, other), "--at")
    assert_one_line_error(cli("explain", good, good), "given twice")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_files_read_a_chunk_at_a_time_explain_as_the_points_read_whole(scenario: str) -> None:
    """`explain_point_files` (what the command runs: each file read four times, only the connections worth
    explaining or sharing a RST's segment held) says what `explain_points` says of the captures read whole."""
    from orchestrator.explain.multi import explain_point_files

    points, captures = _points(scenario)
    whole_paths, whole = explain_points(captures, points)
    paths, read = explain_point_files([c.path for c in captures], [p.name for p in points],
                                      [p.addresses for p in points])
    assert paths == whole_paths
    for a, b in zip(read, whole, strict=True):
        assert (a.path, a.packets, a.other, a.connections, a.t0, a.end, a.notes) == \
               (b.path, b.packets, b.other, b.connections, b.t0, b.end, b.notes)
        assert list(a.json_lines()) == list(b.json_lines())
        assert [e.segments for e in a.explanations] == [e.segments for e in b.explanations]


def test_a_flood_of_resets_seen_at_two_points_costs_each_point_one_look(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Following 3,000 RSTs of one connection across two points asks once per point and role whether the point
    is that end's host, and indexes each connection's RSTs once: asked per RST, each question scanned the
    connection's packets, and two copies of a 20,000-RST storm took 284 s (now 2 s)."""
    from orchestrator.explain import correlate, paths
    from orchestrator.explain.multi import explain_point_files
    from tests.unit.test_explain_long import _flood

    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    _flood(a, 3_000)
    shutil.copy(a, b)
    asked: list[int] = []
    sends_as = paths._View._sends_as
    monkeypatch.setattr(paths._View, "_sends_as", lambda self, i, n, role: asked.append(i) or sends_as(self, i, n, role))
    keyed: list[int] = []
    key_of = correlate.segment_key
    monkeypatch.setattr(paths, "segment_key", lambda p: keyed.append(1) or key_of(p))
    found, results = explain_point_files([str(a), str(b)], ["a", "b"], [frozenset(), frozenset()])
    (conn,) = found.connections
    assert len(conn.resets) == 3_000 and conn.points == ("a", "b")
    assert len(asked) <= 2 * 2 * 2, "a point and a role once each (a leg or two per point)"
    assert len(keyed) <= 3 * 2 * 3_004, "each RST keyed for its passage, and each connection's RSTs once"
    assert [e.cause for r in results for e in r.explanations] == [results[0].explanations[0].cause] * 2
