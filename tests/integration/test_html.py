"""The run's index.html in a real browser: headless Chromium draws every scenario's ladder.

Uses the session's catalogue run (`catalogue_run`): every scenario's page is
opened as a person would, from the file, with no network. Chromium is Debian's
`chromium` package; where CI is set a missing browser fails instead of skipping.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator import catalog
from tests import oracles
from tests.unit.test_reference import recheck


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium installed here, or in the tools container (tests/oracles.py)."""
    profile = tmp_path / "profile"
    return oracles.run("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                                    "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args, page.as_uri()],
                       [page.parent, tmp_path])


class Dom(HTMLParser):
    """The rendered DOM's SVG ladders: per diagram, its attributes and the elements it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, object]] = []
        self.depth = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(f"{tag} {key}={a[key]}")
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        if tag == "svg":
            self.svgs.append({"attrs": a, "line": 0, "path": 0, "seg": 0, "rst": 0, "text": 0, "life": 0,
                              "participants": [], "segs": []})
            self.depth = 1
        elif self.depth:
            svg = self.svgs[-1]
            if tag in ("line", "path", "text"):
                svg[tag] = int(svg[tag]) + 1  # type: ignore[call-overload]
            classes = (a.get("class") or "").split()
            if tag == "line" and "life" in classes:
                svg["life"] = int(svg["life"]) + 1  # type: ignore[call-overload]
            if tag == "g" and "participant" in classes:
                svg["participants"].append(a.get("data-name"))  # type: ignore[attr-defined]
            if tag == "g" and "seg" in classes:
                svg["segs"].append({**a, "classes": classes})  # type: ignore[attr-defined]
                svg["seg"] = int(svg["seg"]) + 1  # type: ignore[call-overload]
                if "rst" in classes:
                    svg["rst"] = int(svg["rst"]) + 1  # type: ignore[call-overload]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.depth = 0


def pixel_counts(rows: list[bytes]) -> tuple[set[tuple[int, int, int]], int, int]:
    """(distinct colours at 4 bits a channel, dark pixels, red pixels) of a screenshot's rows."""
    colours: set[tuple[int, int, int]] = set()
    ink = red = 0
    for row in rows:
        for i in range(0, len(row), 3):
            r, g, b = row[i], row[i + 1], row[i + 2]
            colours.add((r >> 4, g >> 4, b >> 4))
            ink += r < 128 and g < 128 and b < 128
            red += r > 180 and g < 90 and b < 90
    return colours, ink, red


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = depth = colour = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format: depth {depth}, colour type {colour}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


@pytest.fixture(scope="module")
def run_folder(catalogue_run: tuple[int, Path, str]) -> Path:
    _status, out, console = catalogue_run
    assert (out / "index.html").is_file(), console
    return out


def test_index_html_draws_every_scenarios_ladder(run_folder: Path, tmp_path: Path) -> None:
    summary = json.loads((run_folder / "summary.json").read_text())
    proc = browse(run_folder / "index.html", tmp_path, "--dump-dom")
    assert proc.returncode == 0 and "<svg" in proc.stdout, proc.stderr[-2000:]
    dom = Dom()
    dom.feed(proc.stdout)
    assert not dom.external, f"the page must be self-contained: {dom.external}"
    drawn = {str(s["attrs"]["data-scenario"]): s for s in dom.svgs}   # type: ignore[index]
    assert set(drawn) == {s["id"] for s in summary["scenarios"]}, "one diagram per scenario"
    for sid, svg in drawn.items():
        doc = json.loads((run_folder / sid / "result.json").read_text())
        attrs = svg["attrs"]
        arrows = int(attrs["data-arrows"])  # type: ignore[index]
        hosts = list(doc["hosts"])
        assert sorted(svg["participants"]) == sorted(hosts), f"{sid}: every host is a lifeline"  # type: ignore[arg-type]
        assert svg["life"] == len(hosts), f"{sid}: every lifeline is drawn"
        records = [p for packets in doc["packets"].values() for p in packets]
        if not records:
            continue
        assert arrows > 0 and svg["seg"] == arrows, f"{sid}: one drawn group per arrow"
        assert int(svg["line"]) >= arrows + len(hosts), f"{sid}: a line per arrow and per lifeline"
        assert int(svg["text"]) >= arrows, f"{sid}: every arrow is labelled"
        for seg in svg["segs"]:  # type: ignore[attr-defined]
            assert seg["data-from"] in hosts and seg["data-to"] in hosts, f"{sid}: {seg} runs between lifelines"
        resets = sum(1 for p in records if "R" in p["flags"])
        assert (svg["rst"] > 0) == (resets > 0), f"{sid}: resets are drawn as resets"
        busiest = max(len(packets) for point, packets in doc["packets"].items() if point != "router") \
            if any(point != "router" for point in doc["packets"]) else 1
        assert busiest <= int(attrs["data-packets"]) <= len(records), f"{sid}: each segment counted once"  # type: ignore[index]
    # the firewall's forged reset: the SYN stops at the router, the RST starts there
    segs = drawn["firewall-reset"]["segs"]
    assert [(s["data-from"], s["data-to"], "stopped" in s["classes"], "forged" in s["classes"], "rst" in s["classes"])
            for s in segs] == [("client", "router", True, False, False), ("router", "client", False, True, True)]  # type: ignore[attr-defined]


