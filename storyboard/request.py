"""A shot's request: what a backend is asked to make, and the one cache-key rule.

Owns three facts, each defined only here:

* :class:`FrameRef`, the frame-reference type, with its one text form
  (``@ID:last``, ``@ID:first``, ``@ID:2.5``) and its one parser;
* :class:`ShotRequest`, everything a backend needs to generate one shot;
* :func:`cache_key`, the rule that keeps a shot from being paid for twice: a digest of
  the backend, the app, every input and the *content* of every image it starts or
  ends on (a Merkle chain through the parents' clips).

Pure and a leaf: imports nothing from storyboard but the error types.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from storyboard.spec import ImageSource

__all__ = [
    "CACHE_KEY_VERSION",
    "FrameRef",
    "HashedFile",
    "ShotRequest",
    "cache_key",
    "chained_to",
    "digest",
    "image_identity",
    "parse_frame_ref",
    "source_text",
]

CACHE_KEY_VERSION = 1
SELECTORS = ("first", "last")


@dataclass(frozen=True)
class FrameRef:
    """A frame of another shot's clip: ``selector`` is "first", "last" or seconds."""

    shot: str
    selector: str | float

    @property
    def text(self) -> str:
        """The one text form: ``@ID:last``, ``@ID:first`` or ``@ID:2.5``."""
        sel = f"{self.selector:g}" if isinstance(self.selector, float) else self.selector
        return f"@{self.shot}:{sel}"

    @property
    def selector_text(self) -> str:
        """The selector alone: ``last``, ``first`` or ``2.5``."""
        return self.text.split(":", 1)[1]

    def __str__(self) -> str:
        return self.text


_REF = re.compile(r"^@([^:]*)(?::(.*))?$")


def parse_frame_ref(text: str) -> FrameRef | None:
    """``"@ID"``, ``"@ID:last"``, ``"@ID:first"``, ``"@ID:2.5"`` → FrameRef; else None.

    Raises ValueError (with what is allowed) for text that starts with ``@`` but is
    not a valid reference.
    """
    m = _REF.match(text.strip())
    if not m:
        return None
    shot, sel = m.group(1), m.group(2)
    if not shot:
        raise ValueError(
            f"frame reference {text!r} names no shot; write '@ID', '@ID:first', '@ID:last' or '@ID:<seconds>'"
        )
    if sel is None or sel == "last":
        return FrameRef(shot, "last")
    if sel == "first":
        return FrameRef(shot, "first")
    try:
        t = float(sel)
    except ValueError:
        raise ValueError(f"frame reference {text!r}: ':{sel}' is not first, last or a time in seconds") from None
    if t != t or t < 0:
        raise ValueError(f"frame reference {text!r}: the time must be a number of seconds ≥ 0")
    return FrameRef(shot, t)


class HashedFile(Protocol):
    """An image file named by the storyboard, with its content hash (spec's ImageFile)."""

    @property
    def rel(self) -> str: ...

    @property
    def sha256(self) -> str: ...


def source_text(src: ImageSource | None) -> str | None:
    """How an image source is written: a frame reference's text, or a file's path."""
    if src is None:
        return None
    if isinstance(src, FrameRef):
        return src.text
    return src.rel


def chained_to(image: object, previous: str | None) -> bool:
    """Is a shot whose start image is ``image`` chained to ``previous`` (it starts on
    exactly that shot's last frame)? The one place this is decided."""
    return (previous is not None and isinstance(image, FrameRef) and image.shot == previous
            and image.selector == "last")


def image_identity(src: ImageSource | None, clips: Mapping[str, str | None]) -> dict[str, Any] | None:
    """What an image contributes to a cache key: a file's content hash, or the content
    hash of the parent clip used plus the selector (``clips`` maps shot → clip hash)."""
    if src is None:
        return None
    if isinstance(src, FrameRef):
        return {"clip": clips.get(src.shot), "selector": src.selector}
    return {"file": src.sha256}


@dataclass(frozen=True)
class ShotRequest:
    """Everything a backend needs to generate one shot.

    ``image`` / ``end_image`` are local paths of images already prepared to the
    model's rules (the runner fills them in); ``image_source`` / ``end_image_source``
    say where they come from (a file path or a frame reference like ``@harbor:last``).
    """

    shot_id: str
    prompt: str
    app: str = "klingai/video-v3"
    mode: str = "std"
    aspect_ratio: str = "16:9"
    duration: int = 5
    sound: bool = True
    negative_prompt: str | None = None
    image: Path | None = None
    end_image: Path | None = None
    image_source: str | None = None
    end_image_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def model_inputs(self) -> dict[str, Any]:
        """The input fields other than the images, as sent to the app."""
        inputs: dict[str, Any] = {
            "prompt": self.prompt,
            "mode": self.mode,
            "aspect_ratio": self.aspect_ratio,
            "duration": self.duration,
            "sound": self.sound,
        }
        if self.negative_prompt:
            inputs["negative_prompt"] = self.negative_prompt
        return inputs


def digest(obj: Any) -> str:
    """SHA-256 of a JSON-able value in canonical form (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def cache_key(
    request: ShotRequest,
    *,
    backend: str,
    variant: str = "",
    images: Mapping[str, Mapping[str, Any] | None],
) -> str:
    """A shot's cache key: backend, app, every model input after rendering, and what
    its start/end images are — a file's content hash, or the content hash of the
    parent clip actually used plus the selector (a Merkle chain)."""
    return digest(
        {
            "v": CACHE_KEY_VERSION,
            "backend": backend,
            "variant": variant,
            "app": request.app,
            "inputs": request.model_inputs(),
            "images": dict(images),
        }
    )
