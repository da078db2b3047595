"""The oracles' container path works where tshark and Chromium are not installed (forced here)."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.capture import read_capture
from tests import oracles

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "lo_ipv4.pcap"


@pytest.fixture
def in_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSTLAB_ORACLES", "container")


def test_tshark_in_the_tools_container_reads_a_capture(in_container: None) -> None:
    out = oracles.tshark(["-n", "-r", str(FIXTURE), "-Y", "tcp", "-T", "fields", "-e", "tcp.srcport"], FIXTURE)
    ports = [int(line) for line in out.split()]
    assert ports == [p.sport for p in read_capture(FIXTURE).packets]


def test_chromium_in_the_tools_container_draws_a_page(in_container: None, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text('<!doctype html><svg width="10" height="10"><line x1="0" y1="0" x2="9" y2="9"/></svg>'
                    '<script>document.body.dataset.seen = "yes"</script>')
    proc = oracles.run("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                    f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                       [tmp_path])
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert 'data-seen="yes"' in proc.stdout and "<line" in proc.stdout
