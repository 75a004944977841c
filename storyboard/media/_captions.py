"""Captions: where each clip sits in the film (to time them), the .srt and .vtt sidecar
files, and burning them into the picture with ffmpeg's `subtitles` filter (libass)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import srt
import webvtt

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


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def write_captions(cues: Sequence[tuple[float, float, str]], film: Path) -> tuple[Path, Path]:
    """Write ``<film>.srt`` and ``<film>.vtt`` (cues: start, end seconds, text) beside the
    film, each atomically. Returns both paths."""
    srt_path, vtt_path = film.with_suffix(".srt"), film.with_suffix(".vtt")
    subs = [srt.Subtitle(index=k + 1, start=dt.timedelta(seconds=a), end=dt.timedelta(seconds=b), content=text)
            for k, (a, b, text) in enumerate(cues)]
    tmp = srt_path.with_name(f".{srt_path.name}.tmp")
    tmp.write_text(srt.compose(subs), encoding="utf-8")
    os.replace(tmp, srt_path)
    vtt = webvtt.WebVTT(captions=[webvtt.Caption(_stamp(a), _stamp(b), text) for a, b, text in cues])
    tmp = vtt_path.with_name(f".{vtt_path.stem}.tmp.vtt")  # webvtt adds .vtt to any other name
    vtt.save(str(tmp))
    os.replace(tmp, vtt_path)
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
