"""Making the film from the shots' clips: assembly, the text drawn over it (overlays and
burned captions), then the finished film's loudness, measured and corrected, with one
progress over the three steps."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from storyboard.cache import Cache
from storyboard.events import AssemblyProgress, RenderResult, Warning_
from storyboard.runner._audio import music_tracks
from storyboard.runner._narration import Narration, draw_text, narration_mix

if TYPE_CHECKING:
    from storyboard.runner._pipeline import Pipeline


async def make_film(pipeline: Pipeline, result: RenderResult, narration: Narration | None,
                    cache: Cache | None) -> dict[str, Any] | None:
    """Assemble the film, draw its text, then measure (and correct) its loudness; warn
    once when the loudness target is out of reach. Returns the loudness measured (as
    render.json records it), None for a film without sound."""
    # deferred: the media stack (PyAV, Pillow) loads only when a film is made
    from storyboard.media import MixTrack, WeightedProgress, assemble, cut_times, finish_loudness

    board, spec, emit = pipeline.board, pipeline.board.spec, pipeline.emit
    tracks = [MixTrack(path=p, volume=t.volume, duck=t.duck, loop=t.loop, fade_out=t.fade_out or 0.0)
              for p, t in spec.audio]
    if pipeline.audio is not None:
        tracks += music_tracks(board, pipeline.audio)
    pipeline.output.parent.mkdir(parents=True, exist_ok=True)
    text_on = narration is not None or bool(board.overlays)
    draws = bool(board.overlays) or (narration is not None and spec.model.captions == "burn")
    # weights: what each step costs next to assembly (drawing text re-encodes the picture)
    steps = WeightedProgress(lambda f: emit(AssemblyProgress(fraction=f)), [1.0, 0.6 if draws else 0.0, 0.05])
    emit(AssemblyProgress(fraction=0.0))
    clips = pipeline.cut_clips(result)
    work = cache.tmp_dir("narration-") if text_on and cache is not None else None
    try:
        if narration is not None and work is not None:
            _starts, total, _fps = cut_times(clips)
            tracks.append(await narration_mix(board, narration, work, total))
        done = await assemble(clips, pipeline.output, audio=tracks, loudness=spec.model.loudness,
                              progress=steps.part(0))
        if work is not None:
            await draw_text(board, narration, clips, done.path, work, progress=steps.part(1))
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    measured = await finish_loudness(done.path, spec.model.loudness, progress=steps.part(2))
    if measured is not None and (warning := measured.warning()) is not None:
        emit(Warning_(message=warning))
    result.film, result.duration, result.method = done.path, done.duration, done.method
    return measured.to_dict() if measured is not None else None
