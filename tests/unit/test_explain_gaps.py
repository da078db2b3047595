"""The verdict gaps found on other people's captures, each on a small hand-built packet sequence: new data
that crossed the closer's FIN, a closer's in-order segment reset after its socket was freed, a half-open SYN
scan (with and without the target's answers in the capture), and an abortive close where only the closing
side's packets were recorded. The wild captures they came from are checked in test_wild.py."""
from __future__ import annotations

import os
import subprocess
import sys

from orchestrator.capture import Capture, Packet
from orchestrator.explain import AMBIGUOUS, Explanation, explain_file, explain_packets
from orchestrator.explain.multi import explain_points
from orchestrator.explain.paths import Point
from tests.unit.test_explain import Wire, causes, only
from tests.unit.test_reference import REFERENCE

# --- data-after-close: the data crossed the FIN ------------------------------------------------------


def test_data_crossing_the_closers_fin_is_data_after_close() -> None:
    """Seen near the client: its last bytes and FIN leave before the server's FIN arrives. The server had
    closed without them (its FIN's ack is below them), so they reach a socket shut for reading: Linux
    resets (tcp_rcv_state_process, TCPAbortOnData) with seq = their ack and no ACK flag."""
    w = Wire(point="c").handshake()
    w.send("c", "P.", 39)
    acked = w.send("s", ".")
    data = w.send("c", "FP.", 24)                          # crosses the server's FIN
    w.send("s", "P.", 24, ack=acked.ack)
    fin = w.send("s", "F.", ack=acked.ack)                 # the server closed without the 24 bytes
    rst = w.send("s", "R", seq=data.ack, dt=0.00001)
    e = only(w.explain())
    assert e.cause == "data-after-close" and e.rst_side == "server"
    assert {data, fin, rst} <= {ev.packet for ev in e.evidence}
    assert "on their way" in e.sentence


def test_a_retransmission_of_bytes_the_closer_had_is_no_data_after_close() -> None:
    """Bytes at or below the FIN's ack were received before close(): Linux does not reset for them."""
    w = Wire(point="c").handshake()
    old = w.send("c", "P.", 100)
    w.send("s", ".")
    w.send("s", "F.")
    w.send("c", ".")
    again = w.send("c", "P.", 100, seq=old.seq, dt=0.2)
    w.send("s", "R", seq=again.ack)
    assert "data-after-close" not in causes(only(w.explain()))


# --- timewait-overflow: an in-order FIN or an ACK reset after the closer's FIN was acknowledged ----------


def _closed_first() -> tuple[Wire, float]:
    w = Wire(point="c").handshake()
    w.send("s", "P.", 13)
    w.send("s", "F.")
    w.send("c", ".")                                       # acknowledges the data and the FIN
    return w, w.t


def test_a_peers_in_order_fin_reset_means_the_closed_socket_was_freed() -> None:
    w, _ = _closed_first()
    peer_fin = w.send("c", "F.", dt=0.097)
    w.send("s", "R", seq=peer_fin.ack, dt=0.094)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS
    assert causes(e)[:2] == ["timewait-overflow", "peer-restart"]   # no TTL to compare: firewall-reset after
    assert "data-after-close" not in causes(e)                     # a FIN alone is no data after close
    assert "TIME_WAIT table full" in e.sentence


def test_a_keepalive_long_after_the_closers_fin_fits_an_expired_fin_wait2_too() -> None:
    w, _ = _closed_first()
    probe = w.send("c", ".", seq=w.nxt["c"] - 1, dt=45.0)
    w.send("s", "R", seq=probe.ack)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS
    assert causes(e)[:3] == ["timewait-overflow", "peer-restart", "fin-wait2-timeout"]
    assert "retransmission-timeout" not in causes(e)           # its FIN acknowledged: nothing to retransmit


def test_an_out_of_order_fin_is_not_called_an_overflow() -> None:
    w, _ = _closed_first()
    fin = w.send("c", "F.", seq=w.nxt["c"] + 5, dt=0.1)
    w.send("s", "R", seq=fin.ack)
    assert "timewait-overflow" not in causes(only(w.explain()))


# --- syn-scan: a half-open scan ----------------------------------------------------------------


