"""Reading container metadata with PyAV (no decoding of the whole file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from storyboard.errors import MediaError

_TAIL_SECONDS = 1.0


@dataclass(frozen=True)
class ClipInfo:
    """What a video file holds, from its container metadata."""

    path: Path
    duration: float  # seconds, of the video stream
    width: int
    height: int
    fps: float
    vcodec: str
    pix_fmt: str
    has_audio: bool
    acodec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None

    @property
    def fps_fraction(self) -> Fraction:
        """The frame rate as a fraction (24, 30000/1001, ...)."""
        return Fraction(self.fps).limit_denominator(1001)


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file (or the audio of a video file) holds."""

    path: Path
    duration: float
    sample_rate: int
    channels: int
    codec: str


def _open(path: Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{what} not found: {path}")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable {what} ({exc})") from exc


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _channels(codec_context: Any) -> int:
    layout = getattr(codec_context, "layout", None)
    if layout is not None and getattr(layout, "nb_channels", None):
        return int(layout.nb_channels)
    return int(getattr(codec_context, "channels", 0) or 0)


def _check_tail(container: Any, path: Path, duration: float) -> None:
    """Demux (not decode) the last second: a truncated file shows as a packet that
    runs past the end of the file, a corrupt packet, or an early end."""
    size = os.path.getsize(path)
    start = max(0.0, duration - _TAIL_SECONDS)
    try:
        container.seek(int(start * 1_000_000), backward=True, any_frame=False)
        reached = 0.0
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.is_corrupt or (packet.pos is not None and packet.pos + packet.size > size):
                raise MediaError(f"{path}: truncated or corrupt (packet beyond the end of the file)")
            if packet.pts is not None and packet.time_base is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                reached = max(reached, end)
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: truncated or corrupt ({exc})") from exc
    if duration > 0 and reached < duration - 0.5:
        raise MediaError(
            f"{path}: truncated: its streams end at {reached:.2f}s, the header says {duration:.2f}s"
        )


def probe(path: Path) -> ClipInfo:
    """Container metadata of a video clip. Raises MediaError naming the file when it is
    missing, not a video, or truncated."""
    path = Path(path)
    container = _open(path, "video")
    try:
        if not container.streams.video:
            raise MediaError(f"{path}: not a video (no video stream)")
        video = container.streams.video[0]
        ctx = video.codec_context
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else 0.0
        duration = _seconds(video.duration, video.time_base)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000
        frames = int(video.frames) if video.frames else None
        if duration is None and frames and fps:
            duration = frames / fps
        if not duration or not ctx.width or not ctx.height or not fps:
            raise MediaError(f"{path}: not a usable video (no duration, size or frame rate)")
        if frames is None:
            frames = round(duration * fps)
        audio = container.streams.audio[0] if container.streams.audio else None
        _check_tail(container, path, duration)
        return ClipInfo(
            path=path,
            duration=duration,
            width=int(ctx.width),
            height=int(ctx.height),
            fps=fps,
            vcodec=str(ctx.name),
            pix_fmt=str(ctx.pix_fmt or ""),
            has_audio=audio is not None,
            acodec=str(audio.codec_context.name) if audio is not None else None,
            sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            channels=_channels(audio.codec_context) if audio is not None else None,
            frames=frames,
        )
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: unreadable video ({exc})") from exc
    finally:
        container.close()


def probe_audio(path: Path) -> AudioInfo:
    """Metadata of an audio file (or the first audio stream of a video). Raises
    MediaError naming the file when it holds no audio."""
    path = Path(path)
    container = _open(path, "audio file")
    try:
        if not container.streams.audio:
            raise MediaError(f"{path}: not an audio file (no audio stream)")
        audio = container.streams.audio[0]
        ctx = audio.codec_context
        duration = _seconds(audio.duration, audio.time_base)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000
        if not duration or not ctx.sample_rate:
            raise MediaError(f"{path}: not a usable audio file (no duration or sample rate)")
        _check_tail(container, path, duration)
        return AudioInfo(
            path=path,
            duration=duration,
            sample_rate=int(ctx.sample_rate),
            channels=_channels(ctx),
            codec=str(ctx.name),
        )
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: unreadable audio ({exc})") from exc
    finally:
        container.close()
