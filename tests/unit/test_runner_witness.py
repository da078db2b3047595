"""The runner and the kernel witness: reasons checked in the scenario's window, or reported as not witnessed."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from orchestrator.model import CallStep, ReasonExpectation, Scenario
from orchestrator.report.document import result_document
from orchestrator.report.ladder import build_ladder
from orchestrator.report.pages import kernel_lines, mermaid, scenario_page
from orchestrator.runner import run_scenario
from orchestrator.witness import SEND, KernelEvent, events_of
from tests.unit.test_drive import FakeClock, FakeLab, scenario


class FakeWitness:
    """Events at given monotonic times; records the window it was asked about."""

    def __init__(self, events: list[KernelEvent], unavailable: str | None = None) -> None:
        self.all = events
        self.unavailable = unavailable
        self.asked: list[tuple[float, float]] = []

    def events(self, addresses: Iterable[str], start: float, end: float) -> list[KernelEvent] | None:
        self.asked.append((start, end))
        return None if self.unavailable else events_of(self.all, addresses, start, end)


def rst(t: float, src: str, reason: str) -> KernelEvent:
    return KernelEvent(t, SEND, src, 8080, "10.0.0.1", 40000, state="TCP_CLOSE", reason=reason)


def with_reasons(server: tuple[str, ...]) -> Scenario:
    s = scenario(CallStep(host="client", call="recv", args={"sock": "c", "takes": 2.0}))
    return replace(s, reasons=(ReasonExpectation("server", server), ReasonExpectation("client", ())))


def test_the_reasons_sent_while_the_steps_ran_are_checked() -> None:
    clock = FakeClock()       # starts at 1000; the recv takes 2 s
    witness = FakeWitness([rst(999.0, "10.0.0.2", "NO_SOCKET"),          # before: another scenario's teardown
                           rst(1001.0, "10.0.0.2", "TCP_ABORT_ON_CLOSE"),
                           rst(1001.5, "10.9.9.9", "TCP_STATE"),          # another run's host
                           rst(5000.0, "10.0.0.2", "TCP_STATE")])         # after: this lab's own teardown
    result = run_scenario(FakeLab(clock), with_reasons(("TCP_ABORT_ON_CLOSE",)), clock, witness=witness)
    reasons = [c for c in result.checks if c.kind == "reasons"]
    assert [(c.subject, c.passed, c.witnessed) for c in reasons] == [("server", True, True), ("client", True, True)]
    (start, end), = witness.asked
    assert start == 1000.0 and end >= 1002.0
    doc = result_document(result, "r1")
    assert doc["kernel_witness"]["watched"] and doc["kernel_witness"]["reasons"] == {
        "client": [], "server": ["TCP_ABORT_ON_CLOSE"]}
    assert doc["kernel_witness"]["events"][0]["host"] == "server"


def test_a_wrong_reason_fails_the_scenario() -> None:
    clock = FakeClock()
    witness = FakeWitness([rst(1001.0, "10.0.0.2", "TCP_STATE")])
    result = run_scenario(FakeLab(clock), with_reasons(("TCP_ABORT_ON_CLOSE",)), clock, witness=witness)
    assert result.verdict == "failed"
    (bad,) = [c for c in result.checks if not c.passed]
    assert bad.kind == "reasons" and bad.observed == "TCP_STATE"


def test_without_the_witness_the_reasons_are_not_witnessed_and_the_rest_passes() -> None:
    clock = FakeClock()
    witness = FakeWitness([], unavailable="not root: the kernel's tracing filesystem needs root")
    result = run_scenario(FakeLab(clock), with_reasons(("TCP_ABORT_ON_CLOSE",)), clock, witness=witness)
    assert result.verdict == "passed"
    reasons = [c for c in result.checks if c.kind == "reasons"]
    assert reasons and all(c.status == "not witnessed" and "not root" in c.observed for c in reasons)
    doc = result_document(result, "r1")
    assert doc["kernel_witness"] == {"watched": False, "why_not": witness.unavailable, "reasons": {}, "events": []}
    assert kernel_lines(doc)[2] == f"Not witnessed: {witness.unavailable}."
    page = scenario_page(doc)
    assert "not witnessed" in page and "❌" not in page
    # and with no witness at all (a lab driven without one)
    result = run_scenario(FakeLab(clock), with_reasons(()), clock)
    assert result.verdict == "passed" and result.unwitnessed == "the kernel was not watched"


def test_the_ladder_and_its_mermaid_say_the_kernel_s_word() -> None:
    doc = {"scenario": "x", "hosts": {"client": {"address": "10.0.0.1"}, "server": {"address": "10.0.0.2"}},
           "packets": {"client": [
               {"t": 0.0, "src": "client", "dst": "server", "sport": 40000, "dport": 8080, "flags": "S", "seq": 0,
                "ack": None, "len": 0},
               {"t": 0.1, "src": "server", "dst": "client", "sport": 8080, "dport": 40000, "flags": "R.", "seq": 1,
                "ack": 1, "len": 0, "kernel": {"note": "kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE)",
                                               "text": "kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE); client took it in "
                                                       "TCP_ESTABLISHED"}}]},
           "kernel_witness": {"watched": True}}
    ladder = build_ladder(doc)
    (note,) = [n.text for n in ladder.notes if n.kind == "rst"]
    assert note.startswith("RST+ACK from server · kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE)")
    assert "RST+ACK from server · kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE)" in mermaid(ladder)
    assert kernel_lines(doc)[-2] == ("- packet 2 at client: RST+ACK from server — kernel: TCP_ABORT_ON_CLOSE "
                                     "(TCP_CLOSE); client took it in TCP_ESTABLISHED")
