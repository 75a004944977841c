"""OpenTimelineIO export of the cut: the clips (by their cache paths), the transitions
and the music tracks, so the film can be reopened in an editor that reads OTIO."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.request import chained_to

if TYPE_CHECKING:
    from storyboard.board import Board
    from storyboard.events import RenderResult


def _rt(seconds: float, rate: float) -> Any:
    import opentimelineio as otio

    return otio.opentime.RationalTime(round(seconds * rate), rate)


def _range(start: float, duration: float, rate: float) -> Any:
    import opentimelineio as otio

    return otio.opentime.TimeRange(_rt(start, rate), _rt(duration, rate))


def build_timeline(board: Board, result: RenderResult, music: Sequence[tuple[Path, Any]] = ()) -> Any:
    """An ``otio.schema.Timeline`` of the cut. Transitions take half their length from
    each neighbouring clip, and a trimmed seam drops a chained clip's first frame, as
    the assembly does, so the track lasts as long as the assembled film."""
    import opentimelineio as otio

    from storyboard.media import probe

    spec = board.spec
    infos = []
    for sid in spec.cut:
        clip = result.shots[sid].clip
        if clip is None:
            raise ValueError(f"shot '{sid}' has no clip")
        infos.append(probe(clip))
    rate = round(infos[0].fps) or 24
    timeline = otio.schema.Timeline(name=board.title)
    timeline.global_start_time = otio.opentime.RationalTime(0, rate)
    video = otio.schema.Track(name="shots", kind=otio.schema.TrackKind.Video)
    heads = [0.0] * len(spec.cut)
    tails = [0.0] * len(spec.cut)
    for j, sid in enumerate(spec.cut):
        shot = spec.shot(sid)
        if j > 0 and shot.transition != "cut":
            half = shot.transition_duration / 2
            tails[j - 1] += half
            heads[j] += half
        elif j > 0 and shot.seam == "trim" and chained_to(shot.image, spec.cut[j - 1]):
            # the assembly drops the first frame of a chained cut: it repeats the last one
            heads[j] += 1 / (infos[j].fps or rate)
    for j, (sid, info) in enumerate(zip(spec.cut, infos, strict=True)):
        shot = spec.shot(sid)
        if j > 0 and shot.transition != "cut":
            half = shot.transition_duration / 2
            kind = (otio.schema.TransitionTypes.SMPTE_Dissolve if shot.transition in ("dissolve", "fade")
                    else otio.schema.TransitionTypes.Custom)
            video.append(otio.schema.Transition(
                name=shot.transition, transition_type=kind,
                in_offset=_rt(half, rate), out_offset=_rt(half, rate),
                metadata={"storyboard": {"xfade": shot.transition, "duration": shot.transition_duration}}))
        ref = otio.schema.ExternalReference(target_url=Path(info.path).resolve().as_uri(),
                                            available_range=_range(0, info.duration, rate))
        start = heads[j]
        hold = float(result.shots[sid].facts.get("hold") or 0.0)
        # `fit: extend` holds the last frame after the clip; the next transition eats into the hold
        frames = round(hold * rate) - round(tails[j] * rate)
        tail = tails[j] if hold <= 0 else max(0.0, -frames / rate)
        video.append(otio.schema.Clip(
            name=sid, media_reference=ref,
            source_range=_range(start, info.duration - start - tail, rate),
            metadata={"storyboard": {"prompt": board.prompts.get(sid), "key": result.shots[sid].key}}))
        if hold > 0 and frames > 0:
            video.append(_hold_clip(sid, info, hold, frames, rate))
    for line in result.narration:  # narration lines, at their place in the film
        video.markers.append(otio.schema.Marker(
            name=line.text, marked_range=_range(line.start, line.seconds, rate),
            color=otio.schema.MarkerColor.GREEN, metadata={"storyboard": {"shot": line.shot, "say": line.text}}))
    timeline.tracks.append(video)
    film_frames = video.duration().value
    for j, (path, track) in enumerate([*spec.audio, *music]):  # file tracks, then generated music
        timeline.tracks.append(_audio_track(j, path, track, film_frames, rate))
    return timeline


def _hold_clip(sid: str, info: Any, hold: float, frames: int, rate: float) -> Any:
    """The held last frame of a clip (`fit: extend`) as a freeze-frame clip ``frames`` long."""
    import opentimelineio as otio

    last = max(0, round(info.duration * rate) - 1)
    ref = otio.schema.ExternalReference(target_url=Path(info.path).resolve().as_uri(),
                                        available_range=_range(0, info.duration, rate))
    return otio.schema.Clip(
        name=f"{sid} (hold)", media_reference=ref,
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(last, rate),
                                             otio.opentime.RationalTime(frames, rate)),
        effects=[otio.schema.FreezeFrame()],
        metadata={"storyboard": {"hold": hold, "of": sid}})


def _audio_track(j: int, path: Path, track: Any, film_frames: float, rate: float) -> Any:
    """A music track as the assembly mixes it: from the film's start, as many whole plays
    of the file as fit (``loop``), the last one cut at the film's end. Each clip uses a
    range inside its media's available range: editors' XML formats need one."""
    import opentimelineio as otio

    from storyboard.media import probe_audio

    media_frames = max(1, round(probe_audio(path).duration * rate))
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                        otio.opentime.RationalTime(media_frames, rate))
    audio = otio.schema.Track(name=f"audio {j + 1}: {path.name}", kind=otio.schema.TrackKind.Audio)
    left = film_frames if track.loop else min(film_frames, media_frames)
    play = 0
    while left > 0:
        frames = min(left, media_frames)
        play += 1
        audio.append(otio.schema.Clip(
            name=path.name,
            media_reference=otio.schema.ExternalReference(target_url=path.resolve().as_uri(),
                                                          available_range=available),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                 otio.opentime.RationalTime(frames, rate)),
            metadata={"storyboard": {"volume": track.volume, "duck": track.duck, "loop": track.loop,
                                     "play": play}}))
        left -= frames
    return audio


def write_otio(board: Board, result: RenderResult, path: Path, music: Sequence[tuple[Path, Any]] = ()) -> Path:
    """Write the cut's timeline to ``path`` (any format OTIO's adapters write); ``music``:
    the generated tracks' files, laid under the file tracks."""
    import opentimelineio as otio

    path.parent.mkdir(parents=True, exist_ok=True)
    otio.adapters.write_to_file(build_timeline(board, result, music), str(path))
    return path
