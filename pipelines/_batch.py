"""What the recipes share: a batch of films from one storyboard, a budget checked over
the whole batch before anything is generated, rendering through one cache (``films``
at once: a shot they share is claimed by one film and waited on by the others, so it
is paid for once), and a summary."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from storyboard import (
    Backend,
    Board,
    BudgetError,
    Event,
    FilmSummary,
    FilmTask,
    Pipeline,
    Plan,
    RenderResult,
    ShotFailed,
    StoryboardError,
    UsageError,
    film_error,
    get_backend,
    summarize_film,
    usd,
)


@dataclass(frozen=True)
class Job:
    """One film of a batch."""

    name: str
    board: Board
    output: Path
    vars: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def task(self, *, backend: str | None, cache_dir: str | Path | None, concurrency: int,
             budget: Decimal | None) -> FilmTask:
        """This film as a task a worker anywhere can run: paths made absolute here."""
        return FilmTask.make(self.name, self.board.path, self.output, cache_dir=cache_dir, vars=dict(self.vars),
                             overrides=dict(self.overrides), backend=backend, concurrency=concurrency,
                             budget=budget)


@dataclass
class BatchEstimate:
    """The batch's cost before rendering: every shot still to generate, counted once
    however many films share it (shots are the same when their recipes are)."""

    plans: dict[str, Plan]
    shots: int  # distinct shots to generate
    shots_naive: int  # counting each film on its own
    cost: Decimal | None
    cost_naive: Decimal | None


@dataclass
class BatchResult:
    """Every film of a batch, and the estimate it was checked against."""

    estimate: BatchEstimate
    films: list[FilmSummary]

    @property
    def cost(self) -> Decimal:
        """What the batch paid."""
        return sum((f.cost for f in self.films), Decimal(0))

    @property
    def ok(self) -> bool:
        """True when every film was made."""
        return all(f.error is None for f in self.films)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready fields."""
        est = self.estimate
        return {
            "films": [f.to_dict() for f in self.films],
            "cost": str(self.cost),
            "generated": sum(f.generated for f in self.films),
            "cached": sum(f.cached for f in self.films),
            "estimate": {"cost": None if est.cost is None else str(est.cost), "shots": est.shots,
                         "cost_without_sharing": None if est.cost_naive is None else str(est.cost_naive),
                         "shots_without_sharing": est.shots_naive},
        }


def safe_name(text: str) -> str:
    """A file-name-safe form of a row's name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-.")
    return name or "film"


def _backend(backend: str | Backend | None, board: Board) -> Backend:
    if backend is None or isinstance(backend, str):
        return get_backend(backend or board.spec.model.backend)
    return backend


def estimate(jobs: Sequence[Job], *, backend: str | Backend | None = None,
             cache_dir: str | Path | None = None) -> BatchEstimate:
    """Plan every film (pure; nothing generated) and total what the batch will cost."""
    plans: dict[str, Plan] = {}
    distinct: dict[str, Decimal | None] = {}
    naive: list[Decimal | None] = []
    if backend is None or isinstance(backend, str):  # a name: one backend object plans every film
        names = {backend} if backend is not None else {j.board.spec.model.backend for j in jobs}
        if len(names) == 1:
            backend = get_backend(names.pop())
    for job in jobs:
        plan = Pipeline(job.board, backend=backend, cache_dir=cache_dir, output=job.output).plan()
        plans[job.name] = plan
        for shot in plan.pending:
            naive.append(shot.cost)
            distinct.setdefault(shot.recipe, shot.cost)

    def total(values: Sequence[Decimal | None]) -> Decimal | None:
        return None if any(v is None for v in values) else sum((v for v in values if v is not None), Decimal(0))

    return BatchEstimate(plans=plans, shots=len(distinct), shots_naive=len(naive),
                         cost=total(list(distinct.values())), cost_naive=total(naive))


def check_budget(est: BatchEstimate, budget: Decimal | None, *, paid: bool = True) -> None:
    """Refuse (BudgetError, exit 3) when the batch would cost more than ``budget``."""
    if budget is None or not paid or est.shots == 0:
        return
    if est.cost is None:
        raise BudgetError("over budget: some shot prices are unknown for this backend, and unknown prices count "
                          "as over any --budget; nothing was generated")
    if est.cost > budget:
        raise BudgetError(f"over budget: {len(est.plans)} film(s), {est.shots} distinct shot(s) to generate, would "
                          f"cost {usd(est.cost)}; --budget is {usd(budget)}. Nothing was generated.")


class _SharedBackend:
    """A backend object shared by films rendered at once: each film's ``aclose`` is a
    no-op (another film may still be using it); the batch closes it once at the end."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aclose(self) -> None:
        """Nothing: the batch closes the real backend once every film is done."""


