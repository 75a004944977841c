"""A batch of films on a Dask ``distributed`` cluster: one film per task.

    python -m pipelines.matrix film.yaml rows.csv --dask tcp://scheduler:8786 \\
        --cache-dir s3://bucket/storyboard --budget 200

The workers share the cache by URL (``--cache-dir s3://…``; every worker needs the same
AWS_* configuration). The budget holds across workers by a plan-first split: the client
plans the whole batch (a shot shared by several films counted once) and refuses it over
``--budget`` before any task is sent; each film is then sent with its own planned cost as
its budget, so no worker can spend beyond its part, and a shot two films share is paid
once through the shared cache's claims. Without ``--dask`` (or DASK_SCHEDULER_ADDRESS)
the batch runs locally as before.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines._batch import BatchResult, FilmSummary, Job, check_budget, estimate, summarize
from storyboard import BudgetError, Pipeline, StoryboardError, UsageError, get_backend, is_cache_url

DASK_ENV = "DASK_SCHEDULER_ADDRESS"


def dask_address(option: str | None) -> str | None:
    """The scheduler: ``--dask``, else $DASK_SCHEDULER_ADDRESS, else None (run locally)."""
    return option or os.environ.get(DASK_ENV) or None


def render_film(job: Job, backend: str | None, cache_dir: str | None, concurrency: int,
                budget: Decimal | None) -> FilmSummary:
    """Render one film (runs on a worker); a StoryboardError becomes the film's error."""
    summary = FilmSummary(job.name, job.output)
    try:
        result = asyncio.run(Pipeline(job.board, backend=backend, output=job.output, cache_dir=cache_dir,
                                      concurrency=concurrency, budget=budget).run())
    except StoryboardError as e:
        summary.error = str(e)
        return summary
    return summarize(summary, result)


def render_batch_dask(jobs: Sequence[Job], *, address: str, backend: str | None = None,
                      cache_dir: str | Path | None = None, concurrency: int = 4, budget: Decimal | None = None,
                      dry_run: bool = False, on_progress: Callable[[str], Any] | None = None) -> BatchResult:
    """Plan and price the batch here, then render one film per task on the cluster."""
    if backend is not None and not isinstance(backend, str):
        raise UsageError("--dask needs a backend by name (a Backend object cannot be sent to workers)")
    if cache_dir is not None and not is_cache_url(cache_dir):
        cache_dir = str(Path(cache_dir).absolute())  # workers on this machine share a folder
    est = estimate(jobs, backend=backend, cache_dir=cache_dir)
    probe = get_backend(backend or jobs[0].board.spec.model.backend)
    paid = bool(getattr(probe, "paid", True))
    check_budget(est, budget, paid=paid)
    if dry_run:
        return BatchResult(est, [FilmSummary(j.name, j.output) for j in jobs])
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--dask needs the dask extra: pip install 'storyboard[dask]'") from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    run = uuid.uuid4().hex[:8]
    try:
        futures: dict[Any, str] = {}
        for job in jobs:
            film_budget = est.plans[job.name].cost if (budget is not None and paid) else None
            fut = client.submit(render_film, job, backend, None if cache_dir is None else str(cache_dir),
                                concurrency, film_budget, key=f"film-{job.name}-{run}", pure=False)
            futures[fut] = job.name
        done: dict[str, FilmSummary] = {}
        for fut in as_completed(list(futures)):
            try:
                summary = fut.result()
            except BudgetError:
                raise
            except Exception as e:  # a worker lost or a bug: the other films go on
                name = futures[fut]
                job = next(j for j in jobs if j.name == name)
                summary = FilmSummary(name, job.output, error=f"{type(e).__name__}: {e}")
            done[summary.name] = summary
            if on_progress is not None:
                on_progress(progress_line(done, len(jobs)))
    finally:
        client.close()
    return BatchResult(est, [done[j.name] for j in jobs])


def progress_line(done: dict[str, FilmSummary], total: int) -> str:
    """Films done and in flight, shots paid and cached, across the cluster."""
    paid = sum(f.generated for f in done.values())
    cached = sum(f.cached for f in done.values())
    failed = sum(1 for f in done.values() if f.error)
    return (f"films {len(done)}/{total} done ({failed} failed), {total - len(done)} in flight or queued; "
            f"shots {paid} paid, {cached} cached")
