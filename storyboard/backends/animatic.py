"""The animatic backend: offline, free, deterministic previz clips through ffmpeg."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from pathlib import Path

from storyboard.backends.base import ShotContext
from storyboard.errors import BackendError, MediaError
from storyboard.request import ShotRequest


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BackendError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise BackendError(f"{name} must be positive, got {value!r}")
    return number


# The preview's short side and frame rate unless told otherwise. Most of a whole render's
# time is x264 at this size (clips, then the film): 360 renders ~2.4x faster than 720.
DEFAULT_SHORT_SIDE = 720
DEFAULT_FPS = 24


def caption(request: ShotRequest) -> tuple[str, str]:
    """The lower-third caption of a shot's animatic: its id and take, over its prompt.
    The take and the prompt are in the clip's cache key; the id is not, as for the title
    card that already shows it (shots asking the same of the same images share a clip)."""
    take = (f"take {request.take}/{request.takes}" if request.take <= request.takes
            else f"take {request.take} (reroll)")
    return f"{request.shot_id} · {take}", request.prompt


def caption_place(request: ShotRequest) -> str | None:
    """Where the caption band goes, clear of the text the film draws over the shot
    (``request.extra["text_over"]``): at the bottom; at the top when burned captions or a
    lower-third overlay take the bottom; nowhere (it yields) when a corner overlay also
    takes the top."""
    drawn = set(request.extra.get("text_over") or ())
    if not drawn & {"captions", "lower-third"}:
        return "bottom"
    return None if "corner" in drawn else "top"


def card_text(request: ShotRequest) -> tuple[str, str]:
    """The shot id and prompt on the title card a shot with no start image starts from;
    none where a corner overlay takes the card's top left (the band still names the shot)."""
    if "corner" in (request.extra.get("text_over") or ()):
        return "", ""
    return request.shot_id, request.prompt


class AnimaticBackend:
    """Stills and title cards with gentle motion; a soft chord or silence for sound.

    Size and frame rate come from the arguments, else ``STORYBOARD_ANIMATIC_SIZE`` (the
    short side in pixels) and ``STORYBOARD_ANIMATIC_FPS``, else :data:`DEFAULT_SHORT_SIDE`
    and :data:`DEFAULT_FPS`.
    """

    name = "animatic"
    paid = False

    def __init__(self, *, short_side: int | None = None, fps: int | None = None) -> None:
        self.short_side = short_side or _env_int("STORYBOARD_ANIMATIC_SIZE", DEFAULT_SHORT_SIDE)
        self.fps = fps or _env_int("STORYBOARD_ANIMATIC_FPS", DEFAULT_FPS)

    @property
    def variant(self) -> str:
        """Preview size and frame rate; part of the cache key, so other sizes are other clips."""
        return f"{self.short_side}p{self.fps}"

    @property
    def speaker(self) -> str:
        """Who speaks `say:` lines here (free): espeak-ng when installed, else a placeholder."""
        from storyboard.media import espeak_path

        return "espeak-ng" if espeak_path() else "placeholder"

    def price(self, request: ShotRequest) -> Decimal | None:
        """Free: made on this machine."""
        return Decimal("0")

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        """Render the shot's previz clip into ``ctx.work_dir``."""
        # deferred: a render whose shots are all cached never imports the media stack
        from storyboard.media import animatic_clip

        if request.kind == "still":
            return await self._still(request, ctx)
        dest = Path(ctx.work_dir) / f"{request.shot_id}.mp4"
        ctx.progress(0.0, "running")
        try:
            await animatic_clip(
                dest,
                duration=float(request.duration),
                aspect_ratio=request.aspect_ratio,
                start_image=request.image,
                end_image=request.end_image,
                title=card_text(request)[0],
                text=card_text(request)[1],
                sound=request.sound,
                short_side=self.short_side,
                fps=self.fps,
                seed=f"{request.shot_id}\n{request.prompt}",
                take=request.take,  # each take moves its own way, so takes can be told apart offline
                caption=caption(request) if (place := caption_place(request)) is not None else None,
                caption_at=place or "bottom",
                progress=lambda fraction: ctx.progress(fraction, None),
            )
        except MediaError as exc:
            raise BackendError(str(exc), shot=request.shot_id) from exc
        ctx.progress(1.0, "done")
        ctx.report(output_meta={"backend": self.name, "short_side": self.short_side, "fps": self.fps})
        return dest

    async def _still(self, request: ShotRequest, ctx: ShotContext) -> Path:
        """A still drawn as a titled card (its id and prompt), PNG, at the preview's size."""
        from storyboard.media import still_card

        dest = Path(ctx.work_dir) / f"{request.shot_id}.png"
        ctx.progress(0.0, "running")
        try:
            await asyncio.to_thread(still_card, dest, aspect_ratio=request.aspect_ratio, title=request.shot_id,
                                    text=request.prompt, short_side=self.short_side)
        except MediaError as exc:
            raise BackendError(str(exc), shot=request.shot_id) from exc
        ctx.progress(1.0, "done")
        ctx.report(output_meta={"backend": self.name, "short_side": self.short_side, "kind": "still"})
        return dest

    async def aclose(self) -> None:
        """Nothing to release."""
        return None
