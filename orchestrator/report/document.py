"""The result documents: what result.json (one scenario) and summary.json (a run) hold.

Built from a `ScenarioResult` (pure: no Docker, no files), read back by
`show`, `report` and the pages. The TypedDicts are the files' contract.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NotRequired, Sequence, TypedDict

from ..capture import Packet
from ..catalog import PROJECT_DIR
from ..model import CallStep, RestartStep, SleepStep, Step, WaitStep
from ..result import AgentAnswer, Check, ScenarioResult, Verdict, holds
from ..witness import KernelEvent, RstWitness, reasons_by_host


class PacketRecord(TypedDict):
    """One packet at a capture point, addresses named after hosts, times from the run's first packet."""

    t: float
    src: str
    dst: str
    sport: int
    dport: int
    flags: str
    seq: int
    ack: int | None
    relative: bool
    len: int
    dir: str | None
    kernel: NotRequired[dict[str, Any]]   # a RST: the kernel's word on it (RstWitness.as_dict)


class EventRecord(AgentAnswer):
    """An agent's answer with `t`, its start from the run's first packet."""

    t: float


class CheckRecord(TypedDict):
    kind: str
    subject: str
    expected: str
    observed: str
    passed: bool
    witnessed: bool


class HostRecord(TypedDict):
    address: str


class CaptureRecord(TypedDict):
    captured: int | None
    received: int | None
    dropped: int | None
    file: str


class LabRecord(TypedDict):
    """Lab reuse (issue 19): the scenarios that ran on these hosts before this one in the run ([]: new
    hosts); whether they were reset and handed to the next scenario (None: no other scenario of the run
    has this shape, or the run said --fresh); and why a host was not pristine afterwards."""

    ran_after: list[str]
    kept: bool | None
    not_kept: dict[str, str]


class KernelRecord(TypedDict):
    """What the kernel witness recorded for a scenario (tcp:tcp_send_reset and friends)."""

    watched: bool
    why_not: str | None                  # why the kernel was not watched
    reasons: dict[str, list[str]]        # host -> the reasons of the RSTs its TCP sent
    events: list[dict[str, Any]]         # every event, times in monotonic seconds


class ResultDocument(TypedDict):
    """result.json of one scenario."""

    scenario: str
    title: str
    verdict: Verdict
    error: str | None
    claim: str
    article_holds: bool
    observed: str
    explanation: str
    fix: str
    source: str
    steps: list[str]
    capture_points: list[str]
    run_id: str
    kernel: str
    started: str
    duration_s: float
    timings: dict[str, float]
    t0: float
    hosts: dict[str, HostRecord]
    checks: list[CheckRecord]
    packets: dict[str, list[PacketRecord]]
    events: list[EventRecord]
    counters: dict[str, dict[str, int]]
    captures: dict[str, CaptureRecord]
    kernel_witness: KernelRecord
    lab: LabRecord   # the scenarios that ran on its hosts before; whether they went on to the next


class SummaryEntry(TypedDict):
    id: str
    title: str
    verdict: str
    duration_s: float | None
    error: str | None
    failed_checks: int
    article_holds: bool
    page: str


class RunSummary(TypedDict):
    """summary.json of a run."""

    run_id: str
    kernel: str
    passed: int
    total: int
    scenarios: list[SummaryEntry]


def packet_record(p: Packet, names: dict[str, str], t0: float, kernel: RstWitness | None = None) -> PacketRecord:
    record: PacketRecord = {
        "t": round(p.time - t0, 6), "src": names.get(p.src, p.src), "dst": names.get(p.dst, p.dst),
        "sport": p.sport, "dport": p.dport, "flags": p.flags,
        "seq": p.rel_seq if p.rel_seq is not None else p.seq,
        "ack": p.rel_ack if p.rel_ack is not None else (p.ack if p.has_ack else None),
        "relative": p.rel_seq is not None, "len": p.length, "dir": p.direction,
    }
    if kernel is not None:
        record["kernel"] = kernel.as_dict()
    return record


def _event_dict(e: KernelEvent, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"t": e.time, "event": e.event, "host": names.get(e.local, e.local),
                           "local": f"{e.local}:{e.local_port}", "remote": f"{e.remote}:{e.remote_port}",
                           "peer": names.get(e.remote, e.remote)}
    for key in ("state", "reason", "oldstate", "newstate"):
        if getattr(e, key) is not None:
            out[key] = getattr(e, key)
    return out


def kernel_record(result: ScenarioResult) -> KernelRecord:
    events = result.kernel_events
    if events is None:
        return {"watched": False, "why_not": result.unwitnessed, "reasons": {}, "events": []}
    return {"watched": True, "why_not": None, "reasons": reasons_by_host(events, result.addresses),
            "events": [_event_dict(e, result.names) for e in events]}


