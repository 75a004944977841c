"""A shot's request: what a backend is asked to make, and the one cache-key rule.

Owns three facts, each defined only here:

* :class:`FrameRef`, the frame-reference type, with its one text form
  (``@ID:last``, ``@ID:first``, ``@ID:2.5``) and its one parser;
* :class:`ShotRequest`, everything a backend needs to generate one shot;
* :func:`cache_key`, the rule that keeps a shot from being paid for twice: a digest of
  the backend, the app, every input and the *content* of every image it starts or
  ends on (a Merkle chain through the parents' clips).

Pure. Imports only ``storyboard.apps`` (data and pure functions), lazily.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from storyboard import apps
    from storyboard.spec import ImageSource

__all__ = [
    "CACHE_KEY_VERSION",
    "FrameRef",
    "HashedFile",
    "ShotRequest",
    "billed_cost",
    "cache_key",
    "chained_to",
    "digest",
    "estimate",
    "files_sent",
    "image_identity",
    "node_key",
    "parse_frame_ref",
    "price_facts",
    "quote",
    "source_text",
    "usage_cost",
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
    def rel(self) -> str:
        """The file's path, relative to the storyboard's folder."""

    @property
    def sha256(self) -> str:
        """The file's SHA-256 content hash."""


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


def image_identity(src: ImageSource | None, clips: Mapping[str, str | None],
                   handoffs: Mapping[str, str | None] | None = None) -> dict[str, Any] | None:
    """What an image contributes to a cache key: a file's content hash, or the content
    hash of the parent clip used plus the selector (``clips`` maps shot → clip hash) and,
    for a last frame chosen by a handoff rule (``handoffs`` maps shot → ``best:0.5``),
    that rule: the frame it picks is a function of the clip and the rule."""
    if src is None:
        return None
    if isinstance(src, FrameRef):
        rule = (handoffs or {}).get(src.shot) if src.selector == "last" else None
        return {"clip": clips.get(src.shot), "selector": src.selector, **({"handoff": rule} if rule else {})}
    return {"file": src.sha256}


@dataclass(frozen=True)
class ShotRequest:
    """Everything a backend needs to generate one shot.

    ``inputs`` are the app's own inputs (its names, files excluded), resolved and checked
    by the plan against the app version ``version``; ``image_input``/``end_image_input``
    name the app's start/end frame inputs. ``image`` / ``end_image`` are local paths of
    images already prepared to the app's rules (the runner fills them in);
    ``image_source`` / ``end_image_source`` say where they come from (a file path or a
    frame reference like ``@harbor:last``). The concept fields (duration, aspect ratio…)
    stay for offline backends and reports.
    """

    shot_id: str
    prompt: str
    app: str = "klingai/video-v3"
    version: str | None = None
    mode: str | None = None
    aspect_ratio: str = "16:9"
    duration: int = 5
    sound: bool = True
    negative_prompt: str | None = None
    resolution: str | None = None
    multi_shot: bool | None = None
    inputs: Mapping[str, Any] | None = None
    image_input: str | None = "image"
    end_image_input: str | None = "end_image"
    image: Path | None = None
    end_image: Path | None = None
    image_source: str | None = None
    end_image_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    take: int = 1  # which take of the shot (each take is its own cache entry)
    takes: int = 1  # how many takes the shot has (for captions: "take 2/3"); not part of the key
    # "shot" makes a clip; "still" makes one image (an image app; its output is ``image``).
    kind: str = "shot"
    # Reference images (the shot's characters'): local prepared files, their app input
    # (None when the app takes none) and where they come from (files or ``@still``).
    references: tuple[Path, ...] = ()
    references_input: str | None = None
    reference_sources: tuple[str, ...] = ()
    # Keyframes (bfl/flux-3-video): (seconds, prepared local file), the app input, and
    # (seconds, where each comes from: a file or ``@still``).
    keyframes: tuple[tuple[float, Path], ...] = ()
    keyframes_input: str | None = None
    keyframe_sources: tuple[tuple[float, str], ...] = ()

    def model_inputs(self) -> dict[str, Any]:
        """The inputs sent to the app (its own names), images excluded.

        A request made by the plan carries them already checked; one built by hand is
        resolved here against the app's current profile (problems surface when sent).
        """
        if self.inputs is not None:
            return dict(self.inputs)
        from storyboard import apps

        name = apps.app_name(self.app)
        profile = apps.profile(name)
        version = profile.version(self.version) or profile.version() if profile is not None else None
        if profile is None or version is None:
            return {"prompt": self.prompt, "duration": self.duration, "aspect_ratio": self.aspect_ratio,
                    "sound": self.sound}
        concepts = {"prompt": self.prompt, "duration": self.duration, "aspect_ratio": self.aspect_ratio,
                    "sound": self.sound, "negative_prompt": self.negative_prompt, "mode": self.mode,
                    "resolution": self.resolution, "multi_shot": self.multi_shot}
        got = apps.app_inputs(profile, version, concepts)
        if got.problems:  # never a silent drop: a concept the app lacks stops the shot before it is paid
            from storyboard.errors import AppError

            raise AppError("; ".join(p.message for p in got.problems))
        return dict(got.inputs)


