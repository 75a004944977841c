"""The animatic: an offline, deterministic previz clip made from stills with ffmpeg."""

from __future__ import annotations

import asyncio
import hashlib
import math
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from storyboard.facts import MODEL_MIN_IMAGE_SIDE
from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._images import fit_image, frame_size, load_image

ZOOM = 0.06  # how far the start image drifts in over the whole clip
END_ZOOM = 0.03  # the end image settles from this zoom to none
CRF = 16  # quality high enough that first/last frames stay >= 40 dB PSNR
# A preview: x264's fastest preset encodes in about half the time of "veryfast"; at this
# CRF the first/last frames keep their PSNR (the bigger files cost nothing to decode).
PRESET = "ultrafast"


# Written into every preview clip's video track (the MP4 handler name): a film made only
# of clips that say so is encoded with preview_x264 and copies what it can.
PREVIEW_HANDLER = "storyboard preview"


def preview_x264(fps: int) -> list[str]:
    """The H.264 settings of every preview clip. A film made only of preview clips is
    encoded with the same ones, so its plain-cut clips can be stream-copied: the key
    interval is among them because it sets a parameter set field (the frame-number size)."""
    return ["-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF), "-pix_fmt", "yuv420p", "-g", str(2 * fps)]

_CHORDS = (  # soft pads, root and two tones above (Hz)
    (220.00, 277.18, 329.63),
    (196.00, 246.94, 293.66),
    (174.61, 220.00, 261.63),
    (246.94, 293.66, 369.99),
)


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode("utf-8")).digest()


# Takes after the first pan to a corner each, so takes differ visibly even at preview size.
_TAKE_PANS = ((0.8, -0.8), (-0.8, 0.8), (0.8, 0.8), (-0.8, -0.8))


