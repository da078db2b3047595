"""The sidecar's stream and counts, and the agent's channel, over a fake attached socket (no Docker).

Docker multiplexes a non-TTY container's stdout and stderr on the attached
socket in frames: stream (1 stdout, 2 stderr), three zero bytes, a big-endian
length, the bytes. The fake engine below hands out one end of a socketpair.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Iterator

import pytest

from orchestrator.errors import LabRuntimeError
from orchestrator.lab.agent import AgentChannel
from orchestrator.lab.sidecar import CaptureFile, CaptureStream, join, parse_tcpdump_counts

READY = ("tcpdump: listening on any, link-type LINUX_SLL2\n"
         "0 packets captured\n2 packets received by filter\n0 packets dropped by kernel\n")
END = "5 packets captured\n7 packets received by filter\n0 packets dropped by kernel\n"
PCAP_HEADER = bytes(24)


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class FakeEngine:
    """`attach_socket` returns our end of a socketpair; the test writes the container's side."""

    def __init__(self) -> None:
        self.ours, self.container = socket.socketpair()
        self.params: dict[str, int] = {}

    def attach_socket(self, container_id: str, params: dict[str, int]) -> socket.socket:
        self.params = params
        return self.ours


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    fake = FakeEngine()
    yield fake
    fake.container.close()
    fake.ours.close()


# -- tcpdump's counts ------------------------------------------------------------

def test_counts_since_ready() -> None:
    assert parse_tcpdump_counts(READY + END) == (5, 5, 0)


def test_a_packet_lost_after_ready_still_shows() -> None:
    assert parse_tcpdump_counts(READY + END.replace("7 packets received", "8 packets received")) == (5, 6, 0)


def test_a_single_report_is_taken_as_is() -> None:
    assert parse_tcpdump_counts(END) == (5, 7, 0)
    assert parse_tcpdump_counts("tcpdump: listening on any\n") == (None, None, None)


# -- the sidecar's stream ----------------------------------------------------------

def test_the_pcap_is_stdout_in_order_and_the_counts_come_from_stderr(engine: FakeEngine) -> None:
    stream = CaptureStream(engine, "cid", "client")
    assert engine.params == {"stdin": 0, "stdout": 1, "stderr": 1, "stream": 1}
    engine.container.sendall(frame(2, READY.encode()[:20]))
    engine.container.sendall(frame(2, READY.encode()[20:]))
    stream.wait_listening(2)
    stream.wait_report(2)
    packets = [PCAP_HEADER] + [bytes([n]) * (100 + n) for n in range(50)]
    # frames split and merged anywhere: the reader must not care
    wire = b"".join(frame(1, p) for p in packets) + frame(2, END.encode())
    for i in range(0, len(wire), 777):
        engine.container.sendall(wire[i:i + 777])
    engine.container.close()   # tcpdump exited
    got = stream.finish(2)
    assert got == CaptureFile("client", b"".join(packets), 5, 5, 0)


def test_finish_waits_for_tcpdump_to_exit(engine: FakeEngine) -> None:
    stream = CaptureStream(engine, "cid", "server")
    engine.container.sendall(frame(1, PCAP_HEADER) + frame(2, END.encode()))
    with pytest.raises(LabRuntimeError, match=r"server: tcpdump took more than 0\.2 s to stop"):
        stream.finish(0.2)
    threading.Timer(0.1, engine.container.close).start()
    assert stream.finish(2).data == PCAP_HEADER


def record(payload: bytes) -> bytes:
    """One classic pcap record, little-endian: ts_sec, ts_usec, incl_len, orig_len, then the bytes."""
    return struct.pack("<IIII", 1, 2, len(payload), len(payload)) + payload


LE_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 8192, 276)


