"""half-open: SYN/ACKs the client never answered (neither ACK nor RST) are reported, not dropped."""
from __future__ import annotations

import re

from orchestrator.capture import Packet
from orchestrator.explain import HALF_OPEN, explain_file, incidents
from tests.unit.test_explain import Wire
from tests.unit.test_explain_people import SCAN, explain


def _unanswered_synack(retries: tuple[float, ...], packets: list[Packet] | None = None, port: int = 80) -> Wire:
    """The client's SYN, the server's SYN/ACK, then its retransmissions `retries` seconds apart."""
    w = Wire(s=("10.0.0.70", port), packets=packets)
    w.send("c", "S")
    synack = w.send("s", "S.")
    for gap in retries:
        w.send("s", "S.", dt=gap, seq=synack.seq)
    return w


def test_a_synack_retransmitted_and_never_acknowledged_is_half_open() -> None:
    w = _unanswered_synack((1.0, 2.0, 4.0))
    [e] = w.explain()
    assert e.cause == HALF_OPEN and e.resets == 0 and e.rst_time is None
    assert e.endpoints == ("10.0.0.10:40000", "10.0.0.70:80")
    assert "never completed the handshake" in e.sentence and "3 SYN/ACK retransmissions (1.00 s, 2.00 s, 4.00 s apart)" in [
        ev.why for ev in e.evidence][-1]


def test_a_completed_handshake_or_a_reset_synack_is_not_half_open() -> None:
    done = _unanswered_synack((1.0,))
    done.send("c", ".", dt=0.1)
    done.send("c", "P.", length=10)
    assert done.explain() == []
    scan = _unanswered_synack((1.0,))
    scan.send("c", "R", dt=0.1)            # a bare RST answers the SYN/ACK: late-synack, not half-open
    assert all(e.cause != HALF_OPEN for e in scan.explain())


def test_one_synack_at_the_end_of_the_capture_is_not_called_unanswered() -> None:
    assert _unanswered_synack(()).explain() == []        # its ACK may just be missing from the capture


def test_the_scans_open_ports_are_their_own_incident() -> None:
    result = explain_file(str(SCAN))
    half = [g for g in incidents(result.explanations) if g.cause == HALF_OPEN]
    assert len(half) == 1 and half[0].count == 3 and result.failed == 1991
    assert sorted(int(e.endpoints[1].rsplit(":", 1)[1]) for e in half[0].connections) == [22, 53, 80]
    assert half[0].meaning().startswith("3 ports answered SYN/ACK and never completed")
    status, out, _ = explain(str(SCAN))
    text = " ".join(out.split())
    assert status == 0 and len(out.splitlines()) <= 60
    assert "1991 reset or failed, 3 answered SYN/ACK and never completed" in text
    assert re.findall(r"^  172\.16\.0\.8:36050 > 64\.13\.134\.52:(\d+)  half-open", out, re.M) == ["53", "80", "22"]