def motion(seed: str, take: int = 1) -> tuple[float, float]:
    """The pan direction (each in -0.8..0.8) drawn from ``seed``, or a corner per take
    after the first. Pure."""
    if take > 1:
        return _TAKE_PANS[(take - 2) % len(_TAKE_PANS)]
    d = _digest("motion:" + seed)
    return (d[0] / 255 * 1.6 - 0.8, d[1] / 255 * 1.6 - 0.8)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def title_card(size: tuple[int, int], title: str, text: str, seed: str = "") -> Image.Image:
    """A dark gradient card with ``title`` and the wrapped ``text``, in Pillow's own font."""
    width, height = size
    d = _digest("card:" + seed + title)
    hue = (d[0] % 60 + 10, d[1] % 40 + 20, d[2] % 60 + 40)
    top = Image.new("RGB", (1, 2))
    top.putpixel((0, 0), tuple(c // 3 for c in hue))
    top.putpixel((0, 1), hue)
    card = top.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(card)
    short = min(width, height)
    margin = max(4, short // 12)
    title_font = _font(max(8, short // 10))
    body_size = max(6, short // 24)
    body_font = _font(body_size)
    y = margin
    draw.text((margin, y), title, font=title_font, fill=(250, 240, 220))
    y += int(short / 10 * 1.5)
    char_width = max(1.0, draw.textlength("abcdefghij", font=body_font) / 10)
    columns = max(8, int((width - 2 * margin) / char_width))
    line_height = int(body_size * 1.35)
    max_lines = max(1, (height - y - margin) // max(1, line_height))
    lines = textwrap.wrap(text.strip(), width=columns) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, columns - 1)] + "…"
    for line in lines:
        draw.text((margin, y), line, font=body_font, fill=(225, 225, 225))
        y += line_height
    return card


CAPTION_FILL = (0, 0, 0, 150)  # the translucent band behind the caption
# The caption leaves this long before the clip's end (and is off on its first frame): the
# frames a chained shot starts from (the last one, or the sharpest of the default 0.5 s
# handoff window) stay clean, so captions are never baked into the next shot's picture.
CAPTION_CLEAR = 0.5


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
         width: float) -> str:
    """``text`` on one line, cut at a word and ellipsised where it is wider than ``width`` px."""
    text = " ".join(text.split())
    if draw.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with its ellipsis
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid].rstrip() + "…", font=font) <= width:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    if " " in cut and lo < len(text) and text[lo] != " ":
        cut = cut.rsplit(" ", 1)[0]  # end at a word when one fits
    return cut.rstrip() + "…"


def caption_band(size: tuple[int, int], head: str, body: str, at: str = "bottom") -> tuple[Image.Image, int]:
    """The caption of an animatic clip: ``head`` (shot id and take) over the start of
    ``body`` (the prompt, ellipsised), light text on a dark translucent band as wide as the
    frame, near its bottom (or, ``at="top"``, its top); sized from the short side so it
    reads alike at every aspect ratio. Returns the RGBA band and the (even) row of the
    frame where its top goes."""
    width, height = size
    short = min(width, height)
    px = max(8, short // 20)
    head_font, body_font = _font(round(px * 1.15)), _font(px)
    pad = max(2, px // 2)
    margin = max(2, round(short * 0.05))
    line = round(px * 1.35)
    band_h = 2 * pad + round(px * 1.15 * 1.35) + line
    band_h += band_h % 2  # even rows and height: the 4:2:0 chroma of the frame is not split
    band = Image.new("RGBA", (width, band_h), CAPTION_FILL)
    draw = ImageDraw.Draw(band)
    inner = width - 2 * margin
    draw.text((margin, pad), _fit(draw, head, head_font, inner), font=head_font, fill=(255, 255, 255, 255))
    draw.text((margin, pad + round(px * 1.15 * 1.35)), _fit(draw, body, body_font, inner), font=body_font,
              fill=(225, 225, 225, 255))
    top = round(height * 0.06) if at == "top" else max(0, height - band_h - round(height * 0.06))
    return band, top - top % 2


def tone_expression(seed: str) -> str:
    """An aevalsrc expression (two channels) for a soft chord chosen by ``seed``. Pure."""
    d = _digest("tone:" + seed)
    chord = _CHORDS[d[0] % len(_CHORDS)]
    amps = (0.05, 0.035, 0.03)
    swell = "(0.8+0.2*sin(2*PI*0.25*t))"
    left = "+".join(f"{a}*sin(2*PI*{f}*t)" for a, f in zip(amps, chord, strict=True))
    right = "+".join(f"{a}*sin(2*PI*{f * 1.002:.3f}*t)" for a, f in zip(amps, chord, strict=True))
    return f"({left})*{swell}|({right})*{swell}"


def _picture_graph(size: tuple[int, int], frames: int, fps: int, seed: str, take: int,
                   end: bool, out: str) -> list[str]:
    """The picture: the start image drifting in (a slow eased zoom and pan chosen by
    ``seed`` and ``take``), crossfading to the end image (input 1) when ``end``; into
    ``[out]``. Pure."""
    width, height = size
    pan_x, pan_y = motion(seed, take)
    last = max(1, frames - 1)
    ease = f"(on/{last})"
    zoom = f"1+{ZOOM}*{ease}*{ease}*(3-2*{ease})"
    x = f"(iw-iw/zoom)*{0.5 + 0.5 * pan_x:.4f}"
    y = f"(ih-ih/zoom)*{0.5 + 0.5 * pan_y:.4f}"
    graph = [
        f"[0:v]format=yuv420p,zoompan=z='{zoom}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps}"
        + ",format=yuv420p,setsar=1"  # square pixels said, as the film's encoder says them
        + (f"[{out}]" if not end else "[a0]")
    ]
    if not end:
        return graph
    fade_frames = max(1, min(round(fps * 1.0), frames // 3))
    hold = min(2, frames - fade_frames)  # the end image alone for the last frames
    end_frames = fade_frames + hold
    end_last = max(1, end_frames - 1)
    end_zoom = f"1+{END_ZOOM}*max(0,1-on/{end_last})"
    offset = (frames - end_frames) / fps
    graph.append(
        f"[1:v]format=yuv420p,zoompan=z='{end_zoom}':x='(iw-iw/zoom)/2':y='(ih-ih/zoom)/2'"
        f":d={end_frames}:s={width}x{height}:fps={fps},format=yuv420p,setsar=1[b0]"
    )
    # Only the tail goes through xfade (a frame copy per frame it passes, and a stall
    # of the whole graph): the head is split off and concatenated back.
    head = frames - end_frames
    faded = (
        f"[a0]split=2[h0][t0];[h0]trim=end_frame={head}[h1];"
        f"[t0]trim=start_frame={head},setpts=PTS-STARTPTS[t1];"
        f"[t1][b0]xfade=transition=fade:duration={fade_frames / fps:.6f}:offset=0[x0];"
        "[h1][x0]concat=n=2:v=1:a=0"
        if head > 0 else
        f"[a0][b0]xfade=transition=fade:duration={fade_frames / fps:.6f}:offset={offset:.6f}"
    )  # fmt: skip
    return [*graph, faded + f"[{out}]"]


def _sound_graph(seed: str, seconds: float) -> str:
    """A soft chord chosen by ``seed``, faded in and out, into ``[a]``. Pure."""
    fade_out = min(0.5, seconds / 3)
    return (
        f"aevalsrc=exprs='{tone_expression(seed)}':s=48000:d={seconds:.6f},"
        f"afade=t=in:d={min(0.3, seconds / 3):.3f},"
        f"afade=t=out:st={seconds - fade_out:.6f}:d={fade_out:.6f},"
        "aformat=sample_fmts=fltp:channel_layouts=stereo[a]"
    )


def animatic_args(
    dest: Path,
    *,
    start_png: Path,
    end_png: Path | None,
    size: tuple[int, int],
    duration: float,
    fps: int,
    sound: bool,
    seed: str = "",
    take: int = 1,
    caption_png: Path | None = None,
    caption_top: int = 0,
) -> list[str]:
    """ffmpeg arguments for an animatic clip from prepared stills, with a caption band laid
    over its frames but the first (the clip still starts exactly on its start image) and
    those of its last :data:`CAPTION_CLEAR` seconds. Pure."""
    frames = max(1, round(duration * fps))
    seconds = frames / fps
    last = max(1, frames - 1)
    graph = _picture_graph(size, frames, fps, seed, take, end_png is not None,
                           "v" if caption_png is None else "pic")
    args = ["-i", str(start_png), *(["-i", str(end_png)] if end_png is not None else [])]
    if caption_png is not None:
        # one still input, repeated by overlay; off on the first frame (seams stay exact) and
        # for the last CAPTION_CLEAR seconds (what children start from stays clean)
        index = 1 if end_png is None else 2
        args += ["-i", str(caption_png)]
        until = frames - 2 - math.ceil(CAPTION_CLEAR * fps)
        until = until if until >= 1 else frames - 2  # a very short clip: all but its ends
        graph.append(f"[pic][{index}:v]overlay=0:{caption_top}:enable='between(n,1,{until})':format=yuv420,"
                     "format=yuv420p[v]")
    if sound:
        graph.append(_sound_graph(seed, seconds))
    args += ["-filter_complex", ";".join(graph), "-map", "[v]"]
    args += ["-map", "[a]", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"] if sound else ["-an"]
    args += [
        "-frames:v", str(frames),
        "-r", str(fps),
        *preview_x264(fps),
        # the last frame: a child's handoff decodes one frame; the second: a chained seam
        # drops the first frame, and the film then copies the clip from a keyframe
        "-force_key_frames", f"expr:eq(n,1)+eq(n,{last})",
        "-threads", "4",
        "-fflags", "+bitexact",
        "-flags:v", "+bitexact",
        "-flags:a", "+bitexact",
        "-map_metadata", "-1",
        "-metadata:s:v:0", f"handler_name={PREVIEW_HANDLER}",
        "-movflags", "+faststart",
        "-f", "mp4",
        str(dest),
    ]  # fmt: skip
    return args


def _ready(src: Path, size: tuple[int, int]) -> bool:
    """Whether ``src`` is already what the clip starts on: an RGB PNG of exactly ``size``
    with no orientation to apply (a frame of a preview clip, prepared). Reads the header."""
    try:
        with Image.open(src) as img:
            return (img.format == "PNG" and img.mode == "RGB" and img.size == size
                    and img.getexif().get(0x0112, 1) == 1)
    except (OSError, SyntaxError, ValueError):
        return False  # let load_image say what is wrong with it


def _still_file(src: Path | None, dest: Path, size: tuple[int, int],
                card: tuple[str, str, str] | None) -> Path | None:
    """The still a clip starts or ends on, as a PNG file: ``src`` itself when it is
    ready, else ``src`` fitted (or, with no ``src``, the title ``card``) written to ``dest``."""
    if src is None and card is None:
        return None
    if src is not None and _ready(src, size):
        return src  # a chained shot's frame: decoding and re-encoding it cost ~0.1 s at 720p
    if src is not None:
        image = prepare_still(src, size)
    else:
        assert card is not None
        image = title_card(size, *card)
    # zlib level 1: these stills live for one ffmpeg run; level 6 costs ~0.1 s more each
    image.save(dest, format="PNG", compress_level=1)
    return dest


def prepare_still(src: Path, size: tuple[int, int]) -> Image.Image:
    """``src`` scaled and centre-cropped to exactly ``size``: what the clip starts/ends on."""
    return fit_image(load_image(src), size)


async def animatic_clip(
    dest: Path,
    *,
    duration: float,
    aspect_ratio: str,
    start_image: Path | None,
    end_image: Path | None,
    title: str,
    text: str,
    sound: bool,
    short_side: int = 720,
    fps: int = 24,
    seed: str = "",
    progress: Callable[[float], None] | None = None,
    take: int = 1,
    caption: tuple[str, str] | None = None,
    caption_at: str = "bottom",
) -> Path:
    """Render a previz clip to ``dest``: the start image (or a title card) drifting in
    gently, crossfading to the end image when given; a soft chord or no audio stream;
    ``caption`` (a heading and a text) in a band near the bottom (``caption_at="top"``:
    the top) from the second frame until :data:`CAPTION_CLEAR` seconds before the end.
    Same inputs, same bytes (on the same machine and ffmpeg)."""
    dest = Path(dest)
    size = frame_size(aspect_ratio, short_side)
    dest.parent.mkdir(parents=True, exist_ok=True)
    seed = seed or f"{title}\n{text}"
    with tempfile.TemporaryDirectory(prefix=".animatic-", dir=dest.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        # In a thread: shots rendered at once prepare their stills side by side.
        start_png, end_png = await asyncio.gather(
            asyncio.to_thread(_still_file, start_image, tmp / "start.png", size, (title, text, seed)),
            asyncio.to_thread(_still_file, end_image, tmp / "end.png", size, None),
        )
        assert start_png is not None
        caption_png: Path | None = None
        caption_top = 0
        if caption is not None:
            band, caption_top = caption_band(size, *caption, at=caption_at)
            caption_png = tmp / "caption.png"
            band.save(caption_png, format="PNG", compress_level=1)
        out = tmp / "clip.mp4"
        args = animatic_args(
            out,
            start_png=start_png,
            end_png=end_png,
            size=size,
            duration=duration,
            fps=fps,
            sound=sound,
            seed=seed,
            take=take,
            caption_png=caption_png,
            caption_top=caption_top,
        )
        await run_ffmpeg(args, progress=progress, total_seconds=duration if progress else None)
        out.replace(dest)
    return dest


def still_card(dest: Path, *, aspect_ratio: str, title: str, text: str, short_side: int = 720) -> Path:
    """An offline still: a titled card (PNG) at ``aspect_ratio`` with ``short_side`` px."""
    card = title_card(frame_size(aspect_ratio, max(short_side, MODEL_MIN_IMAGE_SIDE)), title, text, seed="still:" + text)
    dest.parent.mkdir(parents=True, exist_ok=True)
    card.save(dest, format="PNG")
    return dest
