"""The survey (explain's first pass) keeps memory bounded whatever the number of RSTs."""
from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator

from orchestrator.capture import Packet
from orchestrator.explain.survey import Survey

CONNS = 50


def _resets(n: int) -> Iterator[tuple[int, Packet]]:
    """`n` RST/ACKs from one host, 1 ms apart, spread over CONNS connections, carrying the IP IDs
    of one counter (a host answering a scan with RSTs whose IP IDs are not zero)."""
    for k in range(n):
        conn = k % CONNS
        yield conn, Packet(k, 1000.0 + k / 1000, "10.0.0.70", "10.0.0.10", 80, 40000 + conn, "R.", 0, 1, 0, 0,
                           None, None, None, None, ttl=64, ip_id=(0x100 + k) & 0xFFFF or 1, df=False, frame=k + 1)


def _peak(n: int, packets: Callable[[int], Iterator[tuple[int, Packet]]] | None = None) -> int:
    """Peak memory of a survey taking `n` packets (`_resets` unless told)."""
    survey = Survey()
    tracemalloc.start()
    try:
        survey.take((packets or _resets)(n))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_ip_id_evidence_of_many_rsts_stays_bounded() -> None:
    # a RST packet kept whole costs hundreds of bytes; what grows with the RSTs must not
    small, large = 15_000, 45_000     # both well past the last seconds the IP ID runs look back over
    per_rst = (_peak(large) - _peak(small)) / (large - small)
    assert per_rst < 50, f"{per_rst:.0f} bytes of peak memory per RST"


def test_one_senders_run_of_ip_ids_is_no_shared_counter() -> None:
    survey = Survey()
    survey.take(_resets(3_000))
    survey.id_runs.drain()
    assert survey.id_runs.found == {}


def _bare(n: int) -> Iterator[tuple[int, Packet]]:
    """`n` bare RSTs (no ACK, IP ID 0) over CONNS connections never seen opened: a flood of resets."""
    for k in range(n):
        conn = k % CONNS
        yield conn, Packet(k, 1000.0 + k / 1000, "10.0.0.70", "10.0.0.10", 80, 40000 + conn, "R", 5, 0, 0, 0,
                           None, None, None, None, ttl=64, ip_id=0, df=True, frame=k + 1)


def test_bare_resets_on_connections_never_opened_are_kept_once_per_sender() -> None:
    """The ends a twin connection is looked for from are a set: a flood of them on one 4-tuple costs its
    survey nothing more per RST (1,333 RSTs on one 4-tuple are one incident)."""
    small, large = 5_000, 25_000
    per_rst = (_peak(large, _bare) - _peak(small, _bare)) / (large - small)
    assert per_rst < 5, f"{per_rst:.0f} bytes of peak memory per bare RST"
    survey = Survey()
    survey.take(_bare(small))
    assert survey.twin_ends() == {("10.0.0.70", 80)}