def render_batch(jobs: Sequence[Job], *, backend: str | Backend | None = None, cache_dir: str | Path | None = None,
                 concurrency: int = 4, budget: Decimal | None = None, dry_run: bool = False,
                 on_event: Callable[[str, Event], Any] | None = None, films: int = 1) -> BatchResult:
    """Check the whole batch against ``budget``, then render the films through one
    cache, ``films`` at a time. A shot shared by two films is made once: rendered one
    after another, the second film finds it cached; rendered at once, the second waits
    on the first one's claim, then takes it from the cache. A failed film does not stop
    the others."""
    if films < 1:
        raise UsageError("films at once must be at least 1")
    if not jobs:
        raise UsageError("nothing to render: the batch is empty")
    names = [j.name for j in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"two films would have the same name: {', '.join(dupes)}; give every row its own name")
    est = estimate(jobs, backend=backend, cache_dir=cache_dir)
    probe = _backend(backend, jobs[0].board)
    check_budget(est, budget, paid=bool(getattr(probe, "paid", True)))
    if dry_run:
        return BatchResult(est, [FilmSummary(j.name, j.output) for j in jobs])

    shared: str | Backend | None = backend
    if films > 1 and backend is not None and not isinstance(backend, str):
        shared = _SharedBackend(backend)
    slots = asyncio.Semaphore(films)

    async def render_film(job: Job) -> FilmSummary:
        summary = FilmSummary(job.name, job.output)
        failed: list[tuple[str, str]] = []

        def listener(event: Event, name: str = job.name) -> None:
            if isinstance(event, ShotFailed):
                failed.append((event.shot, event.error))
            if on_event is not None:
                on_event(name, event)

        async with slots:
            try:
                result: RenderResult = await Pipeline(
                    job.board, backend=shared, output=job.output, cache_dir=cache_dir,
                    concurrency=concurrency, on_event=listener).run()
            except BudgetError:
                raise
            except StoryboardError as e:
                summary.error = film_error(e, failed)
                return summary
        return summarize_film(summary, result)

    async def run_all() -> list[FilmSummary]:
        try:
            return list(await asyncio.gather(*(render_film(job) for job in jobs)))
        finally:
            if shared is not backend and backend is not None and not isinstance(backend, str):
                await backend.aclose()

    return BatchResult(est, asyncio.run(run_all()))


# --------------------------------------------------------------------------- command-line helpers


def print_summary(result: BatchResult, *, title: str, as_json: bool) -> None:
    """The batch as a rich table (or JSON): each film, then the totals."""
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, justify in (("film", "left"), ("generated", "right"), ("cached", "right"), ("cost", "right"),
                         ("length", "right"), ("output", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for f in result.films:
        table.add_row(f.name, str(f.generated), str(f.cached), usd(f.cost),
                      f"{f.duration:.2f} s" if f.duration else "—",
                      str(f.film) if f.film else f"[red]{(f.error or 'not rendered').splitlines()[0]}[/red]")
    console = Console(soft_wrap=False)
    console.print(table)
    est = result.estimate
    saved = ""
    if est.shots_naive > est.shots:
        saved = f" ({est.shots_naive - est.shots} shared shot(s) counted once; without sharing: {usd(est.cost_naive)})"
    console.print(f"total: {usd(result.cost)} paid; estimate was {usd(est.cost)} for {est.shots} shot(s){saved}")


@contextmanager
def exit_codes() -> Iterator[None]:
    """StoryboardError → one line on stderr and its exit code (1, 2 or 3)."""
    try:
        yield
    except StoryboardError as e:
        click.echo(f"error: {e}" if "\n" not in str(e) else str(e), err=True)
        sys.exit(e.exit_code)


def finish(result: BatchResult, *, title: str, as_json: bool) -> None:
    """Print the batch summary; exit 1 when a film failed."""
    print_summary(result, title=title, as_json=as_json)
    if not result.ok:
        raise SystemExit(1)
