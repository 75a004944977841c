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
import itertools
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from storyboard.errors import MediaError
from storyboard.facts import TRANSITIONS
from storyboard.media._ffmpeg import build_command, run_ffmpeg
from storyboard.media._probe import AudioInfo, ClipInfo, probe, probe_audio

SAMPLE_RATE = 48000
TRUE_PEAK = -1.5
LOUDNESS_RANGE = 11.0
# Per-input decoder threads: a window's inputs are open at once; small decoders keep
# each ffmpeg's memory small.
INPUT_THREADS = "2"
# At most this many clips (one demuxer + decoder each) in one ffmpeg.
WINDOW = 6
# Segments rendered at once. Each is bounded, so memory is bounded by PARALLEL windows.
PARALLEL = 2
# The one set of H.264 settings every piece of a film is encoded with: segments joined
# by stream copy must agree on them.
X264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")
AAC = ("-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-ac", "2")
_FMT = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"


@dataclass
class CutClip:
    """One clip in the cut. ``transition`` leads INTO this clip (ignored on the first)."""

    path: Path
    transition: str = "cut"
    transition_duration: float = 0.0
    trim_first_frame: bool = False  # a chained seam: drop the frame that repeats the last one


@dataclass
class MixTrack:
    """An extra track over the shots' own sound."""

    path: Path
    volume: float = 1.0
    duck: bool = False  # lowered while the shots' audio plays
    loop: bool = True  # repeat to cover the film (else pad with silence)


@dataclass
class AssemblyResult:
    path: Path
    method: str  # "copy" | "filter" | "segments"
    duration: float
    command: list[str] = field(default_factory=list)  # the ffmpeg run that wrote the film
    loudness: dict[str, float] | None = None  # first-pass measurement, when normalized
    commands: list[list[str]] = field(default_factory=list)  # every ffmpeg run, in order


def _same(a: float, b: float) -> bool:
    return abs(a - b) < 1e-3


def check_transitions(clips: Sequence[CutClip]) -> None:
    """Refuse unknown transitions and non-positive durations. Pure."""
    for index, clip in enumerate(clips):
        if clip.transition == "cut" or index == 0:
            continue
        if clip.transition not in TRANSITIONS:
            allowed = ", ".join(["cut", *sorted(TRANSITIONS - {"cut"})])
            raise MediaError(f"{clip.path}: unknown transition {clip.transition!r}; allowed: {allowed}")
        if clip.transition_duration <= 0:
            raise MediaError(f"{clip.path}: transition {clip.transition!r} needs a duration > 0")


def can_copy(clips: Sequence[CutClip], infos: Sequence[ClipInfo], audio: Sequence[MixTrack]) -> bool:
    """True when stream copy with the concat demuxer gives the right film. Pure."""
    if audio or not clips:
        return False
    if any(c.trim_first_frame for c in clips):
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


def _concat_quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list(infos: Sequence[ClipInfo]) -> str:
    """A concat-demuxer script; each file's duration is its video's, so audio priming
    does not push later clips off the picture. Pure."""
    lines = ["ffconcat version 1.0"]
    for info in infos:
        lines.append(f"file {_concat_quote(info.path.resolve())}")
        lines.append(f"duration {info.duration:.6f}")
        lines.append(f"outpoint {info.duration:.6f}")
    return "\n".join(lines) + "\n"


def copy_args(list_file: Path, output: Path) -> list[str]:
    """ffmpeg arguments joining the listed clips by stream copy. Pure."""
    return [
        "-f", "concat", "-safe", "0", "-i", str(list_file),
        "-map", "0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(output),
    ]  # fmt: skip


# ---- the timeline ------------------------------------------------------------------------


def clip_frames(clip: CutClip, info: ClipInfo, fps: Fraction) -> int:
    """Frames the clip contributes at the film's rate, after any seam trim. Pure."""
    seconds = info.duration
    if clip.trim_first_frame:
        seconds -= 1 / info.fps
    return max(1, round(seconds * fps))


