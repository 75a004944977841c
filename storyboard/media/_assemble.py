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
(:func:`preview_x264`), and what lies outside transitions from a keyframe on goes in as it
is (stream copy): only the frames around transitions are encoded, and the sound is made,
measured and mixed beside them ("segments").
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
from storyboard.media._steps import WeightedProgress, gather, limited
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


@dataclass
class _Job:
    """One assembly: its inputs, where it writes, and what it has run so far."""

    clips: Sequence[CutClip]
    infos: Sequence[ClipInfo]
    tracks: Sequence[tuple[MixTrack, AudioInfo]]
    loudness: float | None
    output: Path  # the temporary film
    work: Path  # the folder of segments
    progress: Callable[[float], None] | None
    commands: list[list[str]] = field(default_factory=list)

    async def run(self, args: list[str], progress: Callable[[float], None] | None = None,
                  seconds: float | None = None) -> str:
        """Run one ffmpeg, recorded in :attr:`commands`."""
        self.commands.append(build_command(args))
        return await run_ffmpeg(args, progress=progress, total_seconds=seconds)

    def later(self, limit: asyncio.Semaphore, args: list[str], progress: Callable[[float], None] | None,
              seconds: float) -> Coroutine[Any, Any, None]:
        """One ffmpeg to run among others, recorded now, run when ``limit`` lets it."""
        self.commands.append(build_command(args))
        return limited(limit, args, progress, seconds)


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
    measured: dict[str, float] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix=".assemble-", dir=output.parent) as tmp_dir:
            job = _Job(clips, infos, tracks, loudness, tmp, Path(tmp_dir), progress)
            if can_copy(clips, infos, audio):
                method = "copy"
                list_file = job.work / "list.ffconcat"
                list_file.write_text(concat_list(infos), encoding="utf-8")
                await job.run(copy_args(list_file, tmp))
                duration = sum(i.duration for i in infos)
            else:
                method, duration, measured = await _render(job)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    return AssemblyResult(path=output, method=method, duration=duration, command=job.commands[-1],
                          loudness=measured, commands=job.commands)


async def _measure(job: _Job, args: list[str], progress: Callable[[float], None] | None,
                   seconds: float) -> tuple[dict[str, float] | None, str | None]:
    """The first pass's measurement and the second pass's filter (None: silence)."""
    assert job.loudness is not None
    measured = parse_ebur128(await job.run(args, progress, seconds))
    return measured, (None if measured is None else loudness_filter(job.loudness, measured))


async def _render(job: _Job) -> tuple[str, float, dict[str, float] | None]:
    clips, infos, tracks = job.clips, job.infos, job.tracks
    timeline = plan_timeline(clips, infos)
    codec, runs = await _preview(clips, infos, timeline)
    if runs:
        return await _render_copying(job, timeline, runs, codec)
    segments = split_segments(timeline, WINDOW)
    shots_audio = any(i.has_audio for i in infos)
    sound = shots_audio or bool(tracks)
    normalize = job.loudness is not None and sound
    seconds = float(timeline.total / timeline.fps)
    samples = timeline.samples(timeline.total)
    measured, loudnorm = None, None
    if len(segments) == 1:
        # One bounded piece: measure from the clips' sound alone (no picture decoded),
        # then one pass encodes picture and sound side by side.
        steps = WeightedProgress(job.progress, [0.15 if normalize else 0.0, 1.0])
        plan = plan_filter(clips, infos, segments[0], audio=shots_audio)
        if normalize:
            quiet = plan_filter(clips, infos, segments[0], audio=shots_audio, video=False)
            measured, loudnorm = await _measure(
                job, measure_args(quiet.inputs, quiet.graph, quiet.audio, tracks, samples), steps.part(0), seconds)
        await job.run(render_args(plan, job.output, tracks=tracks, loudnorm=loudnorm, codec=codec),
                      steps.part(1), seconds)
        return "filter", seconds, measured

    # Each segment: picture as H.264 (joined later by stream copy), sound as float WAV
    # (joined sample-exactly: AAC segments would each add encoder priming and padding).
    weights = [float(s.end - s.start) for s in segments] + ([0.05 * timeline.total] if normalize else [])
    steps = WeightedProgress(job.progress, [*weights, 0.1 * timeline.total])
    limit = asyncio.Semaphore(PARALLEL)
    pictures: list[tuple[Path, float]] = []
    sounds: list[tuple[Path, float]] = []
    jobs: list[Coroutine[Any, Any, None]] = []
    for index, segment in enumerate(segments):
        plan = plan_filter(clips, infos, segment, audio=sound)
        video, wav = job.work / f"segment{index:04d}.mp4", job.work / f"segment{index:04d}.wav"
        pictures.append((video, plan.seconds))
        sounds.append((wav, plan.samples / SAMPLE_RATE))
        jobs.append(job.later(limit, render_args(plan, video, sound=wav, codec=codec), steps.part(index),
                              plan.seconds))
    await gather(jobs)
    picture_list, sound_list = job.work / "pictures.ffconcat", job.work / "sound.ffconcat"
    picture_list.write_text(segment_list(pictures), encoding="utf-8")
    sound_list.write_text(segment_list(sounds), encoding="utf-8")
    if normalize:
        args = measure_args(["-f", "concat", "-safe", "0", "-i", str(sound_list)], "", "0:a:0", tracks, samples)
        measured, loudnorm = await _measure(job, args, steps.part(len(segments)), seconds)
    args = join_args(picture_list, sound_list if sound else None, job.output, tracks=tracks, samples=samples,
                     loudnorm=loudnorm)
    await job.run(args, steps.part(len(weights)), seconds)
    return "segments", seconds, measured


