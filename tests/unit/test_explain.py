"""explain: every RST cause on synthetic packets, the doubtful cases, and real lab captures.

Synthetic conversations are built by `Wire`, which keeps both sides' sequence
numbers the way a kernel does. The real captures in tests/fixtures/explain/
come from lab runs of the catalogue's scenarios (named scenario_capture-point);
a few (`*-two-queued`, `*-established`, `*-after-exchange`, `unread-response`)
come from variants run with scenario files of their own.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import cast

import pytest

from orchestrator.capture import Capture, Packet, format_packet, read_capture
from orchestrator.compiled import source_of
from orchestrator.encap import IcmpError
from orchestrator.explain import (
    AMBIGUOUS,
    CAUSES,
    SILENT_DROP,
    UNKNOWN,
    Explanation,
    explain_capture,
    explain_file,
    explain_packets,
    incidents,
)
from orchestrator.explain.causes import BY_FAMILY, CLAUSES, REGISTRY
from orchestrator.explain.verdict import Cause
from orchestrator.explain.zeek import zeek_conn
from tests.conftest import ROOT, WILD

FIXTURES = ROOT / "tests" / "fixtures" / "explain"
WILD_W18 = WILD / "w18.pcap"
C, S = ("10.0.0.10", 40000), ("10.0.0.70", 80)


class Wire:
    """A conversation between c and s, packet by packet, with consistent seq/ack.

    `point` is where the capture was taken: "c" or "s" fills in directions as
    Linux cooked captures record them (out for that host's own packets), None
    leaves them out (Ethernet, raw IP).
    """

    def __init__(self, c: tuple[str, int] = C, s: tuple[str, int] = S, t: float = 1000.0,
                 isn_c: int = 1_000_000, isn_s: int = 4_294_967_000, point: str | None = None,
                 packets: list[Packet] | None = None) -> None:
        self.ends = {"c": c, "s": s}
        self.isn = {"c": isn_c, "s": isn_s}
        self.nxt = dict(self.isn)
        self.rcv: dict[str, int] = {"c": 0, "s": 0}
        self.synced = {"c": False, "s": False}
        self.t = t
        self.point = point
        self.packets = packets if packets is not None else []

    def send(self, who: str, flags: str, length: int = 0, dt: float = 0.001, seq: int | None = None,
             ack: int | None = None, window: int = 502, direction: str | None = None,
             ttl: int | None = None, ifindex: int | None = None, ip_id: int | None = None) -> Packet:
        other = "s" if who == "c" else "c"
        self.t += dt
        s = self.nxt[who] if seq is None else seq
        a = self.rcv[who] if ack is None else ack
        end = (s + length + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF
        if seq is None:
            self.nxt[who] = end
        if "S" in flags:
            self.synced[who] = True
        if "R" not in flags and (length or "S" in flags or "F" in flags):
            self.rcv[other] = end
        if direction is None and self.point is not None:
            direction = "out" if who == self.point else "in"
        src, dst = self.ends[who], self.ends[other]
        rel_seq = (s - self.isn[who]) & 0xFFFFFFFF if self.synced[who] else None
        rel_ack = (a - self.isn[other]) & 0xFFFFFFFF if "." in flags and self.synced[other] else None
        fields = {"index": len(self.packets), "time": self.t, "src": src[0], "dst": dst[0], "sport": src[1],
                  "dport": dst[1], "flags": flags, "seq": s, "ack": a if "." in flags else 0, "length": length,
                  "window": window, "rel_seq": rel_seq, "rel_ack": rel_ack, "direction": direction,
                  "ifindex": ifindex}
        p = Packet(**fields, ttl=ttl, ip_id=ip_id)
        self.packets.append(p)
        return p

    def handshake(self) -> Wire:
        self.send("c", "S")
        self.send("s", "S.")
        self.send("c", ".")
        return self

    def explain(self, **kw: object) -> list[Explanation]:
        return explain_packets(self.packets, **kw)  # type: ignore[arg-type]


def only(explanations: list[Explanation]) -> Explanation:
    assert len(explanations) == 1, [e.cause for e in explanations]
    return explanations[0]


def causes(e: Explanation) -> list[str]:
    return [c.cause for c in e.candidates]


# --- the SYN refused: closed-port or firewall-reset -----------------------------------


def test_closed_port_from_the_client_side_is_honestly_ambiguous() -> None:
    w = Wire()
    syn = w.send("c", "S")
    rst = w.send("s", "R.", seq=0, ack=syn.seq + 1)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e) == ["closed-port", "firewall-reset"]
    assert e.rst_from == "10.0.0.70:80" and e.rst_side == "server"
    assert e.client == "10.0.0.10:40000" and e.server == "10.0.0.70:80"
    assert [ev.packet for ev in e.evidence] == [syn, rst]
    assert all(c.tell for c in e.candidates), "each candidate says what tells it apart"


def test_closed_port_on_the_server_itself_is_decided() -> None:
    # the capture host sends 10.0.0.70's ordinary packets (an earlier connection), so it is that host
    w = Wire(point="s").handshake()
    w.send("s", "F.")
    w.send("c", "F.")
    w.send("s", ".")
    w2 = Wire(c=("10.0.0.10", 40001), point="s", t=w.t + 1, isn_c=77, packets=w.packets)
    syn = w2.send("c", "S")
    w2.send("s", "R.", seq=0, ack=syn.seq + 1)
    e = only(w2.explain())
    assert e.cause == "closed-port" and "10.0.0.70 itself" in e.candidates[0].why


def test_closed_port_decided_when_the_caller_names_the_capture_host() -> None:
    w = Wire(point="s")
    syn = w.send("c", "S")
    w.send("s", "R.", seq=0, ack=syn.seq + 1)
    assert only(w.explain()).cause == AMBIGUOUS
    assert only(w.explain(local_addresses=["10.0.0.70"])).cause == "closed-port"


def test_firewall_reset_when_the_capture_host_is_not_the_server() -> None:
    w = Wire(point="s")   # the RST leaves the capture host, which is the router 10.0.0.200
    syn = w.send("c", "S")
    w.send("s", "R.", seq=0, ack=syn.seq + 1)
    e = only(w.explain(local_addresses=["10.0.0.200"]))
    assert e.cause == "firewall-reset" and e.rst_from == "10.0.0.70:80"


def test_firewall_reset_on_a_router_that_forwards_the_flow_but_sends_the_rst_itself() -> None:
    # a router capture: every segment seen coming in and going out, except the RST it forges
    w = Wire()
    for who, flags, length in (("c", "S", 0), ("s", "S.", 0), ("c", ".", 0), ("c", "P.", 100), ("s", ".", 0)):
        p = w.send(who, flags, length, direction="in")
        w.packets.append(Packet(**{**{f: getattr(p, f) for f in Packet._fields}, "index": len(w.packets),
                                   "time": p.time + 0.00002, "direction": "out"}))
    data = w.send("c", "P.", 100, direction="in")
    w.send("s", "R", seq=data.ack, direction="out")
    e = only(w.explain())
    assert e.cause == "firewall-reset"
    assert "forwarded" in e.sentence and e.packets == 7   # the 5 copies are folded, not counted


def test_a_rst_whose_ttl_differs_from_the_servers_other_packets_is_forged() -> None:
    w = Wire().handshake()       # ttl only on some packets: the reader may not know it for every one
    w.send("s", "P.", 10, ttl=63)
    w.send("c", ".")
    w.send("c", "F.")
    w.send("s", "F.", ttl=63)
    w.send("c", ".")
    w2 = Wire(c=("10.0.0.10", 40001), t=w.t + 1, isn_c=5, packets=w.packets)
    syn = w2.send("c", "S")
    w2.send("s", "R.", seq=0, ack=syn.seq + 1, ttl=64)
    e = only(w2.explain())
    assert e.cause == "firewall-reset" and "TTL 64" in e.sentence


def test_a_rst_whose_ttl_matches_the_server_is_its_own() -> None:
    w = Wire()
    w.send("c", "S")
    w.send("s", "S.", ttl=63)
    w.send("c", ".")
    w.send("c", "F.")
    w.send("s", "F.", ttl=63)
    w.send("c", ".")
    w2 = Wire(c=("10.0.0.10", 40001), t=w.t + 1, isn_c=5, packets=w.packets)
    syn = w2.send("c", "S")
    w2.send("s", "R.", seq=0, ack=syn.seq + 1, ttl=63)
    assert only(w2.explain()).cause == "closed-port"


# --- connect-timeout ----------------------------------------------------------------


def test_connect_timeout_late_synack_answered_by_bare_rst() -> None:
    w = Wire(point="c")
    syn = w.send("c", "S")
    synack = w.send("s", "S.", dt=1.03)
    rst = w.send("c", "R", dt=0.00002)
    assert rst.seq == syn.seq + 1
    e = only(w.explain())
    assert e.cause == "connect-timeout" and e.rst_side == "client"
    assert [ev.packet for ev in e.evidence] == [syn, synack, rst]
    assert "1.03 s" in e.sentence


def test_a_synack_acknowledging_the_wrong_sequence_is_not_connect_timeout() -> None:
    w = Wire()
    w.send("c", "S")
    w.send("s", "S.", dt=0.5, ack=123456)
    w.send("c", "R", seq=123456)
    e = only(w.explain())
    assert e.cause == UNKNOWN and "never sent" in e.sentence


# --- abortive closes: unread-data-close, linger-abort, listener-close-backlog --------------------


def test_rst_after_unread_response_lists_unread_data_first_then_linger() -> None:
    w = Wire(point="c").handshake()
    w.send("c", "P.", 5)
    w.send("s", ".")
    w.send("s", "P.", 1000)
    w.send("c", ".")
    w.send("c", "R.")
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e) == ["unread-data-close", "linger-abort", "socket-destroy"]
    assert "1000 bytes" in e.candidates[0].why and e.rst_side == "client"


def test_rst_after_an_answered_exchange_puts_linger_first() -> None:
    w = Wire().handshake()
    w.send("s", "P.", 20)        # the server speaks first; the client answers it, then aborts
    w.send("c", "P.", 5)
    w.send("s", ".")
    w.send("c", "R.")
    assert causes(only(w.explain())) == ["linger-abort", "unread-data-close", "socket-destroy"]


def test_an_abort_with_nothing_received_is_linger_or_a_destroyed_socket() -> None:
    """Nothing was ever received, so nothing was left unread; but tcp_abort (`ss -K`) sends the same RST with
    the same kernel reason (TCP_STATE) as close() with SO_LINGER {1, 0}: the wire cannot tell the two."""
    w = Wire().handshake()
    w.send("c", "P.", 300)
    w.send("s", ".")
    w.send("c", "R.", dt=0.1)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e) == ["linger-abort", "socket-destroy"]
    assert "nothing ever came" in e.candidates[0].why and "nothing left to read" in e.sentence
    assert "ss -K" in e.sentence


def test_server_reset_without_ever_sending_is_listener_or_abort() -> None:
    w = Wire().handshake()
    w.send("s", "R.", dt=0.01)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e) == ["listener-close-backlog", "linger-abort", "socket-destroy"]


def test_server_reset_after_unanswered_request_adds_unread_data() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 100)
    w.send("s", ".")
    w.send("s", "R.", dt=0.01)
    assert causes(only(w.explain())) == ["unread-data-close", "listener-close-backlog", "linger-abort",
                                         "socket-destroy"]


def test_listener_close_resets_its_whole_queue_at_once() -> None:
    a = Wire().handshake()
    b = Wire(c=("10.0.0.10", 40001), isn_c=55, t=a.t, packets=a.packets).handshake()
    a.send("c", "P.", 100)
    a.send("s", ".")
    a.send("s", "R.", dt=0.2)
    b.t = a.t
    b.send("s", "R.", dt=0.0002)
    es = explain_packets(a.packets)
    assert [e.cause for e in es] == ["listener-close-backlog", "listener-close-backlog"]
    assert "2 connections" in es[0].candidates[0].why


def test_a_lost_handshake_ack_still_counts_as_established() -> None:
    w = Wire()
    w.send("c", "S")
    w.send("s", "S.")
    w.send("c", ".")
    w.packets.pop()                            # the client's ACK went out, but the capture lost it
    w.send("s", "R.", dt=0.2)
    assert causes(only(w.explain())) == ["listener-close-backlog", "linger-abort", "socket-destroy"]


def _proxied(idle: float, apart: float = 0.0008) -> tuple[Wire, Wire]:
    """A proxy P (10.0.0.200) between C and S: C's leg to P:8080 and P's leg to S, one exchange each, then
    `idle` seconds of silence and both legs reset by P."""
    front = Wire(s=("10.0.0.200", 8080)).handshake()
    back = Wire(c=("10.0.0.200", 51000), isn_c=77, t=front.t, packets=front.packets).handshake()
    front.send("c", "P.", 100)
    front.send("s", ".")
    back.t = front.t
    back.send("c", "P.", 100)
    back.send("s", ".")
    back.send("s", "P.", 200)
    back.send("c", ".")
    front.t = back.t
    front.send("s", "P.", 200)
    front.send("c", ".")
    front.send("s", "R.", dt=idle)
    back.t = front.t
    back.send("c", "R.", dt=apart)
    return front, back


@pytest.mark.parametrize("apart", [0.0008, 0.6])    # the scheduler may put up to a second between the closes
def test_a_proxy_resetting_both_legs_after_the_same_idle_spell_is_lb_idle_reset(apart: float) -> None:
    front, _ = _proxied(idle=2.0, apart=apart)
    es = explain_packets(front.packets)
    assert [e.cause for e in es] == ["lb-idle-reset", "lb-idle-reset"]
    assert {e.rst_side for e in es} == {"client", "server"}
    assert "2.00 s" in es[0].sentence and "10.0.0.70:80" in es[0].sentence and "idle timeout" in es[0].sentence


def test_one_leg_reset_after_an_idle_spell_lists_lb_idle_reset_first() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 100)
    w.send("s", ".")
    w.send("s", "P.", 200)
    w.send("c", ".")
    w.send("s", "R.", dt=350.0)          # AWS NLB's idle timeout
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e)[0] == "lb-idle-reset" and "350.00 s" in e.candidates[0].why
    assert "idle timeout" in e.sentence


def test_a_reset_soon_after_the_last_packet_or_with_data_in_flight_is_no_idle_timeout() -> None:
    soon, _ = _proxied(idle=0.3)
    assert "lb-idle-reset" not in {c for e in explain_packets(soon.packets) for c in causes(e)}
    w = Wire().handshake()
    w.send("c", "P.", 100)
    w.send("s", ".")
    w.send("s", "P.", 200, dt=5.0)       # not acknowledged when the server resets
    w.send("s", "R.", dt=5.0)
    assert "lb-idle-reset" not in causes(only(w.explain()))


def test_two_resets_by_one_host_on_the_same_side_are_no_proxy() -> None:
    a = Wire().handshake()
    b = Wire(c=("10.0.0.11", 40001), isn_c=55, t=a.t, packets=a.packets).handshake()
    for w in (a, b):
        w.t = a.packets[-1].time
        w.send("c", "P.", 10)
        w.send("s", "P.", 10)
        w.send("c", ".")
    a.send("s", "R.", dt=3.0)
    b.t = a.t
    b.send("s", "R.", dt=0.001)          # the same server resets two clients: an application, not a proxy
    es = explain_packets(a.packets)
    assert [e.cause for e in es] == [AMBIGUOUS, AMBIGUOUS] and causes(es[0])[0] == "lb-idle-reset"


# --- conntrack-invalid-unnat -----------------------------------------------------------------


def _natted(point: str, jump: int) -> tuple[Wire, Packet]:
    """C talks to the service address 10.0.0.200:80, DNATed to S; S's first data segment lies `jump` bytes
    beyond its sequence space. Returns the wire as `point` ("c" or "s") captured it and S's segment."""
    front = Wire(s=("10.0.0.200", 80), point=point)
    back = Wire(point=point, packets=front.packets)
    w = front if point == "c" else back
    w.handshake()
    seg = w.send("s", "P.", 100, seq=w.nxt["s"] + jump) if point == "s" else None
    if point == "c":   # the segment comes from S's real address, with the NATed connection's numbers
        seg = back.send("s", "P.", 100, seq=front.nxt["s"] + jump, ack=front.nxt["c"], dt=0.1)
        back.send("c", "R", seq=seg.ack)
    else:
        w.send("c", "R", seq=seg.ack)
    assert seg is not None
    return w, seg


@pytest.mark.parametrize("point", ["c", "s"])
def test_an_out_of_window_segment_answered_by_rst_escaped_reverse_nat(point: str) -> None:
    w, seg = _natted(point, jump=1 << 31)
    e = explain_packets(w.packets)[-1]
    assert e.cause == "conntrack-invalid-unnat" and "INVALID" in e.sentence
    assert seg in [ev.packet for ev in e.evidence]


def test_an_in_window_segment_answered_by_rst_is_no_nat_escape() -> None:
    w, _ = _natted("s", jump=1000)
    assert "conntrack-invalid-unnat" not in [e.cause for e in w.explain()]


def test_a_stray_whose_numbers_fit_no_connection_is_no_nat_escape() -> None:
    w = Wire(s=("10.0.0.200", 80), point="c").handshake()
    stray = Wire(point="c", packets=w.packets, isn_s=5, isn_c=9)
    seg = stray.send("s", "P.", 100, ack=123456, dt=0.1)
    stray.send("c", "R", seq=seg.ack)
    assert "conntrack-invalid-unnat" not in [e.cause for e in explain_packets(w.packets)]


@pytest.mark.parametrize("jump", [1 << 31, 1 << 24])
def test_a_segment_above_the_window_answered_by_a_duplicate_ack_is_conntrack_liberal(jump: int) -> None:
    w = Wire(point="c").handshake()
    expected = w.nxt["s"]
    seg = w.send("s", "P.", 100, seq=expected + jump)
    dup = w.send("c", ".", ack=expected)                     # acknowledges nothing new
    w.send("s", "P.", 100, dt=0.2)
    w.send("c", ".", ack=expected + 100)
    e = only(w.explain())
    assert e.cause == "conntrack-invalid-liberal" and e.rst_from is None and e.rst_time is None
    assert [ev.packet for ev in e.evidence][1:3] == [seg, dup] and "nothing was reset" in e.sentence


def test_a_segment_below_the_window_or_a_normal_exchange_is_not_reported() -> None:
    below = Wire(point="c").handshake()
    below.send("s", "P.", 100, seq=below.nxt["s"] - (1 << 30))     # conntrack ignores these since Linux 6.0
    below.send("c", ".", ack=below.nxt["s"])
    assert below.explain() == []
    normal = Wire(point="c").handshake()
    for _ in range(3):
        normal.send("s", "P.", 60000)
        normal.send("c", ".")
    assert normal.explain() == []


def test_a_segment_above_the_window_that_draws_no_duplicate_ack_is_not_reported() -> None:
    w = Wire(point="s").handshake()
    w.send("s", "P.", 100, seq=w.nxt["s"] + (1 << 31))      # dropped on the way (INVALID dropped at the NAT)
    w.send("s", "P.", 100, dt=0.2)
    w.send("c", ".")                                            # acknowledges the retransmission: new data
    assert w.explain() == []


# --- data-after-close --------------------------------------------------------------------


def test_data_after_close() -> None:
    w = Wire(point="c").handshake()
    w.send("c", "P.", 4096)
    w.send("s", ".")
    fin = w.send("s", "F.")
    ack = w.send("c", ".")
    data = w.send("c", "P.", 4096, dt=0.5)    # sooner than any FIN_WAIT2 timer can expire
    rst = w.send("s", "R", seq=data.ack)
    e = only(w.explain())
    assert e.cause == "data-after-close" and e.rst_side == "server"
    assert [ev.packet for ev in e.evidence] == [fin, ack, data, rst]
    assert "501.0 ms" in e.sentence
    assert "kept sending (its data came 501.0 ms after the FIN)" in e.sentence   # not "FIN 501 ms earlier" (than what?)


def test_late_data_after_a_fin_may_have_outlived_fin_wait2() -> None:
    w = Wire(point="c").handshake()
    w.send("c", "F.")
    w.send("s", ".")
    data = w.send("s", "P.", 100, dt=2.4)      # the server never closed (CLOSE_WAIT), writes late
    w.send("c", "R", seq=data.ack)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e) == ["data-after-close", "fin-wait2-timeout"]
    assert "2.40 s" in e.candidates[1].why


