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
    AuthError,
    BackendError,
    BudgetError,
    CacheError,
    GraphError,
    LockedError,
    MediaError,
    RateLimited,
    RenderFailed,
    SpecError,
    StoryboardError,
    TaskFailed,
    TemplateError,
    UsageError,
)

if TYPE_CHECKING:
    from storyboard.board import Board, load
    from storyboard.plan import Plan
    from storyboard.request import ShotRequest
    from storyboard.runner import Pipeline, RenderResult, ShotResult, render

__version__ = "0.1.0"

_LAZY = {
    "Board": "storyboard.board",
    "load": "storyboard.board",
    "Plan": "storyboard.plan",
    "ShotRequest": "storyboard.request",
    "Pipeline": "storyboard.runner",
    "RenderResult": "storyboard.runner",
    "ShotResult": "storyboard.runner",
    "render": "storyboard.runner",
}


def __getattr__(name: str) -> Any:
    # Lazy: `storyboard --help` must not pay for pydantic, networkx and friends.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'storyboard' has no attribute {name!r}")


__all__ = [
    "AuthError",
    "BackendError",
    "Board",
    "BudgetError",
    "CacheError",
    "GraphError",
    "LockedError",
    "MediaError",
    "Pipeline",
    "Plan",
    "RateLimited",
    "RenderFailed",
    "RenderResult",
    "ShotRequest",
    "ShotResult",
    "SpecError",
    "StoryboardError",
    "TaskFailed",
    "TemplateError",
    "UsageError",
    "load",
    "render",
]
