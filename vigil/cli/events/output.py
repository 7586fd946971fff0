"""Printing for the replay commands: results on stdout, progress and messages on stderr."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC
from typing import NoReturn

import typer
from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from infrastructure.replay.describe import show_data, show_value, to_json
from infrastructure.replay.history import AsOf
from infrastructure.replay.tail import TailedEvent
from infrastructure.replay.verify import Problem, Report


def echo(line: str) -> None:
    typer.echo(line)  # flushes, so a pipe sees each line at once


def note(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


# -- progress --------------------------------------------------------------------------


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        unit = task.fields["unit"]
        if unit == "bytes":
            return Text(f"{filesize.decimal(int(speed))}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {unit}/s", style="progress.data.speed")


class Bar:
    """Counts items (commits or lines) and events; redraws every ``every`` items."""

    def __init__(self, progress: Progress, task: TaskID, noun: str, every: int = 256) -> None:
        self._progress, self._task, self._noun, self._every = progress, task, noun, every
        self.items = self.events = self.completed = 0

    def add(self, events: int = 0, completed: int | None = None) -> None:
        self.items += 1
        self.events += events
        self.completed = self.items if completed is None else completed
        if self.items % self._every == 0:
            self._draw()

    def done(self, completed: int | None = None) -> None:
        if completed is not None:
            self.completed = completed
        self._draw()

    def _draw(self) -> None:
        counts = f"{self.items:,} {self._noun}"
        if self.events:
            counts += f", {self.events:,} events"
        self._progress.update(self._task, completed=self.completed, counts=counts)


@contextlib.contextmanager
def progress(description: str, total: int, unit: str) -> Iterator[Bar]:
    """A progress bar on stderr; ``unit`` names what ``completed`` counts (for the rate)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        _Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total or None, counts="", unit=unit)
        yield Bar(bar, task, "lines" if unit == "bytes" else "commits")


# -- events and aggregates -------------------------------------------------------------


def event_line(item: TailedEvent) -> str:
    when = item.occurred_at or item.recorded_at
    stamp = when.isoformat(timespec="milliseconds") if when else "-"
    where = str(item.ref) if item.ref is not None else "?"
    if item.error is not None and item.event is None:
        return f"{item.position:>8}  {stamp}  {where}  v{item.version:<4} !! {item.error}"
    return f"{item.position:>8}  {stamp}  {where}  v{item.version:<4} {item.name:<30} {item.actor}"


def show_aggregate(found: AsOf) -> None:
    console = Console()
    version = found.aggregate.version if found.aggregate is not None else 0
    console.print(
        f"[bold]{found.ref.type} {found.ref.id}[/] (tenant {found.ref.tenant}) "
        f"at version {version} of {found.current_version}"
    )
    state = Table("field", "value", title="state", title_justify="left")
    for name, value in (found.state or {}).items():
        state.add_row(name, show_value(value))
    console.print(state)
    history = Table(title="history", title_justify="left")
    for name in ("pos", "v", "occurred at (UTC)", "event", "actor"):
        history.add_column(name, no_wrap=True)
    history.add_column("data")
    for entry in found.history:
        at = entry.occurred_at
        history.add_row(
            str(entry.position),
            str(entry.version),
            at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "-",
            entry.name.rpartition(".")[2],
            entry.actor or "-",
            show_data(entry.data, sep="\n"),
        )
    console.print(history)


# -- verify ------------------------------------------------------------------------------


def _problem_json(problem: Problem) -> dict[str, object]:
    ref = problem.ref
    return {
        "kind": problem.kind,
        "position": problem.position,
        "tenant": ref.tenant if ref else None,
        "type": ref.type if ref else None,
        "id": ref.id if ref else None,
        "detail": problem.detail,
    }


def show_report(
    report: Report, problems: list[Problem], *, read_models: bool, as_json: bool
) -> None:
    if as_json:
        summary = {
            "ok": not problems,
            "commits": report.commits,
            "events": report.events,
            "aggregates": len(report.aggregates),
            "head": report.head,
            "read_models_checked": read_models,
            "problems": [_problem_json(p) for p in problems],
        }
        echo(to_json(summary))
        return
    checked = "the event log and the read models" if read_models else "the event log"
    echo(
        f"checked {checked}: {report.commits:,} commits, {report.events:,} events, "
        f"{len(report.aggregates):,} aggregates, up to position {report.head:,}"
    )
    for problem in problems:
        echo(f"  {problem}")
    if problems:
        echo(f"{len(problems):,} problem(s) found")
    else:
        echo("no problems found")
