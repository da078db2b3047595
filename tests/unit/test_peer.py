"""The peer agent, driven over stdin/stdout as the orchestrator drives it.

Loopback (127.0.0.1) only. Every read has a deadline (select), so no test can hang.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PEER = Path(__file__).resolve().parents[2] / "images" / "host" / "rstlab_peer.py"
LO = "127.0.0.1"
DEADLINE = 10.0


class Agent:
    """One agent subprocess; answers may come back in any order, matched by id."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "agent", "--host", "t"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buf = b""
        self._pending: dict = {}
        self._next_id = 0

    def read_line(self, timeout: float = DEADLINE) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no line from the agent within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("agent closed its stdout")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def write(self, obj: dict | str) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        self.proc.stdin.write(data.encode() + b"\n")
        self.proc.stdin.flush()

    def send(self, call: str, **args) -> int:
        """Sends a command without waiting; returns its id."""
        self._next_id += 1
        self.write({"id": self._next_id, "call": call,
                    "args": {("as" if k == "as_" else k): v for k, v in args.items()}})
        return self._next_id

    def wait(self, cid: int, timeout: float = DEADLINE) -> dict:
        deadline = time.monotonic() + timeout
        while cid not in self._pending:
            msg = self.read_line(max(0.01, deadline - time.monotonic()))
            self._pending[msg.get("id")] = msg
        return self._pending.pop(cid)

    def call(self, call: str, *, wait_s: float = DEADLINE, **args) -> dict:
        return self.wait(self.send(call, **args), wait_s)

    def ok(self, call: str, **args) -> dict:
        ans = self.call(call, **args)
        assert ans["ok"], ans
        return ans

    def exit_status(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("agent did not exit") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def agent():
    a = Agent()
    ready = a.read_line()
    assert ready["event"] == "ready", ready
    yield a
    a.stop()


def listener(agent: Agent, name: str = "l", backlog: int = 16) -> int:
    ans = agent.ok("listen", sock=name, port=0, addr=LO, backlog=backlog)
    assert ans["result"]["addr"][0] == LO
    return ans["result"]["addr"][1]


def connected_pair(agent: Agent) -> None:
    """c (client) <-> s (accepted), both in the agent."""
    port = listener(agent)
    agent.ok("connect", sock="c", host=LO, port=port)
    agent.ok("accept", sock="l", as_="s")


def reset_server_side(agent: Agent) -> None:
    agent.ok("setsockopt", sock="s", option="SO_LINGER", value=[1, 0])
    agent.ok("close", sock="s")


def test_ready_line():
    a = Agent()
    try:
        ready = a.read_line()
        assert ready["event"] == "ready" and ready["host"] == "t"
        assert ready["pid"] == a.proc.pid
        assert abs(ready["t"] - time.time()) < 30
    finally:
        a.stop()


def test_round_trip(agent):
    port = listener(agent)
    conn = agent.ok("connect", sock="c", host=LO, port=port)
    assert conn["host"] == "t" and conn["call"] == "connect" and conn["sock"] == "c"
    assert conn["args"] == {"sock": "c", "host": LO, "port": port}
    assert conn["result"]["peer"] == [LO, port]
    assert conn["errno"] is None and conn["error"] is None
    assert conn["start"] <= conn["end"]
    acc = agent.ok("accept", sock="l", as_="s")
    assert acc["result"]["peer"] == conn["result"]["local"]
    assert acc["result"]["local"] == [LO, port]

    sent = agent.ok("send", sock="c", bytes=1000, repeat=3, interval=0.01)
    records = sent["result"]
    assert [r["sent"] for r in records] == [1000, 1000, 1000]
    assert all(r["ok"] and r["t"] <= r["end"] for r in records)
    assert records[0]["t"] < records[1]["t"] < records[2]["t"]
    assert sent["start"] == records[0]["t"] and sent["end"] == records[-1]["end"]

    got = agent.ok("recv", sock="s", bytes=3000, exact=True)
    assert got["result"] == {"received": 3000, "eof": False}

    table = agent.ok("sockets")["result"]
    assert set(table) == {"l", "c", "s"}
    assert table["l"]["peer"] is None and table["c"]["peer"] == [LO, port]

    agent.ok("close", sock="c")
    eof = agent.ok("recv", sock="s")
    assert eof["result"] == {"received": 0, "eof": True}
    agent.ok("shutdown", sock="s", how="WR")
    agent.ok("close", sock="s")
    assert set(agent.ok("sockets")["result"]) == {"l"}


def test_connect_refused(agent):
    with socket.socket() as bound:  # bound, never listening: the port refuses
        bound.bind((LO, 0))
        ans = agent.call("connect", sock="c", host=LO, port=bound.getsockname()[1])
    assert not ans["ok"]
    assert ans["errno"] == "ECONNREFUSED" and ans["error"] == "Connection refused"
    assert ans["start"] <= ans["end"]


def test_recv_after_linger_zero_close_is_reset(agent):
    connected_pair(agent)
    reset_server_side(agent)
    ans = agent.call("recv", sock="c")
    assert not ans["ok"] and ans["errno"] == "ECONNRESET", ans


def test_send_after_reset_records_errno(agent):
    connected_pair(agent)
    reset_server_side(agent)
    time.sleep(0.1)
    ans = agent.call("send", sock="c", bytes=100, repeat=3, keep_going=True)
    assert not ans["ok"]
    errs = [r["errno"] for r in ans["result"]]
    # Linux: the first send after a RST reports ECONNRESET, the later ones EPIPE.
    assert errs == ["ECONNRESET", "EPIPE", "EPIPE"], ans
    assert ans["errno"] == "ECONNRESET"

    stop = agent.call("send", sock="c", bytes=100, repeat=3)
    assert [r["errno"] for r in stop["result"]] == ["EPIPE"]  # stops at the first error


def test_recv_timeout_is_the_kernels(agent):
    connected_pair(agent)
    agent.ok("setsockopt", sock="c", option="SO_RCVTIMEO", value=0.2)
    ans = agent.call("recv", sock="c")
    assert not ans["ok"] and ans["errno"] in ("EAGAIN", "EWOULDBLOCK"), ans
    assert 0.15 < ans["end"] - ans["start"] < 5


def test_nonblocking_connect_succeeds(agent):
    port = listener(agent)
    ans = agent.ok("connect", sock="c", host="localhost", port=port,
                   nonblocking=True, timeout=5)
    assert ans["result"]["peer"] == [LO, port]
    agent.ok("accept", sock="l", as_="s")
    # back in blocking mode: a recv waits (and the kernel's SO_RCVTIMEO ends it)
    agent.ok("setsockopt", sock="c", option="SO_RCVTIMEO", value=0.2)
    assert agent.call("recv", sock="c")["errno"] in ("EAGAIN", "EWOULDBLOCK")


def test_nonblocking_connect_poll_timeout_on_full_accept_queue(agent):
    port = listener(agent, backlog=0)
    agent.ok("connect", sock="f", host=LO, port=port)  # fills the accept queue
    ans = agent.call("connect", sock="c", host=LO, port=port, nonblocking=True, timeout=0.3)
    # Linux drops a SYN to a listener whose accept queue is full, so the
    # client stays in SYN-SENT and the application's poll gives up.
    assert not ans["ok"] and ans["result"] == "poll-timeout" and ans["errno"] is None, ans
    assert 0.25 < ans["end"] - ans["start"] < 5
    assert "c" in agent.ok("sockets")["result"]  # left open


def test_setsockopt_options(agent):
    agent.ok("socket", sock="c")
    for option, value in [("SO_LINGER", [1, 5]), ("SO_SNDTIMEO", 1.5), ("SO_KEEPALIVE", 1),
                          ("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3),
                          ("TCP_USER_TIMEOUT", 3000), ("SO_RCVBUF", 8192),
                          ("SO_SNDBUF", 8192), ("TCP_NODELAY", 1), ("SO_REUSEADDR", 1)]:
        assert agent.ok("setsockopt", sock="c", option=option, value=value)["result"] is None
    bad = agent.call("setsockopt", sock="c", option="SO_NOPE", value=1)
    assert not bad["ok"] and bad["errno"] is None
    assert not agent.call("socket", sock="c")["ok"]  # the name is taken


def test_counters(agent):
    counters = agent.ok("counters")["result"]
    for name in ("TcpOutRsts", "TcpActiveOpens", "TcpExtTCPAbortOnData",
                 "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnLinger", "TcpExtTCPAbortOnTimeout"):
        assert type(counters[name]) is int, name


def test_shell(agent):
    ans = agent.ok("shell", cmd="echo hi; echo err >&2")
    assert ans["result"]["rc"] == 0
    assert ans["result"]["stdout"] == "hi\n" and ans["result"]["stderr"] == "err\n"
    failed = agent.call("shell", cmd="exit 3")
    assert not failed["ok"] and failed["result"]["rc"] == 3 and failed["errno"] is None
    slow = agent.call("shell", cmd="sleep 5", timeout=0.3)
    assert not slow["ok"] and "timeout" in slow["error"]


def test_exec_reports_signal(agent):
    ans = agent.call("exec", argv=["/bin/sh", "-c", "kill -TERM $$"])
    assert not ans["ok"] and ans["result"]["rc"] == -15 and ans["result"]["signal"] == "SIGTERM"


def test_bad_commands_do_not_kill_the_agent(agent):
    for call, args in [("frobnicate", {}), ("connect", {"sock": "c"}),
                       ("recv", {"sock": "nope"}), ("sleep", {"seconds": "x"}),
                       ("send", {"sock": "c", "bytes": 1, "extra": 1})]:
        ans = agent.call(call, **args)
        assert not ans["ok"] and ans["errno"] is None and ans["error"], ans
    agent.write("this is not json")
    garbled = agent.read_line()
    assert garbled["id"] is None and not garbled["ok"]
    assert agent.ok("sleep", seconds=0)["result"] is None


def test_blocking_call_does_not_block_others(agent):
    port = listener(agent)
    pending = agent.send("accept", sock="l", as_="s")
    assert agent.ok("sleep", seconds=0.01)
    agent.ok("connect", sock="c", host=LO, port=port)
    assert agent.wait(pending)["ok"]


def test_writer_default_sigpipe_killed_via_exec(agent):
    port = listener(agent)
    argv = [sys.executable, str(PEER), "writer", "--host", LO, "--port", str(port),
            "--bytes", "1000", "--count", "2000", "--interval", "0.02",   # 40 s of sends: the reset comes first
            "--default-sigpipe", "--keep-going"]                              # however loaded the machine is
    run = agent.send("exec", argv=argv, default_sigpipe=True, timeout=60)
    agent.ok("accept", sock="l", as_="s")
    reset_server_side(agent)
    ans = agent.wait(run, timeout=65)
    assert ans["result"]["rc"] == -13 and ans["result"]["signal"] == "SIGPIPE", ans
    records = [json.loads(line) for line in ans["result"]["stdout"].splitlines()]
    assert records[0]["call"] == "connect" and records[0]["ok"]
    assert records[-1]["errno"] == "ECONNRESET"  # the next send (EPIPE) killed it


def test_writer_stops_at_first_error(agent):
    port = listener(agent)
    proc = subprocess.Popen(
        [sys.executable, str(PEER), "writer", "--host", LO, "--port", str(port),
         "--bytes", "1000", "--count", "2000", "--interval", "0.02", "--default-sigpipe"],   # outlasts the reset
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        agent.ok("accept", sock="l", as_="s")
        reset_server_side(agent)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert json.loads(out.splitlines()[-1])["errno"] == "ECONNRESET"


def test_quit(agent):
    agent.ok("listen", sock="l", port=0, addr=LO)
    assert agent.call("quit")["ok"]
    assert agent.exit_status() == 0


def test_eof_exits_zero(agent):
    agent.ok("sleep", seconds=0)
    agent.proc.stdin.close()
    assert agent.exit_status() == 0


def test_sigterm_exits_zero(agent):
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.exit_status() == 0

