"""Writing a run's results: pcaps, result.json and README.md per scenario; summary.json, junit.xml, index.md, index.html.

The run-wide files are built from the scenarios' result documents only, so
`write_report` can rebuild them from a folder of result.json files (e.g. the
artifacts of a CI matrix) without the lab.
"""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ..capture import Packet
from ..catalog import PROJECT_DIR
from ..errors import BadInput, OutputError
from ..model import Step
from ..runner import ScenarioResult
from ..verify import holds
from . import html, pages


def prepare_output(out: Path) -> Path:
    """Create the output folder and prove it is writable, before anything starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".rstlab-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {out}: {exc.strerror or exc}",
                          "choose another with --out DIR") from None
    return out


def verdict(result: ScenarioResult) -> str:
    if result.error:
        return "error"
    return "passed" if result.passed else "failed"


def packet_record(p: Packet, names: dict[str, str], t0: float) -> dict[str, Any]:
    return {
        "t": round(p.time - t0, 6), "src": names.get(p.src, p.src), "dst": names.get(p.dst, p.dst),
        "sport": p.sport, "dport": p.dport, "flags": p.flags,
        "seq": p.rel_seq if p.rel_seq is not None else p.seq,
        "ack": p.rel_ack if p.rel_ack is not None else (p.ack if p.has_ack else None),
        "relative": p.rel_seq is not None, "len": p.length, "dir": p.direction,
    }


def source_name(source: str) -> str:
    """A scenario file's path, relative to the project when it is inside it (no machine's paths in results)."""
    try:
        return Path(source).resolve().relative_to(PROJECT_DIR).as_posix()
    except (ValueError, OSError):
        return source


def describe_step(step: Step) -> str:
    """One step of a scenario in words (Markdown), for the page."""
    if step.kind == "sleep":
        return f"wait {step.seconds:g} s"
    if step.kind == "wait":
        return f"wait for the background call{' ' + repr(step.label) if step.label else 's'} to finish"
    if step.kind == "restart":
        return f"**{step.host}** restarts: its container is killed and started again (fresh network namespace, same address)"
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


def result_document(result: ScenarioResult, run_id: str) -> dict[str, Any]:
    """The machine-readable result of one scenario (result.json)."""
    s = result.scenario
    names = {addr: host for host, addr in result.hosts.items()}
    t0 = min((p.time for ps in result.packets.values() for p in ps[:1]), default=result.started)
    expected = {(c.host, c.counter) for c in s.counters}
    return {
        "scenario": s.id, "title": s.title, "verdict": verdict(result), "error": result.error,
        "claim": s.claim, "article_holds": s.article_holds, "observed": s.observed,
        "explanation": s.explanation, "fix": s.fix, "source": source_name(s.source),
        "steps": [describe_step(step) for step in s.steps], "capture_points": list(s.capture),
        "run_id": run_id, "kernel": result.kernel,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started)),
        "duration_s": round(result.duration, 3), "timings": result.timings, "t0": t0,
        "hosts": {h: {"address": a} for h, a in result.hosts.items()},
        "checks": [asdict(c) for c in result.checks],
        "packets": {point: [packet_record(p, names, t0) for p in ps] for point, ps in result.packets.items()},
        "events": [dict(e, t=round(float(e.get("start", t0)) - t0, 6)) for e in result.events],
        # non-zero deltas, and every counter the scenario checks (so a re-check of the files sees its 0)
        "counters": {h: {k: v for k, v in d.items() if v or (h, k) in expected}
                     for h, d in result.counters.items()},
        "captures": {h: dict(stats, file=f"{h}.pcap") for h, stats in result.capture_stats.items()},
    }


def write_scenario(out: Path, result: ScenarioResult, run_id: str) -> dict[str, Any]:
    folder = out / result.scenario.id
    folder.mkdir(parents=True, exist_ok=True)
    for host, data in result.pcaps.items():
        (folder / f"{host}.pcap").write_bytes(data)
    doc = result_document(result, run_id)
    (folder / "result.json").write_text(json.dumps(doc, indent=2) + "\n")
    (folder / "README.md").write_text(pages.scenario_page(doc))
    return doc


def junit(docs: Sequence[dict[str, Any]]) -> str:
    """One test case per scenario; a failed one carries its failed checks (expected vs observed)."""
    suite = ET.Element("testsuite", name="rstlab", tests=str(len(docs)),
                       failures=str(sum(1 for d in docs if d["verdict"] == "failed")),
                       errors=str(sum(1 for d in docs if d["verdict"] == "error")),
                       skipped="0", time=f"{sum(float(d.get('duration_s') or 0) for d in docs):.3f}")
    for d in docs:
        case = ET.SubElement(suite, "testcase", classname="rstlab.scenarios", name=d["scenario"],
                             time=f"{float(d.get('duration_s') or 0):.3f}")
        failed = [c for c in d.get("checks", []) if not holds(c)]
        text = "\n".join(f"{c['kind']} @ {c['subject']}: expected {c['expected']}; observed {c['observed']}"
                         for c in failed)
        if d.get("error"):     # the lab failed: an error, with whatever checks failed before it
            ET.SubElement(case, "error", message=str(d["error"]), type="LabError").text = (
                str(d["error"]) + ("\n" + text if text else ""))
        elif failed or d["verdict"] == "failed":
            where = ", ".join(dict.fromkeys(f"{c['kind']} @ {c['subject']}" for c in failed))
            ET.SubElement(case, "failure", message=f"{len(failed)} check(s) failed: {where}",
                          type="ExpectationFailed").text = text
        ET.SubElement(case, "system-out").text = (
            f"{d['title']}\npage: {d['scenario']}/README.md\n{pages.checks_line(d)}")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def run_summary(docs: Sequence[dict[str, Any]], run_id: str | None = None, kernel: str | None = None) -> dict[str, Any]:
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


def write_documents(out: Path, docs: Sequence[dict[str, Any]], run_id: str | None = None,
                    kernel: str | None = None) -> dict[str, Any]:
    """summary.json, junit.xml, index.md and index.html for result documents in `out`."""
    summary = run_summary(docs, run_id, kernel)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "junit.xml").write_text(junit(docs))
    (out / "index.md").write_text(pages.index_page(summary, docs))
    (out / "index.html").write_text(html.run_page(summary, docs))
    return summary


def write_run(out: Path, results: Sequence[ScenarioResult], run_id: str, kernel: str) -> dict[str, Any]:
    """summary.json, junit.xml, index.md and index.html for the whole run."""
    docs = [result_document(r, run_id) for r in results]
    return write_documents(out, docs, run_id, kernel)


def _read_document(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable result.json ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or "scenario" not in doc or "verdict" not in doc:
        raise BadInput(f"{path}: not a scenario result (no scenario or verdict)")
    return doc


def load_result(out: Path, name: str) -> dict[str, Any]:
    """`<out>/<name>/result.json` of the last run, or a BadInput naming what is there."""
    path = out / name / "result.json"
    if not path.is_file():
        there = sorted(p.parent.name for p in out.glob("*/result.json")) if out.is_dir() else []
        raise BadInput(f"no result for {name!r} in {out}",
                       (f"results there: {', '.join(there)}" if there else
                        f"run it first: python -m orchestrator run {name} --out {out}"))
    return _read_document(path)


def load_documents(folder: Path) -> list[dict[str, Any]]:
    """Every `<folder>/<scenario>/result.json`, in the order of the folder's summary.json when it has one."""
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such folder", "give the --out folder of a run, or a folder of its scenario folders")
    docs = {}
    for path in sorted(folder.glob("*/result.json")):
        doc = _read_document(path)
        docs[doc["scenario"]] = doc
    if not docs:
        raise BadInput(f"{folder}: no <scenario>/result.json in it", "run python -m orchestrator run … --out " + str(folder))
    order: list[str] = []
    try:
        order = [s["id"] for s in json.loads((folder / "summary.json").read_text())["scenarios"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return sorted(docs.values(), key=lambda d: (order.index(d["scenario"]) if d["scenario"] in order else len(order),
                                                d["scenario"]))


def write_report(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Rebuild every page of a folder of results: each scenario's README.md, and the run files."""
    docs = load_documents(folder)
    prepare_output(folder)
    for d in docs:
        (folder / d["scenario"] / "README.md").write_text(pages.scenario_page(d))
    return write_documents(folder, docs), docs
