"""Media the fake server hands out: tiny real mp4 clips (ffmpeg), PNG stills, WAV audio.

A clip is the aspect ratio at ``short_side`` px, ``fps`` frames a second, the requested
duration, an AAC tone when ``sound`` is true; its first frame is the uploaded start image
(scaled and centre-cropped), fading to the end image when one is given.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import struct
import subprocess
import tempfile
import threading
import wave
from typing import Any

import imageio_ffmpeg
from PIL import Image

__all__ = [
    "ASPECT_RATIOS",
    "clip_seconds",
    "clip_size",
    "gradient_image",
    "make_clip",
    "make_png",
    "make_wav",
]

ASPECT_RATIOS = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "21:9": (21, 9),
}


def clip_seconds(duration: Any) -> float:
    """How long a video app's clip is: its ``duration`` (a number or a numeric string), or
    5 s when it asks for "auto" (-1) or gives none."""
    try:
        seconds = float(duration)
    except (TypeError, ValueError):
        return 5.0
    return seconds if seconds > 0 else 5.0


def clip_size(aspect_ratio: str, short_side: int = 90) -> tuple[int, int]:
    """Width and height of a clip: the ratio at ``short_side``, both even (yuv420p)."""
    w, h = ASPECT_RATIOS[aspect_ratio]

    def even(x: float) -> int:
        return max(2, round(x / 2) * 2)

    if w >= h:
        return even(short_side * w / h), even(short_side)
    return even(short_side), even(short_side * h / w)


# ---------------------------------------------------------------- clips (ffmpeg)

_CLIP_CACHE: dict[tuple[Any, ...], bytes] = {}
_CLIP_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}
_CLIP_GUARD = threading.Lock()


def make_clip(
    *,
    width: int,
    height: int,
    duration: float,
    fps: int,
    sound: bool,
    image: bytes | None = None,
    end_image: bytes | None = None,
) -> bytes:
    """A small H.264 mp4 (cached by its parameters for the life of the process)."""
    key = (
        width,
        height,
        duration,
        fps,
        sound,
        hashlib.sha256(image).hexdigest() if image else None,
        hashlib.sha256(end_image).hexdigest() if end_image else None,
    )
    with _CLIP_GUARD:
        if key in _CLIP_CACHE:
            return _CLIP_CACHE[key]
        lock = _CLIP_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key in _CLIP_CACHE:
            return _CLIP_CACHE[key]
        data = _render_clip(width, height, duration, fps, sound, image, end_image)
        with _CLIP_GUARD:
            _CLIP_CACHE[key] = data
        return data


def _render_clip(
    width: int,
    height: int,
    duration: float,
    fps: int,
    sound: bool,
    image: bytes | None,
    end_image: bytes | None,
) -> bytes:
    fit = (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop={width}:{height},setsar=1,fps={fps},format=yuv420p"
    )
    with tempfile.TemporaryDirectory(prefix="fakeinference-") as tmp:
        args = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        inputs = 0
        if image is not None:
            start = os.path.join(tmp, "start.img")
            with open(start, "wb") as f:
                f.write(image)
            args += ["-loop", "1", "-framerate", str(fps), "-t", f"{duration}", "-i", start]
            inputs += 1
            if end_image is not None:
                fade = min(1.0, duration / 2)
                end = os.path.join(tmp, "end.img")
                with open(end, "wb") as f:
                    f.write(end_image)
                args += ["-loop", "1", "-framerate", str(fps), "-t", f"{fade + 1}", "-i", end]
                inputs += 1
                graph = (
                    f"[0:v]{fit}[a];[1:v]{fit}[b];"
                    f"[a][b]xfade=transition=fade:duration={fade}:offset={duration - fade}[v]"
                )
            else:
                graph = f"[0:v]{fit}[v]"
        else:
            args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
            inputs += 1
            graph = f"[0:v]{fit}[v]"
        if sound:
            args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
        args += ["-filter_complex", graph, "-map", "[v]"]
        if sound:
            args += ["-map", f"{inputs}:a", "-c:a", "aac", "-b:a", "48k"]
        else:
            args += ["-an"]
        out = os.path.join(tmp, "clip.mp4")
        args += [
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "10", "-pix_fmt", "yuv420p",
            "-r", str(fps), "-t", f"{duration}", "-movflags", "+faststart", out,
        ]  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"fake server: ffmpeg failed: {proc.stderr[-2000:]}")
        with open(out, "rb") as f:
            return f.read()


def gradient_image(
    path: str | os.PathLike[str], width: int = 640, height: int = 360, seed: int = 0
) -> None:
    """A smooth test picture (PNG or JPEG by suffix): gradients survive scaling and H.264."""
    x = [i / max(1, width - 1) for i in range(width)]
    im = Image.new("RGB", (width, height))
    px = im.load()
    assert px is not None
    a, b, c = (40 + 60 * seed) % 200, (90 + 37 * seed) % 200, (150 + 23 * seed) % 200
    for j in range(height):
        y = j / max(1, height - 1)
        for i in range(width):
            px[i, j] = (
                int(a + 55 * x[i]),
                int(b + 55 * y),
                int(c + 40 * (x[i] + y) / 2),
            )
    im.save(path)


def make_png(width: int, height: int, seed: int = 0) -> bytes:
    """A small gradient PNG (what an image app returns)."""
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height))
    px = image.load()
    assert px is not None
    for j in range(height):
        for i in range(width):
            px[i, j] = (
                (i * 255) // max(1, width - 1),
                (j * 255) // max(1, height - 1),
                (seed * 53) % 256,
            )
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_wav(seconds: float, sample_rate: int = 16000, frequency: float = 440.0) -> bytes:
    """A mono 16-bit sine WAV (what an audio app returns)."""
    frames = max(1, int(seconds * sample_rate))
    samples = (
        int(12000 * math.sin(2 * math.pi * frequency * n / sample_rate)) for n in range(frames)
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()
