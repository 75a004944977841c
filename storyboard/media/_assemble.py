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

A film made only of preview clips (the animatic's, marked :data:`PREVIEW_HANDLER`, all
with the same H.264 parameter sets) is encoded with the clips' own settings
(:func:`preview_x264`), and every clip that sits whole between plain cuts goes in as it is
(stream copy): only transitions are encoded, and the sound is made, measured and mixed
beside them ("segments").
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.errors import MediaError
from storyboard.media._animatic import PREVIEW_HANDLER, preview_x264
from storyboard.media._ffmpeg import build_command, run_ffmpeg
from storyboard.media._graphs import (
    X264,
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
    sound_args,
)
from storyboard.media._probe import AudioInfo, ClipInfo, probe, probe_audio
from storyboard.media._timeline import (
    SAMPLE_RATE,
    WINDOW,
    CutClip,
    Segment,
    Timeline,
    check_transitions,
    plan_timeline,
    segment_of,
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
    if any(c.trim_first_frame or c.hold or c.end_at is not None for c in clips):
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
    codec, copied = await _preview(clips, infos, timeline)
    if copied:
        return await _render_copying(clips, infos, timeline, copied, codec, tracks, loudness, output, work,
                                     commands, progress)
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
        args = render_args(plan, output, tracks=tracks, loudnorm=loudnorm, codec=codec)
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
        args = render_args(plan, video, sound=wav, codec=codec)
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


# ---- films of preview clips: stream copy between plain cuts ------------------------------


@dataclass(frozen=True)
class _Stream:
    """What decides whether a clip's picture can go into the film as it is."""

    params: bytes | None  # the H.264 parameter sets (the MP4's avcC)
    first: bool  # the picture is the file's first stream (the concat demuxer pairs by index)
    second_key: float | None  # the time of the second frame, when it is a keyframe
    preview: bool = False  # made by the animatic with preview_x264


def _stream(path: Path) -> _Stream:
    """Demuxes two packets; decodes nothing."""
    import av  # deferred: assembling a cut of matching clips by stream copy needs no PyAV here

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            params = bytes(video.codec_context.extradata or b"") or None
            packets = []
            for packet in container.demux(video):
                if packet.size:
                    packets.append(packet)
                if len(packets) == 2:
                    break
            second = packets[1] if len(packets) == 2 else None
            key = None
            if second is not None and second.is_keyframe and second.pts is not None and video.time_base:
                key = float(second.pts * video.time_base)
            preview = video.metadata.get("handler_name") == PREVIEW_HANDLER
            return _Stream(params, video.index == 0, key, preview)
    except (av.FFmpegError, OSError, IndexError):
        return _Stream(None, False, None)


async def _preview(
    clips: Sequence[CutClip], infos: Sequence[ClipInfo], timeline: Timeline
) -> tuple[Sequence[str], dict[int, _Stream]]:
    """The film's H.264 settings, and the clips that go in by stream copy (by index):
    for a film of preview clips with one set of parameter sets, the preview settings and
    each clip that can be taken whole; otherwise :data:`X264` and nothing copied."""
    if timeline.fps.denominator != 1 or any(i.vcodec != "h264" for i in infos):
        return X264, {}
    streams = await asyncio.to_thread(lambda: [_stream(Path(i.path)) for i in infos])
    if not all(s.preview for s in streams) or len({s.params for s in streams}) != 1 or streams[0].params is None:
        return X264, {}
    copied = {k: s for k, s in enumerate(streams) if _whole(k, clips, infos, s, timeline)}
    return preview_x264(int(timeline.fps)), copied


def _whole(k: int, clips: Sequence[CutClip], infos: Sequence[ClipInfo], stream: _Stream, timeline: Timeline) -> bool:
    """Whether clip ``k`` can be copied: all of it plays, at the film's size and rate,
    between plain cuts, starting on a keyframe (its second frame after a chained seam)."""
    clip, info, film = clips[k], infos[k], infos[0]
    start, end = timeline.starts[k], timeline.starts[k] + timeline.frames[k]
    following = timeline.overlaps[k + 1] if k + 1 < len(clips) else 0
    return (
        stream.first and clip.hold == 0 and clip.end_at is None
        and (not clip.trim_first_frame or stream.second_key is not None)
        and (info.width, info.height, info.pix_fmt) == (film.width, film.height, "yuv420p")
        and info.fps_fraction == timeline.fps
        and info.frames == timeline.frames[k] + (1 if clip.trim_first_frame else 0)
        and timeline.overlaps[k] == 0 and following == 0
        and (start == 0 or timeline.clean(start)) and (end == timeline.total or timeline.clean(end))
    )  # fmt: skip


def _carve(timeline: Timeline, segments: Sequence[Segment], copied: Sequence[int]) -> list[tuple[Segment, bool]]:
    """The segments with every copied clip cut out as a segment of its own. Pure."""
    out: list[tuple[Segment, bool]] = []
    for segment in segments:
        points = {segment.start, segment.end}
        for k in copied:
            start, end = timeline.starts[k], timeline.starts[k] + timeline.frames[k]
            if segment.start <= start and end <= segment.end:
                points |= {start, end}
        for a, b in itertools.pairwise(sorted(points)):
            part = segment_of(timeline, a, b)
            whole = len(part.pieces) == 1 and part.pieces[0].clip in copied and part.pieces[0].start == 0 and (
                part.pieces[0].end == timeline.frames[part.pieces[0].clip])
            out.append((part, whole))
    return out


async def _render_copying(
    clips: Sequence[CutClip],
    infos: Sequence[ClipInfo],
    timeline: Timeline,
    copied: dict[int, _Stream],
    codec: Sequence[str],
    tracks: Sequence[tuple[MixTrack, AudioInfo]],
    loudness: float | None,
    output: Path,
    work: Path,
    commands: list[list[str]],
    progress: Callable[[float], None] | None,
) -> tuple[str, float, dict[str, float] | None]:
    """Copied clips and encoded transitions, their picture joined by stream copy; the
    sound of every segment made alone (no picture decoded), measured while the
    transitions encode, then mixed and encoded once."""
    parts = _carve(timeline, split_segments(timeline, WINDOW), sorted(copied))
    sound = any(i.has_audio for i in infos) or bool(tracks)
    normalize = loudness is not None and sound
    seconds = float(timeline.total / timeline.fps)
    samples = timeline.samples(timeline.total)
    encoded = [float(s.end - s.start) for s, whole in parts if not whole]
    steps = _Progress(progress, [*encoded, 0.05 * timeline.total if sound else 0.0, 0.1 * timeline.total])
    limit = asyncio.Semaphore(PARALLEL)
    pictures: list[tuple[Path, float] | tuple[Path, float, float]] = []
    sounds: list[tuple[Path, float]] = []
    picture_jobs: list[Coroutine[Any, Any, None]] = []
    sound_jobs: list[Coroutine[Any, Any, None]] = []
    for index, (segment, whole) in enumerate(parts):
        if whole:
            k = segment.pieces[0].clip
            start = copied[k].second_key if clips[k].trim_first_frame else None
            pictures.append((Path(infos[k].path), float((segment.end - segment.start) / timeline.fps), start or 0.0))
        else:
            plan = plan_filter(clips, infos, segment, audio=False)
            video = work / f"segment{index:04d}.mp4"
            pictures.append((video, plan.seconds))
            args = render_args(plan, video, codec=codec)
            commands.append(build_command(args))
            picture_jobs.append(_limited(limit, args, steps.part(len(picture_jobs)), plan.seconds))
        if sound:
            plan = plan_filter(clips, infos, segment, audio=True, video=False)
            wav = work / f"segment{index:04d}.wav"
            sounds.append((wav, plan.samples / SAMPLE_RATE))
            args = sound_args(plan, wav)
            commands.append(build_command(args))
            sound_jobs.append(_limited(limit, args, None, plan.seconds))
    picture_list, sound_list = work / "pictures.ffconcat", work / "sound.ffconcat"
    picture_list.write_text(segment_list(pictures), encoding="utf-8")
    sound_list.write_text(segment_list(sounds), encoding="utf-8")
    measured: dict[str, float] | None = None

    async def sound_then_measure() -> None:
        nonlocal measured
        await _gather(sound_jobs)
        if normalize:
            args = measure_args(["-f", "concat", "-safe", "0", "-i", str(sound_list)], "", "0:a:0", tracks, samples)
            commands.append(build_command(args))
            measured = parse_ebur128(await run_ffmpeg(args, progress=steps.part(len(encoded)),
                                                      total_seconds=seconds))

    await _gather([_gather(picture_jobs), sound_then_measure()])
    made = {(await asyncio.to_thread(_stream, p[0])).params for p in pictures if len(p) == 2}
    if made - {next(iter(copied.values())).params}:  # the encoder wrote other parameter sets
        await _gather([_encode_instead(clips, infos, part, pictures, i, codec, work, commands)
                       for i, (part, whole) in enumerate(parts) if whole])
        picture_list.write_text(segment_list(pictures), encoding="utf-8")
    loudnorm = loudness_filter(loudness, measured) if loudness is not None and measured is not None else None
    args = join_args(picture_list, sound_list if sound else None, output, tracks=tracks, samples=samples,
                     loudnorm=loudnorm)
    commands.append(build_command(args))
    await run_ffmpeg(args, progress=steps.part(len(encoded) + 1), total_seconds=seconds)
    return "segments", seconds, measured


async def _encode_instead(
    clips: Sequence[CutClip],
    infos: Sequence[ClipInfo],
    segment: Segment,
    pictures: list[tuple[Path, float] | tuple[Path, float, float]],
    index: int,
    codec: Sequence[str],
    work: Path,
    commands: list[list[str]],
) -> None:
    """Encode a segment that was to be copied, in place in ``pictures``."""
    plan = plan_filter(clips, infos, segment, audio=False)
    video = work / f"segment{index:04d}.mp4"
    args = render_args(plan, video, codec=codec)
    commands.append(build_command(args))
    await run_ffmpeg(args)
    pictures[index] = (video, plan.seconds)


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
