"""Where every clip of a cut sits in the film, in frames, and how the film is split into
bounded segments. Pure: no ffmpeg runs here."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from storyboard.errors import MediaError
from storyboard.facts import TRANSITIONS
from storyboard.media._probe import ClipInfo

SAMPLE_RATE = 48000
# At most this many clips (one demuxer + decoder each) in one ffmpeg.
WINDOW = 6


@dataclass
class CutClip:
    """One clip in the cut. ``transition`` leads INTO this clip (ignored on the first)."""

    path: Path
    transition: str = "cut"
    transition_duration: float = 0.0
    trim_first_frame: bool = False  # a chained seam: drop the frame that repeats the last one
    hold: float = 0.0  # seconds the clip's last frame is held after it ends (silence under it)


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


def clip_frames(clip: CutClip, info: ClipInfo, fps: Fraction) -> int:
    """Frames the clip contributes at the film's rate, after any seam trim. Pure."""
    seconds = info.duration
    if clip.trim_first_frame:
        seconds -= 1 / info.fps
    return max(1, round(seconds * fps)) + round(clip.hold * fps)


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


def segment_of(timeline: Timeline, start: int, end: int) -> Segment:
    """The segment of film frames ``[start, end)`` with the clip pieces in it. Pure."""
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
        points += [a, *_window_split(timeline, segment_of(timeline, a, b), window)]
    points.append(timeline.total)
    merged = [0]
    for point, following in itertools.pairwise(points):
        if point > merged[-1] and len(segment_of(timeline, merged[-1], following).pieces) > window:
            merged.append(point)
    merged.append(timeline.total)
    return [segment_of(timeline, a, b) for a, b in itertools.pairwise(merged)]
