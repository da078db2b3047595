"""Captures as people hand them over: compressed (gzip, bzip2, xz, as Wireshark opens gzip), piped into
`explain -`, or given as a pipe's path (`<(zcat x.pcap.gz)`, /dev/stdin). Each reads as the plain file does."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.capture import read_capture
from orchestrator.explain import explain_file
from tests.conftest import ROOT, WILD
from tests.unit.test_cli import assert_one_line_error, run_main

CAPTURE = WILD / "w08.pcap"            # an abortive close, ambiguous: candidates, evidence and notes to compare
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


def _json(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "explain", "--json", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=120, env={**os.environ, **(env or {})})


def _records(out: bytes) -> list[dict[str, object]]:
    """The records without the file's name (the one thing that differs)."""
    records: list[dict[str, object]] = json.loads(out)
    for r in records:
        r.pop("file")
    return records


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_compressed_capture_is_explained_as_the_capture_it_holds(tmp_path: Path, kind: str) -> None:
    packed = tmp_path / f"{CAPTURE.name}.{kind}"
    packed.write_bytes(COMPRESSORS[kind](CAPTURE.read_bytes()))
    plain, read = explain_file(CAPTURE), explain_file(packed)
    assert read.path == str(packed) and list(read.explanations) == list(plain.explanations) != []
    assert read.packets == plain.packets and not read.truncated
    assert read_capture(packed).packets == read_capture(CAPTURE).packets


def test_a_compressed_capture_reports_progress_in_the_file_s_own_bytes(tmp_path: Path) -> None:
    """The progress bar's total is the file's size: what is done is counted in it too, not in the bytes the
    capture holds (about three times as many), and ends at it."""
    packed = tmp_path / "big.pcap.gz"
    packed.write_bytes(gzip.compress((WILD / "w03.pcapng").read_bytes()))
    seen: list[tuple[int, int]] = []
    read_capture(packed, progress=lambda done, total: seen.append((done, total)))
    size = packed.stat().st_size
    assert seen and all(total == size and done <= size for done, total in seen)
    assert seen[-1][0] == size


