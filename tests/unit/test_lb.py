"""The router's L4 load balancer (images/host/rstlab_lb.py) on loopback: relays, then resets or forgets at idle."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LB = Path(__file__).resolve().parents[2] / "images" / "host" / "rstlab_lb.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxied:
    """A backend listener, the balancer in front of it, and a client connected through it."""

    def __init__(self, on_idle: str, idle: float) -> None:
        self.backend_listener = socket.create_server(("127.0.0.1", 0))
        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(LB), "--listen", str(port), "--backend",
             f"127.0.0.1:{self.backend_listener.getsockname()[1]}", "--idle", str(idle), "--on-idle", on_idle],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert json.loads(self.proc.stdout.readline())["event"] == "listening"
        self.client = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.backend, _ = self.backend_listener.accept()
        self.backend.settimeout(5)

    def events(self) -> list[dict[str, object]]:
        out, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err
        return [json.loads(line) for line in out.splitlines()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for s in (self.client, self.backend, self.backend_listener):
            s.close()


@pytest.fixture(name="proxied")
def fixture_proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    on_idle, idle = request.param
    p = Proxied(on_idle, idle)
    yield p
    p.close()


@pytest.mark.parametrize("proxied", [("reset", 0.5)], indirect=True)
def test_relays_both_ways_then_resets_both_legs_at_idle(proxied: Proxied) -> None:
    proxied.client.sendall(b"ping")
    assert proxied.backend.recv(10) == b"ping"
    proxied.backend.sendall(b"pong")
    assert proxied.client.recv(10) == b"pong"
    t0 = time.monotonic()
    with pytest.raises(ConnectionResetError):
        proxied.client.recv(10)          # no packet of its own provoked it
    with pytest.raises(ConnectionResetError):
        proxied.backend.recv(10)
    assert 0.4 < time.monotonic() - t0 < 2.0
    events = proxied.events()
    assert [e["event"] for e in events] == ["accepted", "connected", "idle"]   # "listening" was read at start
    assert events[-1]["action"] == "reset"


@pytest.mark.parametrize("proxied", [("silent", 0.3)], indirect=True)
def test_silent_idle_tells_neither_end(proxied: Proxied) -> None:
    events = proxied.events()             # the balancer has forgotten the flow and exited
    assert events[-1]["event"] == "idle" and events[-1]["action"] == "silent"
    for end in (proxied.client, proxied.backend):
        end.setblocking(False)
        with pytest.raises(BlockingIOError):
            end.recv(10)                  # no FIN, no RST: each end still believes in its connection
    # on loopback nothing drops the next segment, so the balancer host's TCP answers it: no socket, RST
    proxied.client.setblocking(True)
    proxied.client.sendall(b"late")
    with pytest.raises(ConnectionResetError):
        proxied.client.recv(10)


@pytest.mark.parametrize("proxied", [("reset", 5.0)], indirect=True)
def test_a_closing_end_is_passed_on(proxied: Proxied) -> None:
    proxied.client.shutdown(socket.SHUT_WR)
    assert proxied.backend.recv(10) == b""
    proxied.backend.close()
    assert proxied.client.recv(10) == b""
    assert [e["event"] for e in proxied.events()][-2:] == ["eof", "eof"]