def test_finish_is_done_at_the_closing_counts_once_every_record_they_count_came(engine: FakeEngine) -> None:
    stream = CaptureStream(engine, "cid", "client")
    engine.container.sendall(frame(2, READY.encode()))
    stream.wait_report(2)
    before = stream.reports()
    records = [record(bytes([n]) * (40 + n)) for n in range(5)]
    wire = LE_HEADER + b"".join(records)
    # the closing counts (5 captured) come before the last record has: not done yet
    engine.container.sendall(frame(1, wire[:-30]) + frame(2, END.encode()))
    with pytest.raises(LabRuntimeError, match=r"took more than 0\.2 s to stop"):
        stream.finish(0.2, before)
    engine.container.sendall(frame(1, wire[-30:]))
    assert stream.finish(2, before) == CaptureFile("client", wire, 5, 5, 0)
    assert not stream.closed, "done without waiting for tcpdump's exit"


def test_records_are_counted_in_the_byte_order_the_pcap_header_gives(engine: FakeEngine) -> None:
    """A big-endian, nanosecond pcap (as tcpdump writes on such a host): read little-endian, its
    record lengths would be wrong and the count would never reach the closing counts."""
    stream = CaptureStream(engine, "cid", "client")
    engine.container.sendall(frame(2, READY.encode()))
    stream.wait_report(2)
    before = stream.reports()
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 8192, 276)
    wire = header + b"".join(struct.pack(">IIII", 1, 2, 40 + n, 40 + n) + bytes(40 + n) for n in range(5))
    engine.container.sendall(frame(1, wire) + frame(2, END.encode()))
    assert stream.finish(2, before) == CaptureFile("client", wire, 5, 5, 0)
    assert not stream.closed


def test_counts_printed_before_the_sigint_do_not_end_the_capture(engine: FakeEngine) -> None:
    stream = CaptureStream(engine, "cid", "client")
    engine.container.sendall(frame(1, LE_HEADER) + frame(2, READY.encode()))
    stream.wait_report(2)
    with pytest.raises(LabRuntimeError, match=r"took more than 0\.2 s to stop"):
        stream.finish(0.2, stream.reports())   # 0 captured and 0 records, but no count came after the SIGINT


def test_tcpdump_exiting_before_it_listens_is_an_error_with_its_message(engine: FakeEngine) -> None:
    stream = CaptureStream(engine, "cid", "router")
    engine.container.sendall(frame(2, b"tcpdump: any: You don't have permission to capture on that device\n"))
    engine.container.close()
    with pytest.raises(LabRuntimeError, match=r"router: tcpdump exited before start listening .*permission"):
        stream.wait_listening(2)
    assert stream.closed


def test_parts_of_a_restarted_host_join_behind_one_header() -> None:
    first = CaptureFile("server", PCAP_HEADER + b"AAAA", 1, 1, 0)
    second = CaptureFile("server", PCAP_HEADER + b"BB", 2, 3, 0)
    assert join(None, second) == second
    assert join(first, second) == CaptureFile("server", PCAP_HEADER + b"AAAABB", 3, 4, 0)
    assert join(first, CaptureFile("server", PCAP_HEADER, None, None, None)).captured is None


# -- the agent's channel -----------------------------------------------------------

def test_agent_answers_and_events_are_split_from_lines_across_frames(engine: FakeEngine) -> None:
    agent = AgentChannel(engine, "cid", "client")
    assert engine.params["stdin"] == 1
    ready = json.dumps({"event": "ready", "host": "client"}).encode() + b"\n"
    engine.container.sendall(frame(1, ready[:7]) + frame(2, b"a diagnostic\n") + frame(1, ready[7:]))
    assert agent.wait_ready(2)["host"] == "client"
    call_id = agent.send("sleep", {"seconds": 0})
    sent = json.loads(engine.container.recv(1000))
    assert sent == {"id": call_id, "call": "sleep", "args": {"seconds": 0}}
    answer = json.dumps({"id": call_id, "ok": True}).encode() + b"\n"
    engine.container.sendall(frame(1, b"not json\n" + answer))
    assert agent.result(call_id, 2) == {"id": call_id, "ok": True}
    assert agent.stderr == "a diagnostic\n"


def test_an_agent_that_exits_says_so_with_its_last_words(engine: FakeEngine) -> None:
    agent = AgentChannel(engine, "cid", "server")
    engine.container.sendall(frame(2, b"Traceback: boom\n"))
    engine.container.close()
    with pytest.raises(LabRuntimeError, match=r"server: the peer agent exited before start \(Traceback: boom\)"):
        agent.wait_ready(2)