@pytest.mark.parametrize("scenario", ["firewall-reset", "keepalive-timeout"])
def test_screenshot_of_the_ladder_across_every_point(run_folder: Path, tmp_path: Path, scenario: str) -> None:
    """The scenario alone on a page in headless Chromium: drawn (ink), the reset red, every lifeline on screen."""
    from orchestrator.report import document, html

    doc = json.loads((run_folder / scenario / "result.json").read_text())
    page = tmp_path / f"{scenario}.html"
    page.write_text(html.run_page(document.run_summary([doc]), [doc]))
    shot = tmp_path / f"{scenario}.png"          # where the browser may write (mounted, if it runs in a container)
    proc = browse(page, tmp_path, "--window-size=1300,1500", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    shutil.copyfile(shot, run_folder / shot.name)   # kept with the run, to look at
    width, _, rows = png_pixels(shot)
    red = sum(1 for row in rows for i in range(0, len(row), 3) if row[i] > 180 and row[i + 1] < 90 and row[i + 2] < 90)
    assert red > 50, "the reset is drawn in red"
    svg = html.svg_ladder(html.build_ladder(doc))
    assert int(svg.split('width="', 1)[1].split('"', 1)[0]) <= width - 60, "the ladder fits the page: every lifeline shows"


def test_screenshot_is_not_blank_and_shows_the_reset_in_red(run_folder: Path, tmp_path: Path) -> None:
    """closed-port alone on a page: the screenshot has the diagram's ink and the reset's red."""
    from orchestrator.report import html
    from orchestrator.report.document import run_summary

    doc = json.loads((run_folder / "closed-port" / "result.json").read_text())
    page = tmp_path / "closed-port.html"
    page.write_text(html.run_page(run_summary([doc]), [doc]))
    shot = tmp_path / "closed-port.png"
    proc = browse(page, tmp_path, "--window-size=1000,900", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1000, 900)
    colours, ink, red = pixel_counts(rows)
    assert len(colours) > 20 and ink > 2000, "the page is drawn, not blank"
    assert red > 50, "the reset is drawn in red"


def test_pages_match_the_capture_files(run_folder: Path) -> None:
    """What test_reference.py does for the committed run, on this run: the files re-check as the run did."""
    scenarios = {s.id: s for s in catalog.builtin_scenarios(catalog.load_topology())}
    for folder in sorted(p.parent for p in run_folder.glob("*/result.json")):
        doc = json.loads((folder / "result.json").read_text())
        checks = recheck(folder, scenarios[folder.name])
        recorded = sorted((c["kind"], c["subject"], c["expected"], c["passed"]) for c in doc["checks"])
        again = sorted((c.kind, c.subject, c.expected, c.passed) for c in checks)
        assert again == recorded, f"{folder.name}: re-checking the files gives another verdict"
        page = (folder / "README.md").read_text()
        assert re.search(r"```mermaid\nsequenceDiagram\n", page), folder.name


def test_show_draws_a_real_result(run_folder: Path) -> None:
    import io

    from rich.console import Console

    from orchestrator.cli import main

    buffer = io.StringIO()
    assert main(["show", "closed-port", "--out", str(run_folder)], console=Console(file=buffer, width=120)) == 0
    text = buffer.getvalue()
    assert "[S] seq=0" in text and "[R.] seq=0 ack=1" in text and "✕" in text and "ECONNREFUSED" in text


def test_every_scenario_has_its_merged_annotated_pcapng_that_tshark_reads(run_folder: Path) -> None:
    """The run writes <scenario>/<scenario>.pcapng: every point's frames, named interfaces, a comment on each RST."""
    for folder in sorted(p.parent for p in run_folder.glob("*/result.json")):
        doc = json.loads((folder / "result.json").read_text())
        merged = folder / f"{folder.name}.pcapng"
        assert merged.is_file(), f"{folder.name}: no merged capture"
        out = oracles.tshark(["-r", str(merged), "-T", "fields", "-E", "separator=\t", "-e",
                              "frame.interface_name", "-e", "tcp.flags.reset", "-e", "frame.comment"], merged)
        rows = [[*line.split("\t"), "", ""][:3] for line in out.splitlines()]
        per_point = {p: c["captured"] for p, c in doc["captures"].items()}
        assert len(rows) == sum(per_point.values()), f"{folder.name}: every frame of every point, once"
        assert {r[0] for r in rows} <= set(per_point), f"{folder.name}: interfaces named after the points"
        resets = [r for r in rows if r[1] in ("1", "True")]
        assert all(r[2].startswith("RST ") for r in resets), f"{folder.name}: a RST without its comment"
        if any(c["kind"] == "packets" and c["passed"] for c in doc["checks"]):
            assert any("check packets @" in r[2] for r in rows), f"{folder.name}: the matched packets say so"
