"""Writing a run's results: pcaps, result.json and README.md per scenario, summary.json, junit.xml, index.md."""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ..capture import Packet
from ..errors import OutputError
from ..runner import ScenarioResult


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


def result_document(result: ScenarioResult, run_id: str) -> dict[str, Any]:
    """The machine-readable result of one scenario (result.json)."""
    s = result.scenario
    names = {addr: host for host, addr in result.hosts.items()}
    t0 = min((p.time for ps in result.packets.values() for p in ps[:1]), default=result.started)
    return {
        "scenario": s.id, "title": s.title, "verdict": verdict(result), "error": result.error,
        "claim": s.claim, "article_holds": s.article_holds, "observed": s.observed,
        "explanation": s.explanation, "source": s.source,
        "run_id": run_id, "kernel": result.kernel,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started)),
        "duration_s": round(result.duration, 3), "timings": result.timings, "t0": t0,
        "hosts": {h: {"address": a} for h, a in result.hosts.items()},
        "checks": [asdict(c) for c in result.checks],
        "packets": {point: [packet_record(p, names, t0) for p in ps] for point, ps in result.packets.items()},
        "events": [dict(e, t=round(float(e.get("start", t0)) - t0, 6)) for e in result.events],
        "counters": {h: {k: v for k, v in d.items() if v} for h, d in result.counters.items()},
        "captures": {h: dict(stats, file=f"{h}.pcap") for h, stats in result.capture_stats.items()},
    }


def scenario_page(doc: dict[str, Any]) -> str:
    """The scenario's page for people (Markdown)."""
    lines = [f"# {doc['scenario']}: {doc['title']}", "",
             f"**Verdict: {doc['verdict']}**" + (f" ({doc['error']})" if doc["error"] else ""), "",
             f"**The article says:** {doc['claim']}", "",
             f"**What Linux does here:** {doc['observed'] or '(not recorded)'}"
             + ("" if doc["article_holds"] else " — *the article's claim does not hold on Linux*"), "",
             doc["explanation"], "", "## Captures", ""]
    for host, cap in doc["captures"].items():
        lines.append(f"- [{cap['file']}]({cap['file']}): {cap['captured']} packets")
    for point, packets in doc["packets"].items():
        lines += ["", f"### At {point}", "", "| t (s) | from | to | flags | seq | ack | len |",
                  "|---:|---|---|---|---:|---:|---:|"]
        for p in packets:
            ack = "" if p["ack"] is None else p["ack"]
            lines.append(f"| {p['t']:.6f} | {p['src']}:{p['sport']} | {p['dst']}:{p['dport']} | "
                         f"`{p['flags']}` | {p['seq']} | {ack} | {p['len']} |")
    lines += ["", "## Checks", "", "| | check | expected | observed |", "|---|---|---|---|"]
    for c in doc["checks"]:
        mark = "✅" if c["passed"] else "❌"
        cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines.append(f"| {mark} | {c['kind']} @ {c['subject']} | {cell(c['expected'])} | {cell(c['observed'])} |")
    return "\n".join(lines) + "\n"


def write_scenario(out: Path, result: ScenarioResult, run_id: str) -> dict[str, Any]:
    folder = out / result.scenario.id
    folder.mkdir(parents=True, exist_ok=True)
    for host, data in result.pcaps.items():
        (folder / f"{host}.pcap").write_bytes(data)
    doc = result_document(result, run_id)
    (folder / "result.json").write_text(json.dumps(doc, indent=2) + "\n")
    (folder / "README.md").write_text(scenario_page(doc))
    return doc


def junit(results: Sequence[ScenarioResult]) -> str:
    suite = ET.Element("testsuite", name="rstlab", tests=str(len(results)),
                       failures=str(sum(1 for r in results if verdict(r) == "failed")),
                       errors=str(sum(1 for r in results if verdict(r) == "error")),
                       time=f"{sum(r.duration for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="rstlab.scenarios", name=r.scenario.id,
                             time=f"{r.duration:.3f}")
        if r.error:
            ET.SubElement(case, "error", message=r.error)
        failed = [c for c in r.checks if not c.passed]
        if failed:
            text = "\n".join(f"{c.kind} @ {c.subject}: expected {c.expected}; observed {c.observed}" for c in failed)
            ET.SubElement(case, "failure", message=f"{len(failed)} check(s) failed").text = text
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_run(out: Path, results: Sequence[ScenarioResult], run_id: str, kernel: str) -> dict[str, Any]:
    """summary.json, junit.xml and index.md for the whole run."""
    summary = {
        "run_id": run_id, "kernel": kernel,
        "passed": sum(1 for r in results if r.passed), "total": len(results),
        "scenarios": [{"id": r.scenario.id, "title": r.scenario.title, "verdict": verdict(r),
                       "duration_s": round(r.duration, 3), "timings": r.timings, "error": r.error,
                       "failed_checks": sum(1 for c in r.checks if not c.passed),
                       "page": f"{r.scenario.id}/README.md"} for r in results],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "junit.xml").write_text(junit(results))
    lines = ["# RST Lab run", "", f"Run `{run_id}` on kernel {kernel}: {summary['passed']} of "
             f"{summary['total']} scenarios passed.", "", "| scenario | verdict | what it shows |", "|---|---|---|"]
    for r in results:
        lines.append(f"| [{r.scenario.id}]({r.scenario.id}/README.md) | {verdict(r)} | {r.scenario.title} |")
    (out / "index.md").write_text("\n".join(lines) + "\n")
    return summary