# ---- films of preview clips: stream copy outside transitions -----------------------------

# The fewest frames worth copying: shorter runs are encoded with their neighbours.
MIN_RUN = 4


@dataclass(frozen=True)
class _Stream:
    """What decides whether a clip's picture can go into the film as it is."""

    params: bytes | None  # the H.264 parameter sets (the MP4's avcC)
    preview: bool = False  # made by the animatic with preview_x264
    frames: int = 0  # frames in display order (0: reordered, or unreadable: never copied)
    keys: frozenset[int] = frozenset()  # the frames that are keyframes


def _stream(path: Path) -> _Stream:
    """Demuxes the picture; decodes nothing."""
    import av  # deferred: assembling a cut of matching clips by stream copy needs no PyAV here

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            params = bytes(video.codec_context.extradata or b"") or None
            preview = video.metadata.get("handler_name") == PREVIEW_HANDLER
            keys: set[int] = set()
            last, count = -1, 0
            for packet in container.demux(video):
                if not packet.size:
                    continue
                if packet.pts is None or packet.pts != packet.dts or packet.pts <= last:
                    return _Stream(params, preview)  # reordered frames: copy runs would not line up
                if packet.is_keyframe:
                    keys.add(count)
                last, count = packet.pts, count + 1
            return _Stream(params, preview, count, frozenset(keys))
    except (av.FFmpegError, OSError, IndexError):
        return _Stream(None)


def _copy_run(path: Path, first: int, end: int, dest: Path) -> None:
    """Frames ``[first, end)`` of ``path`` (``first`` a keyframe), picture only, by stream
    copy into ``dest``: a file the concat demuxer plays whole (no in/out points, whose
    ends would be decided by whichever stream reaches them first)."""
    import av

    with av.open(str(path)) as source, av.open(str(dest), "w", format="mp4") as out:
        video = source.streams.video[0]
        copy = out.add_stream_from_template(video)
        index, offset = 0, None
        for packet in source.demux(video):
            if not packet.size:
                continue
            if first <= index < end:
                assert packet.pts is not None
                offset = packet.pts if offset is None else offset
                packet.pts = packet.dts = packet.pts - offset
                packet.stream = copy
                out.mux(packet)
            index += 1
            if index >= end:
                break


async def _preview(
    clips: Sequence[CutClip], infos: Sequence[ClipInfo], timeline: Timeline
) -> tuple[Sequence[str], dict[int, tuple[int, int]]]:
    """The film's H.264 settings, and the film frames ``[a, b)`` of each clip that go in
    by stream copy: for a film of preview clips with one set of parameter sets, the
    preview settings and every run outside transitions that starts on a keyframe;
    otherwise :data:`X264` and nothing copied."""
    if timeline.fps.denominator != 1 or any(i.vcodec != "h264" for i in infos):
        return X264, {}
    streams = await asyncio.to_thread(lambda: [_stream(Path(i.path)) for i in infos])
    if not all(s.preview for s in streams) or len({s.params for s in streams}) != 1 or streams[0].params is None:
        return X264, {}
    runs = {k: run for k, s in enumerate(streams) if (run := _run(k, clips, infos, s, timeline)) is not None}
    return preview_x264(int(timeline.fps)), runs


def _run(
    k: int, clips: Sequence[CutClip], infos: Sequence[ClipInfo], stream: _Stream, timeline: Timeline
) -> tuple[int, int] | None:
    """The film frames ``[a, b)`` of clip ``k`` that can be copied: outside transitions,
    from a keyframe, at the film's size and rate, the clip played as it is (no hold, no
    early end); None when there are none worth it. Pure."""
    clip, info, film = clips[k], infos[k], infos[0]
    trim = 1 if clip.trim_first_frame else 0
    if (clip.hold or clip.end_at is not None or stream.frames != timeline.frames[k] + trim
            or (info.width, info.height, info.pix_fmt) != (film.width, film.height, "yuv420p")
            or info.fps_fraction != timeline.fps):
        return None
    start = timeline.starts[k]
    following = timeline.overlaps[k + 1] if k + 1 < len(clips) else 0
    lo, hi = start + timeline.overlaps[k], start + timeline.frames[k] - following
    a = next((f for f in range(lo, hi) if f - start + trim in stream.keys and (f == 0 or timeline.clean(f))), None)
    if a is None:
        return None
    b = next((f for f in range(hi, a, -1) if f == timeline.total or timeline.clean(f)), a)
    return (a, b) if b - a >= MIN_RUN else None


