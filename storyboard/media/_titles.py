"""Text over the film: overlays drawn as transparent cards (Pillow shapes the text, in
the font that ships with Pillow or a given font file), laid over the picture for their
time range, optionally with the captions burned in, in one ffmpeg pass."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from storyboard.errors import MediaError
from storyboard.media._animatic import animatic_clip
from storyboard.media._captions import BURN_STYLE, _filter_quote
from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._graphs import X264
from storyboard.media._images import frame_size

# Where each documented position puts the text: (horizontal anchor, vertical centre as a
# fraction of the frame's height).
POSITIONS = {"lower-third": ("centre", 0.7), "centre": ("centre", 0.5), "corner": ("left", 0.1)}


@dataclass(frozen=True)
class OverlayCard:
    """An overlay picture and the film seconds it shows."""

    image: Path
    start: float
    end: float


def _font(size: int, font: str | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if font is not None:
        try:
            return ImageFont.truetype(font, size)
        except OSError as e:
            raise MediaError(f"cannot load font '{font}': {e}") from None
    return ImageFont.load_default(size=size)


def overlay_png(text: str, width: int, height: int, *, position: str, size: float, font: str | None,
                dest: Path) -> Path:
    """A transparent frame-sized PNG with ``text`` on a translucent band at ``position``."""
    if position not in POSITIONS:
        raise MediaError(f"unknown overlay position {position!r}; allowed: {', '.join(POSITIONS)}")
    px = max(8, round(height * size))
    face = _font(px, font)
    card = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(card)
    per_char = max(1.0, draw.textlength("abcdefghij", font=face) / 10)
    rows = textwrap.wrap(text, max(8, int(width * 0.86 / per_char))) or [text]
    block = "\n".join(rows)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), block, font=face, align="center")
    w, h = right - left, bottom - top
    anchor, centre = POSITIONS[position]
    x = round(width * 0.05) if anchor == "left" else (width - w) // 2
    y = max(0, min(height - h, round(height * centre - h / 2)))
    pad = max(2, px // 4)
    draw.rectangle([x - pad, y - pad, x + w + pad, y + h + pad], fill=(0, 0, 0, 140))
    draw.multiline_text((x - left, y - top), block, font=face, fill=(255, 255, 255, 255),
                        align="left" if anchor == "left" else "center")
    card.save(dest, format="PNG")
    return dest


def decorate_args(film: Path, cards: Sequence[OverlayCard], subtitles: Path | None, output: Path,
                  style: str = BURN_STYLE) -> list[str]:
    """ffmpeg arguments laying ``cards`` over ``film`` for their time ranges and burning
    ``subtitles`` (when given); the sound is copied. Pure."""
    args = ["-i", str(film)]
    graph: list[str] = []
    label = "0:v"
    for j, card in enumerate(cards):
        args += ["-loop", "1", "-i", str(card.image)]
        graph.append(f"[{label}][{j + 1}:v]overlay=0:0:shortest=1:format=auto:"
                     f"enable='between(t,{card.start:.3f},{card.end:.3f})'[o{j}]")
        label = f"o{j}"
    if subtitles is not None:
        graph.append(f"[{label}]subtitles=filename={_filter_quote(subtitles)}:force_style='{style}'[subs]")
        label = "subs"
    graph.append(f"[{label}]format=yuv420p[v]")
    return [*args, "-filter_complex", ";".join(graph), "-map", "[v]", "-map", "0:a?", *X264, "-c:a", "copy",
            "-movflags", "+faststart", "-f", "mp4", str(output)]


async def decorate(film: Path, cards: Sequence[OverlayCard], subtitles: Path | None = None, *,
                   progress: Callable[[float], None] | None = None, seconds: float | None = None) -> Path:
    """Draw ``cards`` (and burn ``subtitles``) into ``film`` in place, atomically.
    ``progress`` hears the fraction done of the film's ``seconds``."""
    if not cards and subtitles is None:
        return film
    tmp = film.with_name(f".{film.stem}.text.tmp.mp4")
    try:
        await run_ffmpeg(decorate_args(film, cards, subtitles, tmp), progress=progress, total_seconds=seconds)
        os.replace(tmp, film)
    finally:
        tmp.unlink(missing_ok=True)
    return film


async def title_clip(dest: Path, text: str, *, duration: float, aspect_ratio: str, short_side: int,
                     fps: int) -> Path:
    """A title card clip: ``text`` centred on black, drifting in gently, silent."""
    width, height = frame_size(aspect_ratio, short_side)
    dest.parent.mkdir(parents=True, exist_ok=True)
    card = dest.with_name(f"{dest.stem}-card.png")
    overlay_png(text, width, height, position="centre", size=0.1, font=None, dest=card)
    with Image.open(card) as im:
        Image.alpha_composite(Image.new("RGBA", im.size, (8, 8, 12, 255)), im.convert("RGBA")).convert(
            "RGB").save(card, format="PNG")
    return await animatic_clip(dest, duration=duration, aspect_ratio=aspect_ratio, start_image=card, end_image=None,
                               title="", text=text, sound=False, short_side=short_side, fps=fps, seed=f"title\n{text}")
