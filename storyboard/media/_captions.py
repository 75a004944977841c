"""Captions: where each clip sits in the film (to time them), the .srt and .vtt sidecar
files, and burning them into the picture with ffmpeg's `subtitles` filter (libass).

One cue list makes both files: each time is rounded to the millisecond once, the SRT is
composed by the ``srt`` library and the WebVTT written from the same stamps (the format
differs from SRT's only by its header, a ``.`` before the milliseconds and escaped text)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import srt

from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._graphs import X264
from storyboard.media._probe import probe
from storyboard.media._timeline import CutClip, plan_timeline

# The burned-in style (libass force_style): white sans on a translucent box, low centre.
BURN_STYLE = (
    "FontName=DejaVu Sans,FontSize=18,PrimaryColour=&H00FFFFFF,OutlineColour=&H80000000,"
    "BackColour=&H80000000,BorderStyle=3,Outline=1,Shadow=0,Alignment=2,MarginV=24"
)


def cut_times(clips: Sequence[CutClip]) -> tuple[list[float], float, float]:
    """(each clip's start in film seconds, the film's length, its frame rate), from the
    same timeline assembly uses: seam trims and transitions included."""
    infos = [probe(Path(c.path)) for c in clips]
    timeline = plan_timeline(clips, infos)
    fps = timeline.fps
    return [float(s / fps) for s in timeline.starts], float(timeline.total / fps), float(fps)


def _timed(seconds: float) -> dt.timedelta:
    """A cue time, rounded to the millisecond (both files show milliseconds)."""
    return dt.timedelta(milliseconds=round(seconds * 1000))


def _vtt(subs: Sequence[srt.Subtitle]) -> str:
    """The WebVTT text of the cues, with the SRT's very stamps. Pure."""
    def stamp(t: dt.timedelta) -> str:
        return str(srt.timedelta_to_srt_timestamp(t)).replace(",", ".")

    def text(content: str) -> str:
        escaped = content.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return "\n".join(line for line in escaped.splitlines() if line.strip())  # a blank line ends a cue

    return "WEBVTT\n\n" + "".join(f"{stamp(s.start)} --> {stamp(s.end)}\n{text(s.content)}\n\n" for s in subs)


def write_captions(cues: Sequence[tuple[float, float, str]], film: Path) -> tuple[Path, Path]:
    """Write ``<film>.srt`` and ``<film>.vtt`` (cues: start, end seconds, text) beside the
    film, each atomically, from the same millisecond stamps. Returns both paths."""
    srt_path, vtt_path = film.with_suffix(".srt"), film.with_suffix(".vtt")
    subs = [srt.Subtitle(index=k + 1, start=_timed(a), end=_timed(b), content=text)
            for k, (a, b, text) in enumerate(cues)]
    for path, content in ((srt_path, srt.compose(subs)), (vtt_path, _vtt(subs))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
    return srt_path, vtt_path


def _filter_quote(path: Path) -> str:
    # the subtitles filter takes a file name inside a filtergraph: escape its specials
    text = str(path.resolve())
    for ch in ("\\", ":", "'", "[", "]", ",", ";"):
        text = text.replace(ch, "\\" + ch)
    return text


def burn_args(film: Path, subtitles: Path, output: Path, style: str = BURN_STYLE) -> list[str]:
    """ffmpeg arguments drawing ``subtitles`` into ``film``'s picture; sound copied. Pure."""
    vf = f"subtitles=filename={_filter_quote(subtitles)}:force_style='{style}'"
    return ["-i", str(film), "-map", "0:v:0", "-map", "0:a?", "-vf", vf, *X264, "-c:a", "copy",
            "-movflags", "+faststart", "-f", "mp4", str(output)]


async def burn_captions(film: Path, subtitles: Path) -> Path:
    """Burn ``subtitles`` into ``film`` in place (atomically)."""
    tmp = film.with_name(f".{film.stem}.burn.tmp.mp4")
    try:
        await run_ffmpeg(burn_args(film, subtitles, tmp))
        os.replace(tmp, film)
    finally:
        tmp.unlink(missing_ok=True)
    return film