@dataclass(frozen=True)
class Timeline:
    """Where every clip sits in the film, in frames at the film's rate."""

    fps: Fraction
    frames: tuple[int, ...]  # each clip's length, after its seam trim
    starts: tuple[int, ...]  # the film frame each clip begins at
    overlaps: tuple[int, ...]  # frames a clip's transition overlaps what precedes it; 0: a cut
    total: int

    def samples(self, frame: int) -> int:
        """Audio samples before film frame ``frame``."""
        return round(frame * SAMPLE_RATE / self.fps)

    def transitions(self) -> list[tuple[int, int]]:
        """(first frame, length) of every transition."""
        return [(s, o) for s, o in zip(self.starts, self.overlaps, strict=True) if o]

    def clean(self, frame: int) -> bool:
        """True when the film can be split before ``frame``: no transition runs across
        it and none starts on it (a piece must not begin with half a transition)."""
        return 0 < frame < self.total and all(not (s <= frame < s + o) for s, o in self.transitions())


def plan_timeline(clips: Sequence[CutClip], infos: Sequence[ClipInfo]) -> Timeline:
    """Lay the clips out: runs of cuts back to back, each transition overlapping the
    film so far by its duration (at most all but one frame of either side). Pure."""
    check_transitions(clips)
    fps = infos[0].fps_fraction
    frames = [clip_frames(c, i, fps) for c, i in zip(clips, infos, strict=True)]
    groups: list[list[int]] = []
    for k, clip in enumerate(clips):
        if k == 0 or clip.transition != "cut":
            groups.append([k])
        else:
            groups[-1].append(k)
    starts = [0] * len(clips)
    overlaps = [0] * len(clips)
    total = 0
    for g, members in enumerate(groups):
        length = sum(frames[k] for k in members)
        overlap = 0
        if g and total > 1 and length > 1:
            wanted = round(clips[members[0]].transition_duration * fps)
            overlap = max(1, min(wanted, total - 1, length - 1))
        at = total - overlap
        for k in members:
            starts[k] = at
            at += frames[k]
        overlaps[members[0]] = overlap
        total += length - overlap
    return Timeline(fps, tuple(frames), tuple(starts), tuple(overlaps), total)


@dataclass(frozen=True)
class Piece:
    """Frames ``[start, end)`` of clip ``clip`` (counted after its seam trim), placed at
    film frame ``at``."""

    clip: int
    start: int
    end: int
    at: int


@dataclass(frozen=True)
class Segment:
    """Film frames ``[start, end)`` and the clip pieces they are made of."""

    start: int
    end: int
    pieces: tuple[Piece, ...]


def _segment(timeline: Timeline, start: int, end: int) -> Segment:
    pieces = []
    for k, (at, n) in enumerate(zip(timeline.starts, timeline.frames, strict=True)):
        if at < end and at + n > start:
            first = max(start, at)
            pieces.append(Piece(k, first - at, min(end, at + n) - at, first))
    return Segment(start, end, tuple(pieces))


def _window_split(timeline: Timeline, run: Segment, window: int) -> list[int]:
    """Points that cut ``run`` into windows of at most ``window`` clips (more only where
    transitions leave no clean frame), each inside a clip right after its incoming
    transition, so that clip's start is decoded twice at most."""
    clips = [p.clip for p in run.pieces]
    points: list[int] = []
    first = 0  # index in ``clips`` of the current window's first clip
    while len(clips) - first > window:
        order = [*range(first + window - 1, first, -1), *range(first + window, len(clips))]
        for j in order:
            k = clips[j]
            lo = max(timeline.starts[k] + timeline.overlaps[k], (points or [run.start])[-1] + 1)
            found = next((f for f in range(lo, timeline.starts[k] + timeline.frames[k]) if timeline.clean(f)), None)
            if found is not None:
                points.append(found)
                first = j
                break
        else:
            break
    return points


