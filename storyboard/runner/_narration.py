"""The narration step: voice each `say:` line (cached by app, version, voice and text),
place the lines on the cut, and make the track, the ducking and the captions of the film.

The audio step (``_audio``) voices the lines first, before any shot is paid: with the
`voice:` app on a paid backend, else offline (espeak-ng when installed, else a quiet
placeholder of each line's estimated length, said once). A line it did not voice is
voiced offline here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.board import Board
from storyboard.cache import Cache
from storyboard.events import Event, Warning_
from storyboard.narration import (
    Cue,
    PlacedLine,
    cues_of,
    duck_windows,
    estimate_seconds,
    holds_for,
    line_key,
    place_lines,
    voice_of,
)


@dataclass
class Narration:
    """The film's voiced lines, placed; their cues; what makes the film differ."""

    placed: list[PlacedLine]
    cues: list[Cue]
    files: list[tuple[Path, float]]  # (voiced line, film second it starts at)
    key: str
    speaker: str  # "espeak-ng" | "placeholder"
    holds: dict[str, float] = field(default_factory=dict)  # `fit: extend`: seconds held, by shot
    voiced: list[str] = field(default_factory=list)  # shots whose line was voiced this render


async def prepare_narration(board: Board, cache: Cache, clips: Sequence[Any],
                            emit: Callable[[Event], None],
                            made: Mapping[str, tuple[str, Path, float]] | None = None,
                            speaker: str | None = None) -> Narration | None:
    """Voice what is missing and place every line of the cut; None without narration.
    ``made``: the lines the audio step voiced (shot -> (key, file, seconds)), by ``speaker``."""
    from storyboard.media import cut_times, espeak_path, probe_audio, speak_offline

    spec = board.spec
    if not board.lines:
        if spec.model.captions == "burn":
            emit(Warning_(message="captions: burn, but no shot has a `say:` line; there is nothing to burn"))
        return None
    voice = voice_of(spec)
    speaker = speaker or ("espeak-ng" if espeak_path() else "placeholder")
    if speaker == "placeholder":
        emit(Warning_(message="espeak-ng is not installed: each narration line is a quiet placeholder of its "
                              "estimated length (install espeak-ng to hear the lines)"))
    seconds: dict[str, float] = {}
    paths: dict[str, Path] = {}
    voiced: list[str] = []
    keys: dict[str, str] = {}
    for sid in spec.cut:
        line = board.lines.get(sid)
        if line is None:
            continue
        if made is not None and sid in made:
            keys[sid], paths[sid], seconds[sid] = made[sid]
            continue
        key = line_key(speaker, "", voice.voice, line.text)
        entry = cache.lookup(key)
        if entry is None:
            work = cache.tmp_dir("voice-")
            try:
                tmp = work / "line.wav"
                await speak_offline(line.text, tmp, estimate_seconds(line.text))
                entry = cache.store(key, tmp, shot=f"say:{sid}", facts={"kind": "line", "app": speaker})
            finally:
                shutil.rmtree(work, ignore_errors=True)
            voiced.append(sid)
        path = entry.path
        keys[sid], paths[sid] = key, path
        seconds[sid] = probe_audio(path).duration
    starts, total, _fps = cut_times(clips)
    holds = holds_for(board.lines, spec.cut, starts, total, seconds)
    if holds:
        clips = [dataclasses.replace(c, hold=holds.get(sid, 0.0)) for c, sid in zip(clips, spec.cut, strict=True)]
        starts, total, _fps = cut_times(clips)
    placed = place_lines(spec, board.lines, spec.cut, starts, total, seconds)
    blob = json.dumps({
        "v": 1, "lines": [(keys[p.shot], p.start) for p in placed], "volume": voice.volume, "holds": holds,
        "duck": (voice.duck_music, voice.duck_shots), "captions": spec.model.captions,
    })  # fmt: skip
    return Narration(placed=placed, cues=cues_of(placed), files=[(paths[p.shot], p.start) for p in placed],
                     key=hashlib.sha256(blob.encode()).hexdigest(), speaker=speaker, voiced=voiced,
                     holds=holds)


async def narration_mix(board: Board, narration: Narration, folder: Path, seconds: float) -> Any:
    """The film's narration as a media MixTrack (written into ``folder``)."""
    from storyboard.media import MixTrack, narration_track

    voice = voice_of(board.spec)
    path = await narration_track(narration.files, folder / "narration.wav", seconds)
    return MixTrack(path=path, volume=voice.volume, loop=False, speaks=duck_windows(narration.placed),
                    duck_music=voice.duck_music, duck_shots=voice.duck_shots)


async def draw_text(board: Board, narration: Narration | None, clips: Sequence[Any], film: Path,
                    folder: Path, progress: Callable[[float], None] | None = None) -> None:
    """Lay the shots' overlays over ``film`` and, with `captions: burn`, burn its captions
    (``progress`` hears the fraction done)."""
    from storyboard.media import (
        OverlayCard,
        cut_times,
        decorate,
        overlay_png,
        probe,
        write_captions,
    )

    spec = board.spec
    subtitles = None
    if narration is not None and spec.model.captions == "burn":
        subtitles, _vtt = write_captions([(c.start, c.end, c.text) for c in narration.cues], film)
    cards: list[Any] = []
    starts, total, _fps = cut_times(clips)
    if board.overlays:
        info = probe(film)
        for j, sid in enumerate(spec.cut):
            over = board.overlays.get(sid)
            if over is None:
                continue
            png = overlay_png(over.text, info.width, info.height, position=over.position, size=over.size,
                              font=over.font, dest=folder / f"overlay-{j}.png")
            cards.append(OverlayCard(png, starts[j] + over.start, min(total, starts[j] + over.end)))
    await decorate(film, cards, subtitles, progress=progress, seconds=total)
    if progress is not None:
        progress(1.0)
