"""Progress displays for the CLI: a rich live table on a terminal, plain lines in CI
logs, or one JSON object per line (``--json``). Each is an event callback."""

from __future__ import annotations

import json
import math
import sys
import time
from decimal import Decimal
from typing import IO, Any

from storyboard.events import (
    WAITING_FOR_ANOTHER_RENDER,
    AppResolved,
    AssemblyProgress,
    Event,
    FilmDone,
    RenderStarted,
    ShotCached,
    ShotDone,
    ShotFailed,
    ShotProgress,
    ShotSkipped,
    ShotStarted,
    ShotWaiting,
    Warning_,
)
from storyboard.facts import usd


def _percent(fraction: float) -> str:
    """A fraction done as a whole percentage, rounded down: "100%" only when it is all done."""
    return f"{math.floor(min(max(fraction, 0.0), 1.0) * 100)}%"


class JsonLines:
    """One JSON object per event, on stdout."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        """Write the event as one JSON line."""
        self.stream.write(json.dumps(event.to_dict(), default=str) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Do nothing: there is nothing to stop."""
        pass


class PlainLines:
    """Readable lines for logs (no terminal control codes)."""

    def __init__(self, stream: IO[str] | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.start = time.monotonic()
        self._last_status: dict[str, str | None] = {}
        self._assembly_step = -1
        self._levels: list[set[str]] = []  # the shots of each level not yet settled

    def _line(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - self.start:6.1f}s] {text}\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        """Write the event as a log line, if it is worth one."""
        if isinstance(event, RenderStarted):
            self._levels = [set(level) for level in event.levels]
            self._line(f"rendering {len(event.shots)} shots in {len(event.levels)} levels, "
                       f"{event.to_generate} to generate, estimate {usd(event.estimate)}")
        elif isinstance(event, ShotWaiting):
            self._line(f"{event.shot}: waiting on {', '.join(event.on)}")
        elif isinstance(event, ShotCached):
            self._line(f"{event.shot}: cached")
        elif isinstance(event, ShotStarted):
            self._line(f"{event.shot}: started")
        elif isinstance(event, ShotProgress):
            # a finished shot is reported once, by its ShotDone line (with time and cost)
            finished = event.fraction is not None and event.fraction >= 1.0
            if event.status and not finished and event.status != self._last_status.get(event.shot):
                self._last_status[event.shot] = event.status
                self._line(f"{event.shot}: {event.status}")
        elif isinstance(event, ShotDone):
            self._line(f"{event.shot}: done in {event.seconds:.1f}s, {usd(event.cost)}")
        elif isinstance(event, ShotFailed):
            self._line(f"{event.shot}: FAILED: {event.error}")
        elif isinstance(event, ShotSkipped):
            self._line(f"{event.shot}: skipped (needs {event.because})")
        elif isinstance(event, Warning_):
            self._line(f"warning: {event.message}")
        elif isinstance(event, AppResolved):
            self._line(event.message)
        elif isinstance(event, AssemblyProgress):
            step = int(event.fraction * 4)
            if step != self._assembly_step:
                self._assembly_step = step
                self._line(f"assembling {_percent(event.fraction)}")
        elif isinstance(event, FilmDone):
            self._line(f"film: {event.film} ({event.duration:.2f} s, {event.method}), paid {usd(event.cost)}")
        if isinstance(event, ShotCached | ShotDone | ShotFailed | ShotSkipped):
            self._settled(event.shot)

    def _settled(self, shot: str) -> None:
        """Say when the last shot of a level settles: progress counts the graph's levels."""
        for k, level in enumerate(self._levels):
            if shot in level:
                level.discard(shot)
                if not level:
                    done = sum(1 for rest in self._levels if not rest)
                    self._line(f"level {k + 1} of {len(self._levels)} settled ({done} of {len(self._levels)})")

    def close(self) -> None:
        """Do nothing: there is nothing to stop."""
        pass


class LiveTable:
    """A rich live display: one line per shot, then assembly, then totals."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.start = time.monotonic()
        self.rows: dict[str, str] = {}
        self.order: list[str] = []
        self.assembly: str | None = None
        self.paid = Decimal(0)
        self.estimate: Decimal | None = None
        self.warnings: list[str] = []
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
        self.live.start()

    def _set(self, shot: str, text: str) -> None:
        if shot not in self.rows:
            self.order.append(shot)
        self.rows[shot] = text

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("shot")
        table.add_column("state")
        for shot in self.order:
            table.add_row(shot, self.rows[shot])
        if self.assembly:
            table.add_row("[bold]film[/]", self.assembly)
        elapsed = time.monotonic() - self.start
        table.add_row("", f"[dim]{elapsed:.0f}s elapsed · paid {usd(self.paid)} of est. {usd(self.estimate)}[/]")
        for w in self.warnings[-3:]:
            table.add_row("[yellow]warning[/]", w)
        return table

    def __call__(self, event: Event) -> None:
        """Update the table with the event."""
        if isinstance(event, RenderStarted):
            self.estimate = event.estimate
            for s in event.shots:
                self._set(s, "[dim]pending[/]")
        elif isinstance(event, ShotWaiting):
            self._set(event.shot, f"[dim]waiting on {', '.join(event.on)}[/]")
        elif isinstance(event, ShotCached):
            self._set(event.shot, "[green]cached[/]")
        elif isinstance(event, ShotStarted):
            self._set(event.shot, "started")
        elif isinstance(event, ShotProgress):
            pct = f" {event.fraction:.0%}" if event.fraction is not None else ""
            if event.status == WAITING_FOR_ANOTHER_RENDER:  # another render pays; this one waits
                self._set(event.shot, f"[cyan]{event.status}[/]")
            else:
                self._set(event.shot, f"{event.status or 'running'}{pct}")
        elif isinstance(event, ShotDone):
            self.paid += event.cost or Decimal(0)
            self._set(event.shot, f"[green]done[/] {event.seconds:.1f}s {usd(event.cost)}")
        elif isinstance(event, ShotFailed):
            self._set(event.shot, f"[red]failed[/]: {event.error}")
        elif isinstance(event, ShotSkipped):
            self._set(event.shot, f"[yellow]skipped[/] (needs {event.because})")
        elif isinstance(event, (Warning_, AppResolved)):
            self.warnings.append(event.message)
        elif isinstance(event, AssemblyProgress):
            self.assembly = f"assembling {_percent(event.fraction)}"
        elif isinstance(event, FilmDone):
            self.assembly = f"[green]{event.film}[/] ({event.duration:.2f} s)"
        self.live.update(self._render())

    def close(self) -> None:
        """Stop the live display."""
        self.live.stop()


def make_display(*, as_json: bool, verbose: bool) -> JsonLines | PlainLines | LiveTable:
    """The display for this output: JSON lines, a live table on a terminal, else plain lines."""
    if as_json:
        return JsonLines()
    if sys.stderr.isatty():
        return LiveTable()
    return PlainLines(verbose=verbose)
