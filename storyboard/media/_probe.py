"""Reading container metadata with PyAV: headers only, no decoding; results cached per
(path, size, mtime) within the process."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av

from storyboard.errors import MediaError

_TAIL_SECONDS = 1.0
# Read only the header: MP4/MOV carry everything probe needs in moov, so nothing has to be
# decoded. What a header leaves out (pix_fmt outside H.264, an MKV's frame rate) sends
# probe back to a full open.
_QUICK = {"probesize": "32", "analyzeduration": "0"}
_CACHE_SIZE = 512


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


def _open(path: Path, what: str, *, quick: bool = False) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{what} not found: {path}")
    try:
        return av.open(str(path), options=_QUICK if quick else None)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable {what} ({exc})") from exc


_Info = TypeVar("_Info", "ClipInfo", "AudioInfo")
_cache: OrderedDict[tuple[object, ...], ClipInfo | AudioInfo] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(kind: str, path: Path, read: Callable[[Path], _Info], cls: type[_Info]) -> _Info:
    """``read(path)``, remembered while the file keeps its size and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return read(path)  # raises the "not found" MediaError
    key = (kind, str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if isinstance(hit, cls):
        return hit if hit.path == path else replace(hit, path=path)
    info = read(path)
    with _cache_lock:
        _cache[key] = info
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return info


class _Bits:
    """An MSB-first bit reader for H.264 parameter sets (exp-Golomb codes)."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self.left:
            raise ValueError("short SPS")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


_HIGH_PROFILES = frozenset([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135])


def h264_pix_fmt(extradata: bytes | None) -> str | None:
    """The pixel format ffmpeg's H.264 decoder gives a stream, read from the SPS in its
    avcC record; None when unsure (full range, 4:4:4, monochrome, odd depths). Pure."""
    if not extradata or len(extradata) < 8 or extradata[0] != 1 or not extradata[5] & 0x1F:
        return None
    length = int.from_bytes(extradata[6:8], "big")
    nal = extradata[8 : 8 + length]
    if len(nal) != length or not nal or nal[0] & 0x1F != 7:
        return None
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    try:
        bits = _Bits(rbsp)
        profile = bits.u(8)
        bits.u(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        chroma, depth = 1, 8
        if profile in _HIGH_PROFILES:
            chroma = bits.ue()
            if chroma == 3:
                bits.u(1)
            depth = bits.ue() + 8
            bits.ue()  # chroma bit depth
            bits.u(1)
            if bits.u(1):  # scaling matrices: skip them
                for i in range(12 if chroma == 3 else 8):
                    if bits.u(1):
                        last = following = 8
                        for _ in range(16 if i < 6 else 64):
                            if following:
                                following = (last + bits.se() + 256) % 256
                            last = following or last
        bits.ue()  # log2_max_frame_num
        poc_type = bits.ue()
        if poc_type == 0:
            bits.ue()
        elif poc_type == 1:
            bits.u(1)
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.u(1)
        bits.ue()  # width in macroblocks
        bits.ue()  # height in map units
        if not bits.u(1):  # frame_mbs_only
            bits.u(1)
        bits.u(1)
        if bits.u(1):  # cropping
            for _ in range(4):
                bits.ue()
        full_range = False
        if bits.u(1):  # VUI
            if bits.u(1) and bits.u(8) == 255:  # aspect ratio, extended SAR
                bits.u(32)
            if bits.u(1):  # overscan
                bits.u(1)
            if bits.u(1):  # video signal type
                bits.u(3)
                full_range = bool(bits.u(1))
    except ValueError:
        return None
    if full_range:
        return None
    return {(1, 8): "yuv420p", (2, 8): "yuv422p", (1, 10): "yuv420p10le", (2, 10): "yuv422p10le"}.get(
        (chroma, depth)
    )


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
    missing, not a video, or truncated. Cached while the file is unchanged."""
    path = Path(path)
    return _cached("video", path, _read_clip, ClipInfo)


def _read_clip(path: Path) -> ClipInfo:
    return _read_clip_from(path, quick=True) or _read_clip_from(path, quick=False) or _unusable(path)


def _unusable(path: Path) -> ClipInfo:
    raise MediaError(f"{path}: not a usable video (no duration, size or frame rate)")


def _read_clip_from(path: Path, *, quick: bool) -> ClipInfo | None:
    """The clip's metadata; None when a header-only read (``quick``) left something out."""
    container = _open(path, "video", quick=quick)
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
        pix_fmt = ctx.pix_fmt
        if quick and not pix_fmt and ctx.name == "h264":
            pix_fmt = h264_pix_fmt(ctx.extradata)
        audio = container.streams.audio[0] if container.streams.audio else None
        usable = bool(duration and ctx.width and ctx.height and fps)
        if quick and (not usable or not pix_fmt or (audio is not None and not _audio_ok(audio))):
            return None
        if not duration or not usable:
            return None
        if frames is None:
            frames = round(duration * fps)
        _check_tail(container, path, duration)
        return ClipInfo(
            path=path,
            duration=duration,
            width=int(ctx.width),
            height=int(ctx.height),
            fps=fps,
            vcodec=str(ctx.name),
            pix_fmt=str(pix_fmt or ""),
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


def _audio_ok(stream: Any) -> bool:
    ctx = stream.codec_context
    return bool(ctx.sample_rate and _channels(ctx))


def probe_audio(path: Path) -> AudioInfo:
    """Metadata of an audio file (or the first audio stream of a video). Raises
    MediaError naming the file when it holds no audio. Cached while the file is unchanged."""
    path = Path(path)
    return _cached("audio", path, _read_audio, AudioInfo)


def _read_audio(path: Path) -> AudioInfo:
    return _read_audio_from(path, quick=True) or _read_audio_from(path, quick=False) or _no_audio(path)


def _no_audio(path: Path) -> AudioInfo:
    raise MediaError(f"{path}: not a usable audio file (no duration or sample rate)")


def _read_audio_from(path: Path, *, quick: bool) -> AudioInfo | None:
    container = _open(path, "audio file", quick=quick)
    try:
        if not container.streams.audio:
            raise MediaError(f"{path}: not an audio file (no audio stream)")
        audio = container.streams.audio[0]
        ctx = audio.codec_context
        duration = _seconds(audio.duration, audio.time_base)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000
        if not duration or not _audio_ok(audio):
            return None
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