def digest(obj: Any, *, spaced: bool = False) -> str:
    """SHA-256 of a JSON-able value in canonical form (sorted keys, no spaces).

    ``spaced``: json's default separators (``", "``, ``": "``), the form voiced lines'
    keys were first written in; kept for them so no line cached before is paid again."""
    separators = (", ", ": ") if spaced else (",", ":")
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=separators, default=str).encode()).hexdigest()


def node_key(fields: Mapping[str, Any], *, spaced: bool = False) -> str:
    """The one cache-key rule of every node (shot, still, voiced line, music track): the
    digest of its fields with the key version ``v`` (:data:`CACHE_KEY_VERSION`)."""
    return digest({"v": CACHE_KEY_VERSION, **fields}, spaced=spaced)


def cache_key(
    request: ShotRequest,
    *,
    backend: str,
    variant: str = "",
    images: Mapping[str, Any],
) -> str:
    """A shot's cache key: backend, app, every model input after rendering, and what
    its start/end images are — a file's content hash, or the content hash of the
    parent clip actually used plus the selector (a Merkle chain).

    A title card (``kind="title"``) is drawn by storyboard itself whatever the backend:
    its key names neither the backend nor its variant, only what is drawn."""
    if request.kind == "title":
        backend, variant = "title", ""
    return node_key(
        {
            "backend": backend,
            "variant": variant,
            "app": request.app,
            **({"version": request.version} if request.version else {}),
            "inputs": request.model_inputs(),
            "images": dict(images),
            **({"take": request.take} if request.take != 1 else {}),
            # only when set, so the keys of shots without them stay what they were
            **({"kind": request.kind} if request.kind != "shot" else {}),
        }
    )


def files_sent(request: ShotRequest) -> dict[str, int]:
    """The app's file inputs this request sends, each with its count (``{"image": 1}``)."""
    sent = {request.image_input: int(request.image_source is not None or request.image is not None),
            request.end_image_input: int(request.end_image_source is not None or request.end_image is not None),
            request.references_input: len(request.reference_sources) or len(request.references),
            request.keyframes_input: len(request.keyframe_sources) or len(request.keyframes)}
    return {name: n for name, n in sent.items() if name and n}


def quote(request: ShotRequest) -> apps.Quote | None:
    """The request's price on its app with where it comes from; None for an app with no profile."""
    from storyboard import apps

    profile = apps.profile(apps.app_name(request.app))
    if profile is None:
        return None
    return apps.quote(profile, request.model_inputs(), files_sent(request),
                       profile.version(request.version) or profile.version())


