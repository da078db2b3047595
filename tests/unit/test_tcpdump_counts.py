"""tcpdump's closing counts are taken relative to the report it gave when it became ready."""
from __future__ import annotations

from orchestrator.lab.hosts import _parse_tcpdump_counts

READY = ("tcpdump: listening on any, link-type LINUX_SLL2\n"
         "0 packets captured\n2 packets received by filter\n0 packets dropped by kernel\n")
END = "5 packets captured\n7 packets received by filter\n0 packets dropped by kernel\n"


def test_counts_since_ready() -> None:
    assert _parse_tcpdump_counts(READY + END) == (5, 5, 0)


def test_a_packet_lost_after_ready_still_shows() -> None:
    assert _parse_tcpdump_counts(READY + END.replace("7 packets received", "8 packets received")) == (5, 6, 0)


def test_a_single_report_is_taken_as_is() -> None:
    assert _parse_tcpdump_counts(END) == (5, 7, 0)
    assert _parse_tcpdump_counts("tcpdump: listening on any\n") == (None, None, None)