def _carve(
    timeline: Timeline, segments: Sequence[Segment], runs: dict[int, tuple[int, int]]
) -> list[tuple[Segment, int | None]]:
    """The segments cut at the ends of every copy run: each part with the clip it copies
    (None: encoded). Pure."""
    out: list[tuple[Segment, int | None]] = []
    for segment in segments:
        points = {segment.start, segment.end}
        for a, b in runs.values():
            if segment.start <= a and b <= segment.end:
                points |= {a, b}
        for a, b in itertools.pairwise(sorted(points)):
            copied = next((k for k, run in runs.items() if run == (a, b)), None)
            out.append((segment_of(timeline, a, b), copied))
    return out


async def _render_copying(
    job: _Job, timeline: Timeline, runs: dict[int, tuple[int, int]], codec: Sequence[str]
) -> tuple[str, float, dict[str, float] | None]:
    """Copied runs of clips and encoded transitions, their picture joined by stream
    copy; the sound of every segment made alone (no picture decoded), measured while the
    transitions encode, then mixed and encoded once."""
    clips, infos, tracks = job.clips, job.infos, job.tracks
    segments = split_segments(timeline, WINDOW)
    parts = _carve(timeline, segments, runs)
    sound = any(i.has_audio for i in infos) or bool(tracks)
    normalize = job.loudness is not None and sound
    seconds = float(timeline.total / timeline.fps)
    samples = timeline.samples(timeline.total)
    encoded = [float(s.end - s.start) for s, copied in parts if copied is None]
    steps = WeightedProgress(job.progress, [*encoded, 0.05 * timeline.total if sound else 0.0,
                                            0.1 * timeline.total])
    limit = asyncio.Semaphore(PARALLEL)
    pictures: list[tuple[Path, float]] = []
    sounds: list[tuple[Path, float]] = []
    picture_jobs: list[Coroutine[Any, Any, None]] = []
    sound_jobs: list[Coroutine[Any, Any, None]] = []
    for index, (segment, copied) in enumerate(parts):
        video = job.work / f"segment{index:04d}.mp4"
        if copied is not None:
            trim = 1 if clips[copied].trim_first_frame else 0
            first = segment.start - timeline.starts[copied] + trim
            pictures.append((video, float((segment.end - segment.start) / timeline.fps)))
            picture_jobs.append(asyncio.to_thread(_copy_run, Path(infos[copied].path), first,
                                                  first + segment.end - segment.start, video))
        else:
            plan = plan_filter(clips, infos, segment, audio=False)
            pictures.append((video, plan.seconds))
            picture_jobs.append(job.later(limit, render_args(plan, video, codec=codec),
                                          steps.part(sum(1 for _, c in parts[:index] if c is None)),
                                          plan.seconds))
    for index, segment in enumerate(segments if sound else []):
        plan = plan_filter(clips, infos, segment, audio=True, video=False)
        wav = job.work / f"sound{index:04d}.wav"
        sounds.append((wav, plan.samples / SAMPLE_RATE))
        sound_jobs.append(job.later(limit, sound_args(plan, wav), None, plan.seconds))
    picture_list, sound_list = job.work / "pictures.ffconcat", job.work / "sound.ffconcat"
    sound_list.write_text(segment_list(sounds), encoding="utf-8")
    measured: dict[str, float] | None = None
    loudnorm: str | None = None

    async def sound_then_measure() -> None:
        nonlocal measured, loudnorm
        await gather(sound_jobs)
        if normalize:
            args = measure_args(["-f", "concat", "-safe", "0", "-i", str(sound_list)], "", "0:a:0", tracks, samples)
            measured, loudnorm = await _measure(job, args, steps.part(len(encoded)), seconds)

    await gather([gather(picture_jobs), sound_then_measure()])
    made = {(await asyncio.to_thread(_stream, path)).params for path, _ in pictures}
    if len(made) != 1:  # the encoder wrote other parameter sets than the clips': encode it all
        await gather([_encode_instead(job, part, pictures, i, codec)
                      for i, (part, copied) in enumerate(parts) if copied is not None])
    picture_list.write_text(segment_list(pictures), encoding="utf-8")
    args = join_args(picture_list, sound_list if sound else None, job.output, tracks=tracks, samples=samples,
                     loudnorm=loudnorm)
    await job.run(args, steps.part(len(encoded) + 1), seconds)
    return "segments", seconds, measured


async def _encode_instead(
    job: _Job, segment: Segment, pictures: list[tuple[Path, float]], index: int, codec: Sequence[str]
) -> None:
    """Encode a segment that was to be copied, in place in ``pictures``."""
    plan = plan_filter(job.clips, job.infos, segment, audio=False)
    video = job.work / f"encoded{index:04d}.mp4"
    await job.run(render_args(plan, video, codec=codec))
    pictures[index] = (video, plan.seconds)
