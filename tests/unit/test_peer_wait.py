"""The peer agent's waits for a kernel state (issue 20), on loopback.

Each wait is tried where the state comes and where it never does (ok=false,
with what was last seen), so a wait that always answers at once would fail here.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_peer import LO, PEER, Agent, connected_pair, listener

sys.path.insert(0, str(PEER.parent))
import rstlab_wait

PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0100007F:1F40 0100007F:A2B6 08 00000010:00001388 01:00000014 00000003     0        2 4243 1 0 100 0 0 10 0
   2: 0100007F:1F40 0100007F:A2B8 06 00000000:00000000 03:00000F9C 00000000     0        0 0 3 0
"""



@pytest.fixture(name="agent")
def running_agent():
    a = Agent()
    assert a.read_line()["event"] == "ready"
    yield a
    a.stop()


CONNTRACK = (
    "ipv4     2 tcp      6 17 CLOSE_WAIT src=10.213.0.10 dst=10.213.0.70 sport=40000 dport=8000 "
    "src=10.213.0.70 dst=10.213.0.10 sport=8000 dport=40000 [ASSURED] mark=0 use=1\n"
    "ipv4     2 udp      17 20 src=10.213.0.10 dst=10.213.0.70 sport=5 dport=53 src=10.213.0.70 "
    "dst=10.213.0.10 sport=53 dport=5 mark=0 use=1\n")


def test_parse_proc_tcp_rows():
    rows = rstlab_wait.parse_proc_tcp(PROC_TCP)
    assert [r["state"] for r in rows] == ["LISTEN", "CLOSE_WAIT", "TIME_WAIT"]
    assert rows[0]["local"] == ["127.0.0.1", 8000] and rows[0]["recv_q"] == 1   # accept queue length
    assert rows[1]["remote"] == ["127.0.0.1", 41654]
    assert (rows[1]["send_q"], rows[1]["recv_q"], rows[1]["retransmits"], rows[1]["probes"]) == (16, 5000, 3, 2)
    assert rows[2]["inode"] == 0


def test_socket_filter_minimums_and_states():
    rows = rstlab_wait.parse_proc_tcp(PROC_TCP)

    def pick(**kw: object) -> list[str]:
        return [r["state"] for r in rows if rstlab_wait.socket_filter(**kw)(r)]  # type: ignore[arg-type]
    assert pick(local_port=8000, recv_q=5000) == ["CLOSE_WAIT"]
    assert pick(recv_q=5001) == []
    assert pick(state=["time-wait", "LISTEN"]) == ["LISTEN", "TIME_WAIT"]
    assert pick(retransmits=3) == ["CLOSE_WAIT"]
    assert pick(inode=4242) == ["LISTEN"]


def test_unknown_state_is_refused(agent):
    ans = agent.call("wait_socket", state="HALF_OPEN", timeout=0.1)
    assert not ans["ok"] and "unknown TCP state 'HALF_OPEN'" in ans["error"]


def test_parse_conntrack_original_direction():
    (row,) = rstlab_wait.parse_conntrack(CONNTRACK)
    assert (row["src"], row["dst"], row["sport"], row["dport"], row["state"]) == (
        "10.213.0.10", "10.213.0.70", 40000, 8000, "CLOSE_WAIT")
    assert row["flags"] == ["ASSURED"] and row["timeout"] == 17


def test_wait_socket_close_wait_comes_when_the_peer_closes(agent):
    connected_pair(agent)
    waiting = agent.send("wait_socket", sock="c", state="CLOSE_WAIT", timeout=5)
    time.sleep(0.2)
    agent.ok("close", sock="s")
    ans = agent.wait(waiting)
    assert ans["ok"], ans
    (row,) = ans["result"]["matched"]
    assert row["state"] == "CLOSE_WAIT" and 0.1 < ans["result"]["waited"] < 5


def test_wait_socket_recv_queue(agent):
    connected_pair(agent)
    agent.ok("send", sock="c", bytes=3000)
    ans = agent.ok("wait_socket", sock="s", recv_q=3000, timeout=5)
    assert ans["result"]["matched"][0]["recv_q"] == 3000
    short = agent.call("wait_socket", sock="s", recv_q=3001, timeout=0.2)
    assert not short["ok"] and short["errno"] is None
    assert "not reached within 0.2 s" in short["error"] and "recv_q=3000" in short["error"]


