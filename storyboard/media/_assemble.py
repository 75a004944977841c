"""Joining clips and audio into one film.

Three ways, cheapest first:

* ``copy``: matching clips joined by plain cuts, no extra audio: the concat demuxer with
  stream copy.
* ``filter``: the whole cut fits one bounded piece and no loudness pass is needed: one
  ffmpeg filtergraph writes the film (picture, crossfades, music, ducking) in one go.
* ``segments``: the cut is split at plain cuts (and long runs of transitions into windows
  of at most :data:`WINDOW` clips) into segments, each rendered by its own ffmpeg with
  identical H.264 settings plus its sound as float WAV (every clip has sound, silence
  where it had none, so the track never drifts). The segments are joined by stream
  copy; the sound is joined sample-exactly and mixed with the ``audio:`` tracks,
  measured, normalized and encoded to AAC once. Only a window's clips are ever open at
  once, so memory stays flat however long the cut.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.errors import MediaError
from storyboard.media._ffmpeg import build_command, run_ffmpeg
from storyboard.media._graphs import (
    MixTrack,
    concat_list,
    copy_args,
    join_args,
    loudness_filter,
    measure_args,
    parse_ebur128,
    plan_filter,
    render_args,
    segment_list,
)
from storyboard.media._probe import AudioInfo, ClipInfo, probe, probe_audio
from storyboard.media._timeline import (
    SAMPLE_RATE,
    WINDOW,
    CutClip,
    check_transitions,
    plan_timeline,
    split_segments,
)

# Segments rendered at once. Each is bounded, so memory is bounded by PARALLEL windows.
PARALLEL = 2


@dataclass
class AssemblyResult:
    """The film written, how it was made and every ffmpeg command that made it."""

    path: Path
    method: str  # "copy" | "filter" | "segments"
    duration: float
    command: list[str] = field(default_factory=list)  # the ffmpeg run that wrote the film
    loudness: dict[str, float] | None = None  # first-pass measurement, when normalized
    commands: list[list[str]] = field(default_factory=list)  # every ffmpeg run, in order


def _same(a: float, b: float) -> bool:
    return abs(a - b) < 1e-3


def can_copy(clips: Sequence[CutClip], infos: Sequence[ClipInfo], audio: Sequence[MixTrack]) -> bool:
    """True when stream copy with the concat demuxer gives the right film. Pure."""
    if audio or not clips:
        return False
    if any(c.trim_first_frame or c.hold for c in clips):
        return False
    if any(c.transition != "cut" for c in clips[1:]):
        return False
    first = infos[0]
    for info in infos[1:]:
        if (info.vcodec, info.width, info.height, info.pix_fmt, info.has_audio) != (
            first.vcodec, first.width, first.height, first.pix_fmt, first.has_audio
        ) or not _same(info.fps, first.fps):
            return False
        if first.has_audio and (info.acodec, info.sample_rate, info.channels) != (
            first.acodec, first.sample_rate, first.channels
        ):
            return False
    return True


# ---- running ---------------------------------------------------------------------------


def _temp_output(output: Path) -> Path:
    return output.with_name(f".{output.stem}.{uuid.uuid4().hex[:8]}.tmp.mp4")


class _Progress:
    """Monotonic progress over weighted parts that may run at once."""

    def __init__(self, report: Callable[[float], None] | None, weights: Sequence[float]) -> None:
        self.report = report
        total = sum(weights) or 1.0
        self.weights = [w / total for w in weights]
        self.done = [0.0] * len(weights)
        self.last = 0.0

    def part(self, index: int) -> Callable[[float], None] | None:
        if self.report is None:
            return None

        def update(fraction: float) -> None:
            self.done[index] = max(self.done[index], fraction)
            now = sum(w * d for w, d in zip(self.weights, self.done, strict=True))
            if now > self.last and self.report is not None:
                self.last = now
                self.report(min(now, 1.0))

        return update


async def assemble(
    clips: Sequence[CutClip],
    output: Path,
    *,
    audio: Sequence[MixTrack] = (),
    loudness: float | None = -14.0,
    progress: Callable[[float], None] | None = None,
) -> AssemblyResult:
    """Join ``clips`` (with their transitions) and ``audio`` into ``output``.

    Cuts of matching clips with no extra audio are joined by stream copy ("copy");
    anything else is rendered in bounded segments joined by stream copy ("segments"),
    or in one pass when the cut is one segment and needs no loudness pass ("filter").
    The sound is normalized in two passes to ``loudness`` LUFS (None: levels left
    alone). The file appears atomically. A missing or invalid clip or audio file raises
    MediaError naming it.
    """
    if not clips:
        raise MediaError("nothing to assemble: the cut is empty")
    output = Path(output)
    infos = [probe(Path(c.path)) for c in clips]
    tracks = [(t, probe_audio(Path(t.path))) for t in audio]
    check_transitions(clips)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_output(output)
    commands: list[list[str]] = []
    measured: dict[str, float] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix=".assemble-", dir=output.parent) as tmp_dir:
            work = Path(tmp_dir)
            if can_copy(clips, infos, audio):
                method = "copy"
                list_file = work / "list.ffconcat"
                list_file.write_text(concat_list(infos), encoding="utf-8")
                args = copy_args(list_file, tmp)
                commands.append(build_command(args))
                await run_ffmpeg(args)
                duration = sum(i.duration for i in infos)
            else:
                method, duration, measured = await _render(
                    clips, infos, tracks, loudness, tmp, work, commands, progress
                )
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    return AssemblyResult(
        path=output, method=method, duration=duration, command=commands[-1], loudness=measured,
        commands=commands,
    )  # fmt: skip


async def _render(
    clips: Sequence[CutClip],
    infos: Sequence[ClipInfo],
    tracks: Sequence[tuple[MixTrack, AudioInfo]],
    loudness: float | None,
    output: Path,
    work: Path,
    commands: list[list[str]],
    progress: Callable[[float], None] | None,
) -> tuple[str, float, dict[str, float] | None]:
    timeline = plan_timeline(clips, infos)
    segments = split_segments(timeline, WINDOW)
    shots_audio = any(i.has_audio for i in infos)
    sound = shots_audio or bool(tracks)
    normalize = loudness is not None and sound
    seconds = float(timeline.total / timeline.fps)
    samples = timeline.samples(timeline.total)
    measured = None
    loudnorm = None
    if len(segments) == 1:
        # One bounded piece: measure from the clips' sound alone (no picture decoded),
        # then one pass encodes picture and sound side by side.
        steps = _Progress(progress, [0.15 if normalize else 0.0, 1.0])
        plan = plan_filter(clips, infos, segments[0], audio=shots_audio)
        if normalize:
            assert loudness is not None
            quiet = plan_filter(clips, infos, segments[0], audio=shots_audio, video=False)
            args = measure_args(quiet.inputs, quiet.graph, quiet.audio, tracks, samples)
            commands.append(build_command(args))
            measured = parse_ebur128(await run_ffmpeg(args, progress=steps.part(0), total_seconds=seconds))
            if measured is not None:
                loudnorm = loudness_filter(loudness, measured)
        args = render_args(plan, output, tracks=tracks, loudnorm=loudnorm)
        commands.append(build_command(args))
        await run_ffmpeg(args, progress=steps.part(1), total_seconds=seconds)
        return "filter", seconds, measured

    # Each segment: picture as H.264 (joined later by stream copy), sound as float WAV
    # (joined sample-exactly: AAC segments would each add encoder priming and padding).
    weights = [float(s.end - s.start) for s in segments] + ([0.05 * timeline.total] if normalize else [])
    steps = _Progress(progress, [*weights, 0.1 * timeline.total])
    limit = asyncio.Semaphore(PARALLEL)
    pictures: list[tuple[Path, float]] = []
    sounds: list[tuple[Path, float]] = []
    jobs: list[Coroutine[Any, Any, None]] = []
    for index, segment in enumerate(segments):
        plan = plan_filter(clips, infos, segment, audio=sound)
        video, wav = work / f"segment{index:04d}.mp4", work / f"segment{index:04d}.wav"
        pictures.append((video, plan.seconds))
        sounds.append((wav, plan.samples / SAMPLE_RATE))
        args = render_args(plan, video, sound=wav)
        commands.append(build_command(args))
        jobs.append(_limited(limit, args, steps.part(index), plan.seconds))
    await _gather(jobs)
    picture_list, sound_list = work / "pictures.ffconcat", work / "sound.ffconcat"
    picture_list.write_text(segment_list(pictures), encoding="utf-8")
    sound_list.write_text(segment_list(sounds), encoding="utf-8")
    if normalize:
        assert loudness is not None
        args = measure_args(["-f", "concat", "-safe", "0", "-i", str(sound_list)], "", "0:a:0", tracks, samples)
        commands.append(build_command(args))
        stderr = await run_ffmpeg(args, progress=steps.part(len(segments)), total_seconds=seconds)
        measured = parse_ebur128(stderr)
        if measured is not None:
            loudnorm = loudness_filter(loudness, measured)
    args = join_args(
        picture_list, sound_list if sound else None, output, tracks=tracks, samples=samples, loudnorm=loudnorm
    )
    commands.append(build_command(args))
    await run_ffmpeg(args, progress=steps.part(len(weights)), total_seconds=seconds)
    return "segments", seconds, measured


async def _limited(
    limit: asyncio.Semaphore, args: list[str], progress: Callable[[float], None] | None, seconds: float
) -> None:
    async with limit:
        await run_ffmpeg(args, progress=progress, total_seconds=seconds)


async def _gather(jobs: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run the jobs; on the first failure cancel the rest (killing their ffmpeg)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