def source_name(source: str) -> str:
    """A scenario file's path, relative to the project when it is inside it (no machine's paths in results)."""
    try:
        return Path(source).resolve().relative_to(PROJECT_DIR).as_posix()
    except (ValueError, OSError):
        return source


def describe_step(step: Step) -> str:
    """One step of a scenario in words (Markdown), for the page and the live progress."""
    if isinstance(step, SleepStep):
        return f"wait {step.seconds:g} s"
    if isinstance(step, WaitStep):
        return f"wait for the background call{' ' + repr(step.label) if step.label else 's'} to finish"
    if isinstance(step, RestartStep):
        return (f"**{step.host}** restarts: its container is killed and started again "
                "(fresh network namespace, same address)")
    assert isinstance(step, CallStep)
    args = dict(step.args)
    sock = args.pop("sock", None)
    words = [f"**{step.host}**: `{step.call}`" + (f" {sock}" if sock else "")]
    if step.call == "connect" and "host" in args:
        words.append(f"to {args.pop('host')}:{args.pop('port', '?')}")
    for key in ("cmd", "argv"):
        if key in args:
            value = args.pop(key)
            text = " ".join(map(str, value)) if isinstance(value, list) else " ".join(str(value).split())
            words.append("`" + (text if len(text) <= 100 else text[:99] + "…").replace("`", "'") + "`")
    words += [f"{k}={v}" for k, v in args.items()]
    if step.background:
        words.append("(in the background" + (f", as {step.label!r})" if step.label else ")"))
    return " ".join(words)


def result_document(result: ScenarioResult, run_id: str) -> ResultDocument:
    """The machine-readable result of one scenario (result.json)."""
    s = result.scenario
    names = result.names
    t0 = min((p.time for ps in result.packets.values() for p in ps[:1]), default=result.started)
    expected = {(c.host, c.counter) for c in s.counters}
    return {
        "scenario": s.id, "title": s.title, "verdict": result.verdict, "error": result.error,
        "claim": s.claim, "article_holds": s.article_holds, "observed": s.observed,
        "explanation": s.explanation, "fix": s.fix, "source": source_name(s.source),
        "steps": [describe_step(step) for step in s.steps], "capture_points": list(s.capture),
        "run_id": run_id, "kernel": result.kernel,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started)),
        "duration_s": round(result.duration, 3), "timings": result.timings, "t0": t0,
        "hosts": {h: {"address": a} for h, a in result.addresses.items()},
        "checks": [_check_record(c) for c in result.checks],
        "packets": {point: [packet_record(p, names, t0, result.rst_witness.get(point, {}).get(p.index)) for p in ps]
                    for point, ps in result.packets.items()},
        "events": [_event_record(e, t0) for e in result.events],
        # non-zero deltas, and every counter the scenario checks (so a re-check of the files sees its 0)
        "counters": {h: {k: v for k, v in d.items() if v or (h, k) in expected}
                     for h, d in result.counters.items()},
        "captures": {h: {**stats, "file": f"{h}.pcap"} for h, stats in result.capture_stats.items()},
        "kernel_witness": kernel_record(result),
        "lab": {"ran_after": list(result.ran_after), "kept": result.hosts_kept, "not_kept": result.not_kept},
    }


def _check_record(c: Check) -> CheckRecord:
    return {"kind": c.kind, "subject": c.subject, "expected": c.expected, "observed": c.observed,
            "passed": c.passed, "witnessed": c.witnessed}


def _event_record(e: AgentAnswer, t0: float) -> EventRecord:
    return {**e, "t": round(float(e["start"]) - t0, 6)}


def run_summary(docs: Sequence[ResultDocument], run_id: str | None = None, kernel: str | None = None) -> RunSummary:
    """summary.json: the run's verdicts (run id and kernel from the documents when not given)."""
    def one(key: str, given: str | None) -> str:
        if given is not None:
            return given
        values = sorted({str(d.get(key) or "") for d in docs})
        return values[0] if len(values) == 1 else ", ".join(values)

    return {
        "run_id": one("run_id", run_id), "kernel": one("kernel", kernel),
        "passed": sum(1 for d in docs if d["verdict"] == "passed"), "total": len(docs),
        "scenarios": [{"id": d["scenario"], "title": d["title"], "verdict": d["verdict"],
                       "duration_s": d.get("duration_s"), "error": d.get("error"),
                       "failed_checks": sum(1 for c in d.get("checks", []) if not holds(c)),
                       "article_holds": d.get("article_holds", True),
                       "page": f"{d['scenario']}/README.md"} for d in docs],
    }


