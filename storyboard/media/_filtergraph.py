"""The cut's filtergraph: each clip normalized to the film's frame rate and size and
trimmed to its piece of a segment, runs of cuts concatenated, transitions crossfaded.
Pure: functions returning a graph, unit-tested without ffmpeg."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from storyboard.media._probe import ClipInfo
from storyboard.media._timeline import (
    SAMPLE_RATE,
    CutClip,
    Piece,
    Segment,
    Timeline,
    plan_timeline,
    segment_of,
)

__all__ = ["AUDIO_FORMAT", "INPUT_THREADS", "FilterPlan", "crossfade", "plan_filter"]

# Per-input decoder threads: a window's inputs are open at once; small decoders keep
# each ffmpeg's memory small.
INPUT_THREADS = "2"
AUDIO_FORMAT = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
_FMT = AUDIO_FORMAT


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
        """The segment's length in seconds."""
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
        segment = segment_of(timeline, 0, timeline.total)
    if audio is None:
        audio = any(i.has_audio for i in infos)
    inputs: list[str] = []
    graph: list[str] = []
    for j, piece in enumerate(segment.pieces):
        inputs += ["-threads", INPUT_THREADS, "-i", str(infos[piece.clip].path)]
        graph += _piece(j, piece, clips[piece.clip], infos[piece.clip], infos[0], timeline.fps, video=video,
                        audio=audio)
    joined, acc_v, acc_a = _joined(clips, timeline, segment, video=video, audio=audio)
    graph += joined
    count = timeline.samples(segment.end) - timeline.samples(segment.start)
    out_a: str | None = None
    if audio:  # exact to the sample, so segments add up to the film
        graph.append(f"[{acc_a}]apad=whole_len={count},atrim=end_sample={count},asetpts=PTS-STARTPTS[sound]")
        out_a = "sound"
    return FilterPlan(
        inputs=inputs, graph=";".join(graph), video=acc_v, audio=out_a, frames=segment.end - segment.start,
        fps=timeline.fps, samples=count, sources=len(segment.pieces),
    )  # fmt: skip


def _samples(frames: int, fps: Fraction) -> int:
    return round(frames * SAMPLE_RATE / fps)


def _piece(j: int, piece: Piece, clip: CutClip, info: ClipInfo, first: ClipInfo, fps: Fraction, *, video: bool,
           audio: bool) -> list[str]:
    """How input ``j`` becomes its piece of the segment: the picture at the film's frame
    rate and size (``first``'s), trimmed to the piece, the last frame held past its end;
    the sound resampled and trimmed to the sample (silence for a clip without any)."""
    chains: list[str] = []
    if video:
        width, height = first.width, first.height
        seam = "trim=start_frame=1," if clip.trim_first_frame else ""
        held = 2 + round(clip.hold * fps)  # clone the last frame past the end (and for a hold)
        window = f"start_frame={piece.start}:end_frame={piece.end}" if piece.start else f"end_frame={piece.end}"
        chains.append(
            f"[{j}:v:0]{seam}setpts=PTS-STARTPTS,fps={fps},"
            f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,"
            f"tpad=stop_mode=clone:stop={held},trim={window},setpts=PTS-STARTPTS,"
            f"settb=AVTB[v{j}]"
        )
    if audio:
        start, last = _samples(piece.start, fps), _samples(piece.end, fps)
        if info.has_audio:
            seam = f"atrim=start={1 / info.fps:.6f}," if clip.trim_first_frame else ""
            window = f"start_sample={start}:end_sample={last}" if start else f"end_sample={last}"
            chains.append(
                f"[{j}:a:0]{seam}asetpts=PTS-STARTPTS,aresample={SAMPLE_RATE},{_FMT},"
                f"apad=whole_len={last},atrim={window},asetpts=PTS-STARTPTS[a{j}]"
            )
        else:  # silence of the piece's exact length, so the track never drifts
            chains.append(
                f"anullsrc=r={SAMPLE_RATE}:cl=stereo,{_FMT},atrim=end_sample={last - start},"
                f"asetpts=PTS-STARTPTS[a{j}]"
            )
    return chains


def _groups(timeline: Timeline, segment: Segment) -> list[list[int]]:
    """The segment's pieces in runs joined by cuts: a run opens where a transition does."""
    groups: list[list[int]] = []
    for j, piece in enumerate(segment.pieces):
        if j and piece.start == 0 and timeline.overlaps[piece.clip]:
            groups.append([j])
        elif groups:
            groups[-1].append(j)
        else:
            groups.append([j])
    return groups


def _joined(clips: Sequence[CutClip], timeline: Timeline, segment: Segment, *, video: bool,
            audio: bool) -> tuple[list[str], str, str]:
    """The chains joining the pieces: each run of cuts becomes one concat, and a run that
    opens with a transition is crossfaded onto everything before it. Returns the chains
    and the labels of the joined picture and sound."""
    graph: list[str] = []
    fps = timeline.fps
    acc_v = acc_a = ""
    end = segment.start
    for g, members in enumerate(_groups(timeline, segment)):
        head, tail = segment.pieces[members[0]], segment.pieces[members[-1]]
        gv, ga = f"v{members[0]}", f"a{members[0]}"
        if len(members) > 1:
            gv, ga = f"gv{g}", f"ga{g}"
            if video:
                graph.append("".join(f"[v{j}]" for j in members) + f"concat=n={len(members)}:v=1:a=0[{gv}]")
            if audio:
                graph.append("".join(f"[a{j}]" for j in members) + f"concat=n={len(members)}:v=0:a=1[{ga}]")
        group_end = tail.at + tail.end - tail.start
        if g == 0:
            acc_v, acc_a, end = gv, ga, group_end
            continue
        overlap = end - head.at
        assert overlap == timeline.overlaps[head.clip] > 0
        if video:
            graph += crossfade(acc_v, gv, head.at - segment.start, overlap, clips[head.clip].transition, fps, f"xv{g}")
        if audio:
            graph.append(f"[{acc_a}][{ga}]acrossfade=ns={_samples(overlap, fps)}:c1=tri:c2=tri[xa{g}]")
        acc_v, acc_a, end = f"xv{g}", f"xa{g}", group_end
    return graph, acc_v, acc_a


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
