"""One film per row of a CSV file: the row's values become the storyboard's vars.

    python -m pipelines.matrix examples/product_spot.yaml pipelines/data/products.csv \\
        --name-column name --budget 20

Every row is loaded and validated first; then the whole matrix is priced, counting
a shot shared by several rows once (same vars → same prompts → same shot), and
refused (exit 3) if it costs more than --budget. The films are rendered through one
cache (``--films N`` at once), so a shared shot is generated once: a later film finds
it cached, a film rendered at the same time waits on the claim of the one paying. A rich
table (or --json) sums up what each film cost.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import storyboard
from pipelines._batch import (
    BatchResult,
    Job,
    exit_codes,
    finish,
    render_batch,
    safe_name,
)
from pipelines._dask import dask_address, render_batch_dask
from pipelines._plan import PARALLEL_ROWS, BatchPlan, FilmShots, film_shots, plan_batch, summarize
from storyboard import (
    Backend,
    Event,
    SpecError,
    StoryboardError,
    UsageError,
    parse_budget,
    read_rows,
)


def jobs_for(board_path: str | Path, rows: Sequence[Mapping[str, Any]], *, name_column: str | None = None,
             output_dir: str | Path | None = None, first_row: int = 1) -> list[Job]:
    """Load the storyboard once per row (its values as vars). Every row is checked
    before any film is made; the problems of all rows are reported together.
    ``first_row``: the number of the first row (a chunk of a bigger table)."""
    board_path = Path(board_path)
    out_dir = Path(output_dir) if output_dir else board_path.parent / "out" / board_path.stem
    jobs: list[Job] = []
    problems: list[str] = []
    for i, row in enumerate(rows, start=first_row):
        if name_column is not None:
            if name_column not in row:
                raise UsageError(f"--name-column {name_column!r} is not a column; columns: {', '.join(row)}")
            name = safe_name(str(row[name_column]) or f"row-{i}")
        else:
            name = f"{board_path.stem}-{i}"
        try:
            board = storyboard.load(board_path, vars=dict(row))
        except SpecError as e:
            problems.append(f"row {i} ({name}):\n{e}")
            continue
        jobs.append(Job(name=name, board=board, output=out_dir / f"{name}.mp4", vars=dict(row)))
    if problems:
        raise SpecError("\n".join(problems))
    return jobs


def run_matrix(board_path: str | Path, rows: Sequence[Mapping[str, Any]], *, name_column: str | None = None,
               output_dir: str | Path | None = None, backend: str | Backend | None = None,
               cache_dir: str | Path | None = None, concurrency: int = 4, budget: Decimal | None = None,
               dry_run: bool = False, on_event: Callable[[str, Event], Any] | None = None,
               films: int = 1, dask: str | None = None,
               on_progress: Callable[[str], Any] | None = None) -> BatchResult:
    """Render one film per row, ``films`` at once. ``backend`` is a name or a Backend
    object (shared by every film). Raises BudgetError before generating anything when
    over ``budget``. ``dask``: a scheduler address; one film per task on that cluster."""
    jobs = jobs_for(board_path, rows, name_column=name_column, output_dir=output_dir)
    if dask:
        return render_batch_dask(jobs, address=dask, backend=backend, cache_dir=cache_dir,  # type: ignore[arg-type]
                                 concurrency=concurrency, budget=budget, dry_run=dry_run, on_progress=on_progress)
    return render_batch(jobs, backend=backend, cache_dir=cache_dir, concurrency=concurrency, budget=budget,
                        dry_run=dry_run, on_event=on_event, films=films)


def plan_matrix(board_path: str | Path, rows: Sequence[Mapping[str, Any]], *, name_column: str | None = None,
                backend: str | Backend | None = None, cache_dir: str | Path | None = None) -> BatchPlan:
    """Plan every row (nothing generated): distinct shots, shared shots, total cost.
    A big table is planned in chunks on every core (each film's plan is independent)."""
    if len(rows) >= PARALLEL_ROWS and (os.cpu_count() or 1) > 1 and (backend is None or isinstance(backend, str)):
        return plan_rows_parallel(board_path, rows, name_column=name_column, backend=backend, cache_dir=cache_dir)
    jobs = jobs_for(board_path, rows, name_column=name_column)
    return plan_batch(jobs, backend=backend, cache_dir=cache_dir)


def _plan_chunk(board_path: str, rows: Sequence[Mapping[str, Any]], first_row: int, name_column: str | None,
                backend: str | None, cache_dir: str | None) -> list[FilmShots] | str:
    try:
        jobs = jobs_for(board_path, rows, name_column=name_column, first_row=first_row)
        return film_shots(jobs, backend=backend, cache_dir=cache_dir)
    except StoryboardError as e:  # sent back as text: the parent raises it as one error
        return str(e)


def plan_rows_parallel(board_path: str | Path, rows: Sequence[Mapping[str, Any]], *, name_column: str | None,
                       backend: str | None, cache_dir: str | Path | None) -> BatchPlan:
    """:func:`plan_matrix` with the rows split over one process per core."""
    workers = min(os.cpu_count() or 1, 8)
    size = -(-len(rows) // workers)
    chunks = [(i, list(rows[i:i + size])) for i in range(0, len(rows), size)]
    context = multiprocessing.get_context("fork")  # the children start with storyboard imported
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_plan_chunk, *zip(*[(str(board_path), chunk, i + 1, name_column, backend,
                                                  None if cache_dir is None else str(cache_dir))
                                                 for i, chunk in chunks], strict=True)))
    errors = [p for p in parts if isinstance(p, str)]
    if errors:
        raise SpecError("\n".join(errors))
    return summarize([f for p in parts if not isinstance(p, str) for f in p])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("storyboard_file", metavar="STORYBOARD", type=click.Path(exists=True, dir_okay=False))
