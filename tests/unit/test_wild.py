"""Other people's captures (../shared/pcaps/wild/, no answers given): every file is read and
explained without an error, and the reader agrees with tshark on every TCP packet and RST."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.capture import read_capture
from orchestrator.explain import AMBIGUOUS, Explanation, explain_capture
from tests import oracles
from tests.conftest import WILD

FILES = sorted(p.name for p in WILD.glob("w*")) if WILD.is_dir() else []


def test_the_wild_captures_are_there() -> None:
    assert len(FILES) == 25, f"expected the 25 public captures in {WILD}"


def _tshark_count(path: Path, display_filter: str) -> int:
    """tshark installed here, or in the tools container (tests/oracles.py)."""
    return oracles.tshark(["-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"], path).count("\n")


@pytest.mark.parametrize("name", FILES)
def test_every_wild_capture_is_read_as_tshark_reads_it_and_explained(name: str) -> None:
    path = WILD / name
    cap = read_capture(path)
    # TCP quoted inside ICMP errors is reported apart, never counted as a packet or a RST
    assert len(cap.packets) == _tshark_count(path, "tcp && !icmp && !icmpv6")
    assert sum(p.is_rst for p in cap.packets) == _tshark_count(path, "tcp.flags.reset==1 && !icmp && !icmpv6")
    result = explain_capture(cap)
    assert result.packets == len(cap.packets)
    for e in result.explanations:
        assert e.sentence and e.evidence


def test_late_data_that_also_acknowledges_the_fin_is_named_for_the_data() -> None:
    """w14: the server's 31 bytes after the client's FIN also acknowledge it; the evidence names the data."""
    (e,) = explain_capture(read_capture(WILD / "w14.pcap")).explanations
    assert e.cause == "data-after-close"
    labels = [ev.why for ev in e.evidence]
    assert any("keeps sending after the FIN (the same segment acknowledges it)" in why for why in labels), labels
    assert not any(why.endswith("acknowledges the FIN") for why in labels), labels


def test_rsts_alone_are_not_said_to_answer_segments() -> None:
    """w25: 1,333 RSTs on one four-tuple and nothing else: no segment for them to answer is in the capture."""
    (e,) = explain_capture(read_capture(WILD / "w25.pcap")).explanations
    assert e.resets == 1333 and e.packets == 1333
    assert "1332 more RSTs followed the first, and the capture holds nothing else of this connection" in e.notes
    assert not any("still on their way" in n for n in e.notes)


def _explained(name: str) -> list[Explanation]:
    return list(explain_capture(read_capture(WILD / name)).explanations)


def test_bytes_that_crossed_the_servers_fin_are_data_after_close() -> None:
    """w15: the client's last 24 bytes and FIN (seq 816) left before the server's FIN (ack 816) arrived; the
    server answers with a bare RST whose seq (6049) is that segment's ack, below its own FIN."""
    (e,) = _explained("w15.pcap")
    assert e.cause == "data-after-close" and e.rst_from == "17.253.144.10:443"
    assert "on their way" in e.sentence and "beyond its ack 816" in e.candidates[0].why


def test_a_fin_after_the_servers_acknowledged_fin_is_reset_as_for_a_freed_socket() -> None:
    """w22: the client's FIN carries no data, so no rule of data after close fits; the server's socket
    was gone. It had nothing left to retransmit (its FIN was acknowledged)."""
    (e,) = _explained("w22.pcap")
    assert e.cause == AMBIGUOUS and [c.cause for c in e.candidates] == ["timewait-overflow", "peer-restart"]


def test_a_half_open_scan_recorded_one_way_names_the_open_ports() -> None:
    """w07: only the scanner's packets; on ports 80 and 443 its kernel's RST (seq = ISN+1, TTL 61, IP ID 0)
    answers a SYN/ACK the capture lacks, and the scanner's own RST (the SYNs' TTL) follows."""
    found = _explained("w07.pcap")
    assert [e.cause for e in found] == ["syn-scan", "syn-scan"]
    assert sorted(e.server for e in found) == ["198.124.152.15:443", "198.124.152.15:80"]
    assert all("the later RST carries the SYNs' TTL" in " ".join(e.notes) for e in found)


