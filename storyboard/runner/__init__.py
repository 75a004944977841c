"""The runner: renders a storyboard (``Pipeline``, ``render``).

The scheduler's named steps are in ``_scheduler``; the events and results it emits
live in ``storyboard.events`` (their one home).
"""

from storyboard.runner._context import JournalContext
from storyboard.runner._images import RenderState
from storyboard.runner._pipeline import Pipeline, expand_force, render, verify_clip
from storyboard.runner._preflight import live_check
from storyboard.runner._scheduler import ShotScheduler

__all__ = [
    "JournalContext",
    "Pipeline",
    "RenderState",
    "ShotScheduler",
    "expand_force",
    "live_check",
    "render",
    "verify_clip",
]
