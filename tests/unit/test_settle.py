"""ScenarioLab.settle: over as soon as nothing can still send and nothing sent is on its way, else the
scenario's whole settle time (fake agents, captures and clock; no Docker)."""
from __future__ import annotations

from typing import Any, Mapping

import pytest

from orchestrator import catalog
from orchestrator.lab.images import ImageSet
from orchestrator.lab.scenario_lab import CAPTURES_STILL, DELAYED_ACK_MAX, ScenarioLab
from orchestrator.model import Scenario
from tests.unit.test_drive import FakeClock

SETTLE = 0.3


class QuietAgent:
    """Answers `quiet` with the timers and processes it is given."""

    def __init__(self, timers: list[Any] | None = None, processes: list[str] | None = None,
                 may_owe_ack: list[Any] | None = None) -> None:
        self.answer = {"timers": timers or [], "processes": processes or [], "may_owe_ack": may_owe_ack or []}
        self.asked: list[Mapping[str, Any]] = []

    def send(self, call: str, args: Mapping[str, Any]) -> int:
        assert call == "quiet"
        self.asked.append(args)
        return 1

    def result(self, call_id: int, timeout: float) -> dict[str, Any]:
        return {"ok": True, "result": self.answer}


class Capture:
    """A sidecar's stream: when it last took a packet, and its counts once asked (SIGUSR1)."""

    def __init__(self, clock: FakeClock, drained: bool = True, packets_in: tuple[float, ...] = ()) -> None:
        self.clock = clock
        self.start = self.last_packet = clock.now
        self.packets_in = packets_in   # packets come this long after the steps ended
        self.closed = False
        self._drained = drained
        self.asked = 0

    def poll(self) -> None:
        self.last_packet = max([self.last_packet, *(self.start + t for t in self.packets_in
                                                    if self.start + t <= self.clock.now)])

    def reports(self) -> int:
        return self.asked

    def wait_report(self, timeout: float, after: int = 0) -> None:
        assert self.asked > after

    def drained(self) -> bool:
        return self._drained


class Api:
    def __init__(self, captures: dict[str, Capture]) -> None:
        self.captures = captures
        self.signals: list[tuple[str, str]] = []

    def kill(self, cid: str, signal: str) -> None:
        self.signals.append((cid, signal))
        self.captures[cid.removeprefix("s-")].asked += 1


class Client:
    def __init__(self, api: Api) -> None:
        self.api = api


class Clock(FakeClock):
    """Sleeping lets the captures see the packets due by then."""

    def __init__(self) -> None:
        super().__init__()
        self.captures: list[Capture] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        for capture in self.captures:
            capture.poll()


def settled(agents: dict[str, QuietAgent], captures: dict[str, Capture], clock: Clock) -> tuple[float, Api]:
    """How long settle took, and the engine calls it made."""
    api = Api(captures)
    scenario = Scenario(id="x", title="x", claim="", explanation="", hosts=("client", "server"),
                        capture=tuple(captures), steps=(), settle=SETTLE)
    lab = ScenarioLab(Client(api), ImageSet("base", "host"), catalog.load_topology(), "run1", scenario)  # type: ignore[arg-type]
    lab.agents = agents  # type: ignore[assignment]
    lab.streams = captures  # type: ignore[assignment]
    lab.sidecars = {h: f"s-{h}" for h in captures}
    for capture in captures.values():
        capture.start = clock.now
    clock.captures = list(captures.values())
    start = clock.now
    lab.settle(SETTLE, clock)
    return clock.now - start, api


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_quiet_hosts_and_still_drained_captures_end_it_early(clock: Clock) -> None:
    agents = {"client": QuietAgent(), "server": QuietAgent()}
    took, api = settled(agents, {"client": Capture(clock), "server": Capture(clock)}, clock)
    assert took == pytest.approx(CAPTURES_STILL)
    assert sorted(api.signals) == [("s-client", "SIGUSR1"), ("s-server", "SIGUSR1")]
    assert agents["server"].asked == [{"within": SETTLE}]


@pytest.mark.parametrize("agent", [
    QuietAgent(timers=[{"state": "FIN_WAIT1", "timer": "retransmission", "in": 0.2}]),
    QuietAgent(processes=["42 python3"]),
], ids=["a timer that sends", "a program left running"])
def test_a_host_that_can_still_send_gets_the_whole_time(clock: Clock, agent: QuietAgent) -> None:
    took, api = settled({"client": QuietAgent(), "server": agent}, {"client": Capture(clock)}, clock)
    assert took == pytest.approx(SETTLE)
    assert api.signals == []


def test_a_packet_still_coming_is_waited_for(clock: Clock) -> None:
    late = Capture(clock, packets_in=(0.04,))
    took, _ = settled({"client": QuietAgent()}, {"client": late, "server": Capture(clock)}, clock)
    assert took == pytest.approx(0.04 + CAPTURES_STILL)


def test_a_socket_that_may_owe_a_delayed_ack_is_given_its_time(clock: Clock) -> None:
    """The delayed-ACK timer is not in /proc/net/tcp: an ESTABLISHED socket that received data just before
    the steps ended may send its ACK up to TCP_DELACK_MAX later, so the captures must stay still that long."""
    owing = QuietAgent(may_owe_ack=[{"state": "ESTABLISHED"}])
    took, _ = settled({"client": QuietAgent(), "server": owing}, {"client": Capture(clock)}, clock)
    assert took == pytest.approx(DELAYED_ACK_MAX)
    late = Capture(clock, packets_in=(0.15,))    # the ACK came: stillness counts from it, past the settle
    took, _ = settled({"server": QuietAgent(may_owe_ack=[{"state": "CLOSE_WAIT"}])}, {"server": late}, clock)
    assert took == pytest.approx(SETTLE)


def test_packets_until_the_end_leave_the_whole_time(clock: Clock) -> None:
    steady = Capture(clock, packets_in=tuple(n * CAPTURES_STILL / 2 for n in range(1, 20)))
    took, _ = settled({"client": QuietAgent()}, {"client": steady}, clock)
    assert took == pytest.approx(SETTLE)


def test_a_capture_behind_on_its_packets_gets_the_whole_time(clock: Clock) -> None:
    took, api = settled({"client": QuietAgent()}, {"client": Capture(clock, drained=False)}, clock)
    assert took == pytest.approx(SETTLE)
    assert api.signals == [("s-client", "SIGUSR1")]


def test_no_settle_is_no_wait(clock: Clock) -> None:
    agent = QuietAgent()
    api = Api({})
    scenario = Scenario(id="x", title="x", claim="", explanation="", hosts=("client",), capture=(), steps=())
    lab = ScenarioLab(Client(api), ImageSet("base", "host"), catalog.load_topology(), "run1", scenario)  # type: ignore[arg-type]
    lab.agents = {"client": agent}  # type: ignore[dict-item]
    lab.settle(0.0, clock)
    assert clock.now == 1000.0 and agent.asked == []
