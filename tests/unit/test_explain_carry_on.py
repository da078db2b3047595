"""A connection that carried on past its first RST gets a verdict for its later reset too (issue 17,
`explain/carry_on.py`); RSTs answering segments in flight, and floods, stay notes of one verdict."""
from __future__ import annotations

import pytest

from orchestrator.capture import read_capture
from orchestrator.explain import Explanation, explain_capture, explain_file
from tests.unit.test_explain import Wire
from tests.unit.test_wild import WILD

ABORTS = {"unread-data-close", "linger-abort", "listener-close-backlog", "socket-destroy"}


def _abort_causes(e: Explanation) -> set[str]:
    return {e.cause} | {c.cause for c in e.candidates}


def _established(ttl: int = 63) -> Wire:
    """A handshake and one exchange, the server's packets arriving with `ttl`."""
    w = Wire()
    w.send("c", "S", ttl=64)
    w.send("s", "S.", ttl=ttl)
    w.send("c", ".", ttl=64)
    w.send("c", "P.", 20, ttl=64)
    w.send("s", ".", ttl=ttl)
    return w


def _forged_rst(w: Wire) -> None:
    """A RST in the server's name from a box two hops nearer, out of the client's window: ignored."""
    w.send("s", "R.", seq=(w.nxt["s"] + 5_000_000) & 0xFFFFFFFF, ttl=61, dt=0.01)


def _carry_on(w: Wire, rounds: int = 1) -> None:
    """The client sends new bytes and the server acknowledges them: the connection carried on."""
    for _ in range(rounds):
        w.send("c", "P.", 30, ttl=64, dt=0.05)
        w.send("s", ".", ttl=63)


def test_w17_the_genuine_abort_after_a_forged_rst_the_handshake_outlived_has_its_own_verdict() -> None:
    """w17: a RST with TTL 46 (ack = the SYN's seq, unacceptable in SYN_SENT) races the SYN/ACK; the
    client acknowledges the SYN/ACK, sends 25 bytes the server acknowledges, and the server (TTL 49, as
    its other packets) resets at 2.853 s; its RST at 4.134 s answers the client's 150 bytes."""
    first, later = explain_capture(read_capture(WILD / "w17.pcap")).explanations
    assert first.cause == "firewall-reset" and round(first.rst_time - first.start, 6) == 0.233736
    assert first.packets == 2 and first.resets == 1
    assert any("carried on past this RST" in n and "2.853291" in n for n in first.notes), first.notes
    assert later.rst_from == "1.2.0.3:6649" and round(later.rst_time - first.start, 6) == 2.853291
    assert later.cause in ABORTS or (later.cause == "ambiguous" and _abort_causes(later) > ABORTS)
    assert later.packets == 7 and later.resets == 2 and not later.forged
    assert "1 more RST followed the first (answers to segments still on their way)" in later.notes
    assert any("earlier RST, at 0.233736" in n for n in later.notes), later.notes


def test_w17_spilled_verdicts_are_the_same_and_in_order() -> None:
    held = explain_capture(read_capture(WILD / "w17.pcap")).explanations
    spilled = explain_file(WILD / "w17.pcap", spill_after=0).explanations
    assert list(spilled) == list(held) and len(held) == 2


def test_a_forged_rst_the_connection_outlived_then_a_genuine_abort_are_two_verdicts() -> None:
    w = _established()
    _forged_rst(w)
    _carry_on(w)
    w.send("s", "R.", ttl=63, dt=0.2)
    first, later = w.explain()
    assert first.cause == "firewall-reset" and "TTL 61" in first.sentence
    assert later.cause != "firewall-reset" and not later.forged and later.rst_from == "10.0.0.70:80"
    assert _abort_causes(later) & ABORTS
    assert later.start > first.rst_time      # the later part begins at the carry-on


def test_a_flood_after_the_later_abort_stays_one_verdict_with_notes() -> None:
    """The client goes on sending into the reset connection; the server answers each segment with a RST."""
    w = _established()
    _forged_rst(w)
    _carry_on(w)
    w.send("s", "R.", ttl=63, dt=0.2)
    for _ in range(300):
        seg = w.send("c", "P.", 30, ttl=64, dt=0.001)
        w.send("s", "R", seq=seg.ack, ttl=63)
    first, later = w.explain()
    assert first.cause == "firewall-reset" and first.resets == 1
    assert later.resets == 301
    assert "300 more RSTs followed the first (answers to segments still on their way)" in later.notes


def test_the_same_injected_rst_outlived_again_and_again_is_one_incident() -> None:
    """A blind injector's RSTs, one look, each out of window and carried on past: one verdict."""
    w = _established()
    for _ in range(40):
        _forged_rst(w)
        _carry_on(w)
    w.send("c", "F.", ttl=64)
    w.send("s", "F.", ttl=63)
    w.send("c", ".", ttl=64)
    (e,) = w.explain()
    assert e.cause == "firewall-reset" and e.resets == 40
    assert not any("carried on past this RST" in n for n in e.notes)


def test_the_injected_rst_that_took_after_others_were_outlived_has_its_own_verdict() -> None:
    w = _established()
    for _ in range(3):
        _forged_rst(w)
        _carry_on(w)
    w.send("s", "R.", seq=w.nxt["s"], ttl=61, dt=0.01)    # in window this time: the client takes it
    w.send("c", "P.", 30, ttl=64, dt=0.05)                # in flight, or the application writing again
    first, later = w.explain()
    assert first.resets == 3 and later.resets == 1
    assert first.cause == later.cause == "firewall-reset"