def split_segments(timeline: Timeline, window: int = WINDOW) -> list[Segment]:
    """Cut the film into segments of at most ``window`` clips: at plain cuts, and long
    runs of transitions inside a clip; neighbours that fit in one window together are
    rendered together (fewer ffmpeg runs). Pure."""
    cuts = [
        at for k, at in enumerate(timeline.starts)
        if k and not timeline.overlaps[k] and timeline.clean(at)
    ]  # fmt: skip
    bounds = [0, *sorted(set(cuts)), timeline.total]
    points: list[int] = []
    for a, b in itertools.pairwise(bounds):
        points += [a, *_window_split(timeline, _segment(timeline, a, b), window)]
    points.append(timeline.total)
    merged = [0]
    for point, following in itertools.pairwise(points):
        if point > merged[-1] and len(_segment(timeline, merged[-1], following).pieces) > window:
            merged.append(point)
    merged.append(timeline.total)
    return [_segment(timeline, a, b) for a, b in itertools.pairwise(merged)]


# ---- filtergraphs ----------------------------------------------------------------------


@dataclass(frozen=True)
class FilterPlan:
    """A filtergraph rendering one segment, and what it yields."""

    inputs: list[str]  # ffmpeg input arguments
    graph: str
    video: str  # output labels
    audio: str | None
    frames: int  # length in frames
    fps: Fraction
    samples: int  # length in audio samples
    sources: int = 0  # how many inputs (the clips); extra inputs come after them

    @property
    def seconds(self) -> float:
        return float(self.frames / self.fps)


def plan_filter(
    clips: Sequence[CutClip],
    infos: Sequence[ClipInfo],
    segment: Segment | None = None,
    *,
    audio: bool | None = None,
    video: bool = True,
) -> FilterPlan:
    """The filtergraph that normalizes, trims and crossfades one segment (default: the
    whole cut). ``audio`` gives every clip sound (None: when any clip has some);
    ``video=False`` leaves the picture out. Pure."""
    timeline = plan_timeline(clips, infos)
    if segment is None:
        segment = _segment(timeline, 0, timeline.total)
    if audio is None:
        audio = any(i.has_audio for i in infos)
    fps = timeline.fps
    width, height = infos[0].width, infos[0].height
    inputs: list[str] = []
    graph: list[str] = []

    def samples(frames: int) -> int:
        return round(frames * SAMPLE_RATE / fps)

    for j, piece in enumerate(segment.pieces):
        clip, info = clips[piece.clip], infos[piece.clip]
        inputs += ["-threads", INPUT_THREADS, "-i", str(info.path)]
        if video:
            seam = "trim=start_frame=1," if clip.trim_first_frame else ""
            window = f"start_frame={piece.start}:end_frame={piece.end}" if piece.start else f"end_frame={piece.end}"
            graph.append(
                f"[{j}:v:0]{seam}setpts=PTS-STARTPTS,fps={fps},"
                f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,"
                f"tpad=stop_mode=clone:stop=2,trim={window},setpts=PTS-STARTPTS,"
                f"settb=AVTB[v{j}]"
            )
        if audio:
            first, last = samples(piece.start), samples(piece.end)
            if info.has_audio:
                seam = f"atrim=start={1 / info.fps:.6f}," if clip.trim_first_frame else ""
                window = f"start_sample={first}:end_sample={last}" if first else f"end_sample={last}"
                graph.append(
                    f"[{j}:a:0]{seam}asetpts=PTS-STARTPTS,aresample={SAMPLE_RATE},{_FMT},"
                    f"apad=whole_len={last},atrim={window},asetpts=PTS-STARTPTS[a{j}]"
                )
            else:  # silence of the piece's exact length, so the track never drifts
                graph.append(
                    f"anullsrc=r={SAMPLE_RATE}:cl=stereo,{_FMT},atrim=end_sample={last - first},"
                    f"asetpts=PTS-STARTPTS[a{j}]"
                )

    # Runs of cuts become one concat; a run that opens with a transition is crossfaded
    # onto everything before it.
    groups: list[list[int]] = []
    for j, piece in enumerate(segment.pieces):
        if j and piece.start == 0 and timeline.overlaps[piece.clip]:
            groups.append([j])
        elif groups:
            groups[-1].append(j)
        else:
            groups.append([j])
    acc_v = acc_a = ""
    end = segment.start
    for g, members in enumerate(groups):
        head = segment.pieces[members[0]]
        gv, ga = f"v{members[0]}", f"a{members[0]}"
        if len(members) > 1:
            gv, ga = f"gv{g}", f"ga{g}"
            if video:
                graph.append("".join(f"[v{j}]" for j in members) + f"concat=n={len(members)}:v=1:a=0[{gv}]")
            if audio:
                graph.append("".join(f"[a{j}]" for j in members) + f"concat=n={len(members)}:v=0:a=1[{ga}]")
        group_end = segment.pieces[members[-1]].at + segment.pieces[members[-1]].end - segment.pieces[members[-1]].start
        if g == 0:
            acc_v, acc_a, end = gv, ga, group_end
            continue
        overlap = end - head.at
        assert overlap == timeline.overlaps[head.clip] > 0
        transition = clips[head.clip].transition
        if video:
            graph += crossfade(acc_v, gv, head.at - segment.start, overlap, transition, fps, f"xv{g}")
        if audio:
            graph.append(f"[{acc_a}][{ga}]acrossfade=ns={samples(overlap)}:c1=tri:c2=tri[xa{g}]")
        acc_v, acc_a, end = f"xv{g}", f"xa{g}", group_end

    frames = segment.end - segment.start
    count = timeline.samples(segment.end) - timeline.samples(segment.start)
    out_a: str | None = None
    if audio:  # exact to the sample, so segments add up to the film
        graph.append(f"[{acc_a}]apad=whole_len={count},atrim=end_sample={count},asetpts=PTS-STARTPTS[sound]")
        out_a = "sound"
    return FilterPlan(
        inputs=inputs, graph=";".join(graph), video=acc_v, audio=out_a, frames=frames, fps=fps,
        samples=count, sources=len(segment.pieces),
    )  # fmt: skip


