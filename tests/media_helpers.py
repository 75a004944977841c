"""Small real media for the media tests: clips from ffmpeg's test sources, images, PSNR."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from storyboard.media import ffmpeg_path


def ffmpeg(*args: str) -> str:
    """Run ffmpeg synchronously (test set-up only) and return stderr."""
    done = subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stderr


def make_clip(
    path: Path,
    *,
    duration: float = 1.0,
    size: tuple[int, int] = (160, 90),
    fps: int = 10,
    audio: bool = True,
    freq: int = 440,
    source: str = "testsrc2",
    gop: int | None = None,
    faststart: bool = True,
    volume: float = 0.5,
    x264: tuple[str, ...] = (),
) -> Path:
    """An H.264 (+AAC 48 kHz stereo) clip from ffmpeg's test sources; ``x264``: more
    encoder options (after the preset: e.g. B-frames, which ultrafast has none of)."""
    width, height = size
    args = ["-f", "lavfi", "-i", f"{source}=size={width}x{height}:rate={fps}:duration={duration}"]
    if audio:
        args += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={freq}:sample_rate=48000:duration={duration}",
        ]
        args += ["-af", f"volume={volume},aformat=channel_layouts=stereo"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", *x264, "-pix_fmt", "yuv420p"]
    if gop:
        args += ["-g", str(gop)]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    if faststart:
        args += ["-movflags", "+faststart"]
    args += ["-threads", "2", str(path)]
    ffmpeg(*args)
    return path


def make_audio(path: Path, *, duration: float = 2.0, freq: int = 330, volume: float = 0.3) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100:duration={duration}",
        "-af", f"volume={volume}", "-c:a", "aac", "-b:a", "64k", str(path),
    )  # fmt: skip
    return path


def make_image(path: Path, size: tuple[int, int], *, seed: int = 0) -> Path:
    """A smooth picture (gradient and soft shapes): what stills look like, PSNR-friendly."""
    width, height = size
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    tint = Image.new("RGB", (width, height), ((40 + 70 * seed) % 255, 90, (160 + 30 * seed) % 255))
    img = Image.blend(base, tint, 0.5)
    draw = ImageDraw.Draw(img)
    draw.ellipse(
        (width // 4, height // 4, width // 4 + width // 3, height // 4 + height // 3),
        fill=(230, 170, 60),
    )
    # photographs have soft edges; a hard saturated edge is what 4:2:0 chroma cannot keep
    img = img.filter(ImageFilter.GaussianBlur(max(1.0, min(width, height) / 100)))
    img.save(path)
    return path


def decode_all(path: Path) -> list[Image.Image]:
    """Every frame of a clip, decoded from the start: the reference for exact frames."""
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def psnr(a: Image.Image, b: Image.Image) -> float:
    a, b = a.convert("RGB"), b.convert("RGB")
    assert a.size == b.size, (a.size, b.size)
    mse = sum(v * v for v in ImageStat.Stat(ImageChops.difference(a, b)).rms) / 3
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def stream_durations(path: Path) -> dict[str, float]:
    """Decoded video and audio lengths in seconds (what a player would show)."""
    out: dict[str, float] = {}
    with av.open(str(path)) as container:
        if container.streams.video:
            frames = list(container.decode(video=0))
            rate = container.streams.video[0].average_rate
            out["video"] = len(frames) / float(rate)
            out["video_frames"] = len(frames)
    with av.open(str(path)) as container:
        if container.streams.audio:
            samples = 0
            rate_a = 0
            for frame in container.decode(audio=0):
                samples += frame.samples
                rate_a = frame.sample_rate
            out["audio"] = samples / rate_a
    return out


def integrated_loudness(path: Path) -> float:
    """Integrated loudness (LUFS) as ffmpeg's ebur128 measures it."""
    stderr = ffmpeg(
        "-i", str(path), "-map", "0:a", "-af", "ebur128=framelog=quiet", "-f", "null", "-"
    )
    values = re.findall(r"I:\s+(-?[\d.]+) LUFS", stderr)
    return float(values[-1])


def loudnorm_stats(path: Path) -> dict[str, str]:
    stderr = ffmpeg(
        "-i", str(path), "-map", "0:a", "-af", "loudnorm=print_format=json", "-f", "null", "-"
    )
    start = stderr.rindex("{")
    result: dict[str, str] = json.loads(stderr[start : stderr.index("}", start) + 1])
    return result


_CHAIN = (("a", "a harbor at dusk"), ("b", "the keeper looks up"), ("c", "gulls rise over the water"))


def harbor_chain(write_board: Callable[..., Path], make_image: Callable[..., Path], shots: int = 2) -> Path:
    """A board of ``shots`` chained shots (a on start.png, b on a's last frame, c on b's),
    for the remote hand-off tests."""
    make_image("start.png")
    lines = [f"  - {{id: {sid}, prompt: {prompt}{', image: start.png' if sid == 'a' else ''}}}"
             for sid, prompt in _CHAIN[:shots]]
    return write_board("storyboard: 1\ndefaults: {mode: std, duration: 3}\nshots:\n" + "\n".join(lines) + "\n")


def film_samples(film: Path) -> np.ndarray:  # type: ignore[type-arg]
    """The film's first audio stream as mono 48 kHz float samples."""
    raw = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(film), "-map", "0:a:0", "-ac", "1", "-ar",
                          "48000", "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


def tone(pcm: np.ndarray, a: float, b: float, freq: float) -> float:  # type: ignore[type-arg]
    """Amplitude of ``freq`` Hz in film seconds [a, b)."""
    part = pcm[int(a * 48000):int(b * 48000)]
    t = np.arange(len(part)) / 48000
    return float(abs(np.dot(part, np.exp(-2j * np.pi * freq * t))) * 2 / max(1, len(part)))


def rms(pcm: np.ndarray, a: float, b: float) -> float:  # type: ignore[type-arg]
    """Root mean square of film seconds [a, b)."""
    part = pcm[int(a * 48000):int(b * 48000)]
    return float(np.sqrt(np.mean(part.astype(np.float64) ** 2)))