def price_facts(request: ShotRequest, *, free: bool = False) -> dict[str, Any]:
    """The app's own price of a request (what the paid app charges: ``reference_price``),
    where it comes from (``price_source``) and how it was found (``price_detail``), as JSON."""
    if free:  # a title card: made by storyboard, free on every backend
        return {"reference_price": "0", "price_source": "free (made by storyboard)", "price_detail": ""}
    got = quote(request)
    if got is None:
        return {"reference_price": None, "price_source": "none", "price_detail": f"{request.app} has no profile"}
    return {"reference_price": None if got.usd is None else str(got.usd), "price_source": got.source,
            "price_detail": got.detail}


def estimate(request: ShotRequest) -> Decimal | None:
    """What the request costs on its app (USD, an estimate from the app's price rule), or None."""
    got = quote(request)
    return None if got is None else got.usd


def usage_cost(request: ShotRequest, usage: Mapping[str, Any] | None) -> Decimal | None:
    """What a text app's call cost by the tokens its ``usage`` reports, or None when unknown."""
    from storyboard import apps

    profile = apps.profile(apps.app_name(request.app))
    if profile is None or not isinstance(usage, Mapping):
        return None
    read, wrote = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(read, int) or not isinstance(wrote, int):
        return None
    billed = {**request.model_inputs(), apps.BILLED_INPUT_TOKENS: read, apps.BILLED_OUTPUT_TOKENS: wrote}
    return apps.quote(profile, billed, files_sent(request), profile.version(request.version) or profile.version()).usd


def billed_cost(request: ShotRequest, output_meta: Mapping[str, Any] | None) -> Decimal | None:
    """What the finished task says it cost (USD), or None when its ``output_meta`` does not say.

    ``output_meta`` is inference.sh's pricing metadata (``inputs``/``outputs`` lists of
    text/image/video/audio/raw items). A ``raw`` item's ``cost`` (cents) is the charge itself;
    otherwise the app's price rule is applied to what was made: the video's seconds,
    resolution and frame size, the tokens it reports (``extra.completion_tokens``), the images
    it counts."""
    from storyboard import apps

    if not isinstance(output_meta, Mapping):
        return None
    items = [o for side in ("inputs", "outputs") for o in output_meta.get(side) or [] if isinstance(o, Mapping)]
    raw = [_number(o.get("cost")) for o in items if o.get("type") == "raw"]
    if raw and all(c is not None for c in raw):
        return sum((Decimal(str(c)) for c in raw if c is not None), Decimal(0)) / 100
    outputs = [o for o in output_meta.get("outputs") or [] if isinstance(o, Mapping)]
    profile = apps.profile(apps.app_name(request.app))
    if not outputs or profile is None:
        return None
    inputs = request.model_inputs()
    made = outputs[0]
    seconds = _number(made.get("seconds"))
    if made.get("type") == "video" and seconds:
        inputs["duration"] = int(seconds) if float(seconds).is_integer() else seconds
    if isinstance(made.get("resolution"), str) and "resolution" in inputs:
        inputs["resolution"] = made["resolution"]
    extra = made.get("extra")
    tokens = _number(extra.get("completion_tokens")) if isinstance(extra, Mapping) else None
    if tokens:
        inputs[apps.BILLED_TOKENS] = int(tokens)
    width, height = _number(made.get("width")), _number(made.get("height"))
    if width and height:
        inputs[apps.BILLED_SIZE] = [width, height]
    characters = _number(extra.get("characters")) if isinstance(extra, Mapping) else None
    if made.get("type") == "audio" and characters:  # ElevenLabs: the characters it billed
        inputs[apps.BILLED_CHARACTERS] = int(characters)
    elif made.get("type") == "image":
        inputs["n"] = sum(int(_number(o.get("count")) or 1) for o in outputs if o.get("type") == "image")
    elif made.get("type") != "video":
        return None
    return apps.quote(profile, inputs, files_sent(request), profile.version(request.version) or profile.version()).usd


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