def test_a_one_way_mirror_shows_the_clients_abortive_close() -> None:
    """w24 (802.11 in GRE, the client's direction only): two R. at the client's next byte acknowledging
    373 bytes, no FIN either way: an abortive close, whichever of its causes."""
    found = _explained("w24.pcap")
    assert len(found) == 2
    for e in found:
        assert e.cause == AMBIGUOUS and e.rst_side == "client"
        assert {"unread-data-close", "linger-abort"} <= {c.cause for c in e.candidates}
        assert "after receiving 373 bytes" in e.sentence


def test_a_keepalive_45_s_after_the_servers_fin_fits_an_expired_fin_wait2() -> None:
    """w04: the CDN closed (FIN at 15.8 s, acknowledged); the client's keepalive at 61.05 s gets a bare RST."""
    (e,) = [e for e in _explained("w04.pcapng") if e.server == "72.21.91.8:80"]
    assert e.cause == AMBIGUOUS and "fin-wait2-timeout" in {c.cause for c in e.candidates}
    assert "retransmission-timeout" not in {c.cause for c in e.candidates}


def test_one_rst_repeated_for_a_day_is_described() -> None:
    """w25: 1,333 bare RSTs, one seq, one a minute for 24 hours: each answers a segment the peer repeats."""
    (e,) = _explained("w25.pcap")
    assert e.cause == "unknown"
    assert "the same bare RST (seq 1388789261) 1333 times, about every 60.00 s over 86341.07 s (24.0 h)" in e.sentence


def test_rsts_a_box_sent_in_the_clients_name_after_its_own_abort_are_reported() -> None:
    """w19: the client's own R. (TTL 116), then four RSTs in its name with TTL 244 and another IP ID counter."""
    (e,) = _explained("w19.pcap")
    assert e.rst_side == "client" and not e.forged
    assert any(n.startswith("4 later RSTs in 3.251.38.200's name arrived with TTL 244") for n in e.notes), e.notes


def test_the_injected_response_the_client_closed_on_is_noted() -> None:
    """w11: 43 bytes with TTL 56 and IP ID 1 (the server's: TTL 54) precede the real 348-byte response at seq 1."""
    (e,) = _explained("w11.pcap")
    assert e.cause == "data-after-close"
    assert any("43 bytes at seq 1 arrived with TTL 56 and IP ID 1" in n and "injected on the path" in n
               for n in e.notes), e.notes


def test_four_connections_reset_in_one_millisecond_are_one_event() -> None:
    """w20: the SMB client resets four connections (two idle 10.7 and 14.2 s, two busy) within 1 ms."""
    found = _explained("w20.pcap")
    assert len(found) == 4
    for e in found:
        assert e.cause == AMBIGUOUS and "lb-idle-reset" not in {c.cause for c in e.candidates}
        assert any(n.startswith("172.31.112.17 reset 4 connections within 10.0 ms") for n in e.notes), e.notes


def test_a_connect_abandoned_beside_a_parallel_one_is_noted() -> None:
    """w05: port 80's SYN/ACK finds its socket closed 0.4 ms after the parallel connection to 443 got its own."""
    e = next(e for e in _explained("w05.pcap") if e.cause == "connect-timeout")
    assert any("another connection of 10.87.1.10 to 130.211.223.103 opened at the same time" in n for n in e.notes)


def later_rst_note(e: Explanation) -> str:
    return next(n for n in e.notes if "more RST" in n)


def test_the_scanners_second_rst_is_not_said_to_answer_anything() -> None:
    """w07: the scanner's kernel resets the SYN/ACK, then the scanner's own crafted RST follows; the one-sided
    capture holds no segment of the server's for either to answer."""
    e = next(e for e in _explained("w07.pcap") if e.resets > 1)
    assert later_rst_note(e) == "1 more RST followed the first"
    assert any("the scanner's own" in n for n in e.notes)


def test_a_later_rst_forged_on_the_path_is_not_said_to_answer_a_segment() -> None:
    """w18: a RST after the first, in the server's name with TTL 255, is a box's on the path: the note counts
    it and the forged-RST note says whose it is."""
    es = [e for e in _explained("w18.pcap")
          if any("later RST in" in n for n in e.notes)]
    assert es and all(later_rst_note(e).endswith("followed the first") for e in es)


