"""Driving a scenario's steps on a lab: agent calls, background calls, waits, restarts, the time limit.

Talks to the lab only through the `Lab` protocol and to time only through a
`Clock`, so unit tests drive it with fakes, without Docker.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .errors import LabRuntimeError
from .lab.protocol import Clock, Lab
from .model import CallStep, RestartStep, Scenario, SleepStep, Step, WaitStep
from .result import AgentAnswer

STEP_TIMEOUT = 30.0   # seconds a single agent call may take


def with_addresses(value: Any, addresses: Mapping[str, str]) -> Any:
    """`{server}` in a command or argument becomes that host's address in this run."""
    if isinstance(value, str):
        return re.sub(r"\{([a-z][a-z0-9_-]*)\}",
                      lambda m: addresses.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [with_addresses(v, addresses) for v in value]
    return value


def agent_args(step: CallStep, addresses: Mapping[str, str]) -> dict[str, Any]:
    """A call step's arguments as the agent takes them: host names in `connect` and `{host}` become addresses."""
    args = {k: with_addresses(v, addresses) for k, v in step.args.items()}
    if step.call == "connect" and args.get("host") in addresses:
        args["host"] = addresses[args["host"]]
    return args


class Counters:
    """Kernel counter deltas per host over the run, across restarts (a restart starts from zero)."""

    def __init__(self, lab: Lab, hosts: Sequence[str]) -> None:
        self.lab = lab
        self.base = {h: self.read(h) for h in hosts}
        self.earlier: dict[str, dict[str, int]] = {h: {} for h in hosts}

    def read(self, host: str) -> dict[str, int]:
        answer = self.lab.agent(host).call("counters", {}, STEP_TIMEOUT)
        if not answer["ok"]:
            raise LabRuntimeError(f"{host}: cannot read its kernel counters ({answer['error']})")
        return {str(k): int(v) for k, v in answer["result"].items()}

    def before_restart(self, host: str) -> None:
        self.earlier[host] = self.delta(host)

    def after_restart(self, host: str) -> None:
        self.base[host] = self.read(host)

    def delta(self, host: str) -> dict[str, int]:
        now, base, earlier = self.read(host), self.base[host], self.earlier[host]
        return {k: now[k] - base.get(k, 0) + earlier.get(k, 0) for k in now}


@dataclass(frozen=True)
class _Pending:
    """A call sent and not yet awaited."""

    label: str | None
    host: str
    call_id: int


def drive(scenario: Scenario, lab: Lab, counters: Counters, clock: Clock,
          on_step: Callable[[int, Step], None] = lambda index, step: None) -> list[AgentAnswer]:
    """Run the steps in order; background calls are awaited at a wait step or at the end.

    The scenario's `timeout` bounds the whole: a call still going when it runs
    out ends the run with a LabRuntimeError saying so. `on_step` hears of each
    step as it begins. The answers come back ordered by when each call began.
    """
    events: list[AgentAnswer] = []
    pending: list[_Pending] = []
    deadline = clock.monotonic() + scenario.timeout

    def left() -> float:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise LabRuntimeError(f"{scenario.id} went over its time limit of {scenario.timeout:g} s",
                                  "a call never returned: see the steps, or raise the scenario's timeout")
        return remaining

    def collect(which: list[_Pending]) -> None:
        for item in which:
            pending.remove(item)
            try:
                events.append(lab.agent(item.host).result(item.call_id, min(STEP_TIMEOUT, left())))
            except LabRuntimeError:
                left()   # says so if it was the scenario's time limit that ran out
                raise

    for index, step in enumerate(scenario.steps):
        on_step(index, step)
        if isinstance(step, SleepStep):
            clock.sleep(min(step.seconds, left()))
        elif isinstance(step, WaitStep):
            collect([p for p in pending if step.label is None or p.label == step.label])
        elif isinstance(step, RestartStep):
            collect([p for p in pending if p.host == step.host])
            counters.before_restart(step.host)
            t = clock.time()
            lab.restart(step.host)
            counters.after_restart(step.host)
            events.append({"id": None, "host": step.host, "call": "restart", "sock": None, "args": None,
                           "start": t, "end": clock.time(), "ok": True, "result": None, "errno": None,
                           "error": None})
        else:
            call_id = lab.agent(step.host).send(step.call, agent_args(step, lab.addresses))
            item = _Pending(step.label, step.host, call_id)
            pending.append(item)
            if not step.background:
                collect([item])
    collect(list(pending))
    return sorted(events, key=lambda e: (e["start"], e["id"] or 0))
