"""Talking to the peer agent of a host: JSON lines over the container's attached stdin/stdout.

One attached connection per host for the whole run, so a call costs no exec and
works against a remote DOCKER_HOST too. Docker multiplexes stdout and stderr
on the attached socket (8-byte frame headers): a reader thread splits frames,
keeps stderr for diagnostics, and hands each stdout JSON line to whoever waits.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any

from ..errors import LabRuntimeError


class AgentChannel:
    """The attached stdin/stdout of one host's peer agent."""

    def __init__(self, api: Any, container_id: str, host: str) -> None:
        self.host = host
        self._sock = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self._raw: socket.socket = getattr(self._sock, "_sock", self._sock)
        self._cond = threading.Condition()
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self.stderr = ""
        self._closed = False
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, name=f"agent-{host}", daemon=True)
        self._reader.start()

    # -- reading -------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._raw.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _read(self) -> None:
        pending = b""
        try:
            while True:
                stream, size = struct.unpack(">BxxxL", self._recv_exact(8))
                data = self._recv_exact(size) if size else b""
                if stream == 2:
                    self.stderr += data.decode(errors="replace")
                    continue
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._dispatch(line)
        except (EOFError, OSError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _dispatch(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return
        with self._cond:
            if "id" in msg:
                self._answers[msg["id"]] = msg
            else:
                self._events.append(msg)
            self._cond.notify_all()

    # -- calling -------------------------------------------------------------
    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Block until the agent said it is ready (it prints that once at start)."""
        return self._wait(lambda: next((e for e in self._events if e.get("event") == "ready"), None),
                          timeout, "to start")

    def send(self, call: str, args: dict[str, Any]) -> int:
        """Send a call; returns its id for `result`."""
        with self._cond:
            self._next_id += 1
            call_id = self._next_id
        line = json.dumps({"id": call_id, "call": call, "args": args}) + "\n"
        try:
            self._raw.sendall(line.encode())
        except OSError as exc:
            raise LabRuntimeError(f"{self.host}: cannot reach its peer agent ({exc})") from None
        return call_id

    def result(self, call_id: int, timeout: float) -> dict[str, Any]:
        return self._wait(lambda: self._answers.get(call_id), timeout, f"to answer call {call_id}")

    def call(self, call: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self.result(self.send(call, args), timeout)

    def _wait(self, pick: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = pick()
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if self._closed:
                    raise LabRuntimeError(f"{self.host}: the peer agent exited before {what.removeprefix('to ')}"
                                          f" ({self.stderr.strip()[-200:] or 'no message'})")
                if left <= 0:
                    raise LabRuntimeError(f"{self.host}: the peer agent took more than {timeout:g} s {what}")
                self._cond.wait(left)

    def close(self) -> None:
        try:
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