def test_rsts_to_a_connect_retried_after_its_refusal_say_so() -> None:
    """w02: a SYN refused three times, 0.5 s apart, with the same ISN: the later RSTs answer the SYN sent again
    (Windows retries a refused connect), not segments still on their way."""
    (e,) = _explained("w02.pcapng")
    assert e.cause == AMBIGUOUS and e.resets == 3
    again = "2 more RSTs followed the first, each answering the SYN sent again (2 times, about 500.0 ms apart)"
    assert any(n.startswith(again) for n in e.notes), e.notes
    assert not any("still on their way" in n for n in e.notes)


def test_an_abort_in_a_capture_that_starts_mid_connection_does_not_claim_nothing_was_unread() -> None:
    """w18's first connection: the capture begins mid-connection and holds no data the client received, so
    unread-data-close stays a candidate (what came before may be unread); the sentence names it, not
    'nothing left to read'."""
    e = next(e for e in _explained("w18.pcap") if e.rst_from == "192.168.2.16:1576")
    assert "unread-data-close" in {c.cause for c in e.candidates}
    assert "nothing left to read" not in e.sentence
    assert "starts mid-connection, holds no data it received: it closed with data still unread" in e.sentence
    unread = next(c for c in e.candidates if c.cause == "unread-data-close")
    assert "had received no data from 75.126.130.163:80 in this capture" in unread.why


def test_a_segment_its_claimed_sender_answered_is_not_called_stopped_by_the_firewall() -> None:
    """w18: the RST in 75.126.203.78's name (TTL 255 where its packets arrive with 53) came 16 s after the server
    had acknowledged the client's FIN: the FIN got through, so the evidence does not say the firewall stopped it."""
    (e,) = [e for e in _explained("w18.pcap") if e.cause == "firewall-reset"]
    labels = [ev.why for ev in e.evidence]
    assert "the segment the firewall stopped" not in labels, labels
    assert "the last segment from 192.168.2.16:1577" in labels, labels
    assert any(why.startswith("75.126.203.78:80 answered it, so it got through") and "16.14 s before the RST" in why
               for why in labels), labels


def test_the_peers_fin_before_an_abortive_close_is_evidence() -> None:
    """w16: the server closed its idle keep-alive connection (a bare FIN, no data) and the client reset 26 s later
    instead of closing: the FIN is among the evidence, with the client's CLOSE_WAIT."""
    (e,) = [e for e in _explained("w16.pcap") if e.rst_from == "192.168.72.14:3257"]
    fin = [ev for ev in e.evidence if ev.packet.flags == "F."]
    assert [ev.why for ev in fin] == ["65.54.95.14:80 closes: FIN; 192.168.72.14:3257 is in CLOSE_WAIT from then "
                                      "until its RST"], [ev.why for ev in e.evidence]


def test_the_last_data_that_carried_the_peers_fin_says_so() -> None:
    """w06: the server's last 401 bytes came with its FIN (FP.): one evidence line says both."""
    e = next(e for e in _explained("w06.pcap") if e.client == "10.87.1.10:52238")
    assert any(ev.packet.flags == "FP." and ev.why == "the last data from 130.211.223.103:80, with its FIN: "
               "130.211.223.103:80 closes; 10.87.1.10:52238 is in CLOSE_WAIT from then until its RST"
               for ev in e.evidence), [ev.why for ev in e.evidence]


def test_icmp_errors_about_a_reset_connection_are_noted_on_its_verdict() -> None:
    """w06: 130.211.223.103 answered four of 10.87.1.10:52300's segments after its RSTs with ICMP host prohibited
    (the capture's notes list the first three): the connection's own verdict says so too, and one without any
    ICMP says nothing of it."""
    found = _explained("w06.pcap")
    e = next(e for e in found if e.client == "10.87.1.10:52300")
    assert ("130.211.223.103 sent ICMP destination unreachable (host prohibited) about 4 of this connection's "
            "segments, the first at 7.298153 (31.1 ms after the first RST): they were dropped there, not delivered"
            in e.notes), e.notes
    other = next(e for e in found if e.client == "10.87.1.10:52238")
    assert not any("ICMP" in n for n in other.notes)