def crossfade(
    first: str, second: str, before: int, overlap: int, transition: str, fps: Fraction, out: str
) -> list[str]:
    """Filter chains crossfading the last ``overlap`` frames of ``first`` (which has
    ``before`` frames ahead of them) with the first ``overlap`` frames of ``second``,
    into ``out``. Only the overlap goes through xfade, which costs a frame copy for every
    frame it passes (~2 ms at 720p); the rest is split off and concatenated. Pure."""
    seconds = f"{float(overlap / fps):.6f}"
    chains = [
        f"[{first}]split=2[{out}a][{out}b]",
        f"[{out}b]trim=start_frame={before},setpts=PTS-STARTPTS[{out}t]",
        f"[{second}]split=2[{out}c][{out}d]",
        f"[{out}c]trim=end_frame={overlap}[{out}h]",
        f"[{out}d]trim=start_frame={overlap},setpts=PTS-STARTPTS[{out}r]",
        f"[{out}t][{out}h]xfade=transition={transition}:duration={seconds}:offset=0[{out}x]",
    ]
    if before <= 0:  # nothing ahead of the transition (a segment never starts in one)
        chains[0] = f"[{first}]null[{out}b]"
        return [*chains, f"[{out}x][{out}r]concat=n=2:v=1:a=0[{out}]"]
    return [
        *chains,
        f"[{out}a]trim=end_frame={before}[{out}p]",
        f"[{out}p][{out}x][{out}r]concat=n=3:v=1:a=0[{out}]",
    ]


