"""What the runner needs from a lab, as protocols: no Docker here.

`ScenarioLab` (lab/scenario_lab.py) and `EngineRun` (lab/engine_run.py) are the
Docker implementations; unit tests drive the runner with fakes of these.
Every operation raises `LabRuntimeError` (never an SDK exception) when the
engine fails or refuses it.
"""
from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol

from ..errors import LabRuntimeError
from ..model import Scenario
from ..result import AgentAnswer

if TYPE_CHECKING:   # the runner's side: loading it here would load the pcap reader before any lab starts
    from ..witness import KernelEvent


@dataclass(frozen=True)
class CaptureFile:
    """A capture point's pcap and tcpdump's own closing counts."""

    host: str
    data: bytes
    captured: int | None
    received: int | None
    dropped: int | None


class Agent(Protocol):
    """A host's peer agent: calls go out with an id, answers come back by id."""

    def send(self, call: str, args: Mapping[str, Any]) -> int:
        """Send a call; its id for `result`."""
        ...

    def result(self, call_id: int, timeout: float) -> AgentAnswer:
        """Block until the call's answer came, at most `timeout` seconds."""
        ...

    def call(self, call: str, args: Mapping[str, Any], timeout: float) -> AgentAnswer:
        """`send` then `result`."""
        ...


class Lab(Protocol):
    """One scenario's hosts, captures and network, up inside `with`, gone after it (or, reset and
    pristine, handed to the run's next scenario of the same shape)."""

    @property
    def history(self) -> tuple[str, ...]:
        """The scenarios that ran on these hosts before this one."""
        ...

    @property
    def kept(self) -> bool | None:
        """After the scenario: whether its hosts were reset and handed on to the next (None: never could be)."""
        ...

    @property
    def not_kept(self) -> Mapping[str, str]:
        """After the scenario: why a host was not pristine, by host."""
        ...

    def __enter__(self) -> Lab: ...

    def __exit__(self, *exc: object) -> None: ...

    @property
    def addresses(self) -> Mapping[str, str]:
        """Every topology host's address in this run (a run moves the topology to a subnet of its own)."""
        ...

    def agent(self, host: str) -> Agent: ...

    def restart(self, host: str) -> None:
        """Kill a host and start it again (fresh namespace, same address); its capture goes on."""
        ...

    def settle(self, seconds: float, clock: Clock) -> None:
        """After the steps: until the last segments reached every capture point, `seconds` at most."""
        ...

    def stop_captures(self) -> dict[str, CaptureFile]:
        """Stop every capture; each point's whole pcap and tcpdump's counts."""
        ...

    def fault(self) -> LabRuntimeError | None:
        """What happened to the lab from outside, if anything.

        E.g. "the capture of router: killed from outside": the first host,
        capture or network not as the lab left it. A failure seen from inside
        (an agent gone, a call refused) is said this way when it has such a cause.
        """
        ...

    def prepare_ahead(self, pool: Executor) -> None:
        """Create (not start) the network and containers in the background; entering waits for it."""
        ...


class LabRun(Protocol):
    """The labs of one run: made per scenario, all removed by the run's label at the end."""

    run_id: str

    def make(self, scenario: Scenario) -> Lab: ...

    def remove_everything(self) -> None:
        """Interrupted: remove every object of the run now (which also ends the scenarios still going)."""
        ...

    def finish(self) -> None:
        """Wait for background removals; one more sweep of the run's label if something was left."""
        ...


class Witness(Protocol):
    """The kernel's record of the run's RSTs (lab/witness.py `RunWitness`): why each was sent."""

    unavailable: str | None   # why the kernel is not watched, or None

    def events(self, addresses: Iterable[str], start: float, end: float) -> list[KernelEvent] | None:
        """The events local to `addresses` between two monotonic readings; None when not watched."""
        ...


class Clock(Protocol):
    """Time as the runner sees it, passed in so tests can drive it."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