def test_accept_queue_overflow_with_abort_on_overflow() -> None:
    w = Wire(point="c")
    w.send("c", "S")
    synack = w.send("s", "S.")
    w.send("c", ".")
    again = w.send("s", "S.", seq=synack.seq, dt=1.0)    # the ACK was dropped: queue full
    ack = w.send("c", ".")
    w.send("s", "R", seq=ack.ack)
    e = only(w.explain())
    assert e.cause == "accept-queue-overflow" and e.rst_side == "server"
    assert again in [ev.packet for ev in e.evidence]


def test_accept_queue_overflow_without_abort_the_client_gives_up() -> None:
    w = Wire(point="c")
    w.send("c", "S")
    synack = w.send("s", "S.")
    w.send("c", ".")
    w.send("s", "S.", seq=synack.seq, dt=1.0)
    w.send("c", ".")
    w.send("c", "R.", dt=1.0)
    e = only(w.explain())
    assert e.cause == "accept-queue-overflow" and e.rst_side == "client"


def test_a_bare_rst_after_a_plain_handshake_is_not_called_overflow() -> None:
    w = Wire(point="c").handshake()
    seg = w.send("c", "P.", 10)
    w.send("s", "R", seq=seg.ack)
    assert only(w.explain()).cause != "accept-queue-overflow"