def mix_graph(
    shots: str | None,
    tracks: Sequence[tuple[MixTrack, AudioInfo]],
    first_track: int,
    samples: int,
    loudnorm: str | None = None,
) -> str:
    """The audio graph over the shots' sound (input label ``shots``; None: silence):
    the tracks (inputs from ``first_track`` on) at their volume, looped or padded,
    ducked under the shots; then ``loudnorm`` (a complete filter), all exactly
    ``samples`` long, into ``[aout]``. Pure."""
    graph: list[str] = []
    if shots is None:
        graph.append(f"anullsrc=r={SAMPLE_RATE}:cl=stereo,{_FMT},atrim=end_sample={samples}[shots0]")
    else:
        graph.append(f"[{shots}]{_FMT}[shots0]")
    base = "shots0"
    ducked = [t for t, _ in tracks if t.duck]
    keys: list[str] = []
    if ducked:
        keys = [f"key{j}" for j in range(len(ducked))]
        graph.append(f"[{base}]asplit={len(ducked) + 1}[shots]" + "".join(f"[{k}]" for k in keys))
        base = "shots"
    mix = [base]
    for j, (track, _info) in enumerate(tracks):
        pad = "" if track.loop else f"apad=whole_len={samples},"
        graph.append(
            f"[{first_track + j}:a:0]aresample={SAMPLE_RATE},{_FMT},volume={track.volume:.4f},"
            f"{pad}atrim=end_sample={samples},asetpts=PTS-STARTPTS[m{j}]"
        )
        label = f"m{j}"
        if track.duck:
            graph.append(
                f"[{label}][{keys.pop(0)}]sidechaincompress=threshold=0.03:ratio=6:attack=20:"
                f"release=400:makeup=1[md{j}]"
            )
            label = f"md{j}"
        mix.append(label)
    mixed = base
    if len(mix) > 1:
        graph.append(
            "".join(f"[{m}]" for m in mix)
            + f"amix=inputs={len(mix)}:duration=first:dropout_transition=0:normalize=0[mix]"
        )
        mixed = "mix"
    tail = f"{loudnorm}," if loudnorm else ""
    graph.append(
        f"[{mixed}]{tail}aresample={SAMPLE_RATE},{_FMT},apad=whole_len={samples},"
        f"atrim=end_sample={samples}[aout]"
    )
    return ";".join(graph)


def _track_inputs(tracks: Sequence[tuple[MixTrack, AudioInfo]]) -> list[str]:
    args: list[str] = []
    for track, _info in tracks:
        args += (["-stream_loop", "-1"] if track.loop else []) + ["-i", str(track.path)]
    return args


def render_args(
    plan: FilterPlan,
    output: Path,
    *,
    tracks: Sequence[tuple[MixTrack, AudioInfo]] = (),
    loudnorm: str | None = None,
    sound: Path | None = None,
) -> list[str]:
    """ffmpeg arguments rendering ``plan``. With ``sound`` the picture goes to ``output``
    (H.264 only: a segment) and the sound to ``sound`` as float WAV; without, ``output``
    is the finished film: the ``tracks`` mixed in, ``loudnorm`` applied, AAC,
    +faststart. Pure."""
    args = [*plan.inputs]
    graph = plan.graph
    mixed = sound is None and bool(tracks or (loudnorm and plan.audio))
    if mixed:
        args += _track_inputs(tracks)
        graph += ";" + mix_graph(plan.audio, tracks, plan.sources, plan.samples, loudnorm)
    args += ["-filter_complex", graph, "-map", f"[{plan.video}]", *X264, "-r", str(plan.fps)]
    args += ["-frames:v", str(plan.frames)]
    has_sound = plan.audio is not None or mixed
    if sound is not None:
        args += ["-f", "mp4", str(output)]
        if plan.audio is not None:
            args += ["-map", f"[{plan.audio}]", "-c:a", "pcm_f32le", "-f", "wav", str(sound)]
        return args
    if has_sound:
        args += ["-map", f"[{'aout' if mixed else plan.audio}]", *AAC]
    return [*args, "-movflags", "+faststart", "-f", "mp4", str(output)]


def segment_list(files: Sequence[tuple[Path, float]]) -> str:
    """A concat-demuxer script for rendered segments (path, exact seconds). Pure."""
    lines = ["ffconcat version 1.0"]
    for path, seconds in files:
        lines += [f"file {_concat_quote(path.resolve())}", f"duration {seconds:.9f}"]
    return "\n".join(lines) + "\n"


def join_args(
    pictures: Path,
    sound: Path | None,
    output: Path,
    *,
    tracks: Sequence[tuple[MixTrack, AudioInfo]] = (),
    samples: int = 0,
    loudnorm: str | None = None,
) -> list[str]:
    """ffmpeg arguments joining segments (concat lists of their pictures and sound) into
    the film: picture by stream copy, sound mixed and encoded once. Pure."""
    args = ["-f", "concat", "-safe", "0", "-i", str(pictures)]
    if sound is not None:
        args += ["-f", "concat", "-safe", "0", "-i", str(sound)]
    args += _track_inputs(tracks)
    args += ["-map", "0:v:0", "-c:v", "copy"]
    if tracks or loudnorm:
        shots = "1:a:0" if sound is not None else None
        first = 2 if sound is not None else 1
        args += ["-filter_complex", mix_graph(shots, tracks, first, samples, loudnorm), "-map", "[aout]", *AAC]
    elif sound is not None:
        args += ["-map", "1:a:0", *AAC]
    return [*args, "-movflags", "+faststart", "-f", "mp4", str(output)]


