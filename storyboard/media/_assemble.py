"""Joining clips and audio into one film: stream copy when possible, else one filtergraph."""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from storyboard.errors import MediaError
from storyboard.media._ffmpeg import build_command, run_ffmpeg
from storyboard.media._probe import AudioInfo, ClipInfo, probe, probe_audio

SAMPLE_RATE = 48000
TRUE_PEAK = -1.5
LOUDNESS_RANGE = 11.0
# xfade's transitions (ffmpeg 6-7); "cut" means none.
TRANSITIONS = frozenset(
    ["fade", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown", "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite", "radial", "smoothleft", "smoothright", "smoothup", "smoothdown", "circleopen", "circleclose", "vertopen", "vertclose", "horzopen", "horzclose", "dissolve", "pixelize", "diagtl", "diagtr", "diagbl", "diagbr", "hlslice", "hrslice", "vuslice", "vdslice", "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr", "squeezeh", "squeezev", "zoomin", "fadefast", "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind", "coverleft", "coverright", "coverup", "coverdown", "revealleft", "revealright", "revealup", "revealdown"]
)
# Per-input decoder threads: many inputs are open at once in the filter path; keeping each
# decoder small keeps memory flat as the number of clips grows.
INPUT_THREADS = "2"


@dataclass
class CutClip:
    """One clip in the cut. ``transition`` leads INTO this clip (ignored on the first)."""

    path: Path
    transition: str = "cut"
    transition_duration: float = 0.0
    trim_first_frame: bool = False  # a chained seam: drop the frame that repeats the last one


@dataclass
class AudioTrack:
    """An extra track over the shots' own sound."""

    path: Path
    volume: float = 1.0
    duck: bool = False  # lowered while the shots' audio plays
    loop: bool = True  # repeat to cover the film (else pad with silence)


@dataclass
class AssemblyResult:
    path: Path
    method: str  # "copy" | "filter"
    duration: float
    command: list[str] = field(default_factory=list)
    loudness: dict[str, float] | None = None  # first-pass measurement, when normalized


def _fraction(value: float) -> Fraction:
    return Fraction(value).limit_denominator(1001)


def _same(a: float, b: float) -> bool:
    return abs(a - b) < 1e-3


def check_transitions(clips: Sequence[CutClip]) -> None:
    """Refuse unknown transitions and non-positive durations. Pure."""
    for index, clip in enumerate(clips):
        if clip.transition == "cut" or index == 0:
            continue
        if clip.transition not in TRANSITIONS:
            allowed = ", ".join(["cut", *sorted(TRANSITIONS)])
            raise MediaError(f"{clip.path}: unknown transition {clip.transition!r}; allowed: {allowed}")
        if clip.transition_duration <= 0:
            raise MediaError(f"{clip.path}: transition {clip.transition!r} needs a duration > 0")


def can_copy(clips: Sequence[CutClip], infos: Sequence[ClipInfo], audio: Sequence[AudioTrack]) -> bool:
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


@dataclass(frozen=True)
class FilterPlan:
    """The filtergraph and what it yields."""

    inputs: list[str]  # ffmpeg input arguments
    graph: str
    video: str  # output labels
    audio: str | None
    frames: int  # film length in frames
    fps: Fraction
    samples: int  # film length in audio samples

    @property
    def seconds(self) -> float:
        return float(self.frames / self.fps)


def clip_frames(clip: CutClip, info: ClipInfo, fps: Fraction) -> int:
    """Frames the clip contributes at the film's rate, after any seam trim. Pure."""
    seconds = info.duration
    if clip.trim_first_frame:
        seconds -= 1 / info.fps
    return max(1, round(seconds * fps))


def plan_filter(
    clips: Sequence[CutClip],
    infos: Sequence[ClipInfo],
    tracks: Sequence[tuple[AudioTrack, AudioInfo]] = (),
    *,
    loudnorm: str | None = None,
    video: bool = True,
) -> FilterPlan:
    """Build the one filtergraph that normalizes, trims, crossfades and mixes. Pure.

    ``loudnorm`` is a complete loudnorm filter to end the audio chain with (first pass:
    measuring; second pass: with the measured values). ``video=False`` leaves the picture
    out (the measuring pass).
    """
    check_transitions(clips)
    first = infos[0]
    fps = first.fps_fraction
    width, height = first.width, first.height
    any_audio = any(i.has_audio for i in infos) or bool(tracks)
    inputs: list[str] = []
    for info in infos:
        inputs += ["-threads", INPUT_THREADS, "-i", str(info.path)]
    graph: list[str] = []
    frames = [clip_frames(c, i, fps) for c, i in zip(clips, infos, strict=True)]

    def samples_of(n: int) -> int:
        return round(n * SAMPLE_RATE / fps)

    for k, (clip, info) in enumerate(zip(clips, infos, strict=True)):
        n = frames[k]
        if video:
            trim = "trim=start_frame=1," if clip.trim_first_frame else ""
            graph.append(
                f"[{k}:v:0]{trim}setpts=PTS-STARTPTS,fps={fps},"
                f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,"
                f"tpad=stop_mode=clone:stop=2,trim=end_frame={n},setpts=PTS-STARTPTS,"
                f"settb=AVTB[v{k}]"
            )
        if any_audio:
            count = samples_of(n)
            fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
            if info.has_audio:
                trim = f"atrim=start={1 / info.fps:.6f}," if clip.trim_first_frame else ""
                graph.append(
                    f"[{k}:a:0]{trim}asetpts=PTS-STARTPTS,aresample={SAMPLE_RATE},{fmt},"
                    f"apad=whole_len={count},atrim=end_sample={count},asetpts=PTS-STARTPTS[a{k}]"
                )
            else:  # silence of the clip's exact length, so the track never drifts
                graph.append(
                    f"anullsrc=r={SAMPLE_RATE}:cl=stereo,{fmt},atrim=end_sample={count},"
                    f"asetpts=PTS-STARTPTS[a{k}]"
                )

    # Runs of cuts become one concat; runs are then crossfaded in order.
    groups: list[list[int]] = []
    for k, clip in enumerate(clips):
        if k == 0 or clip.transition != "cut":
            groups.append([k])
        else:
            groups[-1].append(k)
    total = 0
    acc_v = acc_a = ""
    for g, members in enumerate(groups):
        length = sum(frames[k] for k in members)
        gv, ga = f"gv{g}", f"ga{g}"
        if len(members) == 1:
            gv, ga = f"v{members[0]}", f"a{members[0]}"
        else:
            if video:
                labels = "".join(f"[v{k}]" for k in members)
                graph.append(f"{labels}concat=n={len(members)}:v=1:a=0[{gv}]")
            if any_audio:
                labels = "".join(f"[a{k}]" for k in members)
                graph.append(f"{labels}concat=n={len(members)}:v=0:a=1[{ga}]")
        if g == 0:
            acc_v, acc_a, total = gv, ga, length
            continue
        clip = clips[members[0]]
        overlap = max(1, min(round(clip.transition_duration * fps), total - 1, length - 1))
        if total <= 1 or length <= 1:
            overlap = 0
        offset = (total - overlap) / fps
        if video:
            if overlap:
                graph.append(
                    f"[{acc_v}][{gv}]xfade=transition={clip.transition}:"
                    f"duration={float(overlap / fps):.6f}:offset={float(offset):.6f}[xv{g}]"
                )
            else:
                graph.append(f"[{acc_v}][{gv}]concat=n=2:v=1:a=0[xv{g}]")
        if any_audio:
            if overlap:
                graph.append(
                    f"[{acc_a}][{ga}]acrossfade=ns={samples_of(overlap)}:c1=tri:c2=tri[xa{g}]"
                )
            else:
                graph.append(f"[{acc_a}][{ga}]concat=n=2:v=0:a=1[xa{g}]")
        acc_v, acc_a = f"xv{g}", f"xa{g}"
        total += length - overlap

    film_samples = samples_of(total)
    out_v = "vout"
    if video:
        graph.append(f"[{acc_v}]format=yuv420p[{out_v}]")
    out_a: str | None = None
    if any_audio:
        shots = acc_a
        fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
        ducked = [t for t, _ in tracks if t.duck]
        keys: list[str] = []
        if ducked:
            graph.append(f"[{shots}]asplit={len(ducked) + 1}[shots]" + "".join(f"[key{j}]" for j in range(len(ducked))))
            shots = "shots"
            keys = [f"key{j}" for j in range(len(ducked))]
        mix = [shots]
        base = len(infos)
        for j, (track, _info) in enumerate(tracks):
            pad = "" if track.loop else f"apad=whole_len={film_samples},"
            graph.append(
                f"[{base + j}:a:0]aresample={SAMPLE_RATE},{fmt},volume={track.volume:.4f},"
                f"{pad}atrim=end_sample={film_samples},asetpts=PTS-STARTPTS[m{j}]"
            )
            label = f"m{j}"
            if track.duck:
                key = keys.pop(0)
                graph.append(
                    f"[{label}][{key}]sidechaincompress=threshold=0.03:ratio=6:attack=20:"
                    f"release=400:makeup=1[md{j}]"
                )
                label = f"md{j}"
            mix.append(label)
        if len(mix) > 1:
            graph.append(
                "".join(f"[{m}]" for m in mix)
                + f"amix=inputs={len(mix)}:duration=first:dropout_transition=0:normalize=0[mix]"
            )
            mixed = "mix"
        else:
            mixed = shots
        tail = f"{loudnorm}," if loudnorm else ""
        graph.append(
            f"[{mixed}]{tail}aresample={SAMPLE_RATE},{fmt},apad=whole_len={film_samples},"
            f"atrim=end_sample={film_samples}[aout]"
        )
        out_a = "aout"
        for track, _info in tracks:
            inputs += (["-stream_loop", "-1"] if track.loop else []) + ["-i", str(track.path)]
    return FilterPlan(
        inputs=inputs,
        graph=";".join(graph),
        video=out_v,
        audio=out_a,
        frames=total,
        fps=fps,
        samples=film_samples,
    )


def loudnorm_measure(target: float) -> str:
    """The first-pass loudnorm filter. Pure."""
    return f"loudnorm=I={target}:TP={TRUE_PEAK}:LRA={LOUDNESS_RANGE}:print_format=json"


def loudnorm_apply(target: float, measured: dict[str, float]) -> str:
    """The second-pass loudnorm filter with the first pass's measurements. Pure."""
    return (
        f"loudnorm=I={target}:TP={TRUE_PEAK}:LRA={LOUDNESS_RANGE}"
        f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true:print_format=summary"
    )


def parse_loudnorm(stderr: str) -> dict[str, float] | None:
    """The JSON block loudnorm prints, as floats; None when the audio is silent. Pure."""
    found = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not found:
        raise MediaError("loudnorm printed no measurement", stderr=stderr)
    raw = json.loads(found[-1])
    values: dict[str, float] = {}
    for key, value in raw.items():
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            continue
    if values.get("input_i", float("-inf")) < -70 or "input_thresh" not in values:
        return None  # silence: nothing to normalize
    for key in ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset"):
        if key not in values or values[key] in (float("inf"), float("-inf")):
            return None
    return values


def measure_args(plan: FilterPlan) -> list[str]:
    """ffmpeg arguments for the audio-only measuring pass. Pure."""
    assert plan.audio is not None
    return [*plan.inputs, "-filter_complex", plan.graph, "-map", f"[{plan.audio}]", "-f", "null", "-"]


def render_args(plan: FilterPlan, output: Path, *, preset: str = "veryfast", crf: int = 18) -> list[str]:
    """ffmpeg arguments for the final render. Pure."""
    args = [*plan.inputs, "-filter_complex", plan.graph, "-map", f"[{plan.video}]"]
    if plan.audio:
        args += ["-map", f"[{plan.audio}]", "-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-ac", "2"]
    args += [
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-r", str(plan.fps), "-frames:v", str(plan.frames),
        "-movflags", "+faststart", "-f", "mp4", str(output),
    ]  # fmt: skip
    return args


def _temp_output(output: Path) -> Path:
    return output.with_name(f".{output.stem}.{uuid.uuid4().hex[:8]}.tmp.mp4")


def _scaled(progress: Callable[[float], None] | None, start: float, end: float) -> Callable[[float], None] | None:
    if progress is None:
        return None
    return lambda fraction: progress(start + (end - start) * fraction)


async def assemble(
    clips: Sequence[CutClip],
    output: Path,
    *,
    audio: Sequence[AudioTrack] = (),
    loudness: float | None = -14.0,
    progress: Callable[[float], None] | None = None,
) -> AssemblyResult:
    """Join ``clips`` (with their transitions) and ``audio`` into ``output``.

    Cuts of matching clips with no extra audio are joined by stream copy ("copy");
    anything else is one ffmpeg filtergraph ("filter") with a two-pass EBU R128 loudness
    normalization to ``loudness`` LUFS (None: leave levels alone). The file appears
    atomically. A missing or invalid clip or audio file raises MediaError naming it.
    """
    if not clips:
        raise MediaError("nothing to assemble: the cut is empty")
    output = Path(output)
    infos = [probe(Path(c.path)) for c in clips]
    tracks = [(t, probe_audio(Path(t.path))) for t in audio]
    check_transitions(clips)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_output(output)
    try:
        if can_copy(clips, infos, audio):
            with tempfile.TemporaryDirectory(prefix=".concat-", dir=output.parent) as tmp_dir:
                list_file = Path(tmp_dir) / "list.ffconcat"
                list_file.write_text(concat_list(infos), encoding="utf-8")
                args = copy_args(list_file, tmp)
                await run_ffmpeg(args)
            method = "copy"
            measured = None
        else:
            method = "filter"
            measured = None
            plan = plan_filter(clips, infos, tracks)
            render_progress = progress
            if loudness is not None and plan.audio is not None:
                measuring = plan_filter(clips, infos, tracks, loudnorm=loudnorm_measure(loudness), video=False)
                stderr = await run_ffmpeg(
                    measure_args(measuring),
                    progress=_scaled(progress, 0.0, 0.2),
                    total_seconds=measuring.seconds,
                )
                measured = parse_loudnorm(stderr)
                if measured is not None:
                    plan = plan_filter(clips, infos, tracks, loudnorm=loudnorm_apply(loudness, measured))
                render_progress = _scaled(progress, 0.2, 1.0)
            args = render_args(plan, tmp)
            await run_ffmpeg(args, progress=render_progress, total_seconds=plan.seconds)
        duration = probe(tmp).duration
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    return AssemblyResult(
        path=output, method=method, duration=duration, command=build_command(args), loudness=measured
    )
