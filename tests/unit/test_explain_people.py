"""`explain` for people (issue 22): the summary first, incidents with a ladder each, a line budget on
any capture, `--conn`/`--host`, `--json`'s incidents and the `--html` page (no Docker, no browser)."""
from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.cli import main
from orchestrator.explain import SILENT_DROP, CaptureExplanation, explain_file, explain_packets, incidents
from tests.conftest import WILD
from tests.unit.test_explain import FIXTURES, Wire

WILD_FILES = sorted(p.name for p in WILD.glob("w*")) if WILD.is_dir() else []
SCAN, SEVEN = WILD / "w03.pcapng", WILD / "w06.pcap"


def explain(*args: str, width: int = 80) -> tuple[int, str, str]:
    """`python -m orchestrator explain …` in-process: (status, stdout, stderr) on a terminal `width` wide."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):       # --json and the notes print plainly
        status = main(["explain", *args], console=Console(file=out, width=width), err=Console(file=err, width=200))
    return status, out.getvalue(), err.getvalue()


# --- the terminal: line budgets, the scan named first, every reset of a small capture, ladders ------------------


def test_the_scan_is_named_in_the_first_lines_and_takes_60_lines_or_fewer() -> None:
    status, out, _ = explain(str(SCAN))
    lines = out.splitlines()
    assert status == 0 and len(lines) <= 60, len(lines)
    head = " ".join(" ".join(lines[:8]).split())
    assert "silent-drop 1986" in head
    assert "1986 connections 172.16.0.8 > 64.13.134.52 (ports 1–65389" in head
    assert "a port scan against a host that filters" in head


def test_the_summary_gives_the_captures_own_length_beside_the_resets_span(tmp_path: Path) -> None:
    """w25: one RST a minute for 24 h, all of one connection whose first RST is its first packet: the
    resets' span alone read "0.000–0.000 s"; the capture's length says how long it was watched."""
    status, out, _ = explain(str(WILD / "w25.pcap"), width=200)
    assert status == 0 and "port 80; 0.000–0.000 s of 86341.074 s captured; by cause: unknown 1" in out
    page = explain_file(WILD / "w25.pcap")
    assert page.end - page.t0 == pytest.approx(86341.074, abs=1e-3)
    assert explain("--html", str(tmp_path / "w25.html"), str(WILD / "w25.pcap"))[0] == 0
    assert "after the first packet, of 86341.074 s captured." in (tmp_path / "w25.html").read_text()


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("name", WILD_FILES)
def test_every_wild_capture_fits_a_terminal_by_default(name: str, width: int) -> None:
    status, out, _ = explain(str(WILD / name), width=width)
    assert status == 0 and 0 < len(out.splitlines()) <= 200, len(out.splitlines())


def test_every_reset_of_the_seven_reset_capture_is_shown_with_a_ladder_per_incident() -> None:
    result = explain_file(str(SEVEN))
    groups = incidents(result.explanations)
    assert len(result.explanations) == 7 and len(groups) == 4
    _, out, _ = explain(str(SEVEN))
    for e in result.explanations:
        assert f"{e.endpoints[0]} > {e.endpoints[1]}" in out
    assert out.count("    ladder") == len(groups)            # one ladder per incident
    assert out.count("✕") >= len(groups)                    # each incident's reset drawn with its cross
    assert "[ RST from client ]" in out and "[ RST+ACK from client ]" in out


def test_the_scan_draws_the_ladder_of_each_incidents_most_telling_connection() -> None:
    _, out, _ = explain(str(SCAN), width=120)
    lines = out.splitlines()
    ladders = [i for i, line in enumerate(lines) if line.startswith("    ladder of ")]
    assert len(ladders) == 2
    syn = lines[ladders[0] + 1:ladders[0] + 4]
    assert "client" in syn[0] and "172.16.0.8:36050" in syn[1] and "64.13.134.52:443" in syn[1]
    assert "[S] seq=0" in syn[2] and "▶│" in syn[2]
    refused = "\n".join(lines[ladders[1]:ladders[1] + 6])
    assert "[R.] seq=2462244745 ack=1" in refused and "✕" in refused and "RST+ACK from server" in refused


def many_incidents(n: int = 300) -> CaptureExplanation:
    """n clients each refused once by the same server: n incidents (one per host pair)."""
    packets: list[Any] = []
    for i in range(n):
        w = Wire(c=(f"10.0.{i // 200}.{i % 200 + 1}", 40000), s=("10.9.9.9", 80), t=1000.0 + i, packets=packets)
        w.send("c", "S")
        w.send("s", "R.", ack=w.isn["c"] + 1)
    explanations = explain_packets(packets)
    return CaptureExplanation("many.pcap", len(packets), 0, False, n, packets[0].time, packets[-1].time,
                              tuple(explanations))


def test_a_capture_of_hundreds_of_incidents_stays_within_the_budget() -> None:
    from orchestrator.report.console import ConsoleReport
    from orchestrator.report.explain_console import LIST_MAX

    result = many_incidents()
    assert len(incidents(result.explanations)) == 300
    buffer = io.StringIO()
    ConsoleReport(Console(file=buffer, width=80)).explanations([result])
    lines = buffer.getvalue().splitlines()
    assert len(lines) <= 200, len(lines)
    listed = [line for line in lines if re.match(r"  \d+\. +1 connection 10\.0\.", line)]
    assert len(listed) == LIST_MAX and any(f"… {300 - LIST_MAX} more incidents" in line for line in lines)
    flat = " ".join(buffer.getvalue().split())
    assert "more incidents not shown in full (see the list above): --all prints every connection, --conn ADDR:PORT" \
        in flat


def test_all_prints_every_connection_with_its_ladder() -> None:
    _, out, _ = explain("--all", str(SEVEN), width=120)
    assert out.count("    ladder: ") == 7


# --- selecting one connection or one host -----------------------------------------------------------------------


def test_conn_prints_that_connection_in_full_from_either_end() -> None:
    for end in ("10.87.1.10:52238", "130.211.223.103:80"):
        status, out, _ = explain("--conn", end, str(SEVEN), width=120)
        assert status == 0
        shown = re.findall(r"^  (\S+ > \S+)  ", out, re.M)
        if end.endswith(":52238"):
            assert shown == ["10.87.1.10:52238 > 130.211.223.103:80"]
            assert "selected by --conn 10.87.1.10:52238: 1 connection" in out
            assert "unread-data-close: " in out and "tells it apart" in out   # in full
            assert out.count("    ladder: ") == 1 and "[R.] seq=19 ack=6083" in out
        else:
            assert len(shown) == 6                    # every connection to port 80 of the server
            assert "10.87.1.10:49870 > 130.211.223.103:443" not in out


def test_host_selects_the_hosts_connections_and_combines_with_conn() -> None:
    _, out, _ = explain("--host", "64.13.134.52", "--conn", "64.13.134.52:113", str(SCAN), width=120)
    assert re.findall(r"^  (\S+ > \S+)  ", out, re.M) == ["172.16.0.8:36050 > 64.13.134.52:113",
                                                       "172.16.0.8:36061 > 64.13.134.52:113"]   # asked twice
    _, out, _ = explain("--host", "10.0.0.1", str(SCAN))
    assert "selected by --host 10.0.0.1: 0 connections" in out


def test_selection_in_json_keeps_the_ids_of_the_whole_file() -> None:
    _, out, _ = explain("--json", "--conn", "10.87.1.10:52238", str(SEVEN))
    records = json.loads(out)
    assert len(records) == 1 and records[0]["endpoints"][0] == "10.87.1.10:52238"
    every = json.loads(explain("--json", str(SEVEN))[1])
    assert every[records[0]["id"]] == records[0]


@pytest.mark.parametrize(("args", "words"), [
    (["--conn", "10.87.1.10"], "--conn '10.87.1.10' is not ADDR:PORT"),
    (["--conn", "10.87.1.10:http"], "is not ADDR:PORT"),
    (["--conn", "10.87.1.10:70000"], "is not ADDR:PORT"),
    (["--conn", "fd00::1:80"], "is not ADDR:PORT"),
    (["--conn", "nohost:80"], "--conn 'nohost' is not an IP address"),
    (["--host", "1.2.3"], "--host '1.2.3' is not an IP address"),
])
def test_a_bad_selection_is_one_line_and_exit_2(args: list[str], words: str) -> None:
    status, out, err = explain(*args, str(SEVEN))
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and out == "" and len(lines) == 1 and words in lines[0], err


def test_an_ipv6_endpoint_is_written_in_brackets() -> None:
    from orchestrator.cli import _endpoint_arg

    assert _endpoint_arg("[fd00:0::1]:80") == "[fd00::1]:80" and _endpoint_arg("10.0.0.1:0") == "10.0.0.1:0"


# --- --json: the connections as before, each with its id and its incident -------------------------------------


def test_json_keeps_every_connection_and_adds_its_incident() -> None:
    status, out, _ = explain("--json", str(SCAN))
    records = json.loads(out)
    assert status == 0 and isinstance(records, list) and len(records) == 1994
    before = {"file", "capture_truncated", "client", "server", "endpoints", "cause", "candidates", "rst_from",
              "rst_side", "explanation", "evidence", "notes", "start", "rst_time", "packets", "resets",
              "conn_state", "history", "forged"}
    for n, r in enumerate(records):
        assert set(r) == before | {"id", "incident"} and r["id"] == n
    scan = records[0]["incident"]
    assert scan == {"id": 0, "cause": SILENT_DROP, "candidates": [], "client": "172.16.0.8",
                    "server": "64.13.134.52", "connections": 1986, "server_ports": [1, 65389],
                    "first": 0.0, "last": scan["last"], "meaning": "a port scan against a host that filters",
                    "example": scan["example"]}
    telling = records[scan["example"]]
    assert telling["incident"]["id"] == 0 and telling["endpoints"] == ["172.16.0.8:36050", "64.13.134.52:443"]
    groups = {r["incident"]["id"]: r["incident"] for r in records}
    assert [(g["cause"], g["connections"]) for g in groups.values()] == [
        (SILENT_DROP, 1986), ("half-open", 3), ("closed-port", 5)]
    assert sum(1 for r in records if r["incident"]["id"] == 2) == 5
    assert 4.0 < scan["last"] < 5.2 and groups[2]["server_ports"] == [25, 31337] and groups[1]["server_ports"] == [22, 80]


def test_json_of_several_files_numbers_each_file_apart() -> None:
    files = [str(FIXTURES / "peer-restart_client.pcap"), str(FIXTURES / "closed-port_client.pcap")]
    records = json.loads(explain("--json", *files)[1])
    assert [(Path(r["file"]).name, r["id"], r["incident"]["id"]) for r in records] == [
        ("peer-restart_client.pcap", 0, 0), ("peer-restart_client.pcap", 1, 1), ("closed-port_client.pcap", 0, 0)]


# --- --html: the page ---------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The page's ladders (per <svg>: its attributes and segment groups), sections and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, Any]] = []
        self.sections: list[str] = []
        self.external: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "link", "iframe", "img") or any(
                (a.get(k) or "").startswith(("http:", "https:", "//")) for k in ("src", "href")):
            self.external.append(tag)
        if tag == "svg":
            self.svgs.append({"attrs": a, "segs": 0, "rst": 0})
        classes = (a.get("class") or "").split()
        if tag == "g" and "seg" in classes:
            self.svgs[-1]["segs"] += 1
            self.svgs[-1]["rst"] += "rst" in classes
        if tag == "section" and "incident" in classes:
            self.sections.append(a.get("id") or "")
        if tag == "tr":
            self.rows += 1


def page_of(tmp_path: Path, *files: Path, extra: tuple[str, ...] = ()) -> tuple[str, Page]:
    out = tmp_path / "page.html"
    status, _, err = explain("--html", str(out), *extra, *map(str, files))
    assert status == 0 and "page written" in err
    text = out.read_text()
    page = Page()
    page.feed(text)
    return text, page


def test_html_page_has_the_summary_the_incidents_and_a_ladder_each(tmp_path: Path) -> None:
    text, page = page_of(tmp_path, SEVEN)
    groups = incidents(explain_file(str(SEVEN)).explanations)
    assert not page.external, page.external
    assert page.sections == [f"capture-0-incident-{k}" for k in range(1, len(groups) + 1)]
    assert [s["attrs"]["data-scenario"] for s in page.svgs] == page.sections
    for svg, inc in zip(page.svgs, groups, strict=True):
        assert svg["segs"] == int(svg["attrs"]["data-arrows"]) > 0
        assert svg["rst"] > 0
        assert int(svg["attrs"]["data-packets"]) == len(inc.example.segments)
    assert "<table class=incidents>" in text and "425</b> TCP packets" in text
    for cause in ("connect-timeout", "linger-abort", "data-after-close", "unread-data-close or linger-abort"):
        assert cause in text
    assert "<h4>Evidence</h4>" in text and "<h4>Candidates</h4>" in text and "Packets of 10.87.1.10:52232" in text


def test_html_page_of_the_scan_is_small_and_names_the_scan(tmp_path: Path) -> None:
    text, page = page_of(tmp_path, SCAN)
    assert len(page.svgs) == 3 and page.rows < 40 and len(text) < 40_000
    assert "a port scan against a host that filters" in text and "The other 1985:" in text


def test_html_page_of_several_files_and_a_selection(tmp_path: Path) -> None:
    files = [FIXTURES / "peer-restart_client.pcap", FIXTURES / "closed-port_client.pcap"]
    _, page = page_of(tmp_path, *files)
    assert page.sections == ["capture-0-incident-1", "capture-0-incident-2", "capture-1-incident-1"]
    text, page = page_of(tmp_path, SEVEN, extra=("--conn", "10.87.1.10:52238"))
    assert len(page.svgs) == 1 and "Selected by</b> <code>--conn 10.87.1.10:52238</code>" in text


def test_html_to_an_unwritable_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    status, out, err = explain("--html", str(tmp_path / "no" / "such" / "page.html"), str(SEVEN))
    assert status == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: --html ")
