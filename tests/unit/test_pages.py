"""The pages: the ladder model, its Mermaid, SVG and terminal drawings, index, junit, and `show`/`report` (no Docker)."""
from __future__ import annotations

import copy
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.cli import main
from orchestrator.model import CallStep, RestartStep, SleepStep
from orchestrator.report import html, pages, results_folder
from orchestrator.report.console import ladder_lines
from orchestrator.report.document import describe_step, run_summary
from orchestrator.report.ladder import MAX_ARROWS, Note, build_ladder, default_point

HOSTS = {"client": {"address": "10.213.7.10"}, "router": {"address": "10.213.7.200"},
         "server": {"address": "10.213.7.70"}}


def pkt(t: float, src: str, dst: str, flags: str, seq: int | None = 0, ack: int | None = None, length: int = 0,
        sport: int | None = None, dport: int | None = None) -> dict[str, Any]:
    client_port, server_port = 40000, 80
    sport = sport if sport is not None else (client_port if src == "client" else server_port)
    dport = dport if dport is not None else (client_port if dst == "client" else server_port)
    return {"t": t, "src": src, "dst": dst, "sport": sport, "dport": dport, "flags": flags, "seq": seq,
            "ack": ack, "relative": True, "len": length, "dir": "out" if src == "client" else "in"}


def event(t: float, host: str, call: str, sock: str | None = None, errno: str | None = None, took: float = 0.0,
          result: Any = None) -> dict[str, Any]:
    return {"host": host, "call": call, "sock": sock, "start": 1000.0 + t, "end": 1000.0 + t + took, "t": t,
            "ok": errno is None, "errno": errno, "result": result, "error": None}


def check(kind: str, subject: str, passed: bool = True, expected: str = "x", observed: str = "x") -> dict[str, Any]:
    return {"kind": kind, "subject": subject, "expected": expected, "observed": observed, "passed": passed}


def make_doc(packets: list[dict[str, Any]], events: list[dict[str, Any]] | None = None, scenario: str = "demo",
             verdict: str = "passed", points: tuple[str, ...] = ("client", "server"),
             checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "scenario": scenario, "title": "A demo reset", "verdict": verdict, "error": None,
        "claim": "A segment to a closed port gets a RST.\n", "article_holds": True,
        "observed": "As the article says.", "explanation": "The kernel answers with `R.`.",
        "source": "orchestrator/scenarios/demo.yaml", "steps": ["**client**: `connect` c to server:80"],
        "capture_points": list(points), "run_id": "abcd1234", "kernel": "6.1.0", "started": "2026-01-01T00:00:00Z",
        "duration_s": 1.5, "t0": 1000.0, "hosts": HOSTS,
        "checks": checks if checks is not None else [check("packets", "client")],
        "packets": {p: _as_seen_at(p, packets) for p in points},
        "events": events or [], "counters": {"server": {"TcpOutRsts": 1}},
        "captures": {p: {"captured": len(packets), "received": len(packets), "dropped": 0, "file": f"{p}.pcap"}
                     for p in points},
    }


