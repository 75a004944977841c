"""Title cards (`kind: title`), a node kind of their own: the prompt is the card's text,
drawn here (never sent to an app), free on every backend, keyed by what is drawn.

Pure. A title card has no app, so no app's rules apply to it (a 2 s card is valid
wherever a 3..15 s video app would refuse it); its request carries the card's text,
length, aspect ratio, size and frame rate, and :func:`storyboard.request.cache_key`
keys a title by those alone, whatever the backend or its variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storyboard.request import ShotRequest

if TYPE_CHECKING:
    from storyboard.spec import ResolvedShot, Spec

__all__ = ["TITLE_BACKEND", "TITLE_FPS", "TITLE_MAKER", "TITLE_SHORT_SIDE", "card_args", "is_title",
           "title_request"]

TITLE_BACKEND = "title"  # the cache key's backend for title cards: made here, whatever renders
TITLE_MAKER = "storyboard/title"  # the "app" a title request names: storyboard itself
TITLE_SHORT_SIDE = 720  # every card is drawn at this size, so its key needs no backend
TITLE_FPS = 24


def is_title(spec: Spec, shot_id: str) -> bool:
    """True when the node is a `kind: title` text card (``SHOT#N`` is take N of SHOT)."""
    return spec.shot(shot_id.split("#", 1)[0]).kind == "title"


def title_request(shot: ResolvedShot, text: str) -> ShotRequest:
    """What drawing the card takes: its text, length, aspect ratio, size and frame rate."""
    return ShotRequest(
        shot_id=shot.id, prompt=text, app=TITLE_MAKER, version=None, aspect_ratio=shot.aspect_ratio,
        duration=shot.duration, sound=False, kind="title", image_input=None, end_image_input=None,
        inputs={"text": text, "duration": shot.duration, "aspect_ratio": shot.aspect_ratio,
                "short_side": TITLE_SHORT_SIDE, "fps": TITLE_FPS})


def card_args(request: ShotRequest) -> dict[str, Any]:
    """The drawing's arguments (``media.title_clip``'s) from a title request, so the card
    drawn is exactly the one keyed."""
    inputs = request.inputs or {}
    return {"duration": float(request.duration), "aspect_ratio": request.aspect_ratio,
            "short_side": int(inputs.get("short_side", TITLE_SHORT_SIDE)), "fps": int(inputs.get("fps", TITLE_FPS))}
