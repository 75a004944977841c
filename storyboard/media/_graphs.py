"""ffmpeg arguments and filtergraphs for assembly: concat scripts, the sound (tracks,
ducking) and loudness; the cut's own graph (trims, crossfades) is ``_filtergraph``'s.
Pure: functions returning argument lists, unit-tested without ffmpeg; running them is
``_assemble``'s job."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storyboard.errors import MediaError
from storyboard.media._filtergraph import AUDIO_FORMAT as _FMT
from storyboard.media._filtergraph import INPUT_THREADS, FilterPlan, crossfade, plan_filter
from storyboard.media._probe import AudioInfo, ClipInfo
from storyboard.media._timeline import SAMPLE_RATE

TRUE_PEAK = -1.5
LOUDNESS_RANGE = 11.0
# The one set of H.264 settings every piece of a film is encoded with: segments joined
# by stream copy must agree on them.
X264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")
AAC = ("-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-ac", "2")


@dataclass
class MixTrack:
    """An extra track over the shots' own sound."""

    path: Path
    volume: float = 1.0
    duck: bool = False  # lowered while the shots' audio plays
    loop: bool = True  # repeat to cover the film (else pad with silence)
    # A narration track: the film seconds its lines play; while they do, the other tracks
    # are lowered by ``duck_music`` dB and the shots' own sound by ``duck_shots`` dB.
    speaks: tuple[tuple[float, float], ...] = ()
    duck_music: float = 0.0
    duck_shots: float = 0.0
    fade_out: float = 0.0  # seconds of fade to silence at the film's end (generated music)


def _duck_filter(windows: Sequence[tuple[float, float]], db: float) -> str:
    """A volume filter (with its leading comma) lowering the sound by ``db`` inside
    ``windows`` (film seconds); empty when there is nothing to lower. Pure."""
    if not windows or db == 0:
        return ""
    during = "+".join(f"between(t,{a:.3f},{b:.3f})" for a, b in windows)
    return f",volume=volume={db:.2f}dB:enable='{during}'"


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
    voices = [t for t, _ in tracks if t.speaks]
    windows = [w for t in voices for w in t.speaks]
    shots_duck = _duck_filter(windows, voices[0].duck_shots) if voices else ""
    music_duck = _duck_filter(windows, voices[0].duck_music) if voices else ""
    if shots is None:
        graph.append(f"anullsrc=r={SAMPLE_RATE}:cl=stereo,{_FMT},atrim=end_sample={samples}[shots0]")
    else:
        graph.append(f"[{shots}]{_FMT}{shots_duck}[shots0]")
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
        duck = "" if track.speaks else music_duck
        fade = min(track.fade_out, samples / SAMPLE_RATE)
        fade_out = (f",afade=t=out:st={samples / SAMPLE_RATE - fade:.4f}:d={fade:.4f}"
                    if fade > 0 else "")
        graph.append(
            f"[{first_track + j}:a:0]aresample={SAMPLE_RATE},{_FMT},volume={track.volume:.4f},"
            f"{pad}atrim=end_sample={samples},asetpts=PTS-STARTPTS{duck}{fade_out}[m{j}]"
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
    codec: Sequence[str] = X264,
) -> list[str]:
    """ffmpeg arguments rendering ``plan``. With ``sound`` the picture goes to ``output``
    (H.264 only: a segment) and the sound to ``sound`` as float WAV; without, ``output``
    is the finished film: the ``tracks`` mixed in, ``loudnorm`` applied, AAC,
    +faststart. ``codec``: the H.264 settings (a film of previews uses theirs). Pure."""
    args = [*plan.inputs]
    graph = plan.graph
    mixed = sound is None and bool(tracks or (loudnorm and plan.audio))
    if mixed:
        args += _track_inputs(tracks)
        graph += ";" + mix_graph(plan.audio, tracks, plan.sources, plan.samples, loudnorm)
    args += ["-filter_complex", graph, "-map", f"[{plan.video}]", *codec, "-r", str(plan.fps)]
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


def sound_args(plan: FilterPlan, sound: Path) -> list[str]:
    """ffmpeg arguments writing a segment's sound alone (``plan`` made with
    ``video=False``) as float WAV: no picture decoded. Pure."""
    if plan.audio is None:
        raise MediaError("a sound-only segment needs a plan with sound")
    return [*plan.inputs, "-filter_complex", plan.graph, "-map", f"[{plan.audio}]",
            "-c:a", "pcm_f32le", "-f", "wav", str(sound)]


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


__all__ = ["AAC", "INPUT_THREADS", "X264", "FilterPlan", "MixTrack", "crossfade", "plan_filter"]
