"""The handoff frame: the sharpest frame near a clip's end, and how well a seam holds.

Sharpness is the variance of the Laplacian (a 4-neighbour kernel) of the frame's luma,
sampled down to about 270 lines (every 4th pixel of every 4th line at 1080p, read from the
decoded plane): a motion-blurred or defocused frame has weak edges, so a low variance.
Among the frames of the last ``window`` seconds the latest one whose sharpness is
within ``CLOSE`` of the best wins, because a later frame keeps more of the shot.

Continuity at a seam compares two images: PSNR of their luma (dB) and the distance of
their colour histograms (0 = the same colours, 1 = none shared).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from storyboard.errors import MediaError
from storyboard.facts import DEFAULT_HANDOFF_WINDOW
from storyboard.media._frames import (
    _decode_from,
    _frame_time,
    _open_video,
    _stream_duration,
    save_frame,
)

CLOSE = 0.9  # a later frame at least this sharp, relative to the sharpest, is preferred
_HIST_BINS = 8  # per channel
_PLANAR_LUMA = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray", "nv12"}


@dataclass(frozen=True)
class Handoff:
    """The chosen handoff frame: its time (s from the clip's start), index, sharpness."""

    path: Path
    time: float
    index: int
    sharpness: float
    candidates: int


def sharpness(gray: np.ndarray[Any, Any]) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D luma array. Pure."""
    g = gray.astype(np.float32)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


def _luma(frame: Any) -> np.ndarray[Any, Any]:
    """The frame's luma, every ``step``-th pixel of every ``step``-th line (about 270 lines):
    enough to tell blur from detail, read straight from the decoded plane (no conversion)."""
    step = max(1, frame.height // 270)
    if frame.format.name not in _PLANAR_LUMA:  # an unusual pixel format: let FFmpeg convert it
        small = frame.reformat(width=max(2, frame.width // step), height=max(2, frame.height // step),
                               format="gray")
        gray: np.ndarray[Any, Any] = small.to_ndarray()
        return gray
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
    sampled: np.ndarray[Any, Any] = rows[::step, : frame.width : step]
    return sampled


def pick_sharpest(scores: list[float]) -> int:
    """Index of the latest score within ``CLOSE`` of the best. Pure."""
    if not scores:
        raise ValueError("no frames to choose from")
    best = max(scores)
    return max(i for i, s in enumerate(scores) if s >= CLOSE * best)


def still_in_the_running(held: list[tuple[int, float, Any]], best: float,
                         new: tuple[int, float, Any]) -> list[tuple[int, float, Any]]:
    """The (index, score, frame) entries that may still be :func:`pick_sharpest`'s choice
    once ``new`` is added, ``best`` being the best score so far (``new``'s included). Pure."""
    return [*(h for h in held if h[1] > new[1] and h[1] >= CLOSE * best), new]


def _select(clip: Path, window: float, dest: Path) -> Handoff:
    container, stream = _open_video(clip)
    try:
        duration = _stream_duration(container, stream)
        fps = float(stream.average_rate or 24)
        base = float((stream.start_time or 0) * stream.time_base)
        start = max(0.0, duration - window - 0.5 / fps)
        scores: list[float] = []
        # Only frames that can still win are held (all of a 5 s window at 1080p is ~350 MB):
        # one under CLOSE of the best so far stays under CLOSE of the final best, and one
        # followed by a frame at least as sharp loses to that later frame
        kept: list[tuple[int, float, Any]] = []
        best = 0.0
        for frame in _decode_from(container, stream, start):
            t = _frame_time(frame) - base
            if t + 1e-6 < start:
                continue
            score = sharpness(_luma(frame))
            scores.append(score)
            best = max(best, score)
            kept = still_in_the_running(kept, best, (len(scores) - 1, score, frame))
        if not scores:
            raise MediaError(f"{clip}: no decodable frame in its last {window:g} s")
        i = pick_sharpest(scores)
        chosen = next(f for j, _, f in kept if j == i)
        t = _frame_time(chosen) - base
        image = chosen.to_image()
    except av.FFmpegError as exc:
        raise MediaError(f"{clip}: cannot decode its last frames ({exc})") from exc
    finally:
        container.close()
    save_frame(image, dest)
    return Handoff(path=dest, time=round(t, 6), index=round(t * fps), sharpness=round(scores[i], 3),
                   candidates=len(scores))


async def handoff_frame(clip: Path, dest: Path, window: float = DEFAULT_HANDOFF_WINDOW) -> Handoff:
    """Write the sharpest frame of ``clip``'s last ``window`` seconds to ``dest`` (PNG)."""
    if window <= 0:
        raise MediaError(f"handoff window must be > 0 s, got {window}")
    return await asyncio.to_thread(_select, Path(clip), window, Path(dest))


@dataclass(frozen=True)
class SeamScore:
    """How well a child's first frame continues its parent's handoff frame."""

    psnr: float  # dB of the luma; 100 = identical
    histogram: float  # colour-histogram distance, 0..1

    def drifted(self, min_psnr: float, max_histogram: float) -> bool:
        """Below the PSNR threshold, or over the histogram one."""
        return self.psnr < min_psnr or self.histogram > max_histogram


def _load(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as exc:
        raise MediaError(f"{path}: not a readable image ({exc})") from exc


def seam_score(handoff: Path, first: Path) -> SeamScore:
    """Compare two frames (the second is scaled to the first's size)."""
    return _compare(_load(handoff), _load(first))


def _compare(a: Image.Image, b: Image.Image) -> SeamScore:
    if b.size != a.size:
        b = b.convert("RGB").resize(a.size, Image.Resampling.BILINEAR)
    a, b = a.convert("RGB"), b.convert("RGB")
    la = np.asarray(a.convert("L"), dtype=np.float32)
    lb = np.asarray(b.convert("L"), dtype=np.float32)
    mse = float(np.mean((la - lb) ** 2))
    psnr = 100.0 if mse == 0 else min(100.0, 10 * float(np.log10(255.0**2 / mse)))
    ha = _histogram(a)
    hb = _histogram(b)
    return SeamScore(psnr=round(psnr, 2), histogram=round(0.5 * float(np.abs(ha - hb).sum()), 4))


def _first_image(clip: Path) -> Image.Image:
    container, stream = _open_video(clip)
    try:
        for frame in _decode_from(container, stream, 0.0):
            image: Image.Image = frame.to_image()
            return image
    except av.FFmpegError as exc:
        raise MediaError(f"{clip}: cannot decode its first frame ({exc})") from exc
    finally:
        container.close()
    raise MediaError(f"{clip}: no decodable frame")


def _score_clip(handoff: Path, child: Path) -> SeamScore:
    first = _first_image(child)
    return _compare(_load(handoff), first)


async def seam_continuity(handoff: Path, child_clip: Path) -> SeamScore:
    """Score a seam: the parent's handoff frame against the child clip's first frame
    (decoded in memory; nothing is written)."""
    return await asyncio.to_thread(_score_clip, Path(handoff), Path(child_clip))


def _histogram(im: Image.Image) -> np.ndarray[Any, Any]:
    arr = np.asarray(im, dtype=np.uint8).reshape(-1, 3) // (256 // _HIST_BINS)
    idx = (arr[:, 0].astype(np.int64) * _HIST_BINS + arr[:, 1]) * _HIST_BINS + arr[:, 2]
    counts: np.ndarray[Any, Any] = np.bincount(idx, minlength=_HIST_BINS**3).astype(np.float64)
    total = max(1.0, float(counts.sum()))
    normalised: np.ndarray[Any, Any] = counts / total
    return normalised