# --- keepalive-timeout ---------------------------------------------------------------------


def _idle_connection(point: str | None = "c") -> Wire:
    w = Wire(point=point).handshake()
    w.send("c", "P.", 10)
    w.send("s", ".")
    return w


def test_keepalive_timeout() -> None:
    w = _idle_connection()
    probes = [w.send("c", ".", seq=w.nxt["c"] - 1, dt=dt) for dt in (1.02, 1.02)]
    w.send("c", "R.", dt=1.02)
    e = only(w.explain())
    assert e.cause == "keepalive-timeout" and e.rst_side == "client"
    assert [ev.packet for ev in e.evidence][1:3] == probes
    assert "2 keepalive probe(s), 1.02 s apart" in e.candidates[0].why


def test_keepalive_with_one_byte_probes() -> None:
    w = _idle_connection()
    for _ in range(3):
        w.send("c", ".", 1, seq=w.nxt["c"] - 1, dt=75)
    w.send("c", "R.", dt=75)
    assert only(w.explain()).cause == "keepalive-timeout"


def test_probes_into_a_zero_window_are_not_keepalive() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 10)
    w.send("s", ".", window=0)
    for _ in range(2):
        w.send("c", ".", seq=w.nxt["c"] - 1, dt=1)
    w.send("c", "R.", dt=1)
    assert only(w.explain()).cause != "keepalive-timeout"


def test_keepalive_seen_through_a_router_is_not_mistaken_for_retransmissions() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 10, direction="in")
    w.send("s", ".", direction="in")
    for _ in range(2):
        p = w.send("c", ".", seq=w.nxt["c"] - 1, dt=1.0, direction="in")
        w.packets.append(Packet(**{**{f: getattr(p, f) for f in Packet._fields}, "index": len(w.packets),
                                   "time": p.time + 0.00003, "direction": "out"}))
    w.send("c", "R.", dt=1.0, direction="in")
    e = only(w.explain())
    assert e.cause == "keepalive-timeout" and sum("probe" in ev.why for ev in e.evidence) == 2


# --- retransmission-timeout ----------------------------------------------------------------


def test_retransmission_timeout_then_the_peers_segment_is_answered_with_rst() -> None:
    w = Wire(point="c").handshake()
    data = w.send("c", "P.", 100)
    for dt in (0.21, 0.21, 0.44, 0.83):
        w.send("c", "P.", 100, seq=data.seq, dt=dt)
    late = w.send("s", "P.", 100, dt=1.3, ack=data.seq)    # it never got the client's data
    w.send("c", "R", seq=late.ack, ack=0)
    e = only(w.explain())
    assert e.cause == "retransmission-timeout" and e.rst_side == "client"
    assert "growing" in e.sentence and "5 times" in e.candidates[0].why


def test_retransmissions_then_a_reset_on_the_timers_beat_is_retransmission_abort() -> None:
    """Linux gives up silently; a RST+ACK when the next retransmission was due is the sender's TCP giving up
    (the Windows behaviour)."""
    w = Wire().handshake()
    data = w.send("s", "P.", 500)
    for dt in (0.3, 0.6, 1.2):
        w.send("s", "P.", 500, seq=data.seq, dt=dt)
    w.send("s", "R.", dt=2.4)
    e = only(w.explain())
    assert e.cause == "retransmission-abort" and e.rst_side == "server"
    assert "3 times" in e.sentence and "Linux gives up silently" in e.sentence


def test_retransmissions_then_a_reset_before_the_next_was_due_may_be_the_application() -> None:
    w = Wire().handshake()
    data = w.send("s", "P.", 500)
    for dt in (0.3, 0.6, 1.2):
        w.send("s", "P.", 500, seq=data.seq, dt=dt)
    w.send("s", "R.", dt=0.1)              # the application's own timeout, in the middle of the backoff
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and causes(e)[0] == "retransmission-abort" and "linger-abort" in causes(e)
    assert "before the next was due" in e.candidates[0].why


def test_the_wild_windows_server_that_gave_up_after_a_minute_of_retransmissions() -> None:
    """w16: a server retransmits two segments 14 times over 65 s (the RTO capped at 15.56 s) and resets one
    RTO after the last: not an abortive close, and not Linux's silent give-up."""
    first = explain_file(str(WILD / "w16.pcap")).explanations[0]
    assert first.cause == "retransmission-abort" and first.rst_side == "server"
    assert "14 times" in first.sentence and first.evidence[-1].packet.is_rst


def test_two_retransmissions_are_too_few_to_call_it_giving_up() -> None:
    w = Wire().handshake()
    data = w.send("s", "P.", 500)
    w.send("s", "P.", 500, seq=data.seq, dt=0.3)
    w.send("s", "R.", dt=0.6)
    assert "retransmission-abort" not in causes(only(w.explain()))