def test_wait_socket_gone_and_listener_queue(agent):
    port = listener(agent, backlog=4)
    agent.ok("connect", sock="c", host=LO, port=port)
    queued = agent.ok("wait_socket", local_port=port, state="LISTEN", recv_q=1, timeout=5)
    assert queued["result"]["matched"][0]["recv_q"] == 1   # one connection waits in the accept queue
    agent.ok("close", sock="l")                            # the queued connection is reset
    gone = agent.ok("wait_socket", local_port=port, gone=True, timeout=5)
    assert gone["result"]["matched"] == []
    still = agent.call("wait_socket", remote_port=port, state="CLOSE_WAIT", gone=True, timeout=0.2)
    assert still["ok"]  # the client got a RST, not a FIN: never CLOSE_WAIT


def test_wait_counter(agent):
    now = agent.ok("counters")["result"]["TcpActiveOpens"]
    assert agent.ok("wait_counter", counter="TcpActiveOpens", value=now)["result"]["value"] >= now
    high = agent.call("wait_counter", counter="TcpActiveOpens", value=now + 10**9, timeout=0.2)
    assert not high["ok"] and "not reached" in high["error"]
    bad = agent.call("wait_counter", counter="NoSuchThing", value=1)
    assert not bad["ok"] and "unknown counter" in bad["error"]


def test_wait_blocked_sees_a_background_recv(agent):
    connected_pair(agent)
    none = agent.call("wait_blocked", sock="c", timeout=0.2)
    assert not none["ok"]                                  # nothing is blocked on c yet
    reader = agent.send("recv", sock="c")
    ans = agent.ok("wait_blocked", sock="c", timeout=5)
    assert ans["result"]["syscall"] is not None
    agent.ok("send", sock="s", bytes=10)
    assert agent.wait(reader)["result"]["received"] == 10


def test_writer_gate_releases_each_send():
    with tempfile.TemporaryDirectory() as tmp:
        import socket
        srv = socket.socket()
        srv.bind((LO, 0))
        srv.listen()
        gate = Path(tmp) / "gate"
        proc = subprocess.Popen([sys.executable, str(PEER), "writer", "--host", LO, "--port",
                                 str(srv.getsockname()[1]), "--bytes", "10", "--count", "3", "--gate", str(gate)],
                                stdout=subprocess.PIPE, text=True)
        try:
            conn, _ = srv.accept()
            conn.settimeout(5)
            assert conn.recv(100) == b"x" * 10
            conn.settimeout(0.3)
            try:
                more = conn.recv(100)
            except TimeoutError:
                more = b""
            assert more == b""                               # held at the gate
            for _ in range(2):
                with open(gate, "w") as g:
                    g.write("go\n")
                conn.settimeout(5)
                assert conn.recv(100) == b"x" * 10
            assert proc.wait(5) == 0
            assert [line.count('"ok": true') for line in proc.stdout.read().splitlines()] == [1, 1, 1, 1]
        finally:
            proc.kill()
            srv.close()
            if os.path.exists(gate):
                os.unlink(gate)


def test_bind_gives_a_fixed_source_port(agent):
    port = listener(agent)
    import socket
    probe = socket.socket()
    probe.bind((LO, 0))
    free = probe.getsockname()[1]
    probe.close()
    assert agent.ok("bind", sock="c", port=free, addr=LO)["result"]["addr"] == [LO, free]
    assert agent.ok("connect", sock="c", host=LO, port=port)["result"]["local"] == [LO, free]