def measure_args(
    sources: Sequence[str],
    graph: str,
    shots: str | None,
    tracks: Sequence[tuple[MixTrack, AudioInfo]],
    samples: int,
) -> list[str]:
    """ffmpeg arguments measuring the loudness (EBU R128: integrated, range, true peak,
    gate) of the sound ``graph`` makes from ``sources`` (label ``shots``) mixed with the
    ``tracks``, audio only. Pure."""
    first = sum(1 for arg in sources if arg == "-i")
    mixed = mix_graph(shots, tracks, first, samples, loudnorm_measure())
    return [
        *sources, *_track_inputs(tracks), "-filter_complex", ";".join(filter(None, [graph, mixed])),
        "-map", "[aout]", "-f", "null", "-",
    ]  # fmt: skip


# ---- loudness ----------------------------------------------------------------------------


def loudnorm_measure() -> str:
    """The measuring filter. ebur128 gives the same R128 quantities as loudnorm's first
    pass at 48 kHz (true peak 4x oversampled) and ~8x faster than loudnorm, which
    resamples everything to 192 kHz. Pure."""
    return "ebur128=peak=true:framelog=quiet"


def loudnorm_apply(target: float, measured: dict[str, float]) -> str:
    """The second-pass loudnorm filter with the first pass's measurements. Pure."""
    # loudnorm reads 0 LU of range as "not measured" and would leave linear mode
    lra = max(measured["input_lra"], 0.1)
    return (
        f"loudnorm=I={target}:TP={TRUE_PEAK}:LRA={LOUDNESS_RANGE}"
        f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={lra}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true:print_format=summary"
    )


def loudness_filter(target: float, measured: dict[str, float]) -> str:
    """The second-pass filter bringing the measured sound to ``target`` LUFS. Pure.

    Where loudnorm would run in linear mode (the gain keeps the true peak under
    :data:`TRUE_PEAK` and the range fits :data:`LOUDNESS_RANGE`) it applies exactly
    that static gain, so ``volume`` does the same at 48 kHz; loudnorm would resample
    to 192 kHz and back (most of this pass's audio time). Otherwise loudnorm, dynamic.
    """
    gain = target - measured["input_i"]
    peak = measured["input_tp"] + gain
    if peak <= TRUE_PEAK and measured["input_lra"] <= LOUDNESS_RANGE and measured["input_i"] != 0:
        return f"volume={gain:.4f}dB"
    return loudnorm_apply(target, measured)


def parse_ebur128(stderr: str) -> dict[str, float] | None:
    """ebur128's summary as loudnorm's first-pass keys; None when the audio is silent. Pure."""
    at = stderr.rfind("Summary:")
    if at < 0:
        raise MediaError("ebur128 printed no measurement", stderr=stderr)
    summary = stderr[at:]
    number = r"(-?(?:\d+(?:\.\d+)?|inf))"
    found = {
        "input_i": re.search(rf"Integrated loudness:\s*I:\s*{number} LUFS", summary),
        "input_thresh": re.search(rf"Integrated loudness:\s*I:\s*\S+ LUFS\s*Threshold:\s*{number} LUFS", summary),
        "input_lra": re.search(rf"LRA:\s*{number} LU\b", summary),
        "input_tp": re.search(rf"True peak:\s*Peak:\s*{number} dBFS", summary),
    }
    values: dict[str, float] = {}
    for key, match in found.items():
        if match is None:
            raise MediaError(f"ebur128 printed no {key}", stderr=stderr)
        values[key] = float(match.group(1))
    if any(v in (float("inf"), float("-inf")) for v in values.values()) or values["input_i"] <= -70:
        return None  # silence: nothing to normalize
    values["target_offset"] = 0.0
    return values


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
