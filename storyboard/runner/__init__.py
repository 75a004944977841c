"""The runner: renders a storyboard (``Pipeline``, ``render``).

The scheduler's named steps are in ``_scheduler``; the events and results it emits
live in ``storyboard.events`` and are re-exported here for older imports.
"""

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
from storyboard.runner._context import JournalContext
from storyboard.runner._pipeline import Pipeline, expand_force, render, verify_clip
from storyboard.runner._scheduler import RenderState, ShotScheduler

__all__ = [
    "AssemblyProgress",
    "Event",
    "EventCallback",
    "FilmDone",
    "JournalContext",
    "Pipeline",
    "RenderResult",
    "RenderStarted",
    "RenderState",
    "ShotCached",
    "ShotDone",
    "ShotFailed",
    "ShotProgress",
    "ShotResult",
    "ShotScheduler",
    "ShotSkipped",
    "ShotStarted",
    "ShotWaiting",
    "Warning_",
    "expand_force",
    "render",
    "verify_clip",
]