def test_an_acknowledged_retransmission_is_not_a_timeout() -> None:
    w = Wire().handshake()
    data = w.send("c", "P.", 100)
    w.send("c", "P.", 100, seq=data.seq, dt=0.2)
    w.send("s", ".")
    w.send("c", "R.")
    assert causes(only(w.explain())) == ["linger-abort", "socket-destroy"]


# --- peer-restart and its look-alikes ----------------------------------------------------------


def _restart(point: str | None = None) -> tuple[Wire, Packet]:
    w = Wire(point=point).handshake()
    w.send("c", "P.", 100)
    w.send("s", ".")
    return w, w.send("c", "P.", 100, dt=30)


def test_bare_rst_for_a_forgotten_connection_is_ambiguous_from_the_client() -> None:
    w, seg = _restart(point="c")
    w.send("s", "R", seq=seg.ack, ack=0)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS
    assert causes(e) == ["peer-restart", "retransmission-timeout", "firewall-reset"]
    assert ("it restarted, or it gave up on the connection earlier, or a firewall on the way forged the RST; "
            in e.sentence)


def _can_be_candidate(cause: Cause) -> bool:
    """Whether the cause module builds a Finding not marked decided=True (a candidate when others fit)."""
    calls = [n for n in ast.walk(ast.parse(Path(source_of(cast(ModuleType, cause))).read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Finding"]
    return any(not any(k.arg == "decided" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in c.keywords) for c in calls)


def test_every_possible_no_socket_candidate_has_its_clause_in_its_module() -> None:
    # the no-socket ambiguous sentence names each candidate by its module's AMBIGUOUS_AS clause
    listed = {cause for cause, _ in CLAUSES["no-socket"]}
    candidates = {c.ID for c in BY_FAMILY["no-socket"] if _can_be_candidate(c)}
    assert candidates >= {"data-after-close", "peer-restart", "firewall-reset"}    # the AST reading sees them
    assert candidates - listed == set()


def test_a_clause_is_for_one_of_its_causes_families_at_a_place_of_its_own() -> None:
    for c in REGISTRY:
        for family in getattr(c, "AMBIGUOUS_AS", {}):
            assert family in c.FAMILIES, (c.ID, family)
    for family, clauses in CLAUSES.items():
        places = [getattr(c, "AMBIGUOUS_AS", {})[family][0] for c in REGISTRY if family in getattr(c, "AMBIGUOUS_AS", {})]
        assert len(set(places)) == len(places) == len(clauses), family


def test_peer_restart_when_a_new_connection_was_refused_meanwhile() -> None:
    w = Wire(point="c").handshake()
    w.send("c", "P.", 100)
    w.send("s", ".")
    w2 = Wire(c=("10.0.0.10", 40001), isn_c=9, point="c", t=w.t + 20, packets=w.packets)
    syn = w2.send("c", "S")
    refusal = w2.send("s", "R.", seq=0, ack=syn.seq + 1)
    w.t = w2.t
    seg = w.send("c", "P.", 100, dt=0.5)
    w.send("s", "R", seq=seg.ack, ack=0)
    restart = next(e for e in explain_packets(w.packets) if e.client == "10.0.0.10:40000")
    assert restart.cause == "peer-restart"
    assert refusal in [ev.packet for ev in restart.evidence]


def test_peer_restart_seen_on_the_restarted_host() -> None:
    w, seg = _restart(point="s")
    w.send("s", "R", seq=seg.ack, ack=0)
    e = only(w.explain())
    assert e.cause == "peer-restart" and "10.0.0.70 itself" in e.candidates[0].why


def test_a_long_idle_before_the_reset_hints_at_a_middlebox_timeout() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 10)
    w.send("s", ".")
    seg = w.send("c", "P.", 10, dt=400)
    w.send("s", "R", seq=seg.ack, ack=0)
    e = only(w.explain())
    firewall = next(c for c in e.candidates if c.cause == "firewall-reset")
    assert "idle" in firewall.why


# --- silent drop and what is left alone ------------------------------------------------------


def test_silent_drop() -> None:
    w = Wire(point="c")
    syn = w.send("c", "S")
    for dt in (1.0, 1.0, 1.0):
        w.send("c", "S", seq=syn.seq, dt=dt)
    e = only(w.explain())
    assert e.cause == SILENT_DROP and e.rst_from is None and e.resets == 0
    assert len(e.evidence) == 4 and "4 times over 3.00 s" in e.sentence


def test_silent_drop_numbers_the_retransmissions_it_lists() -> None:
    """Eleven SYNs, backing off from 1 s: the evidence lists the first two and the last six, so each says which
    retransmission it is and when since the first SYN (w04's listed "1.00 s later" after an unlisted SYN)."""
    w = Wire(point="c")
    syn = w.send("c", "S")
    for dt in (1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
        w.send("c", "S", seq=syn.seq, dt=dt)
    why = [ev.why for ev in only(w.explain()).evidence]
    assert len(why) == 8 and why[:3] == ["the SYN", "retransmission 1, 1.00 s after the first SYN (1.00 s after the one before)",
                                         "retransmission 5, 5.00 s after the first SYN (1.00 s after the one before)"]
    assert why[-1] == "retransmission 10, 67.00 s after the first SYN (32.00 s after the one before)"


def test_silent_drop_seen_at_the_destination_says_its_firewall_dropped_it() -> None:
    w = Wire(point="s")
    syn = w.send("c", "S")
    w.send("c", "S", seq=syn.seq, dt=1.0)
    assert "reached this capture host" in only(w.explain()).sentence


def test_a_syn_at_the_end_of_the_capture_is_not_called_dropped() -> None:
    w = Wire()
    w.send("c", "S")
    assert w.explain() == []


def test_healthy_connections_are_not_reported() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 10)
    w.send("s", "P.", 10)
    w.send("c", "F.")
    w.send("s", "F.")
    w.send("c", ".")
    assert w.explain() == []


def test_a_capture_holding_only_the_rst() -> None:
    w = Wire()
    w.send("s", "R", seq=5)
    e = only(w.explain())
    assert e.cause == UNKNOWN and "only the RST" in e.sentence and e.client is None


def test_a_reused_four_tuple_is_two_connections() -> None:
    w = Wire().handshake()
    w.send("c", "F.")
    w.send("s", "F.")
    w.send("c", ".")
    w2 = Wire(isn_c=2_000_000, t=w.t + 5, packets=w.packets)
    syn = w2.send("c", "S")
    w2.send("s", "R.", seq=0, ack=syn.seq + 1)
    e = only(w.explain())
    assert e.cause == AMBIGUOUS and e.packets == 2


def test_ipv6_endpoints() -> None:
    w = Wire(c=("fd00::10", 40000), s=("fd00::70", 7))
    syn = w.send("c", "S")
    w.send("s", "R.", seq=0, ack=syn.seq + 1)
    e = only(w.explain())
    assert e.rst_from == "[fd00::70]:7" and e.endpoints == ("[fd00::10]:40000", "[fd00::70]:7")
    assert "fd00::70.7 > fd00::10.40000: Flags [R.]" in e.evidence[-1].line


def test_sequence_numbers_wrap() -> None:
    w = Wire(isn_s=0xFFFFFFF0).handshake()     # the server's data crosses 2**32
    w.send("s", "P.", 100)
    w.send("c", ".")
    w.send("c", "R.")
    e = only(w.explain())
    assert causes(e) == ["unread-data-close", "linger-abort", "socket-destroy"] and "100 bytes" in e.candidates[0].why


# --- the JSON records -----------------------------------------------------------------------


def test_json_record_shape() -> None:
    w = Wire(point="c")
    syn = w.send("c", "S")
    w.send("s", "R.", seq=0, ack=syn.seq + 1)
    rec = only(w.explain()).as_dict(t0=w.packets[0].time)
    assert {"cause", "candidates", "rst_from", "evidence", "explanation", "client", "server"} <= rec.keys()
    assert rec["candidates"][0].keys() == {"cause", "why", "tell"}
    assert rec["evidence"][0]["line"] == format_packet(syn, t0=syn.time)
    assert rec["evidence"][0]["time"] == 0.0
    json.dumps(rec)


# --- real captures -------------------------------------------------------------------------

# an abortive RST from a side that never sent a byte
ABORTIVE = ["unread-data-close", "listener-close-backlog", "linger-abort", "socket-destroy"]

REAL = {  # fixture -> (cause, candidates when ambiguous) for each explained connection, in time order
    "closed-port_client": [(AMBIGUOUS, ["closed-port", "firewall-reset"])],
    "closed-port_server": [(AMBIGUOUS, ["closed-port", "firewall-reset"])],
    "connect-timeout_client": [("connect-timeout", [])],
    "connect-timeout_server": [("connect-timeout", [])],
    "sndtimeo-connect_client": [("connect-timeout", [])],
    "data-after-close_client": [("data-after-close", [])],
    "data-after-close_server": [("data-after-close", [])],
    "reset-vs-broken-pipe_client": [("data-after-close", [])] + 2 * [
        (AMBIGUOUS, ["unread-data-close", "listener-close-backlog", "linger-abort", "socket-destroy"])],
    "unread-data-close_client": [(AMBIGUOUS, ABORTIVE)],
    "unread-data-close_server": [(AMBIGUOUS, ABORTIVE)],
    "unread-response_client": [(AMBIGUOUS, ["unread-data-close", "linger-abort", "socket-destroy"])],
    "linger-abort_client": [(AMBIGUOUS, ["listener-close-backlog", "linger-abort", "socket-destroy"])],
    "linger-abort_server": [(AMBIGUOUS, ["listener-close-backlog", "linger-abort", "socket-destroy"])],
    "linger-abort-after-exchange_client": [(AMBIGUOUS, ["unread-data-close", "linger-abort", "socket-destroy"])],
    "listener-close-backlog_client": [(AMBIGUOUS, ABORTIVE)],
    "listener-close-backlog_server": [(AMBIGUOUS, ABORTIVE)],
    "listener-close-backlog-two-queued_client": 2 * [("listener-close-backlog", [])],
    "keepalive-timeout_client": [("keepalive-timeout", [])],
    "keepalive-timeout_router": [("keepalive-timeout", [])],
    "keepalive-timeout_server": [],               # the prober's RST never got through the blackhole
    "retransmission-timeout_client": [("retransmission-timeout", [])],
    # the client's RST carries its own TTL (63, as its other packets): no firewall forged it, but
    # the server cannot see whether the client restarted or gave up after retransmissions
    "retransmission-timeout_server": [(AMBIGUOUS, ["peer-restart", "retransmission-timeout"])],
    # the refusal of the new SYN arrives with the server's TTL (63): the server's kernel sent it
    "peer-restart_client": [("peer-restart", []), ("closed-port", [])],
    "peer-restart_server": [("peer-restart", []), ("closed-port", [])],
    "firewall-reset_client": [(AMBIGUOUS, ["closed-port", "firewall-reset"])],
    "firewall-reset_router": [(AMBIGUOUS, ["closed-port", "firewall-reset"])],
    "firewall-reset_server": [],                  # the SYN never reached the server
    # the RST arrives with TTL 64, the server's packets with 63: the router forged it
    "firewall-reset-established_client": [("firewall-reset", [])],
    "firewall-reset-established_router": [("firewall-reset", [])],
    # ss -K on the server: tcp_abort's RST is tcp_disconnect's, so the wire keeps the abortive closes beside it
    "socket-destroy_client": [(AMBIGUOUS, ["listener-close-backlog", "linger-abort", "socket-destroy"])],
    "socket-destroy_server": [(AMBIGUOUS, ["listener-close-backlog", "linger-abort", "socket-destroy"])],
    # each end sees one leg reset after 2 s idle; the proxy's own capture sees both legs reset at once
    "lb-idle-reset_client": [(AMBIGUOUS, ["lb-idle-reset", "linger-abort", "unread-data-close", "socket-destroy"])],
    "lb-idle-reset_router": 2 * [("lb-idle-reset", [])],
    "lb-idle-reset_server": [(AMBIGUOUS, ["lb-idle-reset", "unread-data-close", "linger-abort", "socket-destroy"])],
    # the stray from the backend's real address at the client (its ack continues the NATed connection), the
    # out-of-window segment answered by RST at the server and the router, and the client's next write reset
    "conntrack-invalid-unnat_client": 2 * [("conntrack-invalid-unnat", [])],
    "conntrack-invalid-unnat_router": 2 * [("conntrack-invalid-unnat", [])],
    "conntrack-invalid-unnat_server": [("conntrack-invalid-unnat", [])],
    # synthetic (tests/fixtures/make_explain_fixtures.py): a Windows server gives up after 5 retransmissions
    "retransmission-abort_server": [("retransmission-abort", [])],
    # no RST: the segment 2^31 beyond the window kept its NAT (be_liberal) and drew a duplicate ACK, at the
    # client, at the server, and on both sides of the router's NAT
    "conntrack-invalid-liberal_client": [("conntrack-invalid-liberal", [])],
    "conntrack-invalid-liberal_router": 2 * [("conntrack-invalid-liberal", [])],
    "conntrack-invalid-liberal_server": [("conntrack-invalid-liberal", [])],
    "silent-drop_client": [(SILENT_DROP, [])],
    "silent-drop_winhost": [(SILENT_DROP, [])],
}


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.pcap")} == set(REAL)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_capture(name: str) -> None:
    result = explain_file(str(FIXTURES / f"{name}.pcap"))
    got = [(e.cause, causes(e) if e.cause == AMBIGUOUS else []) for e in result.explanations]
    assert got == REAL[name]
    for e in result.explanations:
        assert e.sentence and e.evidence
        assert e.cause in (*CAUSES, AMBIGUOUS, SILENT_DROP) and set(causes(e)) <= {*CAUSES, SILENT_DROP}
        assert (e.rst_from is None) == (e.cause in (SILENT_DROP, "conntrack-invalid-liberal"))


def test_ttl_tells_the_routers_forged_rst_from_the_servers_own() -> None:
    (e,) = explain_file(str(FIXTURES / "firewall-reset-established_client.pcap")).explanations
    assert e.cause == "firewall-reset"
    assert "TTL 64" in e.sentence and "TTL 63" in e.sentence and e.forged


def test_an_endpoints_own_rst_is_not_proof_of_a_restart() -> None:
    # the server's capture: the client gave up after retransmissions the server never saw, then
    # answered the server's data with a bare RST carrying the client's own TTL
    (e,) = explain_file(str(FIXTURES / "retransmission-timeout_server.pcap")).explanations
    assert e.cause == AMBIGUOUS and causes(e) == ["peer-restart", "retransmission-timeout"]
    assert not e.forged and any("TTL (63) matches" in n for n in e.notes)


def test_naming_the_capture_host_decides_the_lab_captures() -> None:
    router = read_capture(FIXTURES / "firewall-reset_router.pcap")
    server_addr = router.packets[-1].src
    router_addr = server_addr.rsplit(".", 1)[0] + ".200"
    (e,) = explain_capture(router, [router_addr]).explanations
    assert e.cause == "firewall-reset"
    server = read_capture(FIXTURES / "closed-port_server.pcap")
    (e,) = explain_capture(server, [server.packets[-1].src]).explanations
    assert e.cause == "closed-port"


def test_the_restarted_hosts_own_capture_shows_it_sent_the_rst() -> None:
    result = explain_file(str(FIXTURES / "peer-restart_server.pcap"))
    restart = result.explanations[0]
    assert "refused in between" in restart.candidates[0].why
    assert "itself" in restart.candidates[0].why


# --- the command line ------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


def test_cli_explain_prints_cause_sentence_and_evidence() -> None:
    proc = cli("explain", str(FIXTURES / "connect-timeout_client.pcap"), str(FIXTURES / "silent-drop_client.pcap"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "connect-timeout" in out and "silent-drop" in out
    assert "Flags [R], seq 1, win 0, length 0" in out      # an evidence line, brackets intact
    assert "gave up connecting" in out


def test_cli_json_is_a_list_of_connections() -> None:
    proc = cli("explain", "--json", str(FIXTURES / "peer-restart_client.pcap"),
               str(FIXTURES / "closed-port_client.pcap"))
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert isinstance(records, list) and len(records) == 3
    for r in records:
        assert {"file", "cause", "candidates", "rst_from", "evidence", "capture_truncated"} <= r.keys()
        assert all({"line", "why", "time", "packet"} <= ev.keys() for ev in r["evidence"])
    assert [r["cause"] for r in records] == ["peer-restart", "closed-port", AMBIGUOUS]
    assert records[0]["rst_from"].endswith(":80") and records[0]["file"].endswith("peer-restart_client.pcap")


def test_cli_at_names_the_capture_host() -> None:
    proc = cli("explain", "--json", "--at", "10.213.85.200", str(FIXTURES / "firewall-reset_router.pcap"))
    assert [r["cause"] for r in json.loads(proc.stdout)] == ["firewall-reset"]


def test_a_truncated_capture_is_explained_up_to_the_cut(tmp_path: Path) -> None:
    data = (FIXTURES / "silent-drop_client.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-30])                 # the last SYN's record loses its end
    result = explain_file(str(cut))
    assert result.truncated and [e.cause for e in result.explanations] == [SILENT_DROP]
    assert len(result.explanations[0].evidence) == 3
    human = cli("explain", str(cut))
    assert human.returncode == 0 and "truncated" in human.stdout
    machine = cli("explain", "--json", str(cut))
    assert machine.returncode == 0 and "truncated" in machine.stderr
    assert all(r["capture_truncated"] for r in json.loads(machine.stdout))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_file_that_is_not_a_capture_is_one_line_and_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    assert_one_line_error(cli("explain", str(text)), "not a pcap or pcapng file")


def test_one_bad_file_among_good_ones_prints_nothing_else(tmp_path: Path) -> None:
    assert_one_line_error(cli("explain", str(FIXTURES / "closed-port_client.pcap"), str(tmp_path / "missing.pcap")),
                          "no such file")


def test_a_bad_capture_host_address_is_bad_input() -> None:
    assert_one_line_error(cli("explain", "--at", "server", str(FIXTURES / "closed-port_client.pcap")), "--at")


# --- Zeek's conn_state and history (worked by hand from base/protocols/conn/main.zeek) -------


def zeek(w: Wire) -> tuple[str, str]:
    e = only(w.explain())
    return e.conn_state, e.history


def test_zeek_rejected_syn_is_rej_sr() -> None:
    w = Wire()
    syn = w.send("c", "S")
    w.send("s", "R.", seq=0, ack=syn.seq + 1)
    assert zeek(w) == ("REJ", "Sr")      # orig SYN_SENT, resp RESET: REJ


def test_zeek_unanswered_syns_are_s0_with_one_s() -> None:
    w = Wire()
    syn = w.send("c", "S")
    w.send("c", "S", seq=syn.seq, dt=1.0)   # same sequence number: not recorded again
    w.send("c", "S", seq=syn.seq, dt=2.0)
    assert zeek(w) == ("S0", "S")


def test_zeek_data_then_responder_reset_is_rstr() -> None:
    w = Wire().handshake()                 # S h A
    w.send("c", "P.", 100)                 # D
    w.send("c", "P.", 100)                 # D once only
    w.send("s", ".")                       # a
    w.send("s", "R.")                      # r
    assert zeek(w) == ("RSTR", "ShADar")


def test_zeek_originator_abort_after_retransmissions_is_rsto_with_t() -> None:
    w = Wire().handshake()
    seg = w.send("c", "P.", 100)           # D
    for _ in range(3):
        w.send("c", "P.", 100, seq=seg.seq, dt=0.2)   # T recorded on the first retransmission only
    w.send("c", "R.", seq=seg.seq + 100)  # R
    assert zeek(w) == ("RSTO", "ShADTR")


def test_zeek_fin_then_data_then_bare_rst() -> None:
    w = Wire().handshake()
    w.send("s", "F.")                      # f
    w.send("c", ".")                       # A already recorded
    data = w.send("c", "P.", 50)           # D
    w.send("s", "R", seq=data.ack)         # r
    assert zeek(w) == ("RSTR", "ShAfDr")


def test_zeek_synack_never_acknowledged_is_s1() -> None:
    w = Wire()
    syn = w.send("c", "S")
    synack = w.send("s", "S.", ack=syn.seq + 1)
    w.send("s", "S.", seq=synack.seq, ack=syn.seq + 1, dt=3.0)   # retransmitted: h once
    # UpdateInactiveState: the responder's SYN/ACK sets both endpoints ESTABLISHED, no ACK awaited
    assert zeek(w) == ("S1", "Sh")


def test_zeek_responder_reset_after_its_synack_is_rstr_not_rej() -> None:
    w = Wire()
    syn = w.send("c", "S")
    synack = w.send("s", "S.", ack=syn.seq + 1)
    w.send("s", "R.", seq=synack.seq + 1, ack=syn.seq + 1)
    assert zeek(w) == ("RSTR", "Shr")      # the originator is ESTABLISHED, not SYN_SENT: not REJ


def test_zeek_syn_then_rst_without_answer_is_rstos0() -> None:
    w = Wire()
    syn = w.send("c", "S")
    w.send("c", "R", seq=syn.seq + 1)
    assert zeek(w) == ("RSTOS0", "SR")    # matches /^?S[^HAFGIQ]*R.*/, responder inactive


def test_zeek_responder_seen_first_is_flipped() -> None:
    w = Wire()
    w.send("s", "S.", ack=1_000_001)       # the SYN/ACK without its SYN: ^, originator = its receiver
    w.send("s", "R", seq=4_294_967_001)
    assert zeek(w) == ("RSTRH", "^hr")     # originator never active: RSTRH


# Zeek's ends for a connection whose opening the capture lacks (TCPAnalyzer::WantConnection): the first
# packet's sender originates unless its source port is a likely server port and its destination port is not,
# or both are, the packet is no SYN/ACK and the source port is the lower. A flipped history starts with `^`.


def test_zeek_midstream_from_the_server_port_is_flipped_to_the_client() -> None:
    w = Wire()                              # c 10.0.0.10:40000, s 10.0.0.70:80; the capture starts mid-connection
    w.send("s", "P.", 100)                  # 80 likely, 40000 not: flipped, the originator is c; d
    w.send("c", ".")                        # A: the originator goes PARTIAL
    w.send("c", "R.")                       # R
    e = only(w.explain())
    # the responder PARTIAL (inactive), the originator RESET, no S in the history: OTH
    assert (e.conn_state, e.history) == ("OTH", "^dAR")
    assert e.endpoints == ("10.0.0.10:40000", "10.0.0.70:80") and e.client is None


def test_without_a_handshake_a_likely_server_port_names_the_rsts_side() -> None:
    w = Wire()                              # c 10.0.0.10:40000, s 10.0.0.70:80, the capture starts mid-connection
    w.send("s", "P.", 100)
    w.send("c", "R.")
    e = only(w.explain())
    assert e.client is None and e.rst_side == "client"     # 80 is a likely server port, 40000 is not
    w = Wire(c=("10.0.0.10", 40000), s=("10.0.0.70", 9000))
    w.send("s", "P.", 100)
    w.send("c", "R.")
    assert only(w.explain()).rst_side is None             # neither port tells
    w = Wire(c=("10.0.0.10", 8080), s=("10.0.0.70", 443))
    w.send("s", "P.", 100)
    w.send("c", "R.")
    assert only(w.explain()).rst_side is None             # both are likely server ports
    found = explain_file(str(WILD_W18)).explanations
    assert [(e.rst_from, e.rst_side) for e in found[:2]] == [("192.168.2.16:1576", "client"),
                                                              ("75.126.203.78:80", "server")]


def test_zeek_midstream_from_the_client_port_keeps_its_sender() -> None:
    w = Wire()
    w.send("c", "P.", 100)                  # 40000 is no likely server port: not flipped; D
    w.send("s", ".")                        # a
    w.send("s", "R.")                       # r: the responder RESET, the originator PARTIAL: RSTRH
    e = only(w.explain())
    assert (e.conn_state, e.history) == ("RSTRH", "Dar")
    assert e.endpoints == ("10.0.0.10:40000", "10.0.0.70:80")


def test_zeek_midstream_with_both_ports_likely_flips_to_the_higher_port() -> None:
    c, s = ("10.0.0.10", 8080), ("10.0.0.70", 443)
    w = Wire(c=c, s=s)
    w.send("s", "P.", 100)                  # 443 -> 8080, both likely, no SYN/ACK, 443 < 8080: flipped
    w.send("c", "R.")
    e = only(w.explain())
    assert (e.conn_state, e.history) == ("OTH", "^dR")
    assert e.endpoints == ("10.0.0.10:8080", "10.0.0.70:443")
    w = Wire(c=c, s=s)
    w.send("c", "P.", 100)                  # 8080 -> 443: the source port is the higher, not flipped
    w.send("s", "R.")
    e = only(w.explain())
    assert (e.conn_state, e.history) == ("RSTRH", "Dr")
    assert e.endpoints == ("10.0.0.10:8080", "10.0.0.70:443")


def test_zeek_synack_first_from_a_likely_port_is_flipped_and_the_ack_establishes() -> None:
    w = Wire()
    w.send("s", "S.", ack=1_000_001)        # 80 -> 40000: flipped; h, the responder ESTABLISHED
    w.send("c", ".")                        # A: an ACK after the peer's SYN/ACK establishes the originator
    w.send("c", "P.", 100)                  # D
    w.send("s", "R.")                       # r: the responder RESET, the originator ESTABLISHED: RSTR
    assert zeek_conn(w.packets) == ("RSTR", "^hADr")


def test_zeek_synack_first_with_both_ports_likely_is_not_flipped() -> None:
    w = Wire(c=("10.0.0.10", 8080), s=("10.0.0.70", 443))
    w.send("s", "S.", ack=1_000_001)        # both likely, but a SYN/ACK: not flipped; H, SYN_ACK_SENT
    w.send("c", "R", seq=1_000_001)         # r: the responder RESET, the originator SYN_ACK_SENT: REJ
    assert zeek_conn(w.packets) == ("REJ", "Hr")


def test_zeek_synack_first_from_an_unlikely_port_is_not_flipped() -> None:
    w = Wire(s=("10.0.0.70", 9000))
    w.send("s", "S.", ack=1_000_001)        # 9000 is no likely server port: not flipped; H
    w.send("c", "R", seq=1_000_001)
    assert zeek_conn(w.packets) == ("REJ", "Hr")


def test_zeek_synack_then_its_syn_reverses_the_roles() -> None:
    w = Wire(s=("10.0.0.70", 9000))
    w.send("s", "S.", ack=1_000_001)        # H: the originator is s, SYN_ACK_SENT
    w.send("c", "S", seq=1_000_000)         # s, then the SYN/SYN-ACK reversal: ^, both ESTABLISHED
    w.send("c", ".")                        # A: c now originates
    w.send("c", "R.")                       # R: the originator RESET, the responder ESTABLISHED: RSTO
    assert zeek_conn(w.packets) == ("RSTO", "Hs^AR")


def test_zeek_responders_bare_ack_of_a_syn_leaves_it_inactive() -> None:
    w = Wire()
    w.send("c", "S")                        # S
    w.send("s", ".", ack=12345)             # a: acked before any SYN/ACK (a challenge ACK): still INACTIVE
    assert zeek_conn(w.packets) == ("S0", "Sa")


def test_zeek_w18_connections_are_the_clients() -> None:
    """w18's first two connections start with the web server's FIN (75.126.*:80 > 192.168.2.16:1576/1577)."""
    found = explain_file(str(WILD_W18)).explanations
    assert [(e.endpoints, e.history) for e in found[:2]] == [
        (("192.168.2.16:1576", "75.126.130.163:80"), "^fARr"),
        (("192.168.2.16:1577", "75.126.203.78:80"), "^fAFar"),
    ]
    # f: the server CLOSED; A: the client PARTIAL; R: the client RESET; r: the server RESET. Both RESET with
    # sizes 0: REJ, by main.zeek's rule (no SYN needed: `os == TCP_RESET && both sizes 0`)
    assert found[0].conn_state == "REJ"
    lines = [(i.client, i.server, i.ports()) for i in incidents(found)]
    assert lines[:2] == [("192.168.2.16", "75.126.130.163", (80, 80)), ("192.168.2.16", "75.126.203.78", (80, 80))]


def test_zeek_rst_after_both_fins_leaves_the_connection_closed() -> None:
    w = Wire().handshake()                 # S h A
    w.send("c", "F.")                      # F: the originator CLOSED
    w.send("s", "F.")                      # f: the responder CLOSED
    w.send("c", ".")                       # A already recorded
    w.send("s", "R.")                      # r: UpdateClosedState, the peer CLOSED too: the state stays CLOSED
    assert zeek_conn(w.packets) == ("SF", "ShAFfr")


def test_zeek_fin_then_rst_answered_by_a_fin_is_a_close() -> None:
    w = Wire().handshake()
    w.send("c", "F.")                      # F: the originator CLOSED
    w.send("c", "R.")                      # R: RESET (its peer still ESTABLISHED), entered from CLOSED
    w.send("s", "F.")                      # f: UpdateEstablishedState turns the peer's FIN then RST back to CLOSED
    assert zeek_conn(w.packets) == ("SF", "ShAFRf")


def test_zeek_w18_server_rst_after_both_fins_is_sf() -> None:
    """w18's second connection: ^ f A F a r; the server's RST comes after both FINs: SF, as Zeek has it."""
    assert explain_file(str(WILD_W18)).explanations[1].conn_state == "SF"


def test_zeek_on_the_catalogue_captures() -> None:
    expected = {
        "closed-port_client": [("REJ", "Sr")],
        "connect-timeout_client": [("RSTO", "ShR")],
        "data-after-close_client": [("RSTR", "ShADafr")],
        "retransmission-timeout_client": [("RSTO", "ShADTdR")],
        "silent-drop_client": [("S0", "S")],
        "reset-vs-broken-pipe_client": [("RSTR", "ShAfDr"), ("RSTR", "ShADar"), ("RSTR", "ShADar")],
        # the client's connection through the NAT box, reset by the backend's stray (r); the stray itself: its
        # first packet from port 8000 (likely) to 55578 (not) is flipped (^), the responder's data (d), the
        # originator's RST (R), the responder never active and no S: OTH
        "conntrack-invalid-unnat_client": [("RSTR", "ShADr"), ("OTH", "^dR")],
        # at the backend: its segment 2^31 beyond its sequence space is a retransmission to Zeek (t) and leaves
        # its size at 0; the client's RST (R), its data after it (D), the backend's RST (r): both RESET with
        # sizes 0: REJ
        "conntrack-invalid-unnat_server": [("REJ", "ShAdtRDr")],
    }
    for name, want in expected.items():
        got = [(e.conn_state, e.history) for e in explain_file(str(FIXTURES / f"{name}.pcap")).explanations]
        assert got == want, name


def test_an_aborts_evidence_shows_the_ack_that_covers_the_last_data() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 10)
    first = w.send("s", "P.", 100)                 # the server's data: 1:101, then 101:201
    last = w.send("s", "P.", 100)
    short = w.send("c", ".", ack=first.seq + 100)  # a delayed ACK: up to 101 only
    full = w.send("c", ".")                        # up to 201
    w.send("c", "R.")
    why = {ev.packet.index: ev.why for ev in only(w.explain()).evidence}
    assert why[last.index] == "the last data from 10.0.0.70:80"
    assert why[full.index] == "10.0.0.10:40000's kernel acknowledges it" and short.index not in why
    w = Wire().handshake()
    w.send("c", "P.", 10)
    w.send("s", "P.", 100)
    w.send("s", "P.", 100)
    short = w.send("c", "F.", ack=w.rcv["c"] - 100)   # the only ACK after it covers the first segment alone
    w.send("c", "R.")
    why = {ev.packet.index: ev.why for ev in only(w.explain()).evidence}
    assert why[short.index] == "10.0.0.10:40000's next ACK covers only up to 101, short of that data's end (201)"


# Zeek's sizes are sequence space (TCP_Endpoint::Size), and its `t` and `w` follow update_last_seq and
# update_window in TCPSessionAdapter::Process. Each expectation below is worked from those functions.


def test_zeek_size_counts_data_the_capture_missed_but_the_peer_acknowledged() -> None:
    w = Wire().handshake()                          # S h A
    w.send("s", ".", ack=1_000_101)                 # a: acknowledges 100 bytes the capture never saw
    w.send("c", "R", seq=1_000_101)                 # R
    w.send("s", "R", seq=4_294_967_001)             # r
    # both RESET; the originator's size is 101 - 1 (its SYN) = 100, not 0: RSTR, not REJ
    assert zeek_conn(w.packets) == ("RSTR", "ShAaRr")


def test_zeek_size_leaves_out_a_segment_far_outside_the_sequence_space() -> None:
    w = Wire().handshake()
    w.send("s", "P.", 100, seq=(4_294_967_001 + 2**31) & 0xFFFFFFFF)   # d, then t: seq_delta is negative
    w.send("c", "R", seq=1_000_001)                 # R
    w.send("s", "R", seq=4_294_967_001)             # r
    # the segment never moved the responder's last_seq: both sizes are 1 - 1 = 0, both RESET: REJ
    assert zeek_conn(w.packets) == ("REJ", "ShAdtRr")


def test_zeek_a_second_rst_keeps_the_fin_before_the_first() -> None:
    w = Wire().handshake()
    w.send("c", "F.")                               # F: CLOSED
    rst = w.send("c", "R")                          # R: RESET, entered from CLOSED
    w.send("s", "P.", 100)                          # d
    w.send("c", "R", seq=rst.seq)                   # the same sequence number: no letter, no state change
    w.send("s", "F.")                               # f: the peer's FIN then RST was a close (prev_state CLOSED)
    assert zeek_conn(w.packets) == ("SF", "ShAFRdf")


def test_zeek_data_on_a_syn_is_a_retransmission_to_zeek() -> None:
    w = Wire()
    w.send("c", "S", 100)                           # S, then T: the SYN's data ends where it began (delta 0)
    w.send("s", "S.", ack=1_000_001)                # h: acknowledges the SYN alone (Fast Open refused)
    w.send("c", "P.", 100, seq=1_000_001)           # D; the second retransmission is counted, not recorded
    assert zeek_conn(w.packets) == ("S1", "SThD")


def test_zeek_zero_windows_on_a_syn_count_after_the_peers_fin_do_not() -> None:
    w = Wire()
    w.send("c", "S", window=0)                      # S, then W: a SYN's zero window counts too
    w.send("s", "S.")                               # h
    w.send("c", ".")                                # A
    w.send("s", "F.")                               # f
    w.send("c", ".", window=0)                      # the peer has closed: no w
    w.send("c", "R.", window=0)                     # R: a RST's window is not looked at
    assert zeek_conn(w.packets) == ("RSTO", "SWhAfR")


def test_zeek_no_retransmission_after_the_senders_rst() -> None:
    w = Wire().handshake()
    seg = w.send("c", "P.", 100)                    # D
    w.send("c", "R.")                               # R
    w.send("c", "P.", 100, seq=seg.seq)             # RESET: its sequence numbers are not trusted, no T
    w.send("s", "R")                                # r
    assert zeek_conn(w.packets) == ("RSTR", "ShADRr")


# --- where a RST came from: IP-level evidence, and what kind of capture it is -------------------


def test_a_rst_with_an_ip_id_behind_its_senders_run_is_forged() -> None:
    w = Wire().handshake()
    for i, who in enumerate("sscs"):
        w.send(who, "P.", 10, ttl=64, ip_id=0x2000 + i if who == "s" else 0x100 + i)
    w.send("s", "R.", ttl=64, ip_id=0x1F00)        # the server's counter was past 0x2003
    e = only(w.explain())
    assert e.cause == "firewall-reset" and "lies behind" in e.forged[0]


def test_rsts_from_two_addresses_continuing_one_ip_id_counter_are_forged() -> None:
    packets: list[Packet] = []
    t = 1000.0
    for k, server in enumerate(("10.0.0.70", "10.0.0.71", "10.0.0.70")):
        w = Wire(c=("10.0.0.10", 40000 + k), s=(server, 80), t=t, isn_c=1000 + k, packets=packets)
        syn = w.send("c", "S", ttl=64)
        w.send("s", "R.", seq=0, ack=syn.seq + 1, ttl=64, ip_id=0x9120 + k)
        t = w.t + 0.1
    es = explain_packets(packets)
    assert [e.cause for e in es] == ["firewall-reset"] * 3
    assert "continues the run of a RST 'from'" in es[1].forged[0]


def test_random_ip_ids_of_genuine_rsts_are_not_a_shared_counter() -> None:
    packets: list[Packet] = []
    for k, ip_id in enumerate((0x1234, 0x9abc, 0x4321)):
        w = Wire(c=("10.0.0.10", 40000 + k), s=(f"10.0.0.{70 + k}", 80), t=1000.0 + k, packets=packets)
        syn = w.send("c", "S")
        w.send("s", "R.", seq=0, ack=syn.seq + 1, ip_id=ip_id)
    assert all(not e.forged for e in explain_packets(packets))


def test_a_scanners_crafted_syns_are_no_ttl_baseline() -> None:
    # one-sided SYN scan with raw-socket TTL 252; the scanner's kernel RST has TTL 61: not forged
    packets: list[Packet] = []
    for port in range(12):
        w = Wire(c=("10.0.0.10", 51406), s=("10.0.0.70", 1000 + port), t=1000.0 + port, isn_c=7 + port,
                 packets=packets)
        syn = w.send("c", "S", ttl=252)
        if port == 5:
            w.send("c", "R", seq=syn.seq + 1, ttl=61)
    es = explain_packets(packets)
    assert es and all(not e.forged for e in es)


def test_a_one_sided_capture_claims_no_silent_drop() -> None:
    packets: list[Packet] = []
    for port in range(12):
        Wire(s=("10.0.0.70", 1000 + port), t=1000.0 + port, isn_c=7 + port, packets=packets).send("c", "S")
    cap = Capture("scan.pcap", 1, tuple(packets), 0, False)
    result = explain_capture(cap)
    assert result.explanations == () and "one-sided" in result.notes[0]


def test_duplicated_frames_of_a_mirror_port_are_folded() -> None:
    w = Wire().handshake()
    p = w.send("c", "P.", 100, ip_id=0x77)
    w.packets.append(p._replace(index=len(w.packets), time=p.time + 0.0001))
    seg = w.send("c", "P.", 10, ip_id=0x78)
    w.send("s", "R", seq=seg.ack)
    e = only(w.explain())
    assert e.packets == 6


def test_an_icmp_error_about_the_syn_is_reported() -> None:
    w = Wire()
    syn = w.send("c", "S")
    w.send("c", "S", seq=syn.seq, dt=1.0)
    err = IcmpError(syn.time + 0.01, "10.0.0.254", "destination unreachable (administratively prohibited)",
                    syn.src, syn.sport, syn.dst, syn.dport)
    result = explain_capture(Capture("x.pcap", 1, tuple(w.packets), 1, False, (err,)))
    (e,) = result.explanations
    assert e.cause == SILENT_DROP and "10.0.0.254 answered it with ICMP" in e.sentence
    assert any("ICMP destination unreachable" in n for n in result.notes)


def test_icmp_errors_about_a_reset_connection_are_one_note_per_sender_and_kind() -> None:
    """ICMP errors quoting a reset connection's segments are noted on its verdict: one note for each sender and
    kind, counted, the first one's time said against the first RST's."""
    w = Wire()
    w.send("c", "S")
    w.send("s", "S.")
    w.send("c", ".")
    w.send("c", "P.", length=100)
    w.send("s", ".")
    rst = w.send("c", "R.", dt=0.5)
    c, s = C, S
    errors = (IcmpError(rst.time - 0.1, "10.0.0.254", "time exceeded", *c, *s),
              IcmpError(rst.time + 0.02, "10.0.0.70", "destination unreachable (host prohibited)", *c, *s),
              IcmpError(rst.time + 0.03, "10.0.0.70", "destination unreachable (host prohibited)", *s, *c))
    (e,) = explain_capture(Capture("x.pcap", 1, tuple(w.packets), 3, False, errors)).explanations
    t = rst.time - w.packets[0].time
    assert [n for n in e.notes if "ICMP" in n] == [
        f"10.0.0.254 sent ICMP time exceeded about 1 of this connection's segments, the first at {t - 0.1:.6f} "
        "(100.0 ms before the first RST): they were dropped there, not delivered",
        f"10.0.0.70 sent ICMP destination unreachable (host prohibited) about 2 of this connection's segments, the "
        f"first at {t + 0.02:.6f} (20.0 ms after the first RST): they were dropped there, not delivered"]


# --- for people: the summary first, incidents grouped (issue 22) --------------------------------


def test_a_scan_is_one_incident_named_in_the_first_lines() -> None:
    proc = cli("explain", str(WILD / "w03.pcapng"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) <= 60
    head = "\n".join(lines[:5])
    assert "silent-drop 1986" in head and "1986 connections 172.16.0.8 > 64.13.134.52" in head
    assert "a port scan against a host that filters" in head
    every = cli("explain", "--all", str(WILD / "w03.pcapng")).stdout
    assert every.count("silent-drop  zeek S0 S") == 1986


def test_a_few_resets_are_each_shown_by_default() -> None:
    result = explain_file(str(WILD / "w06.pcap"))
    out = cli("explain", str(WILD / "w06.pcap")).stdout
    assert len(result.explanations) == 7
    for e in result.explanations:
        assert f"{e.endpoints[0]} > {e.endpoints[1]}" in out


def test_incidents_group_by_verdict_and_host_pair() -> None:
    from orchestrator.explain import incidents

    result = explain_file(str(WILD / "w03.pcapng"))
    groups = incidents(result.explanations)
    assert [(g.cause, g.count) for g in groups] == [(SILENT_DROP, 1986), ("half-open", 3), ("closed-port", 5)]
    assert groups[0].ports() == (1, 65389) and groups[0].meaning().startswith("a port scan")


@pytest.mark.parametrize("point", ["client", "server"])
def test_challenge_ack_is_told_by_the_bare_ack_to_a_fresh_syn(point: str) -> None:
    """The reference run of challenge-ack: the client's RST answers the server's challenge ACK (RFC 5961 §4);
    the kernel's reason for it is TCP_INVALID_ACK_SEQUENCE, which allows only challenge-ack."""
    from orchestrator.witness import EXPLAIN_CAUSES_BY_REASON

    path = ROOT / "captures" / "reference" / "challenge-ack" / f"{point}.pcap"
    causes = [e.cause for e in explain_capture(read_capture(path)).explanations if e.rst_time is not None]
    assert causes == ["challenge-ack"]
    assert EXPLAIN_CAUSES_BY_REASON["TCP_INVALID_ACK_SEQUENCE"] == {"challenge-ack"}


# --- what the later RSTs of a connection are said to be ---------------------------------------------


def later_rst_note(e: Explanation) -> str:
    return next(n for n in e.notes if "more RST" in n)


def test_later_rsts_that_follow_the_peers_segments_answer_them() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 100)
    w.send("s", "R.")                                   # the first RST
    w.send("c", "P.", 100, dt=0.0001)                   # still on its way when the RST left
    w.send("s", "R", seq=w.nxt["s"])                    # answers it
    assert later_rst_note(only(w.explain())) == "1 more RST followed the first (answers to segments still on their way)"


def test_a_later_rst_that_follows_only_its_senders_own_segments_answers_nothing_seen() -> None:
    w = Wire().handshake()
    w.send("c", "P.", 100)
    w.send("c", "R.")                                   # the first RST
    w.send("c", "R.", seq=w.nxt["c"], dt=0.5)           # nothing of the server's came between
    assert later_rst_note(only(w.explain())) == "1 more RST followed the first"

