"""The runner: renders a storyboard (``Pipeline``, ``render``).

The scheduler's named steps are in ``_scheduler``; the events and results it emits
live in ``storyboard.events`` (their one home).
"""

from storyboard.runner._context import JournalContext
from storyboard.runner._images import RenderState
from storyboard.runner._pipeline import Pipeline, expand_force, render, verify_clip
from storyboard.runner._preflight import live_check
from storyboard.runner._reroll import plan_view, reroll_line, reroll_totals
from storyboard.runner._scheduler import ShotScheduler
from storyboard.runner._slots import ORDERS, Order
from storyboard.runner._text import ask as ask_text
from storyboard.runner._text import with_cached_texts

__all__ = [
    "ORDERS",
    "JournalContext",
    "Order",
    "Pipeline",
    "RenderState",
    "ShotScheduler",
    "ask_text",
    "expand_force",
    "live_check",
    "plan_view",
    "render",
    "reroll_line",
    "reroll_totals",
    "verify_clip",
    "with_cached_texts",
]
