"""Narration audio: speaking a line offline (espeak-ng, else a quiet placeholder) and
laying every voiced line at its place in one track the length of the film."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from storyboard.errors import MediaError
from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._timeline import SAMPLE_RATE

# The placeholder is pink noise this loud (peak amplitude): audible in the mix and under
# the loudness pass, but plainly not speech.
PLACEHOLDER_AMPLITUDE = 0.08


def espeak_path() -> str | None:
    """The espeak-ng binary, or None when it is not installed."""
    return shutil.which("espeak-ng")


async def speak_offline(text: str, output: Path, seconds: float) -> str:
    """Write ``text`` spoken to ``output`` (WAV): by espeak-ng when installed, else a quiet
    placeholder ``seconds`` long. Returns which one made it: "espeak-ng" or "placeholder"."""
    espeak = espeak_path()
    if espeak is not None:
        proc = await asyncio.create_subprocess_exec(
            espeak, "-w", str(output), "--stdin",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        # the text goes through stdin, so a line can never be read as an option
        _, err = await proc.communicate(text.encode())
        if proc.returncode == 0 and output.is_file() and output.stat().st_size > 44:
            return "espeak-ng"
        raise MediaError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace').strip()[:200]}")
    await run_ffmpeg([
        "-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude={PLACEHOLDER_AMPLITUDE}:r={SAMPLE_RATE}",
        "-t", f"{seconds:.3f}", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(output),
    ])  # fmt: skip
    return "placeholder"


def narration_args(lines: Sequence[tuple[Path, float]], output: Path, samples: int) -> list[str]:
    """ffmpeg arguments laying each (audio file, start second) into one stereo float WAV of
    exactly ``samples`` samples, silence between. Pure."""
    args: list[str] = []
    graph: list[str] = []
    for j, (path, start) in enumerate(lines):
        args += ["-i", str(path)]
        delay = round(start * SAMPLE_RATE)
        graph.append(
            f"[{j}:a:0]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"adelay=delays={delay}S:all=1[l{j}]"
        )
    joined = "".join(f"[l{j}]" for j in range(len(lines)))
    mix = f"{joined}amix=inputs={len(lines)}:duration=longest:normalize=0" if len(lines) > 1 else f"{joined}anull"
    graph.append(f"{mix},apad=whole_len={samples},atrim=end_sample={samples}[out]")
    return [*args, "-filter_complex", ";".join(graph), "-map", "[out]", "-c:a", "pcm_f32le", "-f", "wav",
            str(output)]


async def narration_track(lines: Sequence[tuple[Path, float]], output: Path, seconds: float) -> Path:
    """Write the film's narration track (see :func:`narration_args`) to ``output``."""
    if not lines:
        raise MediaError("no narration lines to lay out")
    await run_ffmpeg(narration_args(lines, output, round(seconds * SAMPLE_RATE)))
    return output
