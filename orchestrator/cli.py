"""The command layer: parse arguments, call the lab, map expected errors to exit statuses.

Every command is a function in COMMANDS returning an ExitStatus; `main` turns
a LabError into its one line and status, and Ctrl-C or SIGTERM into 130 after
the lab has torn itself down. `list`, `show`, `report` and `explain` never load
the Docker SDK: only the commands that use the engine import lab/.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .errors import BadInput, CaptureError, ExitStatus, LabError
from .paths import IMAGES_DIR, PROJECT_DIR

if TYPE_CHECKING:   # `list` imports neither rich nor the model: they are loaded where used
    import docker
    from rich.console import Console

    from .lab.builder import Built
    from .model import Scenario
    from .report.console import ConsoleReport
    from .runner import Progress

DEFAULT_OUT = Path("captures")
REFERENCE_RUN = PROJECT_DIR / "captures" / "reference"   # expected durations when --out has none
JSON_BATCH = 1 << 18      # characters of `explain --json` written at once


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestrator",
                                description="RST Lab: every way a TCP connection gets reset, on real hosts.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lst = sub.add_parser("list", help="the scenario catalogue")
    lst.add_argument("--json", action="store_true", help="machine-readable list")
    for name, help_text in (("run", "run scenarios by id or scenario file"), ("all", "run the whole catalogue")):
        r = sub.add_parser(name, help=help_text)
        if name == "run":
            r.add_argument("scenarios", nargs="+", metavar="NAME-or-FILE")
        r.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: captures/)")
        r.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="scenarios at a time (default: eight per CPU, at most 16; a CPU's worth start their labs at once)")
        r.add_argument("--no-witness", dest="witness", action="store_false",
                       help="do not record the kernel's reason for each RST (tracefs); reason checks are then "
                            "not witnessed")
        r.add_argument("--fresh", action="store_true",
                       help="new hosts for every scenario (by default a finished scenario's hosts, reset and "
                            "found pristine, take the next scenario of the same shape)")
    n = sub.add_parser("new", help="write a commented starting scenario file that runs and passes")
    n.add_argument("name", metavar="NAME", help="the file to write (NAME.yaml unless it ends in .yaml)")
    b = sub.add_parser("build", help="build the lab's images (offline if no registry answers)")
    b.add_argument("--force", action="store_true", help="rebuild even when the inputs did not change")
    c = sub.add_parser("clean", help="remove every container and network labelled rstlab.run")
    c.add_argument("--images", action="store_true", help="also remove the lab's images")
    c.add_argument("--run", action="append", default=[], metavar="RUN_ID", dest="runs",
                   help="only the objects of this run (repeatable); the default is every run's")
    sh = sub.add_parser("show", help="draw a scenario's ladder from the last run (its result.json)")
    sh.add_argument("name", metavar="NAME")
    sh.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the run's output folder (default: captures/)")
    sh.add_argument("--at", metavar="POINT", help="capture point to draw (default: the client's)")
    rp = sub.add_parser("report", help="rebuild the pages, index.html, junit.xml and summary.json of a results folder")
    rp.add_argument("folder", type=Path, metavar="DIR", help="a folder of <scenario>/result.json (e.g. CI artifacts)")
    rp.add_argument("--step-summary", action="store_true",
                    help="print the verdicts and failed checks as Markdown (for $GITHUB_STEP_SUMMARY)")
    ex = sub.add_parser("explain", help="tell which RST cause each reset in a capture matches, with the evidence")
    ex.add_argument("files", nargs="+", metavar="FILE",
                    help="pcap or pcapng files (gzip, bzip2 or xz too), from the lab or anywhere; - reads one piped in")
    ex.add_argument("--json", action="store_true", help="machine-readable list of connections")
    ex.add_argument("--at", action="append", default=[], metavar="[FILE=]ADDRESS",
                    help="an address of the host the capture was taken on (repeatable): tells whether a RST "
                         "that host sent was its own or forged in another host's name; FILE=ADDRESS says it "
                         "of one of several files")
    ex.add_argument("--all", action="store_true", dest="every",
                    help="print every connection, not one per incident (same verdict, same two hosts)")
    ex.add_argument("--annotate", type=Path, metavar="OUT.pcapng",
                    help="write the capture back as pcapng with a comment on each explained RST (one FILE)")
    ex.add_argument("--html", type=Path, metavar="OUT.html",
                    help="also write a self-contained page: the summary, the incidents, each with its ladder "
                         "(SVG), evidence and packets")
    ex.add_argument("--conn", metavar="ADDR:PORT",
                    help="only the connections with this endpoint at either end, in full ([ADDR]:PORT for IPv6)")
    ex.add_argument("--host", metavar="ADDR", help="only the connections of this host, in full")
    return p


class Context:
    """What a command works with: its report (the consoles) and, for the commands that need one, the engine."""

    def __init__(self, console: Console | None = None, client: docker.DockerClient | None = None,
                 err: Console | None = None) -> None:
        self.console = console
        self.client = client
        self.err = err

    def error(self, line: str) -> None:
        """One line on the error console: `error: ` and what is wrong, what to do."""
        _stderr(self.err).print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)

    @cached_property
    def report(self) -> ConsoleReport:
        """The report on the console given to `main`, else on the terminal's stdout (rich is loaded here)."""
        from .report.console import ConsoleReport

        return ConsoleReport(self.console)

    def plain_output(self) -> bool:
        """No console given and stdout is no terminal (as rich decides it): plain text needs no rich."""
        if self.console is not None:
            return False
        forced = os.environ.get("TTY_COMPATIBLE", "")
        if forced in ("0", "1"):
            return forced == "0"
        if os.environ.get("FORCE_COLOR") is not None:
            return os.environ["FORCE_COLOR"] == ""
        try:
            return not sys.stdout.isatty()
        except ValueError:
            return True

    def engine(self) -> docker.DockerClient:
        """The Docker client given to `main`, else one connected now (EngineUnavailable if none answers)."""
        if self.client is None:
            from .lab import engine
            self.client = engine.connect()
        return self.client


