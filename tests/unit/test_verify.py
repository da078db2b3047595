"""Checks: sequences (order, exactness, timing), absences, application results, counters, capture integrity."""
from __future__ import annotations

from orchestrator.capture import Packet
from orchestrator.model import AppExpectation, CaptureExpectation, CounterExpectation, PacketPattern, Range
from orchestrator.verify import (
    check_app,
    check_capture,
    check_capture_integrity,
    check_counters,
    check_waits,
    match_sequence,
)

HOSTS = ["client", "server", "router"]
NAMES = {"10.0.0.10": "client", "10.0.0.70": "server"}
C, S = "10.0.0.10", "10.0.0.70"


def pkt(i: int, t: float, src: str, dst: str, flags: str, rel_seq: int | None = 0, rel_ack: int | None = None,
        length: int = 0, direction: str | None = None) -> Packet:
    return Packet(index=i, time=t, src=src, dst=dst, sport=40000 if src == C else 80,
                  dport=80 if src == C else 40000, flags=flags, seq=1000 + (rel_seq or 0), ack=0,
                  length=length, window=0, rel_seq=rel_seq, rel_ack=rel_ack, direction=direction, ifindex=None)


def pat(text: str) -> PacketPattern:
    return PacketPattern.parse(text, HOSTS)


CLOSED = [pkt(0, 10.0, C, S, "S"), pkt(1, 10.0001, S, C, "R.", rel_seq=None, rel_ack=1)]
# rel_seq None: the server never sent a SYN, so its RST's seq is compared raw (1000 here)


def test_exact_sequence_passes_and_reports_packets() -> None:
    exp = CaptureExpectation("client", (pat("client > server S"), pat("server > client R. ack=1")), exact=True)
    (check,) = check_capture(exp, CLOSED, NAMES)
    assert check.passed and "Flags [R.]" in check.observed


def test_exact_fails_on_extra_packet() -> None:
    exp = CaptureExpectation("client", (pat("client > server S"),), exact=True)
    (check,) = check_capture(exp, CLOSED, NAMES)
    assert not check.passed


def test_wrong_flag_fails_with_position() -> None:
    exp = CaptureExpectation("client", (pat("client > server S"), pat("server > client R")))
    (check,) = check_capture(exp, CLOSED, NAMES)
    assert not check.passed and "matched 1 of 2" in check.observed and "'server > client R'" in check.observed


def test_gap_window_and_backtracking() -> None:
    syns = [pkt(0, 0.0, C, S, "S"), pkt(1, 0.2, C, S, "S"), pkt(2, 1.2, C, S, "S")]
    # greedy takes the SYN at 0.0 s first, finds no SYN 0.9..1.1 s after it, and backtracks to 0.2 s
    patterns = [pat("client > server S"), pat("client > server S gap=0.9..1.1")]
    matched, count = match_sequence(patterns, syns, NAMES, exact=False)
    assert count == 2 and matched == [1, 2]
    matched, count = match_sequence([pat("client > server S"), pat("client > server S gap=2..3")], syns, NAMES,
                                    exact=False)
    assert count == 1


def test_at_is_relative_to_first_packet() -> None:
    syns = [pkt(0, 5.0, C, S, "S"), pkt(1, 6.0, C, S, "S")]
    _, count = match_sequence([pat("client > server S at=0.9..1.1")], syns, NAMES, exact=False)
    assert count == 1


def test_absent_and_direction() -> None:
    packets = [pkt(0, 0.0, C, S, "S", direction="in"), pkt(1, 0.1, S, C, "R.", direction="out")]
    exp = CaptureExpectation("server", absent=(pat("* > * R."), pat("client > server S dir=out")))
    hit, clean = check_capture(exp, packets, NAMES)
    assert not hit.passed and "R." in hit.observed
    assert clean.passed and clean.observed == "none"


def test_seq_ack_and_length() -> None:
    data = [pkt(0, 0.0, C, S, "P.", rel_seq=1, rel_ack=1, length=100)]
    assert match_sequence([pat("client > server P. seq=1 ack=1 len=100")], data, NAMES, False)[1] == 1
    assert match_sequence([pat("client > server P. len=1..99")], data, NAMES, False)[1] == 0
    assert match_sequence([pat("client > server P. seq=2")], data, NAMES, False)[1] == 0


EVENTS = [
    {"host": "client", "call": "connect", "sock": "c", "ok": False, "errno": "ECONNREFUSED", "start": 1.0,
     "end": 1.002, "result": None},
    {"host": "client", "call": "recv", "sock": "c", "ok": True, "errno": None, "start": 2.0, "end": 2.5,
     "result": {"received": 0, "eof": True}},
]


