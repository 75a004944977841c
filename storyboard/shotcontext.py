"""What a shot's templates see: its prompt, its `say:` line and its overlay are rendered
with the same context, built here once. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from storyboard.request import source_text

if TYPE_CHECKING:
    from storyboard.spec import ResolvedShot

__all__ = ["shot_context", "template_context"]


def shot_context(shot: ResolvedShot) -> dict[str, Any]:
    """The ``shot`` variable of a template: the shot's id, place and inputs as resolved."""
    return {
        "id": shot.id,
        "index": shot.index,
        "duration": shot.duration,
        "mode": shot.mode,
        "aspect_ratio": shot.aspect_ratio,
        "sound": shot.sound,
        "app": shot.app,
        "image": source_text(shot.image),
        "end_image": source_text(shot.end_image),
        "transition": shot.transition,
        "vars": dict(shot.vars),
    }


def template_context(base: Mapping[str, Any], shot: ResolvedShot) -> dict[str, Any]:
    """The variables a shot's templates read: the file's (``base``, with ``--set``), the
    shot's own ``vars:`` over them, both again as ``vars``, and ``shot``."""
    return {**base, **shot.vars, "vars": {**base, **shot.vars}, "shot": shot_context(shot)}