def cmd_list(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    from . import listing

    entries = listing.catalogue_entries()
    if args.json:
        print(json.dumps(entries, indent=2))
    elif ctx.plain_output():
        from .report.plain import text_table

        print(text_table("RST Lab scenarios", listing.HEADERS, listing.rows(entries)), end="")
    else:
        ctx.report.scenario_list(entries)
    return ExitStatus.OK


def _run(names: Sequence[str] | None, out: Path, jobs: int | None, ctx: Context, watch: bool = True,
         fresh: bool = False) -> ExitStatus:
    # what the first labs need comes first: they come up while the rest (runner, witness, display) loads
    from . import catalog
    from .lab import engine, images
    from .lab.engine_run import EngineRun
    from .lab.pool import DEFAULT_POOL, POOL_ENV
    from .lab.pool import PREFIX as POOL_PREFIX
    from .report import results_folder
    from .schedule import Lanes, default_jobs, start_order, starting_at_once

    topology = catalog.load_topology()
    scenarios = catalog.resolve(list(names), topology) if names else catalog.builtin_scenarios(topology)
    results_folder.prepare_output(out)
    client = ctx.engine()
    objects = engine.lab_objects(client)
    warm = {o.lab for o in objects if o.kind == "container" and o.name.startswith(POOL_PREFIX)}
    leftovers = sorted({o.run_id for o in objects if not o.lab or o.lab not in warm})   # not the warm labs
    if leftovers:
        ctx.report.note(f"[yellow]note:[/yellow] objects of other runs are on the engine (runs "
                        f"{', '.join(leftovers)}): if no other run is going on, remove them with "
                        "python -m orchestrator clean")
    run_id = engine.new_run_id()
    with ExitStack() as building:
        display: Callable[[str], None] | None = None

        def build_progress(message: str) -> None:   # the build display opens with its first message
            nonlocal display
            if display is None:
                display = building.enter_context(ctx.report.building())
            display(message)
        image_set = images.ensure_images(client, IMAGES_DIR, run_id, build_progress)
        scenarios, built = _build_sources(client, scenarios, run_id, build_progress)
    jobs = jobs or default_jobs()
    expected = results_folder.expected_durations([s.id for s in scenarios], out, REFERENCE_RUN)
    labs = EngineRun(client, image_set, topology, run_id, scenarios, reuse=not fresh)
    try:   # from the first lab made on, anything that ends the command removes the run's objects first
        order = start_order(scenarios, expected)
        lanes = Lanes(order, reuse=not fresh)   # (a scenario that will run on another's hosts gets none early)
        labs.start_early([s for s in order if lanes.starts_fresh(s)][:starting_at_once(jobs)])
        from .lab.witness import open_witness
        from .runner import run_many

        report = ctx.report
        if built:
            from .lab.builder import cache_dir

            compiled = sum(1 for b in built if b.compiled)
            report.note(f"programs: {len(built)} built from source, {compiled} compiled now, "
                        f"{len(built) - compiled} from the cache ({cache_dir()})")
        info = engine.engine_info(client)
        kernel = str(info.get("KernelVersion", ""))
        report.note(f"run {run_id}: {len(scenarios)} scenario(s), {jobs} at a time, kernel {kernel}, output in {out}")
        with open_witness(client, run_id, info, watch) as witness:
            if witness.unavailable:
                report.note(f"[yellow]kernel witness off:[/yellow] {witness.unavailable}; the kernel's RST reasons "
                            "are not recorded and their checks are reported as not witnessed")
            with report.running(scenarios, expected) as show:
                def progress(event: Progress) -> None:
                    if event.result is not None:
                        event.result.kernel = kernel
                        results_folder.write_scenario(out, event.result, run_id)
                    show(event)

                results = run_many(labs, scenarios, jobs, progress, witness=witness, expected=expected, finish=False,
                                   reuse=not fresh)
        # the witness closed and the run's pages written while the last removals go on
        results_folder.write_run(out, results, run_id, kernel)
        report.summary(results, str(out))
    except BaseException:   # (run_many removes everything itself when it is interrupted)
        labs.remove_everything()
        raise
    finally:
        from .lab.witness import forget_run

        labs.finish()   # nothing of the run is left when the command ends, but the labs it left warm
        forget_run(run_id)   # its tracing instance too, even one an interrupt caught before it was adopted
        if labs.parked:
            ctx.report.note(f"{len(labs.parked)} lab(s) left warm for the next run, their hosts reset "
                            f"(at most ${POOL_ENV}, default {DEFAULT_POOL}; python -m orchestrator clean removes them)")
    if any(r.error for r in results):
        return ExitStatus.ENVIRONMENT
    return ExitStatus.OK if all(r.passed for r in results) else ExitStatus.EXPECTATION_FAILED


def _build_sources(client: docker.DockerClient, scenarios: list[Scenario], run_id: str,
                   progress: Callable[[str], None]) -> tuple[list[Scenario], list[Built]]:
    """C/C++ sources compiled (or from the cache) before anything starts: a compiler error is exit 2."""
    from .lab import builder

    return builder.build_sources(client, scenarios, IMAGES_DIR, run_id, progress)


def cmd_run(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    return _run(args.scenarios, args.out, args.jobs, ctx, args.witness, args.fresh)


def cmd_all(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    return _run(None, args.out, args.jobs, ctx, args.witness, args.fresh)


def cmd_new(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    from .starter import write_starter

    path = write_starter(args.name)
    ctx.report.note(f"wrote {path}: run it with python -m orchestrator run {path}")
    return ExitStatus.OK


def cmd_build(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    from .lab import engine, images

    with ctx.report.building() as build_progress:
        built = images.ensure_images(ctx.engine(), IMAGES_DIR, engine.new_run_id(), build_progress,
                                     force=args.force)
    ctx.report.note(f"images ready: {built.base}, {built.host}")
    return ExitStatus.OK


def cmd_clean(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    """Exit 3 when something could not be removed: one line each with the engine's reason and what to do."""
    from .lab import engine
    from .lab.cleanup import clean
    from .lab.witness import sweep_for_engine

    client = ctx.engine()
    groups = [[f"{engine.RUN}={run}"] for run in args.runs] or [[]]
    done = [clean(client, *selectors) for selectors in groups]
    removed = [o for d in done for o in d.removed]
    left = [leftover for d in done for leftover in d.left]
    containers = sum(1 for o in removed if o.kind == "container")
    removed_images = engine.remove_images(client) if args.images else 0
    instances = sweep_for_engine(client)
    ctx.report.note(f"removed {containers} containers, {len(removed) - containers} networks"
                    + (f", {removed_images} images" if args.images else "") + " labelled rstlab.run"
                    + (f" of run {', '.join(args.runs)}" if args.runs else "")
                    + (f", {len(instances)} tracing instances of runs that were killed" if instances else "")
                    + (f"; {len(left)} could not be removed" if left else ""))
    for leftover in left:
        ctx.error(leftover.line())
    return ExitStatus.ENVIRONMENT if left else ExitStatus.OK


def cmd_show(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    from .report import results_folder
    from .report.ladder import build_ladder

    report = ctx.report
    doc = results_folder.load_result(args.out, args.name)
    if args.at is not None and args.at not in doc.get("packets", {}):
        raise BadInput(f"{args.name} has no capture point {args.at!r}",
                       f"capture points: {', '.join(doc.get('packets', {})) or 'none'}")
    report.ladder(doc, build_ladder(doc, args.at))
    return ExitStatus.OK


def cmd_report(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    from .report import pages, results_folder

    report = ctx.report
    summary, docs = results_folder.write_report(args.folder)
    if args.step_summary:
        print(pages.step_summary(summary, docs), end="")
    else:
        report.note(f"{summary['passed']} of {summary['total']} scenarios passed; pages, index.html, junit.xml "
                    f"and summary.json written in {args.folder}")
    return ExitStatus.OK


def _capture_hosts(files: Sequence[str], at: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """`--at`: the addresses every file's capture host owns, and each file's own (FILE=ADDRESS)."""
    import ipaddress

    every: list[str] = []
    mine: list[list[str]] = [[] for _ in files]
    for value in at:
        name, _, addr = value.rpartition("=")
        try:
            text = ipaddress.ip_address(addr).compressed
        except ValueError as exc:
            raise BadInput(f"--at: {exc}", "give the capture host's IPv4 or IPv6 address, or FILE=ADDRESS") from None
        if not name:
            every.append(text)
        elif name in files:
            mine[files.index(name)].append(text)
        else:
            raise BadInput(f"--at {value}: {name} is not one of the files", "name a FILE given to explain")
    return every, mine


def cmd_explain(args: argparse.Namespace, ctx: Context) -> ExitStatus:
    from contextlib import ExitStack

    from .capture import rereadable
    from .explain.analysis import few_collections
    from .report.reading import ReadingProgress

    if args.annotate and len(args.files) != 1:
        raise BadInput("--annotate takes one capture file", "explain the files one at a time to annotate each")
    if len(set(args.files)) != len(args.files):
        raise BadInput("a capture file is given twice", "give each capture point's file once")
    if "-" in args.files and sys.stdin.isatty():
        raise BadInput("explain -: standard input is a terminal, not a capture",
                       "pipe one in, e.g. tcpdump -w - | python -m orchestrator explain -")
    with few_collections(), ExitStack() as inputs:   # explaining makes no reference cycles: the collector would only scan
        # each file is read more than once: a pipe or standard input is copied to a temporary file first
        read: list[str] = []
        for name in args.files:
            with ReadingProgress(_stderr(ctx.err), "standard input" if name == "-" else name, doing="copying") as show:
                read.append(inputs.enter_context(rereadable(name, sys.stdin.buffer if name == "-" else None,
                                                            lambda done: show(done, 0))))
        try:
            return _explain(args, ctx, read)
        except CaptureError as exc:            # said of the file as the user named it
            message = exc.message
            for path, name in zip(read, args.files, strict=True):
                message = message.replace(path, name)
            raise CaptureError(message, exc.hint) from None


def _explain(args: argparse.Namespace, ctx: Context, read: list[str]) -> ExitStatus:
    """`explain`: `read[i]` is where `args.files[i]` is read from (the file, or a copy of a pipe)."""
    from dataclasses import replace

    from .explain import Explanation, explain_file
    from .explain.incidents import involves
    from .explain.store import chosen_of

    local, own = _capture_hosts(args.files, args.at)
    conn, host = _endpoint_arg(args.conn), _address_arg("--host", args.host)
    paths = None                     # every file is explained before anything prints
    from .report.reading import ReadingProgress

    if len(args.files) > 1:          # several points: each file read four times, correlated, explained
        from .explain.multi import explain_point_files
        from .explain.paths import point_names
        from .report.results_folder import capture_host

        for i, name in enumerate(args.files):
            lab = capture_host(Path(name))          # a lab run's pcap: its result.json names its host's address
            if lab is not None and not own[i]:
                own[i] = [lab[1]]
        with ReadingProgress(_stderr(ctx.err), f"{len(args.files)} capture points") as show:
            paths, results = explain_point_files(read, point_names(args.files),
                                                 [frozenset(local + own[i]) for i in range(len(args.files))], show)
    else:
        selected = conn is not None or host is not None
        with ReadingProgress(_stderr(ctx.err), args.files[0]) as show:     # --json alone reads only the records
            results = [explain_file(read[0], local, progress=show, segments=args.every or selected,
                                    json=args.json, verdicts=not args.json or bool(selected or args.html or args.annotate))]
    results = [replace(r, path=name) if r.path != name else r for r, name in zip(results, args.files, strict=True)]
    selection = " ".join(f"{flag} {value}" for flag, value in (("--conn", conn), ("--host", host)) if value)

    def chosen(e: Explanation) -> bool:
        return involves(e, conn, host)

    shown = [replace(r, explanations=chosen_of(r.explanations, chosen)) for r in results] if selection else results
    if args.html:
        from .report.explain_html import explain_page

        try:
            args.html.write_text(explain_page(shown, selection), encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"--html {args.html}: {exc.strerror or exc}", "give a writable path for the page") from None
        print(f"{args.html}: page written", file=sys.stderr)
    if args.annotate:
        from .report.annotate import annotate

        try:
            n = annotate(results[0], read[0], args.annotate)
        except OSError as exc:
            raise BadInput(f"--annotate {args.annotate}: {exc.strerror or exc}",
                           "give a writable path for the annotated pcapng") from None
        print(f"{args.annotate}: {n} packet comment{'s' if n != 1 else ''} written", file=sys.stderr)
    if args.json:                    # one record a line (a big capture's output is long)
        # written JSON_BATCH characters at a time whatever stdout's buffering (PYTHONUNBUFFERED made it a
        # write(2) per record: 20,000 of them for a dense 200,000-packet capture)
        out = sys.stdout
        sep = "[\n  "
        batch: list[str] = []
        held = 0
        for r in results:
            for line in r.json_lines(chosen if selection else None):
                batch.append(sep + line)
                held += len(line)
                sep = ",\n  "
                if held >= JSON_BATCH:
                    out.write("".join(batch))
                    batch.clear()
                    held = 0
        batch.append("[]\n" if sep.startswith("[") else "\n]\n")
        out.write("".join(batch))
        for r in results:
            if r.truncated:
                print(f"warning: {r.path} is truncated: explained up to the cut", file=sys.stderr)
    else:
        ctx.report.explanations(shown, every=args.every, paths=paths, selection=selection)
    return ExitStatus.OK


def _address_arg(flag: str, text: str | None) -> str | None:
    """An IPv4 or IPv6 address as `explain` writes it (compressed), or BadInput naming the flag."""
    import ipaddress

    if text is None:
        return None
    try:
        return ipaddress.ip_address(text.strip("[]")).compressed
    except ValueError:
        raise BadInput(f"{flag} {text!r} is not an IP address", f"give an IPv4 or IPv6 address, e.g. {flag} 10.0.0.1") \
            from None


def _endpoint_arg(text: str | None) -> str | None:
    """`ADDR:PORT` (`[ADDR]:PORT` for IPv6) as `explain` writes endpoints, or BadInput."""
    from .explain import endpoint

    if text is None:
        return None
    addr, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or (":" in addr and not addr.startswith("[")):
        raise BadInput(f"--conn {text!r} is not ADDR:PORT", "e.g. --conn 10.0.0.1:80 or --conn [fd00::1]:80")
    address = _address_arg("--conn", addr)
    assert address is not None
    return endpoint(address, int(port))


COMMANDS: dict[str, Callable[[argparse.Namespace, Context], ExitStatus]] = {
    "list": cmd_list, "run": cmd_run, "all": cmd_all, "build": cmd_build, "clean": cmd_clean,
    "show": cmd_show, "report": cmd_report, "explain": cmd_explain, "new": cmd_new,
}


def _stderr(err: Console | None) -> Console:
    """The console errors go to: the one given to `main`, else stderr (rich loaded only when there is an error)."""
    if err is not None:
        return err
    from rich.console import Console

    return Console(stderr=True)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, console: Console | None = None, err: Console | None = None,
         client: docker.DockerClient | None = None) -> int:
    """Run one command. `console` and `err` default to the terminal's stdout and stderr; `client`
    to the engine DOCKER_HOST names (tests pass their own, and run the CLI in-process)."""
    args = _parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if in_main_thread else None
    try:
        return int(COMMANDS[args.command](args, Context(console, client, err)))
    except LabError as exc:
        Context(err=err).error(exc.line())
        return int(exc.status)
    except KeyboardInterrupt:
        _stderr(err).print("interrupted: the lab's containers and networks of this run were removed", highlight=False,
                  soft_wrap=True)
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # the reader closed the output (`… | head`): it has what it wanted, so nothing is printed; the output
        # goes nowhere from here, so that the interpreter's last flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):      # not a file's output (a test's capture): nothing to flush there
            pass
        finally:
            os.close(devnull)
        return int(ExitStatus.CLOSED_PIPE)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
