"""The live display as a terminal would show it (a rich Console forced to be a terminal), no Docker."""
from __future__ import annotations

import io

from rich.console import Console

from orchestrator import catalog
from orchestrator.model import CallStep, Scenario
from orchestrator.report.console import ConsoleReport
from orchestrator.report.live import LiveBuild, LiveRun
from orchestrator.result import ScenarioResult
from orchestrator.runner import Progress


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system=None), out


def scenarios() -> list[Scenario]:
    return catalog.builtin_scenarios(catalog.load_topology())[:3]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_running_rows_show_phase_step_and_time_against_the_expected() -> None:
    console, _ = terminal()
    s = scenarios()
    clock = Clock()
    done: list[str] = []
    live = LiveRun(console, s, {s[0].id: 8.0}, lambda e: done.append(e.scenario.id), clock)
    live.update(Progress(s[0], "creating", clock.now))
    live.update(Progress(s[1], "creating", clock.now))
    clock.now += 2.5
    step = s[0].steps[0]
    live.update(Progress(s[0], "step", clock.now, 0, step))
    with console.capture() as captured:
        console.print(live._render())
    text = captured.get()
    first = next(line for line in text.splitlines() if line.startswith(s[0].id))
    assert "2.5 s / ~8 s" in first and f"step 1/{len(s[0].steps)}:" in first and "**" not in first
    second = next(line for line in text.splitlines() if line.startswith(s[1].id))
    assert "creating hosts" in second and "/ ~" not in second
    assert "0/3" in text

    live.update(Progress(s[0], "done", clock.now, result=ScenarioResult(scenario=s[0])))
    with console.capture() as captured:
        console.print(live._render())
    text = captured.get()
    assert done == [s[0].id] and "1/3" in text
    assert not any(line.startswith(s[0].id) for line in text.splitlines()), "finished: no longer a running row"
    assert "removing what the run made" not in text

    for other in s[1:]:
        live.update(Progress(other, "done", clock.now, result=ScenarioResult(scenario=other)))
    with console.capture() as captured:
        console.print(live._render())
    assert "3/3" in captured.get() and "removing what the run made" in captured.get()


def test_leaving_the_display_on_an_interrupt_restores_the_cursor() -> None:
    console, out = terminal()
    s = scenarios()
    try:
        with LiveRun(console, s, {}, lambda e: None):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    text = out.getvalue()
    assert text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l") >= 0, "the cursor is shown again"
    assert text.endswith("\x1b[2K"), "the display is erased (transient): the terminal is as it was"


def test_a_dockerfile_build_moves_a_bar_over_its_steps() -> None:
    console, _ = terminal()
    build = LiveBuild(console)
    build.update("building rstlab/host:abc")
    build.update("Step 3/9 : RUN apt-get install -y iproute2")
    task = build._progress.tasks[0]
    assert (task.completed, task.total) == (2, 9) and "iproute2" in task.fields["line"]
    build.update("Step 9/9 : CMD [\"agent\"]")
    assert build._progress.tasks[0].completed == 8


def test_off_a_terminal_the_run_prints_plain_lines() -> None:
    out = io.StringIO()
    report = ConsoleReport(Console(file=out, width=120))
    s = Scenario(id="x", title="x", claim="", explanation="", hosts=("client",), capture=(),
                 steps=(CallStep(host="client", call="socket", args={"sock": "c"}),))
    with report.running([s], {}) as show:
        show(Progress(s, "capturing", 0.0))
        show(Progress(s, "done", 1.0, result=ScenarioResult(scenario=s, duration=1.0)))
    assert out.getvalue().splitlines() == ["x hosts up, capturing", "x passed in 1.0 s"]
