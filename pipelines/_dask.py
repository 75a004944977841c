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

What is sent is a ``storyboard.FilmTask`` run by ``storyboard.render_film_task``: both
in the installed package, so the scheduler and the workers need storyboard, not this
folder; every path in it is made absolute here (docs/scale.md).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from pipelines._batch import BatchResult, Job, check_budget, estimate
from storyboard import (
    BudgetError,
    FilmSummary,
    UsageError,
    get_backend,
    is_cache_url,
    render_film_task,
)

DASK_ENV = "DASK_SCHEDULER_ADDRESS"


def dask_address(option: str | None) -> str | None:
    """The scheduler: ``--dask``, else $DASK_SCHEDULER_ADDRESS, else None (run locally)."""
    return option or os.environ.get(DASK_ENV) or None


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
        import distributed
    except ImportError:
        raise UsageError("--dask needs the dask extra: pip install 'storyboard-film[dask]'") from None
    try:
        client = cast(Any, distributed.Client)(address, timeout=30)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    run = uuid.uuid4().hex[:8]
    try:
        futures: dict[Any, str] = {}
        for job in jobs:
            film_budget = est.plans[job.name].cost if (budget is not None and paid) else None
            task = job.task(backend=backend, cache_dir=cache_dir, concurrency=concurrency, budget=film_budget)
            fut = client.submit(render_film_task, task, key=f"film-{job.name}-{run}", pure=False)
            futures[fut] = job.name
        done: dict[str, FilmSummary] = {}
        for fut in cast(Any, distributed.as_completed)(list(futures)):
            try:
                summary = fut.result()
            except BudgetError:
                raise
            except Exception as e:  # a worker lost or a bug: the other films go on
                name = futures[fut]
                job = next(j for j in jobs if j.name == name)
                summary = FilmSummary(name, job.output, error=cluster_error(e, address))
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


def cluster_error(error: Exception, address: str) -> str:
    """A film the cluster could not run, in one line that says what to do."""
    text = f"{type(error).__name__}: {error}"
    if "deserializ" in text.lower():
        return (f"the Dask scheduler or a worker at {address} could not load the task ({text.strip()}); "
                "install storyboard there: pip install 'storyboard-film[dask]' (storyboard doctor --dask "
                f"{address} checks)")
    return text
