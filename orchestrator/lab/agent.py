"""Talking to the peer agent of a host: JSON lines over the container's attached stdin/stdout.

One attached connection per host for the whole run, so a call costs no exec.
Each stdout JSON line is an answer (it carries the call's id) or an event
(the agent's "ready"); stderr is kept for diagnostics.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, cast

from ..errors import LabRuntimeError
from ..result import AgentAnswer
from .attach import AttachedStream


class AgentChannel(AttachedStream):
    """The attached stdin/stdout of one host's peer agent."""

    what = "the peer agent"

    def __init__(self, api: Any, container_id: str, host: str) -> None:
        self._pending = b""
        self._answers: dict[int, AgentAnswer] = {}
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        super().__init__(api, container_id, host, stdin=True)

    def _on_stdout(self, data: bytes) -> None:
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "id" in msg:
                self._answers[msg["id"]] = cast(AgentAnswer, msg)
            else:
                self._events.append(msg)

    # -- calling -------------------------------------------------------------
    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Block until the agent said it is ready (it prints that once at start)."""
        return self._wait(lambda: next((e for e in self._events if e.get("event") == "ready"), None),
                          timeout, "to start")

    def send(self, call: str, args: Mapping[str, Any]) -> int:
        """Send a call; returns its id for `result`."""
        with self._cond:
            self._next_id += 1
            call_id = self._next_id
        line = json.dumps({"id": call_id, "call": call, "args": dict(args)}) + "\n"
        try:
            self._raw.sendall(line.encode())
        except OSError as exc:
            raise LabRuntimeError(f"{self.host}: cannot reach its peer agent ({exc})") from None
        return call_id

    def result(self, call_id: int, timeout: float) -> AgentAnswer:
        return self._wait(lambda: self._answers.get(call_id), timeout, f"to answer call {call_id}")

    def call(self, call: str, args: Mapping[str, Any], timeout: float) -> AgentAnswer:
        return self.result(self.send(call, args), timeout)