def _scan(ports: int, answered: bool, point: str | None = "c", rst_ttl: int = 61) -> tuple[Wire, list[Wire]]:
    probes = [Wire(c=("10.0.0.10", 51406), s=("10.0.0.70", 1000 + k), isn_c=7000 * k + 1, point=point)
              for k in range(ports)]
    packets = probes[0].packets
    t = 1000.0
    for probe in probes:
        probe.packets, probe.t = packets, t
        probe.send("c", "S", window=1024, ttl=252)
        t = probe.t + 0.01
    open_port = probes[ports // 2]
    open_port.t = t
    if answered:
        open_port.send("s", "S.", dt=0.03)
    open_port.send("c", "R", seq=open_port.isn["c"] + 1, ack=0, ttl=rst_ttl, dt=0.00001)
    for probe in probes:
        probe.t = open_port.t
    return open_port, probes


def test_a_half_open_scan_resets_the_open_port() -> None:
    """The kernel's RST (TTL 61) does not share the crafted SYNs' TTL (252): no forgery, a scanner."""
    open_port, _ = _scan(12, answered=True)
    (e,) = [e for e in open_port.explain() if e.rst_from is not None]
    assert e.cause == "syn-scan" and e.rst_side == "client"
    assert "12 ports" in e.sentence and "port 1006" in e.sentence
    assert any("differs from the SYNs'" in n for n in e.notes)


def test_a_one_sided_scan_shows_the_open_port_by_the_rst_alone() -> None:
    """Only the scanner's packets: its RST (seq = ISN+1, no ACK) answers a SYN/ACK the capture lacks."""
    open_port, _ = _scan(12, answered=False)
    explained = open_port.explain()
    assert [e.cause for e in explained] == ["syn-scan"]       # the silent ports are not called dropped
    assert "not in this capture" in explained[0].sentence


def test_one_client_giving_up_on_a_few_ports_is_no_scan() -> None:
    open_port, _ = _scan(3, answered=True, rst_ttl=252)
    (e,) = [e for e in open_port.explain() if e.rst_from is not None]
    assert e.cause == "connect-timeout"


# --- an abortive close seen from the closing side only --------------------------------------------


def test_an_abort_recorded_one_way_reads_what_was_received_from_the_acks() -> None:
    """A mirror of one direction: the client's SYN, ACK, request, ACKs of 373 bytes, then R. at its next
    byte acknowledging them. The SYN/ACK is missing, but the client's ACK after its SYN shows it came."""
    w = Wire(point="c")
    w.send("c", "S")
    first = w.isn["s"] + 1
    w.send("c", ".", ack=first)
    w.send("c", "P.", 426, ack=first)
    w.send("c", ".", ack=first + 373, dt=0.02)
    w.send("c", "R.", ack=first + 373, dt=0.25)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and "unread-data-close" in causes(e) and "linger-abort" in causes(e)
    assert "after receiving 373 bytes" in e.sentence
    assert any("the 373 bytes it received are read from its acknowledgments" in n for n in e.notes)


# --- the summary's count ----------------------------------------------------------------------


def test_the_reset_or_failed_count_leaves_out_connections_explained_without_a_reset() -> None:
    """conntrack-invalid-liberal's connection was neither reset nor failed (its out-of-window segment drew an
    ACK); a silent drop failed; a RST reset."""
    liberal = explain_file(REFERENCE / "conntrack-invalid-liberal" / "client.pcap")
    assert [e.cause for e in liberal.explanations] == ["conntrack-invalid-liberal"]
    assert liberal.failed == 0
    assert liberal.counts_text() == "0 reset or failed, 1 with an out-of-window segment and no reset"
    for scenario, cause in (("silent-drop", "silent-drop"), ("closed-port", AMBIGUOUS)):
        r = explain_file(REFERENCE / scenario / "client.pcap")
        assert [e.cause for e in r.explanations] == [cause] and r.counts_text() == "1 reset or failed"
    out = subprocess.run([sys.executable, "-m", "orchestrator", "explain",
                          str(REFERENCE / "conntrack-invalid-liberal" / "client.pcap")],
                         capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "1 connection, 0 reset or failed, 1 with an out-of-window segment and no reset" in out


# --- an unanswered SYN followed across capture points -----------------------------------------------


def _dropped_after_the_router() -> tuple[list[Capture], list[Point]]:
    """The client's SYN, three times: it leaves the client, the router forwards it (in, then out a TTL
    lower), and the server's own capture never sees it."""
    at_client, at_router = Wire(point="c"), Wire(point="c")
    syn = at_client.send("c", "S", ttl=64)
    for gap in (1.0, 2.0):
        at_client.send("c", "S", seq=syn.seq, dt=gap, ttl=64)
    for gap in (0.0002, 1.0, 2.0):
        at_router.send("c", "S", seq=syn.seq, dt=gap, ttl=64, direction="in")
        at_router.send("c", "S", seq=syn.seq, dt=0.00005, ttl=63, direction="out")
    captures = [Capture(name, 113, tuple(packets), 0, False, ())
                for name, packets in (("client", at_client.packets), ("router", at_router.packets), ("server", []))]
    points = [Point("client", captures[0].packets, frozenset({"10.0.0.10"})),
              Point("router", captures[1].packets), Point("server", (), frozenset({"10.0.0.70"}))]
    return captures, points


def test_an_unanswered_syn_is_said_where_it_was_last_seen() -> None:
    captures, points = _dropped_after_the_router()
    _, results = explain_points(captures, points)
    for r in results[:2]:
        (e,) = r.explanations
        assert e.cause == "silent-drop"
        assert e.sentence.endswith("the SYN was seen at client (leaving), router (forwarded); not at server: lost "
                                   "between router and server (the capture on 10.0.0.70 itself, which never saw "
                                   "it).")


def test_without_the_servers_capture_the_syn_is_last_seen_where_it_was_forwarded() -> None:
    captures, points = _dropped_after_the_router()
    _, results = explain_points(captures[:2], points[:2])
    assert results[0].explanations[0].sentence.endswith(
        "the SYN was seen at client (leaving), router (forwarded): last seen at router, which forwarded it.")


# --- nothing but one sender's repeated RSTs -------------------------------------------------------------


def test_the_same_bare_rst_repeated_answers_a_segment_the_capture_lacks() -> None:
    w = Wire()
    for k in range(5):
        w.send("c", "R", seq=123456, ack=0, dt=60.0 if k else 0.001)
    e = only(w.explain())
    assert e.cause == "unknown" and e.resets == 5
    assert "the same bare RST (seq 123456) 5 times, about every 60.00 s over 240.00 s" in e.sentence


def test_rsts_with_different_sequence_numbers_are_not_called_repeated() -> None:
    w = Wire()
    for k in range(5):
        w.send("c", "R", seq=123456 + 1000 * k, ack=0, dt=60.0)
    assert "only the RST" in only(w.explain()).sentence


# --- later RSTs in an end's name that its stack did not send ----------------------------------------------


def test_later_rsts_with_a_foreign_ttl_are_said_to_come_from_the_path() -> None:
    """The client aborts (its own R., its TTL); two more RSTs in its name answer the server's segments in flight
    with another TTL and another IP ID counter: a box on the path answering for the flow it saw reset."""
    w = Wire(point="s").handshake()
    for p in w.packets:
        w.packets[p.index] = p._replace(ttl=116 if p.src == "10.0.0.10" else 64)
    w.send("c", "P.", 100, ttl=116)
    data = w.send("s", ".", 1352, ttl=64)
    w.send("c", "R.", ttl=116, ip_id=0x57c5)
    for k in range(2):
        w.send("c", "R.", ack=data.ack, ttl=244, ip_id=0xb503 + k)
    e = only(w.explain())
    assert e.rst_side == "client"
    assert "2 later RSTs in 10.0.0.10's name arrived with TTL 244 (IP ID 0xb503, 0xb504), while its other packets " \
           "arrive with TTL 116: sent in its name by a box on the path" in e.notes


def test_later_rsts_with_the_ends_own_ttl_are_not_called_forged() -> None:
    w = Wire(point="s").handshake()
    for p in w.packets:
        w.packets[p.index] = p._replace(ttl=64)
    w.send("c", "P.", 100, ttl=64)
    w.send("s", ".", 1352, ttl=64)
    w.send("c", "R.", ttl=64)
    w.send("c", "R.", ttl=64)
    assert not any("later RST" in n for n in only(w.explain()).notes)


# --- an injected response the closer closed on ------------------------------------------------------------


def _injected(fake_ttl: int) -> list[Explanation]:
    """The client's request; 43 bytes at the response's seq arrive first (fake_ttl), the client closes; the real
    348-byte response at the same seq (TTL 54) then reaches a closed socket and is reset."""
    w = Wire(point="c")
    w.send("c", "S", ttl=64)
    w.send("s", "S.", ttl=54)
    w.send("c", ".", ttl=64)
    w.send("c", "P.", 153, ttl=64)
    start = w.nxt["s"]
    w.send("s", "P.", 43, ttl=fake_ttl, ip_id=1)
    w.send("c", "F.", ttl=64)
    real = w.send("s", "P.", 348, seq=start, ttl=54)
    w.send("c", "R", seq=real.ack, ttl=64)
    return w.explain()


def test_a_response_injected_on_the_path_is_noted_beside_data_after_close() -> None:
    e = only(_injected(fake_ttl=56))
    assert e.cause == "data-after-close"
    assert any(n.startswith("10.0.0.70:80's 43 bytes at seq 1 arrived with TTL 56 and IP ID 1, while its other "
                            "packets arrive with TTL 54, and 348 other bytes came later") for n in e.notes), e.notes


def test_a_response_with_the_servers_own_ttl_is_not_called_injected() -> None:
    assert not any("injected" in n for n in only(_injected(fake_ttl=54)).notes)


# --- one host resetting several connections at once ------------------------------------------------------


def _batch(idles: tuple[float, ...]) -> list[Explanation]:
    """One client, one server, a connection per idle spell; the client resets them all within 1 ms."""
    packets: list[Packet] = []
    wires = [Wire(c=("10.0.0.10", 50000 + k), isn_c=100_000 * (k + 1), point="c", packets=packets)
             for k in range(len(idles))]
    for w in wires:
        w.handshake()
        w.send("c", "P.", 100)
        w.send("s", "P.", 200)
        w.send("c", ".")
    end = max(w.t for w in wires) + max(idles)
    for w, idle in zip(wires, idles, strict=True):
        w.t = end - idle
        w.send("c", "P.", 10, dt=0.0)
        w.send("s", ".", dt=0.0)
    for k, w in enumerate(wires):
        w.t = end + 0.0002 * k
        w.send("c", "R.", dt=0.0)
    packets.sort(key=lambda p: p.time)
    return explain_packets([p._replace(index=i) for i, p in enumerate(packets)])


def test_connections_of_different_idle_spells_reset_at_once_are_no_idle_timeout() -> None:
    found = _batch((14.0, 10.5, 0.002, 0.003))
    assert len(found) == 4
    for e in found:
        assert "lb-idle-reset" not in causes(e)
        assert any(n.startswith("10.0.0.10 reset 4 connections within 10.0 ms") for n in e.notes), e.notes


def test_one_idle_connection_reset_alone_keeps_the_idle_timeout_candidate() -> None:
    (e,) = _batch((14.0,))
    assert causes(e)[0] == "lb-idle-reset" and not any("connections within" in n for n in e.notes)


def test_a_reset_before_any_answer_with_the_synack_only_after_it_is_explained() -> None:
    """No packet of the peer before the RST and no ACK from its sender: nothing to read what it received from."""
    w = Wire(point="c")
    w.send("c", "S")
    w.send("c", "R.", ack=w.isn["s"] + 1)
    w.send("s", "S.", ack=w.isn["c"] + 1)
    (e,) = w.explain()
    assert e.rst_side == "client" and e.sentence


# --- connect-timeout beside a parallel attempt that won --------------------------------------------------


def test_a_connect_given_up_when_a_parallel_one_succeeded_says_so() -> None:
    """w05's prober: two connects at once; the first SYN/ACK is acknowledged and that connection aborted at once,
    the second SYN/ACK 0.4 ms later finds its socket closed."""
    packets: list[Packet] = []
    won = Wire(c=("10.0.0.10", 50116), s=("10.0.0.70", 443), point="c", packets=packets)
    lost = Wire(c=("10.0.0.10", 52478), isn_c=77, point="c", packets=packets)
    lost.send("c", "S")
    won.t = lost.t
    won.send("c", "S", dt=0.00001)
    won.send("s", "S.", dt=0.0287)
    won.send("c", ".", dt=0.00001)
    won.send("c", "R.", dt=0.00001)
    lost.t = won.t
    synack = lost.send("s", "S.", dt=0.0004)
    lost.send("c", "R", seq=synack.ack, ack=0, dt=0.000006)
    (e,) = [e for e in explain_packets(packets) if e.client == "10.0.0.10:52478"]
    assert e.cause == "connect-timeout"
    assert any(n.startswith("10.0.0.10:50116, another connection of 10.0.0.10 to 10.0.0.70 opened at the same time, "
                            "got its SYN/ACK 28.7 ms after its SYN") for n in e.notes), e.notes


def test_a_lone_connect_given_up_has_no_parallel_attempt_note() -> None:
    w = Wire(point="c")
    w.send("c", "S")
    synack = w.send("s", "S.", dt=3.0)
    w.send("c", "R", seq=synack.ack, ack=0)
    e = only(w.explain())
    assert e.cause == "connect-timeout" and not any("parallel" in n for n in e.notes)