def test_a_compressed_capture_cut_short_is_explained_up_to_the_cut(tmp_path: Path) -> None:
    data = gzip.compress((WILD / "w03.pcapng").read_bytes())
    cut = tmp_path / "cut.pcapng.gz"
    cut.write_bytes(data[: len(data) // 2])
    result = explain_file(cut)
    assert result.truncated and 0 < result.packets < explain_file(WILD / "w03.pcapng").packets
    proc = run_main("explain", str(cut))
    assert proc.returncode == 0 and "truncated" in proc.stdout


def test_corrupt_compressed_data_is_one_line(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(CAPTURE.read_bytes()))
    data[40:60] = b"\xff" * 20
    bad = tmp_path / "bad.pcap.gz"
    bad.write_bytes(bytes(data))
    proc = run_main("explain", str(bad))
    assert_one_line_error(proc, 2, f"{bad}: corrupt gzip data")


def test_standard_input_is_explained_as_the_file(tmp_path: Path) -> None:
    """`explain -` reads a capture piped in (a copy is made, in the temporary folder, and removed): the records
    are those of the file, named `-`; piped in gzipped, the same."""
    plain = _json(str(CAPTURE))
    for data in (CAPTURE.read_bytes(), gzip.compress(CAPTURE.read_bytes())):
        piped = _json("-", stdin=data, env={"TMPDIR": str(tmp_path)})
        assert piped.returncode == 0, piped.stderr
        assert _records(piped.stdout) == _records(plain.stdout)
        assert {r["file"] for r in json.loads(piped.stdout)} == {"-"}
    assert list(tmp_path.iterdir()) == []


def test_a_pipe_s_path_is_read_once_and_explained(tmp_path: Path) -> None:
    """A path that is a pipe (a FIFO here; `<(zcat x.pcap.gz)` and /dev/stdin are the same) can be read once:
    it is copied before the two readings, and named as given."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(CAPTURE.read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    piped = _json(str(fifo))
    writer.join(timeout=30)
    assert piped.returncode == 0, piped.stderr
    assert _records(piped.stdout) == _records(_json(str(CAPTURE)).stdout)
    assert {r["file"] for r in json.loads(piped.stdout)} == {str(fifo)}
    shell = subprocess.run(["bash", "-c", f'"{sys.executable}" -m orchestrator explain --json <(cat "{CAPTURE}")'],
                           cwd=ROOT, capture_output=True, timeout=120)
    assert shell.returncode == 0 and _records(shell.stdout) == _records(piped.stdout)


def test_standard_input_piped_with_another_point(tmp_path: Path) -> None:
    """`-` is one capture point among others."""
    both = _json("-", str(WILD / "w05.pcap"), stdin=CAPTURE.read_bytes())
    assert both.returncode == 0, both.stderr
    assert {r["file"] for r in json.loads(both.stdout)} == {"-", str(WILD / "w05.pcap")}


@pytest.mark.parametrize(("data", "words"), [(b"", "-: empty file (0 bytes), not a capture"),
                                             (b"hello\n", "-: not a pcap or pcapng file")])
def test_what_is_piped_in_is_named_as_standard_input_when_it_is_no_capture(data: bytes, words: str) -> None:
    proc = _json("-", stdin=data)
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "rstlab-input" not in lines[0]


def test_standard_input_at_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing piped in: `explain -` would wait for a capture typed at the keyboard."""

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    proc = run_main("explain", "-")
    assert_one_line_error(proc, 2, "standard input is a terminal")


def test_a_compressed_capture_is_annotated(tmp_path: Path) -> None:
    packed, out = tmp_path / "c.pcap.gz", tmp_path / "c.pcapng"
    packed.write_bytes(gzip.compress(CAPTURE.read_bytes()))
    proc = run_main("explain", str(packed), "--annotate", str(out))
    assert proc.returncode == 0, proc.stderr
    assert read_capture(out).packets == read_capture(CAPTURE).packets


def test_a_device_is_read_where_it_is_not_copied() -> None:
    """Only a pipe or a socket is copied first: a device (which may never end) is read in place, and /dev/zero is
    no capture at once."""
    assert_one_line_error(run_main("explain", "/dev/zero"), 2, "/dev/zero: not a pcap or pcapng file")


def test_what_comes_through_a_pipe_is_copied_with_its_progress(tmp_path: Path) -> None:
    """The copy reports the bytes copied after each chunk; the bar, its total unknown, counts them on a terminal
    (after its delay, as a file's does)."""
    import io

    from rich.console import Console

    from orchestrator.capture import rereadable
    from orchestrator.report.reading import ReadingProgress

    data = (WILD / "w03.pcapng").read_bytes() * 3
    seen: list[int] = []
    with rereadable("-", io.BytesIO(data), seen.append) as path:
        assert Path(path).read_bytes() == data
    assert seen == sorted(seen) and seen[-1] == len(data) and len(seen) == -(-len(data) // (1 << 20))
    assert not Path(path).exists()
    screen = io.StringIO()
    clock = iter([0.0, 2.0, 2.5]).__next__
    with ReadingProgress(Console(file=screen, force_terminal=True, width=100), "standard input", clock=clock,
                         doing="copying") as show:
        show(3_000_000, 0)
    assert "copying standard input" in screen.getvalue() and "3.0" in screen.getvalue()


@pytest.mark.parametrize(("kind", "magic"), [("zstd", b"\x28\xb5\x2f\xfd"), ("lz4", b"\x04\x22\x4d\x18")])
def test_a_capture_compressed_in_a_format_not_read_says_how_to_read_it(tmp_path: Path, kind: str, magic: bytes) -> None:
    """zstd and lz4 (which Python's standard library does not open) are named, with the pipe that reads them."""
    packed = tmp_path / f"c.pcap.{kind}"
    packed.write_bytes(magic + b"\x00" * 40)
    proc = run_main("explain", str(packed))
    assert_one_line_error(proc, 2, f"{packed}: {kind}-compressed, which is not read here")
    assert f"{kind} -dc {packed} | python -m orchestrator explain -" in proc.stderr