@click.argument("csv_file", metavar="CSV", type=click.Path(exists=True, dir_okay=False))
@click.option("--name-column", default=None, help="Column naming each film (default: STORYBOARD-<row number>).")
@click.option("--output-dir", "-o", default=None, type=click.Path(file_okay=False),
              help="Where the films go (default: out/<storyboard stem>/ beside the storyboard).")
@click.option("--backend", default=None, help="animatic (offline), inference, or a plugin's name.")
@click.option("--cache-dir", default=None, help="Shared cache: a folder or a URL (s3://bucket/prefix).")
@click.option("--concurrency", "-j", default=4, show_default=True, type=click.IntRange(min=1),
              help="Shots generated at once (within a film).")
@click.option("--films", "-f", default=1, show_default=True, type=click.IntRange(min=1),
              help="Films rendered at once (a shot they share is still paid for once).")
@click.option("--budget", default=None, metavar="USD", help="Refuse (exit 3) if the whole matrix costs more.")
@click.option("--dry-run", is_flag=True, help="Price the matrix; generate nothing.")
@click.option("--plan", "plan_only", is_flag=True,
              help="Plan every row: distinct shots, shared shots, total cost; generate nothing.")
@click.option("--dask", default=None, metavar="ADDRESS",
              help="Render one film per task on this Dask scheduler (default: $DASK_SCHEDULER_ADDRESS, else locally).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def main(storyboard_file: str, csv_file: str, name_column: str | None, output_dir: str | None, backend: str | None,
         cache_dir: str | None, concurrency: int, films: int, budget: str | None, dry_run: bool,
         plan_only: bool, dask: str | None, as_json: bool) -> None:
    """Render STORYBOARD once per row of CSV, the row's values as its vars."""
    limit = parse_budget(budget)
    with exit_codes():
        if plan_only:
            plan = plan_matrix(storyboard_file, read_rows(csv_file), name_column=name_column, backend=backend,
                               cache_dir=cache_dir)
            click.echo(json.dumps(plan.to_dict(), indent=2) if as_json else "\n".join(plan.lines()))
            return
        result = run_matrix(storyboard_file, read_rows(csv_file), name_column=name_column, output_dir=output_dir,
                            backend=backend, cache_dir=cache_dir, concurrency=concurrency, budget=limit,
                            dry_run=dry_run, films=films, dask=dask_address(dask),
                            on_progress=lambda line: click.echo(line, err=True))
        finish(result, title=f"{Path(storyboard_file).name} × {Path(csv_file).name}", as_json=as_json)


if __name__ == "__main__":  # pragma: no cover
    main()