@contextlib.contextmanager
def _gated_writer(gate: Path, count: int) -> Iterator[Any]:
    """A writer released through `gate`, connected to a listener here; on the way out the writer is killed
    and both sockets closed."""
    import socket
    srv = socket.create_server((LO, 0))
    proc = subprocess.Popen([sys.executable, str(PEER), "writer", "--host", LO, "--port", str(srv.getsockname()[1]),
                             "--bytes", "10", "--count", str(count), "--gate", str(gate)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn, _ = srv.accept()
        try:
            yield proc
        finally:
            conn.close()
    finally:
        proc.kill()
        proc.wait()
        srv.close()


def _records(proc: Any, wanted: int, within: float) -> list[dict]:
    """Up to `wanted` JSON lines of the writer's stdout, waiting at most `within` seconds."""
    out, deadline = b"", time.monotonic() + within
    fd = proc.stdout.fileno()
    while out.count(b"\n") < wanted and time.monotonic() < deadline:
        if select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    return [json.loads(line) for line in out.splitlines()]


def test_writer_gate_waits_for_a_line_when_the_last_one_s_writer_still_holds_the_fifo(tmp_path):
    """Seen under load: `echo send > FIFO` had written its line but not yet closed the FIFO when the
    writer came back to it; a writer that opened the FIFO per line then read EOF and sent unreleased."""
    gate = tmp_path / "gate"
    with _gated_writer(gate, 3) as proc:
        assert [r["call"] for r in _records(proc, 2, 10)] == ["connect", "send"]
        with open(gate, "w") as held:       # the first line, its writer slow to close
            held.write("send\n")
            held.flush()
            assert [r["call"] for r in _records(proc, 1, 10)] == ["send"]
            time.sleep(0.3)                 # the writer is back at the gate while the FIFO is still held
        assert _records(proc, 1, 0.5) == [], "the writer sent without a second line"
        with open(gate, "w") as second:
            second.write("send\n")
        assert [r["call"] for r in _records(proc, 1, 10)] == ["send"]
        assert proc.wait(timeout=10) == 0


def test_writer_gate_keeps_lines_written_before_the_writer_reads_them(tmp_path):
    """Also seen under load: the second `echo` came while the writer had read the first line but not yet
    closed the FIFO; a writer that opened the FIFO per line lost that line with the pipe and waited for
    it until its timeout. Every line written releases one send, however early it comes."""
    gate = tmp_path / "gate"
    with _gated_writer(gate, 3) as proc:
        assert [r["call"] for r in _records(proc, 2, 10)] == ["connect", "send"]
        for _ in range(2):                  # both lines at once, without blocking (the FIFO has its reader)
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"send\n")
            os.close(fd)
        assert [r["call"] for r in _records(proc, 2, 10)] == ["send", "send"]
        assert proc.wait(timeout=10) == 0


def test_due_timers_are_the_sending_ones_due_within_the_window():
    # the CLOSE_WAIT row's retransmission timer fires in 0x14 = 20 ticks; TIME_WAIT's timer sends nothing
    assert rstlab_wait.due_timers(PROC_TCP, within=0.2, hz=100) == [
        {"local": ["127.0.0.1", 8000], "remote": ["127.0.0.1", 41654], "state": "CLOSE_WAIT",
         "timer": "retransmission", "in": 0.2}]
    assert rstlab_wait.due_timers(PROC_TCP, within=0.19, hz=100) == []
    assert rstlab_wait.due_timers(PROC_TCP, within=100.0, hz=100)[0]["state"] == "CLOSE_WAIT"


def test_may_owe_ack_names_the_full_sockets_that_can_still_acknowledge():
    # LISTEN and TIME_WAIT never delay an ACK; CLOSE_WAIT may (a FIN received is acknowledged late, pingpong)
    assert rstlab_wait.may_owe_ack(PROC_TCP) == [
        {"local": ["127.0.0.1", 8000], "remote": ["127.0.0.1", 41654], "state": "CLOSE_WAIT"}]


def test_other_processes_leave_out_the_agent_init_and_zombies():
    running = subprocess.Popen(["sleep", "30"])
    zombie = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(") ")[2][0] != "Z":
            assert time.monotonic() < deadline, "`true` never exited"
            time.sleep(0.01)
        pids = {int(p.split()[0]) for p in rstlab_wait.other_processes(os.getpid())}
        assert running.pid in pids and f"{running.pid} sleep" in rstlab_wait.other_processes(os.getpid())
        assert zombie.pid not in pids and os.getpid() not in pids and 1 not in pids
    finally:
        running.kill()
        running.wait()
        zombie.wait()


def test_quiet_names_a_keepalive_timer_due_within_the_window(agent):
    port = listener(agent)
    agent.ok("connect", sock="c", host=LO, port=port)
    agent.ok("accept", sock="l", as_="s")

    def ours(within: float) -> list[tuple[str, str]]:   # this namespace may hold other programs' sockets
        timers = agent.ok("quiet", within=within)["result"]["timers"]
        return [(t["state"], t["timer"]) for t in timers if t["remote"] == [LO, port]]
    keepalive_time = int(Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text())
    assert ours(keepalive_time + 5) == []
    agent.ok("setsockopt", sock="c", option="SO_KEEPALIVE", value=1)   # the socket timer, due in tcp_keepalive_time
    assert ours(keepalive_time + 5) == [("ESTABLISHED", "keepalive")]
    assert ours(keepalive_time - 5) == []