def test_app_expectations_in_order() -> None:
    checks = check_app([
        AppExpectation("client", "connect", "c", "ECONNREFUSED", elapsed=Range(None, 0.1)),
        AppExpectation("client", "recv", "c", "ok", result={"eof": True}),
    ], EVENTS)
    assert [c.passed for c in checks] == [True, True]


def test_app_expectation_failures_say_what_happened() -> None:
    wrong_errno, out_of_order, too_slow = check_app([
        AppExpectation("client", "connect", "c", "ETIMEDOUT"),
    ], EVENTS) + check_app([
        AppExpectation("client", "recv", "c"), AppExpectation("client", "connect", "c"),
    ], EVENTS)[1:] + check_app([AppExpectation("client", "recv", "c", elapsed=Range(None, 0.1))], EVENTS)
    assert not wrong_errno.passed and "ECONNREFUSED" in wrong_errno.observed
    assert not out_of_order.passed
    assert not too_slow.passed and "0.500 s" in too_slow.observed


def test_counters() -> None:
    deltas = {"server": {"TcpOutRsts": 1, "TcpExtTCPAbortOnData": 0}}
    ok, zero, missing, typo = check_counters([
        CounterExpectation("server", "TcpOutRsts", Range(1, 1)),
        CounterExpectation("server", "TcpExtTCPAbortOnData", Range(0, 0)),
        CounterExpectation("client", "TcpOutRsts", Range(1, 1)),
        CounterExpectation("server", "TcpOutRstz", Range(0, 0)),
    ], deltas)
    assert ok.passed and zero.passed and not missing.passed and not typo.passed
    assert typo.observed == "not reported"


def test_capture_integrity() -> None:
    assert check_capture_integrity("client", 7, 7, 0).passed
    assert not check_capture_integrity("client", 0, 2, 0).passed     # lost in tcpdump's buffer
    assert not check_capture_integrity("client", 5, 5, 1).passed     # dropped by the kernel
    assert not check_capture_integrity("client", None, None, None).passed


def test_waits_for_a_kernel_state_must_reach_it() -> None:
    events = [
        {"host": "server", "call": "wait_socket", "args": {"sock": "s", "recv_q": 5000, "timeout": 5},
         "start": 1.0, "end": 1.2, "ok": True, "result": {"matched": [], "waited": 0.2}},
        {"host": "client", "call": "wait_socket", "args": {"sock": "c", "state": "CLOSE_WAIT"},
         "start": 2.0, "end": 12.0, "ok": False, "result": {"matched": []},
         "error": "1 matching socket(s) not reached within 10 s; those sockets now: 40000->8000 ESTABLISHED"},
        {"host": "client", "call": "send", "start": 3.0, "end": 3.1, "ok": False, "errno": "EPIPE"},
    ]
    reached, missed = check_waits(events)
    assert reached.passed and reached.kind == "wait" and reached.subject == "server"
    assert reached.expected == "wait_socket sock=s recv_q=5000" and reached.observed == "reached after 0.200 s"
    assert not missed.passed and "ESTABLISHED" in missed.observed


def test_port_tells_connections_between_the_same_hosts_apart() -> None:
    data = [pkt(0, 0.0, C, S, "P.", rel_seq=1, rel_ack=1, length=100)]   # 40000 > 80
    assert match_sequence([pat("client > server P. port=80")], data, NAMES, False)[1] == 1
    assert match_sequence([pat("client > server P. port=40000")], data, NAMES, False)[1] == 1
    assert match_sequence([pat("client > server P. port=8001")], data, NAMES, False)[1] == 0


def test_ip_header_keys_tell_a_forged_rst_from_the_peers_own() -> None:
    forged = pkt(0, 0.0, S, C, "R", rel_seq=101)._replace(ttl=64, ip_id=0, df=True)
    real = pkt(1, 0.1, S, C, "R", rel_seq=101)._replace(ttl=63, ip_id=0, df=True)
    pattern = [pat("server > client R ttl=64 ipid=0 df=1")]
    assert match_sequence(pattern, [forged], NAMES, False)[1] == 1
    assert match_sequence(pattern, [real], NAMES, False)[1] == 0
    assert match_sequence([pat("server > client R ipid=0x0 df=0")], [real], NAMES, False)[1] == 0
    assert match_sequence([pat("server > client R ttl=63")], [pkt(2, 0.2, S, C, "R")], NAMES, False)[1] == 0
