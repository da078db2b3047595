"""A results folder: pcaps, the annotated pcapng, result.json and README.md per scenario; summary.json, junit.xml,
index.md, index.html.

Written as a run goes and read back by `show` and `report`. The run-wide files
are built from the scenarios' result documents only, so `write_report` can
rebuild them from a folder of result.json files (e.g. the artifacts of a CI
matrix) without the lab.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ..errors import BadInput, CaptureError, OutputError
from ..model import Scenario
from ..result import ScenarioResult, holds
from .document import ResultDocument, RunSummary, result_document, run_summary

# The pages, the annotated pcapng (it loads explain) and index.html are imported where they are written:
# a run needs them only once its first scenario is done, when the lab's removal runs beside them.


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


def write_scenario(out: Path, result: ScenarioResult, run_id: str) -> ResultDocument:
    from . import pages

    folder = out / result.scenario.id
    folder.mkdir(parents=True, exist_ok=True)
    for host, data in result.pcaps.items():
        (folder / f"{host}.pcap").write_bytes(data)
    doc = result_document(result, run_id)
    (folder / "result.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_annotated(folder, result.scenario, result.pcaps, result.names, doc)
    (folder / "README.md").write_text(pages.scenario_page(doc))
    return doc


def write_annotated(folder: Path, scenario: Scenario, pcaps: Mapping[str, bytes], names: Mapping[str, str],
                    doc: ResultDocument) -> None:
    """The scenario's capture points as one commented pcapng (`<scenario>.pcapng`): the checks, the kernel's
    reasons and what `explain` says of each RST, on the packets they are about."""
    from .annotated import annotated_capture
    from .ladder import kernel_reasons

    if not pcaps:
        return
    try:
        said = {point: {i: str(r["kernel"].get("text", "")) for i, r in enumerate(records) if "kernel" in r}
                for point, records in doc["packets"].items()}
        merged = annotated_capture(pcaps, names, scenario, kernel_reasons(doc), said)
    except CaptureError:
        return        # a capture cut short (its sidecar died): the run says so; the per-point files stay
    (folder / f"{scenario.id}.pcapng").write_bytes(merged)


def junit(docs: Sequence[ResultDocument]) -> str:
    """One test case per scenario; a failed one carries its failed checks (expected vs observed)."""
    from . import pages

    suite = ET.Element("testsuite", name="rstlab", tests=str(len(docs)),
                       failures=str(sum(1 for d in docs if d["verdict"] == "failed")),
                       errors=str(sum(1 for d in docs if d["verdict"] == "error")),
                       skipped="0", time=f"{sum(float(d.get('duration_s') or 0) for d in docs):.3f}")
    for d in docs:
        case = ET.SubElement(suite, "testcase", classname="rstlab.scenarios", name=d["scenario"],
                             time=f"{float(d.get('duration_s') or 0):.3f}")
        failed = [c for c in d["checks"] if not holds(c)]
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


def write_documents(out: Path, docs: Sequence[ResultDocument], run_id: str | None = None,
                    kernel: str | None = None) -> RunSummary:
    """summary.json, junit.xml, index.md and index.html for result documents in `out`."""
    from . import html, pages

    summary = run_summary(docs, run_id, kernel)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "junit.xml").write_text(junit(docs))
    (out / "index.md").write_text(pages.index_page(summary, docs))
    (out / "index.html").write_text(html.run_page(summary, docs))
    return summary


def write_run(out: Path, results: Sequence[ScenarioResult], run_id: str, kernel: str) -> RunSummary:
    """summary.json, junit.xml, index.md and index.html for the whole run."""
    docs = [result_document(r, run_id) for r in results]
    return write_documents(out, docs, run_id, kernel)


def _read_document(path: Path) -> ResultDocument:
    """A result.json as written (older files may lack later fields: readers use .get for those)."""
    try:
        doc: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable result.json ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or "scenario" not in doc or "verdict" not in doc:
        raise BadInput(f"{path}: not a scenario result (no scenario or verdict)")
    return cast(ResultDocument, doc)


def load_result(out: Path, name: str) -> ResultDocument:
    """`<out>/<name>/result.json` of the last run, or a BadInput naming what is there."""
    path = out / name / "result.json"
    if not path.is_file():
        there = sorted(p.parent.name for p in out.glob("*/result.json")) if out.is_dir() else []
        raise BadInput(f"no result for {name!r} in {out}",
                       (f"results there: {', '.join(there)}" if there else
                        f"run it first: python -m orchestrator run {name} --out {out}"))
    return _read_document(path)


def capture_host(pcap: Path) -> tuple[str, str] | None:
    """(capture point, its host's address) of a pcap a lab run wrote, from the result.json beside it;
    None for any other file (no result.json there, or it does not name this file)."""
    try:
        doc = json.loads((pcap.parent / "result.json").read_text())
        point = next(name for name, cap in doc["captures"].items() if cap.get("file") == pcap.name)
        return point, str(doc["hosts"][point]["address"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return None


def load_documents(folder: Path) -> list[ResultDocument]:
    """Every `<folder>/<scenario>/result.json`, in the order of the folder's summary.json when it has one."""
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such folder",
                       "give the --out folder of a run, or a folder of its scenario folders")
    docs: dict[str, ResultDocument] = {}
    for path in sorted(folder.glob("*/result.json")):
        doc = _read_document(path)
        docs[doc["scenario"]] = doc
    if not docs:
        raise BadInput(f"{folder}: no <scenario>/result.json in it",
                       "run python -m orchestrator run … --out " + str(folder))
    order: list[str] = []
    try:
        order = [s["id"] for s in json.loads((folder / "summary.json").read_text())["scenarios"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return sorted(docs.values(), key=lambda d: (order.index(d["scenario"]) if d["scenario"] in order else len(order),
                                                d["scenario"]))


def write_report(folder: Path) -> tuple[RunSummary, list[ResultDocument]]:
    """Rebuild every page of a folder of results: each scenario's README.md, its annotated pcapng (what explain
    says of each RST changes with the code; for a scenario of the catalogue, whose checks it carries), and
    the run files."""
    from .. import catalog
    from ..result import host_names
    from . import pages

    docs = load_documents(folder)
    prepare_output(folder)
    builtin = {s.id: s for s in catalog.builtin_scenarios(catalog.load_topology())}
    for d in docs:
        here = folder / d["scenario"]
        (here / "README.md").write_text(pages.scenario_page(d))
        scenario = builtin.get(d["scenario"])
        if scenario is not None:
            addresses = {host: str(h["address"]) for host, h in d.get("hosts", {}).items() if h.get("address")}
            pcaps = {p.stem: p.read_bytes() for p in sorted(here.glob("*.pcap"))}
            write_annotated(here, scenario, pcaps, host_names(addresses), d)
    return write_documents(folder, docs), docs


def expected_durations(ids: Sequence[str], *folders: Path) -> dict[str, float]:
    """How long each scenario took when last run: from the first of `folders` holding its result.json."""
    found: dict[str, float] = {}
    for scenario in ids:
        for folder in folders:
            try:
                found[scenario] = float(json.loads((folder / scenario / "result.json").read_text())["duration_s"])
                break
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return found