@pytest.mark.parametrize("answer", ["R", "R."])
def test_rsts_answering_segments_in_flight_are_no_carry_on(answer: str) -> None:
    """The server resets; the client's segments already on their way (old bytes and new) draw more RSTs
    and no ACK: nothing shows the connection went on, so one verdict."""
    w = _established()
    w.send("s", "R.", ttl=63, dt=0.2)
    for _ in range(3):
        seg = w.send("c", "P.", 30, ttl=64, dt=0.001)
        w.send("s", answer, seq=seg.ack, ack=w.rcv["s"], ttl=63)
    (e,) = w.explain()
    assert e.resets == 4 and not any("carried on" in n for n in e.notes)


def test_an_ack_of_old_bytes_after_the_rst_is_no_carry_on() -> None:
    """After the RST the server's pure ACK (of bytes it had before) and the client's retransmission are
    no new sequence space acknowledged: the RST may well have ended it."""
    w = _established()
    data = w.send("c", "P.", 30, ttl=64)
    w.send("s", "R", seq=w.nxt["s"], ttl=63, dt=0.2)
    w.send("c", "P.", 30, seq=data.seq, ttl=64, dt=0.3)
    w.send("s", ".", ttl=63)
    w.send("s", "R", seq=w.nxt["s"], ttl=63)
    assert len(w.explain()) == 1


def test_a_later_verdict_takes_its_place_among_other_connections_by_its_start() -> None:
    w = _established()
    _forged_rst(w)
    other = Wire(c=("10.0.0.10", 40001), isn_c=9, packets=w.packets, t=w.t + 0.001)
    syn = other.send("c", "S")
    other.send("s", "R.", seq=0, ack=syn.seq + 1)
    w.t = other.t
    _carry_on(w)
    w.send("s", "R.", ttl=63, dt=0.2)
    found = w.explain()
    assert [e.endpoints[0] for e in found] == ["10.0.0.10:40000", "10.0.0.10:40001", "10.0.0.10:40000"]
    assert [e.start for e in found] == sorted(e.start for e in found)


def test_w17_says_why_the_forged_rst_did_not_take() -> None:
    """The client was in SYN-SENT and the RST's ack is its SYN's own sequence number: RFC 9293 drops it."""
    first, _ = explain_capture(read_capture(WILD / "w17.pcap")).explanations
    why = [n for n in first.notes if "SYN-SENT" in n]
    assert why == ["1.2.0.2:2527 was in SYN-SENT, where a RST counts only if it acknowledges the SYN (RFC 9293 "
                   "§3.10.7.3), and its ack is the SYN's own sequence number, not the next: it dropped the RST, "
                   "and its application saw nothing of it"], first.notes


@pytest.mark.parametrize("flags, ack, says", [
    ("R", None, "it acknowledges nothing (no ACK flag)"),
    ("R.", 1_000_000, "its ack is the SYN's own sequence number, not the next"),
    ("R.", 1_000_011, "its ack is 10 bytes past the SYN's next sequence number"),
    ("R.", 1_000_001, None),      # acknowledges the SYN: acceptable, nothing to say
])
def test_why_a_rst_in_syn_sent_did_not_take(flags: str, ack: int | None, says: str | None) -> None:
    from orchestrator.explain.carry_on import why_not_taken

    w = Wire()
    w.send("c", "S")
    rst = w.send("s", flags, seq=0, ack=ack)
    why = why_not_taken(w.packets, rst.index)
    assert (why is None) if says is None else (why is not None and says in why and "SYN-SENT" in why), why


def test_no_syn_sent_reason_once_the_rst_sender_had_answered() -> None:
    """A RST after the server's own SYN/ACK finds its receiver past SYN-SENT: no such reason is given."""
    from orchestrator.explain.carry_on import why_not_taken

    w = _established()
    _forged_rst(w)
    assert why_not_taken(w.packets, len(w.packets) - 1) is None
    w2 = Wire()
    w2.send("c", "P.", 10)      # no SYN in the capture
    w2.send("s", "R")
    assert why_not_taken(w2.packets, 1) is None


def test_a_forged_rst_the_connection_went_on_past_does_not_claim_the_application_saw_it() -> None:
    first, _ = explain_capture(read_capture(WILD / "w17.pcap")).explanations
    assert first.sentence.endswith("The application sees ECONNREFUSED or ECONNRESET as if the peer had sent "
                                   "it. Here, though, the connection went on past this RST (see the notes)."), \
        first.sentence


def test_w17_counts_one_connection_reset_and_the_rst_it_went_on_past_apart() -> None:
    """w17's headline counted verdicts: "1 connection, 2 reset or failed". The forged RST did not end the
    connection, so it is counted as a RST the connection went on past, in the file and spilled alike."""
    for result in (explain_capture(read_capture(WILD / "w17.pcap")), explain_file(WILD / "w17.pcap", spill_after=0)):
        first, later = result.explanations
        assert first.outlived and not later.outlived
        assert result.failed == 1
        assert result.counts_text() == "1 reset or failed, 1 RST a connection went on past"


def test_a_connection_reset_without_carrying_on_counts_as_reset_only() -> None:
    w = _established()
    w.send("s", "R.", ttl=63, dt=0.2)
    (e,) = w.explain()
    assert not e.outlived
