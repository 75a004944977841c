"""One film of a batch as a self-contained task: what a Dask worker runs.

The task and its result live in the installed package, not in ``pipelines/``, so a
Dask scheduler and its workers need only storyboard installed: the scheduler
deserializes the task graph (a :class:`FilmTask` and :func:`render_film_task`), and
nothing in it names a module outside ``storyboard``. A task carries the storyboard's
absolute path, its vars and overrides (not a loaded board), and absolute output and
cache locations, so a worker started in any folder renders the same film; the worker
loads the file again (checked again) from that path, so the storyboard and its images
must be at the same path on every worker (a shared volume, or the same checkout).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.facts import is_cache_url

if TYPE_CHECKING:
    from storyboard.events import Event, RenderResult

__all__ = ["FilmSummary", "FilmTask", "film_error", "guard_current_frames", "render_film_task", "summarize_film"]

# CPython 3.11.0-3.11.8 (gh-106883, fixed in 3.11.9): sys._current_frames() holds the
# runtime's thread-list lock while it makes frame objects; a garbage collection started by
# one of those allocations that frees a threading.local takes that lock again, and the
# process freezes holding the GIL. A Dask worker's profiler calls it every 10 ms, so busy
# worker threads froze the whole worker (docs/scale.md, "Threads per worker").
_FRAMES_LOCK_BUG = (3, 11) <= sys.version_info[:3] < (3, 11, 9)
_GUARD_LOCK = threading.RLock()  # re-entrant: a signal handler on the same thread may ask too


def guard_current_frames() -> None:
    """On an affected Python, make ``sys._current_frames`` run with the garbage collector
    off (CPython's own fix, applied from outside); elsewhere, and when already done, nothing."""
    original = sys._current_frames
    if not _FRAMES_LOCK_BUG or getattr(original, "storyboard_guard", False):
        return

    def current_frames() -> dict[int, Any]:
        with _GUARD_LOCK:  # the only code here that turns the collector off and on again
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                return original()
            finally:
                if was_enabled:
                    gc.enable()

    current_frames.storyboard_guard = True  # type: ignore[attr-defined]
    sys._current_frames = current_frames


@dataclass
class FilmSummary:
    """What one film of a batch made and cost (``error``: one line, the first shot's error)."""

    name: str
    output: Path
    film: Path | None = None
    duration: float | None = None
    cost: Decimal = Decimal(0)
    generated: int = 0
    cached: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"name": self.name, "film": str(self.film) if self.film else None, "output": str(self.output),
                "duration": self.duration, "cost": str(self.cost), "generated": self.generated,
                "cached": self.cached, "error": self.error}


@dataclass(frozen=True)
class FilmTask:
    """One film to render anywhere: every path absolute (or a URL), nothing loaded."""

    name: str
    storyboard: str
    output: str
    vars: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None
    cache_dir: str | None = None
    concurrency: int = 4
    budget: Decimal | None = None

    @classmethod
    def make(cls, name: str, storyboard: str | Path, output: str | Path, *, cache_dir: str | Path | None = None,
             **fields: Any) -> FilmTask:
        """A task with its paths made absolute here (the client's folder); a URL cache as is."""
        cache = None if cache_dir is None else (
            str(cache_dir) if is_cache_url(cache_dir) else str(Path(cache_dir).absolute()))
        return cls(name=name, storyboard=str(Path(storyboard).absolute()), output=str(Path(output).absolute()),
                   cache_dir=cache, **fields)


def film_error(error: Exception, failed: list[tuple[str, str]]) -> str:
    """A failed film's error: its first line names the first failed shot and that shot's
    error (and how many more failed), the rest is the render's whole message. Without a
    failed shot, the error's own text."""
    text = str(error).strip() or type(error).__name__
    if not failed:
        return text
    shot, message = failed[0]
    more = f" (and {len(failed) - 1} more shot(s) failed)" if len(failed) > 1 else ""
    first = (message.strip().splitlines() or [type(error).__name__])[0]
    return f"{shot}: {first}{more}\n{text}"


def summarize_film(summary: FilmSummary, result: RenderResult) -> FilmSummary:
    """Fill a film's summary from its render result (film, length, cost, shots made and cached)."""
    summary.film, summary.duration, summary.cost = result.film, result.duration, result.cost
    summary.generated = sum(1 for r in result.shots.values() if r.status == "generated")
    summary.cached = sum(1 for r in result.shots.values() if r.status == "cached")
    return summary


def render_film_task(task: FilmTask) -> FilmSummary:
    """Load and render one film (on a worker); a StoryboardError becomes the film's error."""
    from storyboard.board import load
    from storyboard.errors import StoryboardError
    from storyboard.events import ShotFailed
    from storyboard.runner import Pipeline

    guard_current_frames()  # before the worker's profiler can meet this render's threads
    summary = FilmSummary(task.name, Path(task.output))
    failed: list[tuple[str, str]] = []

    def listen(event: Event) -> None:
        if isinstance(event, ShotFailed):
            failed.append((event.shot, event.error))

    try:
        board = load(task.storyboard, vars=task.vars, overrides=task.overrides or None)
        result = asyncio.run(Pipeline(board, backend=task.backend, output=task.output, cache_dir=task.cache_dir,
                                      concurrency=task.concurrency, budget=task.budget, on_event=listen).run())
    except StoryboardError as e:
        summary.error = film_error(e, failed)
        return summary
    return summarize_film(summary, result)