def _as_seen_at(point: str, packets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The packets as one capture point records them: its own are "out", the rest "in"."""
    out = copy.deepcopy(packets)
    for p in out:
        p["dir"] = "out" if p["src"] == point else "in"
    return out


def closed_port() -> dict[str, Any]:
    return make_doc([pkt(0.0, "client", "server", "S"), pkt(0.00008, "server", "client", "R.", 0, 1)],
                    [event(-0.0001, "client", "connect", "c", "ECONNREFUSED", 0.0003)], scenario="closed-port")


def peer_restart() -> dict[str, Any]:
    packets = [pkt(0.0, "client", "server", "S"), pkt(0.0001, "server", "client", "S.", 0, 1),
               pkt(0.0002, "client", "server", ".", 1, 1), pkt(0.002, "client", "server", "P.", 1, 1, 100),
               pkt(0.0021, "server", "client", ".", 1, 101),
               pkt(0.892, "client", "server", "S", sport=40002), pkt(0.8921, "server", "client", "R.", 0, 1, dport=40002),
               pkt(0.8937, "client", "server", "P.", 101, 1, 100), pkt(0.8938, "server", "client", "R", 1)]
    events = [event(0.01, "server", "restart", took=0.87),
              event(0.8919, "client", "connect", "c2", "ECONNREFUSED", 0.0003),
              event(0.8946, "client", "recv", "c", "ECONNRESET", 0.0001)]
    return make_doc(packets, events, scenario="peer-restart")


# --- a structural check of Mermaid sequence diagrams (what GitHub's renderer parses) --------------------------------

PARTICIPANT = re.compile(r"^    participant (P\d+) as (.+)$")
MESSAGE = re.compile(r"^    (P\d+)(->>|-->>|-x|--x|-\)|--\))(P\d+): (.+)$")     # -) : GitHub's async (open) arrow
NOTE = re.compile(r"^    Note over (P\d+)(?:,(P\d+))?: (.+)$")
RECT = re.compile(r"^    rect rgba?\(\d+, \d+, \d+(, [\d.]+)?\)$")


def assert_valid_mermaid(text: str) -> None:
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "sequenceDiagram"
    declared: set[str] = set()
    depth = 0
    for line in lines[1:]:
        if m := PARTICIPANT.match(line):
            assert m.group(1) not in declared
            declared.add(m.group(1))
            label = m.group(2)
        elif m := MESSAGE.match(line):
            assert m.group(1) in declared and m.group(3) in declared, line
            label = m.group(4)
        elif m := NOTE.match(line):
            assert m.group(1) in declared and (m.group(2) is None or m.group(2) in declared), line
            label = m.group(3)
        elif RECT.match(line):
            depth += 1
            continue
        elif line == "    end":
            depth -= 1
            assert depth >= 0, "an end without a block"
            continue
        else:
            raise AssertionError(f"not a sequenceDiagram statement: {line!r}")
        assert not re.search(r"[#;]", label), f"unsafe character in {label!r}"
        assert not re.search(r"(?<![(\[{\"\w])\bend\b(?![)\]}\"\w])", label, re.IGNORECASE), f"bare 'end' in {label!r}"
    assert depth == 0, "unclosed rect block"


# --- the ladder model -----------------------------------------------------------------------------------------------


def test_default_point_is_the_client_else_the_first_named() -> None:
    assert default_point(closed_port()) == "client"
    doc = make_doc([pkt(0.0, "client", "server", "S")], points=("server", "router"))
    assert default_point(doc) == "server"
    assert build_ladder(doc, "server").point == "server"
    assert build_ladder(doc).points == ["router", "server"], "every point, in path order"


def test_participants_are_hosts_with_addresses_in_topology_order() -> None:
    ladder = build_ladder(peer_restart())
    assert [(p.name, p.address) for p in ladder.participants] == [
        ("client", "10.213.7.10"), ("router", "10.213.7.200"), ("server", "10.213.7.70")], "every host is a lifeline"


def test_every_packet_of_a_short_capture_is_an_arrow_in_order() -> None:
    doc = peer_restart()
    ladder = build_ladder(doc)
    assert [(a.src, a.dst, a.flags) for a in ladder.arrows] == [(p["src"], p["dst"], p["flags"])
                                                              for p in doc["packets"]["client"]]
    assert ladder.drawn == ladder.total == 9
    # two connections in the capture: the ports are written on every arrow
    assert ladder.arrows[5].label == "40002→80 [S] seq=0"
    assert ladder.arrows[3].label == "40000→80 [P.] seq=1:101 ack=1 len=100"


def test_application_errors_are_notes_at_their_time() -> None:
    rows = build_ladder(peer_restart()).rows
    texts = [r.text if isinstance(r, Note) else r.label for r in rows]
    reset = texts.index("40000→80 [R] seq=1".replace("40000→80", "80→40000"))
    assert "client: recv c → ECONNRESET" in texts[reset + 1:]
    refused = texts.index("client: connect c2 → ECONNREFUSED")
    assert texts.index("80→40002 [R.] seq=0 ack=1") < refused < texts.index("40000→80 [P.] seq=101:201 ack=1 len=100")
    assert any(isinstance(r, Note) and r.kind == "info" and "restarted" in r.text for r in rows)


def test_time_gaps_that_matter_are_written() -> None:
    doc = make_doc([pkt(0.0, "client", "server", "S"), pkt(0.1, "server", "client", "S.", 0, 1),
                    pkt(1.1, "client", "server", ".", 1, 1), pkt(3.2, "client", "server", "F.", 1, 1)])
    gaps = [r.text for r in build_ladder(doc).rows if isinstance(r, Note) and r.kind == "gap"]
    assert gaps == ["+1.00 s", "+2.10 s"]


def test_a_retransmission_train_is_one_arrow_with_its_count_and_span() -> None:
    doc = make_doc([pkt(0.0, "client", "server", "S"), pkt(1.0, "client", "server", "S"),
                    pkt(3.0, "client", "server", "S"), pkt(7.0, "client", "server", "S")])
    ladder = build_ladder(doc)
    (arrow,) = ladder.arrows
    assert arrow.retransmissions == 3 and arrow.count == 4 and arrow.label == "[S] seq=0 ×4 in 7.00 s"
    assert ladder.total == ladder.drawn == 4


def test_a_timeout_the_application_gave_up_on_is_noted() -> None:
    doc = make_doc([pkt(0.0, "client", "server", "S"), pkt(1.0, "client", "server", "S")],
                   [event(-0.001, "client", "connect", "c", None, 3.5, result="poll-timeout")])
    notes = build_ladder(doc).notes
    assert notes[-1].kind == "timeout" and "gave up" in notes[-1].text and "3.50 s" in notes[-1].text
    assert notes[-2].kind == "gap" and notes[-2].text == "+2.50 s"


def long_transfer(segments: int = 400) -> dict[str, Any]:
    packets = [pkt(0.0, "client", "server", "S"), pkt(0.0001, "server", "client", "S.", 0, 1),
               pkt(0.0002, "client", "server", ".", 1, 1)]
    t = 0.01
    for i in range(segments):
        packets.append(pkt(t, "server", "client", "P." if i % 7 == 6 else ".", 1 + 1000 * i, 1, 1000))
        t += 0.0001
        if i % 2:
            packets.append(pkt(t, "client", "server", ".", 1, 1 + 1000 * (i + 1)))
            t += 0.0001
    packets.append(pkt(t + 0.5, "client", "server", "R.", 1, 1 + 1000 * segments))
    return make_doc(packets, [event(t + 0.6, "server", "send", "s", "ECONNRESET")])


def test_long_captures_are_summarised() -> None:
    doc = long_transfer()
    ladder = build_ladder(doc)
    assert len(ladder.arrows) <= MAX_ARROWS
    collapsed = [a for a in ladder.arrows if a.collapsed]
    assert collapsed, "a long run of data segments is collapsed"
    data = next(a for a in collapsed if a.src == "server")
    assert "data segments" in data.label and "bytes" in data.label and data.count > 100
    assert ladder.arrows[-1].rst and ladder.arrows[-1].src == "client", "the reset is still drawn"
    assert ladder.drawn == ladder.total == len(doc["packets"]["client"])
    assert sum(a.count for a in ladder.arrows) == ladder.total
    assert_valid_mermaid(pages.mermaid(ladder))


def test_many_connections_are_capped_with_a_note_and_resets_kept() -> None:
    packets = []
    for i in range(60):   # 60 refused connects, 0.3 s apart: nothing to collapse
        packets += [pkt(i * 0.3, "client", "server", "S", sport=41000 + i),
                    pkt(i * 0.3 + 0.0001, "server", "client", "R.", 0, 1, dport=41000 + i)]
    ladder = build_ladder(make_doc(packets))
    assert len(ladder.arrows) <= MAX_ARROWS
    omitted = [n for n in ladder.notes if n.kind == "omitted"]
    assert omitted and "not drawn" in omitted[0].text and "packet table" in omitted[0].text
    assert ladder.drawn + sum(int(re.search(r"… (\d+) more", n.text).group(1)) for n in omitted) == 120
    assert ladder.arrows[-1].rst, "the last reset is drawn"
    assert_valid_mermaid(pages.mermaid(ladder))


# --- Mermaid --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, safe", [
    ("end", "(end)"), ("the END of it", "the (END) of it"), ("(end)", "(end)"), ("[end]", "[end]"),
    ("backend endless", "backend endless"), ("a;b #1", "a,b ＃1"), ("x\ny", "x y"), ("<br>", "‹br›"),
])
def test_mermaid_labels_are_sanitised(raw: str, safe: str) -> None:
    assert pages.mermaid_text(raw) == safe


def test_mermaid_ladder_is_valid_and_draws_the_reset_so_it_stands_out() -> None:
    text = pages.mermaid(build_ladder(closed_port()))
    assert_valid_mermaid(text)
    assert "participant P1 as client<br/>10.213.7.10" in text
    assert "P1->>P3: [S] seq=0" in text
    lines = text.splitlines()
    rst = lines.index("    P3-xP1: [R.] seq=0 ack=1")
    assert lines[rst - 1].startswith("    rect ")
    assert lines[rst + 1] == "    Note over P3,P1: RST+ACK from server · client: connect → ECONNREFUSED"
    assert lines[rst + 2] == "    end"
    assert any("client: connect c → ECONNREFUSED" in line for line in lines)


def test_mermaid_survives_labels_with_end_and_special_characters() -> None:
    doc = make_doc([pkt(0.0, "client", "server", "F.", 1, 1)],
                   [event(0.01, "client", "recv", "end", None, result={"received": 0, "eof": True}),
                    event(0.02, "client", "send", "x;y#z", "EPIPE")])
    text = pages.mermaid(build_ladder(doc))
    assert_valid_mermaid(text)
    assert "client: recv (end) → EOF (0 bytes)" in text


def test_gap_notes_in_mermaid() -> None:
    doc = make_doc([pkt(0.0, "client", "server", "S"), pkt(1.02, "server", "client", "S.", 0, 1)])
    assert "    Note over P1,P3: +1.02 s" in pages.mermaid(build_ladder(doc)).splitlines()


def test_scenario_page_has_every_part() -> None:
    doc = peer_restart()
    doc["checks"] = [check("packets", "client"), check("app", "client", False, "recv c -> ECONNRESET",
                                                       "recv c -> ok | after 0.1 s")]
    doc["verdict"] = "failed"
    page = pages.scenario_page(doc)
    for part in ("# peer-restart: A demo reset", "**The article says:**", "**Observed:**", "## Why",
                 "## What the scenario does", "```mermaid\nsequenceDiagram", "## Packets", "### At client",
                 "### At server", "## Checks", "[client.pcap](client.pcap)", "## What the applications saw",
                 "ECONNRESET", "TcpOutRsts", "❌ failed"):
        assert part in page, part
    assert "recv c -> ok \\| after 0.1 s" in page, "pipes in table cells are escaped"
    block = page.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert_valid_mermaid(block)


def test_index_page_lists_every_scenario_with_verdict_and_link() -> None:
    good, bad = closed_port(), peer_restart()
    bad["verdict"] = "failed"
    bad["checks"] = [check("counter", "server", False, "TcpOutRsts 2", "+1")]
    docs = [good, bad]
    page = pages.index_page(run_summary(docs), docs)
    assert "[closed-port](closed-port/README.md) | ✅ passed" in page
    assert "[peer-restart](peer-restart/README.md) | ❌ failed" in page
    assert "1 of 2 scenarios passed" in page and "[index.html](index.html)" in page
    assert "**counter @ server**: expected `TcpOutRsts 2`; observed `+1`" in page


def test_step_summary_shows_the_failing_checks() -> None:
    bad = closed_port()
    bad["verdict"] = "failed"
    bad["checks"] = [check("packets", "client", False, "client > server S", "matched 0 of 1")]
    text = pages.step_summary(run_summary([bad]), [bad])
    assert "0 of 1 scenarios passed" in text and "expected `client > server S`; observed `matched 0 of 1`" in text


# --- junit and summary --------------------------------------------------------------------------------------------


def test_junit_has_one_case_per_scenario_and_the_failed_checks() -> None:
    good, bad, broken = closed_port(), peer_restart(), copy.deepcopy(closed_port())
    bad["verdict"] = "failed"
    bad["checks"] = [check("packets", "client"), check("app", "client", False, "recv c -> ECONNRESET", "recv c -> ok")]
    broken.update(scenario="broken", verdict="error", error="the engine went away", checks=[])
    suite = ET.fromstring(results_folder.junit([good, bad, broken]))
    assert suite.tag == "testsuite" and suite.get("tests") == "3"
    assert suite.get("failures") == "1" and suite.get("errors") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"closed-port", "peer-restart", "broken"}
    assert cases["closed-port"].find("failure") is None and cases["closed-port"].find("error") is None
    failure = cases["peer-restart"].find("failure")
    assert failure is not None and "1 check(s) failed: app @ client" in failure.get("message", "")
    assert "expected recv c -> ECONNRESET; observed recv c -> ok" in (failure.text or "")
    error = cases["broken"].find("error")
    assert error is not None and error.get("message") == "the engine went away"


def test_summary_json_of_documents() -> None:
    summary = run_summary([closed_port(), peer_restart()])
    assert summary["passed"] == summary["total"] == 2 and summary["run_id"] == "abcd1234"
    assert [s["page"] for s in summary["scenarios"]] == ["closed-port/README.md", "peer-restart/README.md"]


# --- SVG and index.html ---------------------------------------------------------------------------------------------


def test_svg_ladder_draws_one_line_per_arrow_and_marks_the_reset() -> None:
    ladder = build_ladder(peer_restart())
    svg = ET.fromstring(html.svg_ladder(ladder))
    assert svg.tag == "svg" and svg.get("class") == "ladder" and int(svg.get("width", "0")) > 300
    groups = [g for g in svg.iter("g") if "seg" in (g.get("class") or "").split()]
    assert len(groups) == len(ladder.arrows) == 9
    for g in groups:
        assert len(g.findall("line")) == 1 and g.find("text") is not None
    resets = [g for g in groups if "rst" in g.get("class", "").split()]
    assert len(resets) == 2 and all(g.find("path") is not None for g in resets), "a reset ends in a cross"
    notes = [g for g in svg.iter("g") if (g.get("class") or "").startswith("note")]
    assert {n.get("class") for n in notes} >= {"note rst", "note error", "note info"}
    texts = "".join(svg.itertext())
    assert "10.213.7.10" in texts and "client: recv c → ECONNRESET" in texts
    assert svg.get("data-arrows") == "9" and svg.get("data-packets") == "9"


def test_svg_of_a_long_capture_stays_bounded() -> None:
    ladder = build_ladder(long_transfer(2000))
    svg = ET.fromstring(html.svg_ladder(ladder))
    assert int(svg.get("height", "0")) < 2000
    assert any("collapsed" in (g.get("class") or "") for g in svg.iter("g"))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_index_html_is_self_contained_with_a_diagram_per_scenario() -> None:
    docs = [closed_port(), peer_restart()]
    page = html.run_page(run_summary(docs), docs)
    parser = _Tags()
    parser.feed(page)
    svgs = [a for t, a in parser.tags if t == "svg"]
    assert [a.get("data-scenario") for a in svgs] == ["closed-port", "peer-restart"]
    assert not [t for t, _ in parser.tags if t in ("script", "link", "img", "iframe")]
    assert "http://" not in page and "https://" not in page and "@import" not in page
    ids = [a["id"] for _, a in parser.tags if a.get("id")]
    assert len(ids) == len(set(ids)), "ids are unique in the page"
    assert '<a href="closed-port/client.pcap">' in page


# --- the terminal ---------------------------------------------------------------------------------------------------


def test_terminal_ladder_draws_lifelines_arrows_and_the_reset() -> None:
    lines = [line.plain for line in ladder_lines(build_ladder(closed_port()), 100)]
    assert "client" in lines[0] and "10.213.7.70" in lines[1]
    syn = next(line for line in lines if "[S] seq=0" in line)
    assert syn.lstrip().startswith("0.000000") and "▶│" in syn
    rst = next(line for line in lines if "[R.]" in line)
    assert "✕" in rst and "━" in rst
    assert any("RST+ACK from server" in line for line in lines)
    assert all(len(line) <= 100 for line in lines)


def test_terminal_ladder_fits_a_narrow_terminal() -> None:
    lines = [line.plain for line in ladder_lines(build_ladder(peer_restart()), 60)]
    assert all(len(line) <= 72 for line in lines)


# --- show and report ------------------------------------------------------------------------------------------------


def write_results(out: Path, *docs: dict[str, Any]) -> Path:
    for doc in docs:
        (out / doc["scenario"]).mkdir(parents=True, exist_ok=True)
        (out / doc["scenario"] / "result.json").write_text(json.dumps(doc))
    return out


def test_show_draws_the_ladder_of_the_last_run(tmp_path: Path) -> None:
    write_results(tmp_path, peer_restart())
    buffer = io.StringIO()
    status = main(["show", "peer-restart", "--out", str(tmp_path)], console=Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert status == 0
    assert "peer-restart" in text and "10.213.7.10" in text and "80→40000 [R] seq=1" in text and "✕" in text
    assert "client: recv c → ECONNRESET" in text
    buffer = io.StringIO()
    assert main(["show", "peer-restart", "--out", str(tmp_path), "--at", "server"],
                console=Console(file=buffer, width=120)) == 0
    assert "ladder across server" in buffer.getvalue()


@pytest.mark.parametrize("args, words", [
    (["show", "nope"], "no result for 'nope'"),
    (["show", "peer-restart", "--at", "router"], "has no capture point 'router'"),
])
def test_show_unknown_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               args: list[str], words: str) -> None:
    write_results(tmp_path, peer_restart())
    assert main([*args, "--out", str(tmp_path)], console=Console(file=io.StringIO())) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and words in err[0]


def test_show_without_a_run_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "closed-port", "--out", str(tmp_path / "none")], console=Console(file=io.StringIO())) == 2
    err = capsys.readouterr().err
    assert "python -m orchestrator run closed-port" in err and "Traceback" not in err


def test_show_a_broken_result_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "result.json").write_text("{not json")
    assert main(["show", "x", "--out", str(tmp_path)], console=Console(file=io.StringIO())) == 2
    assert "not a readable result.json" in capsys.readouterr().err


def test_report_rebuilds_pages_from_a_folder_of_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = peer_restart()
    bad["verdict"] = "failed"
    bad["checks"] = [check("app", "client", False, "recv c -> ECONNRESET", "recv c -> ok")]
    write_results(tmp_path, closed_port(), bad)
    assert main(["report", str(tmp_path), "--step-summary"], console=Console(file=io.StringIO())) == 0
    out = capsys.readouterr().out
    assert out.startswith("### RST Lab: 1 of 2 scenarios passed") and "observed `recv c -> ok`" in out
    for name in ("index.md", "index.html", "junit.xml", "summary.json", "closed-port/README.md",
                 "peer-restart/README.md"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "summary.json").read_text())["total"] == 2
    assert "```mermaid" in (tmp_path / "closed-port" / "README.md").read_text()


def test_report_of_an_empty_folder_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)], console=Console(file=io.StringIO())) == 2
    assert "no <scenario>/result.json" in capsys.readouterr().err


def test_steps_are_described_for_the_page() -> None:
    assert describe_step(CallStep(host="client", call="connect", args={"sock": "c", "host": "server", "port": 7})) \
        == "**client**: `connect` c to server:7"
    assert describe_step(RestartStep(host="server")).startswith("**server** restarts")
    assert describe_step(SleepStep(seconds=1.5)) == "wait 1.5 s"
    long = describe_step(CallStep(host="server", call="shell", args={"cmd": "x" * 300}))
    assert len(long) < 140 and long.endswith("…`")


def test_what_fixes_it_is_shown_when_the_scenario_says() -> None:
    doc = closed_port()
    assert "## What fixes it" not in pages.scenario_page(doc)
    doc["fix"] = "Keepalive shorter than the NAT's idle timeout."
    assert "## What fixes it\n\nKeepalive shorter than the NAT's idle timeout." in pages.scenario_page(doc)
    assert "<b>What fixes it:</b> Keepalive shorter" in html.run_page(run_summary([doc]), [doc])


def test_what_the_commands_printed_is_shown_and_capped() -> None:
    doc = closed_port()
    assert "## What the commands printed" not in pages.scenario_page(doc)
    table = "tcp 6 3 ESTABLISHED src=10.0.0.10 dst=10.0.0.70 sport=40000 dport=8001"
    doc["events"] = [event(0.5, "router", "shell"), event(1.0, "client", "connect", "c", "ECONNREFUSED", 0.001)]
    doc["events"][0]["result"] = {"rc": 0, "stdout": table + "\n", "stderr": ""}
    page = pages.scenario_page(doc)
    assert f"## What the commands printed\n\n**router** `shell` at 0.500 s:\n\n```text\n{table}\n```" in page
    doc["events"][0]["result"] = {"rc": 0, "stdout": "\n".join(f"line {i}" for i in range(100)), "stderr": ""}
    page = pages.scenario_page(doc)
    assert "line 39" in page and "line 40" not in page and "(60 more lines in result.json)" in page
