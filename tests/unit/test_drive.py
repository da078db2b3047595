"""The step driver and the runner against a fake lab and a fake clock: no Docker, no waiting."""
from __future__ import annotations

from concurrent.futures import Executor
from types import MappingProxyType
from typing import Any, Mapping

import pytest

from orchestrator.drive import Counters, agent_args, drive
from orchestrator.errors import LabRuntimeError
from orchestrator.lab.protocol import CaptureFile
from orchestrator.model import CallStep, RestartStep, Scenario, SleepStep, Step, WaitStep
from orchestrator.result import AgentAnswer
from orchestrator.runner import Progress, run_many, run_scenario


class FakeClock:
    """Time moves only when someone sleeps or waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeAgent:
    def __init__(self, lab: FakeLab, host: str) -> None:
        self.lab, self.host = lab, host
        self.sent: dict[int, tuple[str, Mapping[str, Any], float]] = {}

    def send(self, call: str, args: Mapping[str, Any]) -> int:
        call_id = len(self.lab.log) + 1
        self.lab.log.append((self.host, call, dict(args)))
        self.sent[call_id] = (call, args, self.lab.clock.now)
        return call_id

    def result(self, call_id: int, timeout: float) -> AgentAnswer:
        call, args, start = self.sent.pop(call_id)
        self.lab.awaited.append((self.host, call))
        if call == "counters":
            return self._answer(call_id, call, args, start, start, dict(self.lab.counters[self.host]))
        takes = float(args.get("takes", 0.0))
        if takes > timeout:   # as the attached channel says it
            self.lab.clock.now += timeout
            raise LabRuntimeError(f"{self.host}: the peer agent took more than {timeout:g} s to answer call {call_id}")
        self.lab.clock.now = max(self.lab.clock.now, start + takes)
        return self._answer(call_id, call, args, start, start + takes, None)

    def call(self, call: str, args: Mapping[str, Any], timeout: float) -> AgentAnswer:
        return self.result(self.send(call, args), timeout)

    def _answer(self, call_id: int, call: str, args: Mapping[str, Any], start: float, end: float,
                result: Any) -> AgentAnswer:
        return {"id": call_id, "host": self.host, "call": call, "sock": args.get("sock"), "args": dict(args),
                "start": start, "end": end, "ok": True, "result": result, "errno": None, "error": None}


class FakeLab:
    """Hosts with kernel counters (a restart zeroes them), agents that answer at once or after `takes` s."""

    history: tuple[str, ...] = ()
    kept: bool | None = None
    not_kept: Mapping[str, str] = MappingProxyType({})

    def __init__(self, clock: FakeClock, hosts: tuple[str, ...] = ("client", "server")) -> None:
        self.clock = clock
        self.hosts = hosts
        self.counters = {h: {"TcpExtTCPAbortOnData": 0} for h in hosts}
        self.agents = {h: FakeAgent(self, h) for h in hosts}
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.awaited: list[tuple[str, str]] = []
        self.restarts: list[str] = []
        self.outside: LabRuntimeError | None = None
        self.entered = self.exited = False

    def __enter__(self) -> FakeLab:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True

    @property
    def addresses(self) -> Mapping[str, str]:
        return {h: f"10.0.0.{i + 1}" for i, h in enumerate(self.hosts)}

    def agent(self, host: str) -> FakeAgent:
        return self.agents[host]

    def restart(self, host: str) -> None:
        self.restarts.append(host)
        self.counters[host] = dict.fromkeys(self.counters[host], 0)

    def settle(self, seconds: float, clock: FakeClock) -> None:
        clock.sleep(seconds)

    def stop_captures(self) -> dict[str, CaptureFile]:
        return {}

    def fault(self) -> LabRuntimeError | None:
        return self.outside

    def prepare_ahead(self, pool: Executor) -> None:
        pass


def scenario(*steps: Step, timeout: float = 60.0) -> Scenario:
    return Scenario(id="fake", title="fake", claim="", explanation="", hosts=("client", "server"),
                    capture=(), steps=tuple(steps), timeout=timeout, settle=0.0)


def setup(*steps: Step, timeout: float = 60.0) -> tuple[Scenario, FakeLab, FakeClock, Counters]:
    clock = FakeClock()
    lab = FakeLab(clock)
    s = scenario(*steps, timeout=timeout)
    return s, lab, clock, Counters(lab, s.hosts)


def test_a_background_call_is_awaited_at_its_wait_step_and_events_come_in_start_order() -> None:
    s, lab, clock, counters = setup(
        CallStep(host="server", call="accept", args={"sock": "l", "takes": 5}, background=True, label="acc"),
        CallStep(host="client", call="connect", args={"sock": "c", "host": "server", "port": 80, "takes": 1}),
        WaitStep(label="acc"),
        CallStep(host="client", call="close", args={"sock": "c"}))
    events = drive(s, lab, counters, clock)
    assert [(e["host"], e["call"]) for e in events] == [("server", "accept"), ("client", "connect"),
                                                       ("client", "close")]
    # the connect was awaited before the accept; close only after the wait step
    calls = [a for a in lab.awaited if a[1] != "counters"]
    assert calls == [("client", "connect"), ("server", "accept"), ("client", "close")]
    assert lab.log[-2][2]["host"] == "10.0.0.2", "a host name in connect becomes its address"


def test_a_wait_step_waits_only_for_its_label_and_the_rest_at_the_end() -> None:
    s, lab, clock, counters = setup(
        CallStep(host="server", call="recv", args={"sock": "a", "takes": 3}, background=True, label="a"),
        CallStep(host="client", call="recv", args={"sock": "b", "takes": 1}, background=True, label="b"),
        WaitStep(label="b"),
        CallStep(host="client", call="send", args={"sock": "b"}))
    drive(s, lab, counters, clock)
    calls = [a for a in lab.awaited if a[1] != "counters"]
    assert calls == [("client", "recv"), ("client", "send"), ("server", "recv")]


def test_sleep_uses_the_clock_given() -> None:
    s, lab, clock, counters = setup(SleepStep(seconds=2.5))
    start = clock.now
    drive(s, lab, counters, clock)
    assert clock.now - start == pytest.approx(2.5)


def test_a_restart_first_collects_that_host_s_calls_and_counters_run_on_across_it() -> None:
    s, lab, clock, counters = setup(
        CallStep(host="server", call="accept", args={"sock": "l", "takes": 2}, background=True),
        RestartStep(host="server"),
        CallStep(host="client", call="send", args={"sock": "c"}))
    lab.counters["server"]["TcpExtTCPAbortOnData"] = 3   # since the base was read
    events = drive(s, lab, counters, clock)
    assert lab.restarts == ["server"]
    assert [e["call"] for e in events] == ["accept", "restart", "send"]
    restart = events[1]
    assert restart["host"] == "server" and restart["ok"] and restart["start"] >= events[0]["end"]
    lab.counters["server"]["TcpExtTCPAbortOnData"] = 2   # after the restart, from zero
    assert counters.delta("server") == {"TcpExtTCPAbortOnData": 5}
    assert counters.delta("client") == {"TcpExtTCPAbortOnData": 0}


def test_a_call_that_never_returns_ends_at_the_scenario_time_limit() -> None:
    s, lab, clock, counters = setup(
        CallStep(host="server", call="accept", args={"sock": "l", "takes": 1e9}), timeout=4)
    with pytest.raises(LabRuntimeError, match="went over its time limit of 4 s"):
        drive(s, lab, counters, clock)
    assert clock.now - 1000.0 == pytest.approx(4)


def test_a_sleep_past_the_time_limit_is_cut_and_the_next_call_says_so() -> None:
    s, lab, clock, counters = setup(SleepStep(seconds=30), CallStep(host="client", call="close", args={"sock": "c"}),
                                    timeout=5)
    with pytest.raises(LabRuntimeError, match="time limit of 5 s"):
        drive(s, lab, counters, clock)
    assert clock.now - 1000.0 == pytest.approx(5)


def test_addresses_replace_host_names_in_arguments() -> None:
    step = CallStep(host="client", call="shell", args={"cmd": "curl http://{server}:80/ {nobody}"})
    assert agent_args(step, {"server": "10.0.0.2"}) == {"cmd": "curl http://10.0.0.2:80/ {nobody}"}


def test_run_scenario_reports_its_phases_and_a_fault_from_outside_as_its_error() -> None:
    clock = FakeClock()
    lab = FakeLab(clock)
    s = scenario(CallStep(host="client", call="socket", args={"sock": "c"}))
    seen: list[Progress] = []
    result = run_scenario(lab, s, clock, seen.append)
    assert result.verdict == "passed" and result.addresses == {"client": "10.0.0.1", "server": "10.0.0.2"}
    assert [p.phase for p in seen] == ["creating", "capturing", "step", "checking"]
    assert seen[2].step == s.steps[0] and lab.exited

    lab = FakeLab(clock)
    lab.outside = LabRuntimeError("the capture of router: killed from outside (SIGKILL, exit 137)")
    result = run_scenario(lab, s, clock)
    assert result.verdict == "error" and result.error == lab.outside.line() and lab.exited


def test_a_failure_inside_is_said_as_the_fault_outside_that_caused_it() -> None:
    clock = FakeClock()
    lab = FakeLab(clock)
    s = scenario(CallStep(host="client", call="recv", args={"sock": "c", "takes": 1e9}), timeout=60)
    lab.outside = LabRuntimeError("host client: killed from outside (SIGKILL, exit 137)")
    result = run_scenario(lab, s, clock)
    assert result.error == "host client: killed from outside (SIGKILL, exit 137)"


class FakeRun:
    def __init__(self, clock: FakeClock, broken: set[str]) -> None:
        self.run_id = "fake"
        self.clock, self.broken = clock, broken
        self.made: list[str] = []
        self.finished = self.removed = False

    def make(self, s: Scenario) -> FakeLab:
        self.made.append(s.id)
        lab = FakeLab(self.clock)
        if s.id in self.broken:
            lab.outside = LabRuntimeError(f"{s.id}: the lab network was removed from outside")
        return lab

    def remove_everything(self) -> None:
        self.removed = True

    def finish(self) -> None:
        self.finished = True


def test_run_many_goes_on_after_a_scenario_s_error_and_announces_each_result() -> None:
    clock = FakeClock()
    base = scenario(CallStep(host="client", call="socket", args={"sock": "c"}))
    scenarios = [Scenario(**{**base.__dict__, "id": name}) for name in ("one", "two", "three")]
    labs = FakeRun(clock, broken={"two"})
    done: list[str] = []
    results = run_many(labs, scenarios, 1, lambda p: done.append(p.scenario.id) if p.phase == "done" else None,
                       clock)
    assert [r.verdict for r in results] == ["passed", "error", "passed"]
    assert results[1].error == "two: the lab network was removed from outside"
    assert sorted(done) == ["one", "three", "two"] and labs.finished and not labs.removed


def test_the_agent_calls_the_model_knows_are_the_peer_s_table() -> None:
    """model.AGENT_CALLS (what steps may call) and RUNNER_CALLS are exactly the peer agent's CALLS."""
    import importlib.util

    from orchestrator.model import AGENT_CALLS, RUNNER_CALLS
    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("rstlab_peer", ROOT / "images" / "host" / "rstlab_peer.py")
    assert spec is not None and spec.loader is not None
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    assert set(peer.CALLS) == AGENT_CALLS | RUNNER_CALLS
    assert not AGENT_CALLS & RUNNER_CALLS


def test_run_many_can_leave_the_last_removals_to_its_caller() -> None:
    clock = FakeClock()
    labs = FakeRun(clock, broken=set())
    results = run_many(labs, [scenario(CallStep(host="client", call="socket", args={"sock": "c"}))], 1,
                       clock=clock, finish=False)
    assert [r.verdict for r in results] == ["passed"] and not labs.finished and not labs.removed


def test_an_interrupt_removes_everything_and_nothing_more_is_announced() -> None:
    clock = FakeClock()
    base = scenario(CallStep(host="client", call="socket", args={"sock": "c"}))
    scenarios = [Scenario(**{**base.__dict__, "id": name}) for name in ("one", "two")]

    class Interrupting(FakeRun):
        def make(self, s: Scenario) -> FakeLab:
            lab = super().make(s)
            if s.id == "one":
                def interrupt(host: str) -> FakeAgent:
                    raise KeyboardInterrupt
                lab.agent = interrupt   # type: ignore[method-assign]
            return lab

    labs = Interrupting(clock, broken=set())
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_many(labs, scenarios, 1, lambda p: done.append(p.scenario.id) if p.phase == "done" else None, clock)
    assert labs.removed and labs.finished
    assert done == []
