"""What a scenario run observed and concluded: pure data, no Docker, no files.

The runner fills a `ScenarioResult`; the checks (`verify`) make `Check`s; the
command layer, the pages and `show` read them. Keeping these here, apart from
the runner, lets `list`, `explain`, `show` and `report` run without loading the
Docker SDK.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence, TypedDict

if TYPE_CHECKING:   # annotations only: `list` need not load the capture parser
    from .capture import Packet
    from .model import Scenario
    from .witness import KernelEvent, RstWitness

Verdict = Literal["passed", "failed", "error"]


class AgentAnswer(TypedDict):
    """One call's answer from a host's peer agent (images/host/rstlab_peer.py `Agent.answer`).

    A restart the runner made itself has the same shape (call "restart").
    """

    id: int | None
    host: str
    call: str
    sock: str | None
    args: dict[str, Any] | None
    start: float
    end: float
    ok: bool
    result: Any
    errno: str | None
    error: str | None


class CaptureStats(TypedDict):
    """tcpdump's closing counts at one capture point (None: tcpdump did not say)."""

    captured: int | None
    received: int | None
    dropped: int | None


@dataclass(frozen=True)
class Check:
    """One verdict: `kind` is packets, absent, app, counter, capture or reasons; `subject` names where it applies.

    A check that could not be made (the kernel's reasons where tracefs is out
    of reach) is `witnessed=False`: neither passed nor failed, and it does
    not decide the scenario's verdict.
    """

    kind: str
    subject: str
    expected: str
    observed: str
    passed: bool
    witnessed: bool = True

    @property
    def status(self) -> str:
        """passed, failed or not witnessed."""
        return "not witnessed" if not self.witnessed else "passed" if self.passed else "failed"


def holds(check: Check | Mapping[str, Any]) -> bool:
    """Does a check (or its result.json record) keep the scenario passing? Not witnessed ones do."""
    if isinstance(check, Check):
        return check.passed or not check.witnessed
    return bool(check["passed"]) or not check.get("witnessed", True)


def tally(checks: Sequence[Check | Mapping[str, Any]]) -> str:
    """`7/8`, or `7/8 (2 not witnessed)`: passed of witnessed checks, the others named apart."""
    def witnessed(c: Check | Mapping[str, Any]) -> bool:
        return c.witnessed if isinstance(c, Check) else bool(c.get("witnessed", True))

    def passed(c: Check | Mapping[str, Any]) -> bool:
        return c.passed if isinstance(c, Check) else bool(c["passed"])

    made = [c for c in checks if witnessed(c)]
    text = f"{sum(1 for c in made if passed(c))}/{len(made)}"
    return text + (f" ({len(checks) - len(made)} not witnessed)" if len(made) < len(checks) else "")


@dataclass
class ScenarioResult:
    """Everything one scenario run observed and concluded."""

    scenario: Scenario
    checks: list[Check] = field(default_factory=list)
    packets: dict[str, list[Packet]] = field(default_factory=dict)     # capture point -> its packets
    events: list[AgentAnswer] = field(default_factory=list)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> nstat counter deltas
    addresses: dict[str, str] = field(default_factory=dict)            # host -> its address in this run
    capture_stats: dict[str, CaptureStats] = field(default_factory=dict)
    pcaps: dict[str, bytes] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)   # setup, steps, settle, capture, teardown (s)
    error: str | None = None
    started: float = 0.0
    duration: float = 0.0
    kernel: str = ""
    kernel_events: list[KernelEvent] | None = None    # the kernel witness's events of the scenario (None: not watched)
    unwitnessed: str | None = None                    # why the kernel was not watched
    ran_after: tuple[str, ...] = ()                   # scenarios that ran on these hosts before (lab reuse)
    hosts_kept: bool | None = None                    # the hosts went on to the next scenario (None: could not)
    not_kept: dict[str, str] = field(default_factory=dict)   # host -> why it was not pristine afterwards
    rst_witness: dict[str, dict[int, RstWitness]] = field(default_factory=dict)   # point -> packet index -> word

    @property
    def passed(self) -> bool:
        return self.error is None and all(holds(c) for c in self.checks)

    @property
    def verdict(self) -> Verdict:
        return verdict(self.error, self.checks)

    @property
    def names(self) -> dict[str, str]:
        """Address -> host: how packets' addresses are named in checks, records and pages."""
        return host_names(self.addresses)


def verdict(error: str | None, checks: list[Check]) -> Verdict:
    """`error` when the lab failed, else `passed` only if every check held."""
    if error:
        return "error"
    return "passed" if all(holds(c) for c in checks) else "failed"


def host_names(addresses: dict[str, str]) -> dict[str, str]:
    """The one address -> host mapping, from a run's host -> address table."""
    return {address: host for host, address in addresses.items()}
