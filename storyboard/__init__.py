"""storyboard: turn a YAML storyboard into a finished multi-shot film.

    import storyboard
    board = storyboard.load("film.yaml", vars={"hero": "..."})
    plan = board.plan()
    result = storyboard.render(board, backend="animatic")
    result.film, result.shots["keeper"].clip, result.cost
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storyboard.errors import (
    AppError,
    AuthError,
    BackendError,
    BudgetError,
    CacheError,
    GraphError,
    LockedError,
    MaybeSubmitted,
    MediaError,
    NoOutputError,
    PromptError,
    RateLimited,
    RenderFailed,
    SpecError,
    StoryboardError,
    TaskFailed,
    TemplateError,
    UsageError,
)

if TYPE_CHECKING:
    from storyboard.backends import get_backend
    from storyboard.backends.base import Backend, ShotContext
    from storyboard.board import Board, load
    from storyboard.events import (
        AssemblyProgress,
        Event,
        EventCallback,
        FilmDone,
        RenderResult,
        RenderStarted,
        ShotCached,
        ShotDone,
        ShotFailed,
        ShotProgress,
        ShotResult,
        ShotSkipped,
        ShotStarted,
        ShotWaiting,
        Warning_,
    )
    from storyboard.facts import is_cache_url, usd
    from storyboard.films import FilmSummary, FilmTask, film_error, render_film_task, summarize_film
    from storyboard.options import parse_budget, parse_sets, read_rows
    from storyboard.plan import Plan
    from storyboard.request import ShotRequest
    from storyboard.runner import Pipeline, render
    from storyboard.spec import ASPECT_RATIOS, MODES

__version__ = "0.1.0"

_EVENTS = (
    "AppResolved", "AssemblyProgress", "Event", "EventCallback", "FilmDone", "RenderResult", "RenderStarted", "ShotCached",
    "ShotDone", "ShotFailed", "ShotProgress", "ShotResult", "ShotSkipped", "ShotStarted", "ShotWaiting", "Warning_",
)

_LAZY = {
    "ASPECT_RATIOS": "storyboard.spec",
    "Backend": "storyboard.backends.base",
    "Board": "storyboard.board",
    "FilmSummary": "storyboard.films",
    "FilmTask": "storyboard.films",
    "MODES": "storyboard.spec",
    "Pipeline": "storyboard.runner",
    "Plan": "storyboard.plan",
    "ShotContext": "storyboard.backends.base",
    "ShotRequest": "storyboard.request",
    "film_error": "storyboard.films",
    "get_backend": "storyboard.backends",
    "load": "storyboard.board",
    "parse_budget": "storyboard.options",
    "parse_sets": "storyboard.options",
    "read_rows": "storyboard.options",
    "render": "storyboard.runner",
    "render_film_task": "storyboard.films",
    "summarize_film": "storyboard.films",
    "usd": "storyboard.facts",
    "is_cache_url": "storyboard.facts",
    **dict.fromkeys(_EVENTS, "storyboard.events"),
}


def __getattr__(name: str) -> Any:
    # Lazy: `storyboard --help` must not pay for pydantic, networkx and friends.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'storyboard' has no attribute {name!r}")


__all__ = [
    "ASPECT_RATIOS",
    "MODES",
    "AppError",
    "AppResolved",
    "AssemblyProgress",
    "AuthError",
    "Backend",
    "BackendError",
    "Board",
    "BudgetError",
    "CacheError",
    "Event",
    "EventCallback",
    "FilmDone",
    "FilmSummary",
    "FilmTask",
    "GraphError",
    "LockedError",
    "MaybeSubmitted",
    "MediaError",
    "NoOutputError",
    "Pipeline",
    "Plan",
    "PromptError",
    "RateLimited",
    "RenderFailed",
    "RenderResult",
    "RenderStarted",
    "ShotCached",
    "ShotContext",
    "ShotDone",
    "ShotFailed",
    "ShotProgress",
    "ShotRequest",
    "ShotResult",
    "ShotSkipped",
    "ShotStarted",
    "ShotWaiting",
    "SpecError",
    "StoryboardError",
    "TaskFailed",
    "TemplateError",
    "UsageError",
    "Warning_",
    "film_error",
    "get_backend",
    "is_cache_url",
    "load",
    "parse_budget",
    "parse_sets",
    "read_rows",
    "render",
    "render_film_task",
    "summarize_film",
    "usd",
]
