"""Generated music, planned: each `audio:` track made by an app (`app:` with `prompt:` and
`lyrics:` or `instrumental: true`) rendered, checked against the app and keyed. Pure: no
audio is made here (that is media's and the runner's), nothing is paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storyboard.apps import app_name, pinned_version, profile
from storyboard.errors import Problem, PromptError, TemplateError
from storyboard.prompts import PromptRenderer
from storyboard.request import ShotRequest, node_key
from storyboard.spec import Spec

# A generated track fades out over the film's last seconds unless `fade_out:` says otherwise.
DEFAULT_FADE_OUT = 2.0
# minimax/music-3-0's own rule (its schema's description): lyrics of 1..3500 characters.
LYRICS_CHARS = 3500
# The offline placeholder chord (A minor, soft): made as long as the planned film.
PLACEHOLDER_MAKER = "placeholder-chord"


@dataclass(frozen=True)
class MusicTrack:
    """One generated `audio:` track: where it is written, the app and what it is asked."""

    index: int  # its place in `audio:` (the file's order: audio[index])
    app: str  # as written, perhaps pinned @VERSION
    version: str  # the version the key holds: pinned, else the app profile's current
    prompt: str
    lyrics: str | None
    instrumental: bool
    inputs: Mapping[str, Any]  # the app's own input names
    volume: float
    duck: bool
    loop: bool
    fade_out: float

    @property
    def id(self) -> str:
        """How the track is named in the plan, events and errors: ``audio[0]``."""
        return f"audio[{self.index}]"

    def key(self, maker: str | None = None, seconds: float = 0.0) -> str:
        """The cache key: app, version and inputs (``maker``: an offline placeholder of
        ``seconds`` instead, keyed by those alone)."""
        if maker is not None:
            return node_key({"maker": maker, "seconds": round(seconds, 3)})
        return node_key({"app": app_name(self.app), "version": self.version,
                       "inputs": dict(self.inputs)})

    def request(self) -> ShotRequest:
        """The request a backend runs for this track (an audio output)."""
        return ShotRequest(shot_id=self.id, prompt=self.prompt, app=self.app, version=self.version,
                           inputs=dict(self.inputs), kind="audio", image_input=None, end_image_input=None)


def planned_seconds(spec: Spec) -> float:
    """The film's length from the file alone: the cut's shots less their transitions."""
    total = 0.0
    for j, sid in enumerate(spec.cut):
        shot = spec.shot(sid)
        total += shot.duration
        if j > 0 and shot.transition != "cut":
            total -= shot.transition_duration
    return round(max(total, 0.0), 3)


def render_music(spec: Spec, base: Mapping[str, Any]) -> tuple[MusicTrack, ...]:
    """Render and check every generated `audio:` track: a known music app, a prompt that
    says something, lyrics or `instrumental: true` (not both), lyrics within the app's
    limit. Each problem located; a file track is left to the spec."""
    renderer = PromptRenderer(spec.template_dirs)
    problems: list[Problem] = []
    out: list[MusicTrack] = []
    context = {**base, "vars": dict(base)}
    for j, track in enumerate(spec.model.audio):
        at = ("audio", j)
        if track.app is None:
            if track.file is None:
                problems.append(spec.source.problem(
                    f"audio[{j}]: give a `file:` or an `app:` that makes the music", at))
            elif track.prompt is not None or track.lyrics is not None or track.instrumental:
                fld = "prompt" if track.prompt is not None else "lyrics" if track.lyrics is not None else "instrumental"
                problems.append(spec.source.problem(
                    f"audio[{j}]: `{fld}:` needs `app:` (a music app); a file track plays as it is", (*at, fld)))
            continue
        where = f"audio[{j}] ({track.app})"
        if track.file is not None:
            problems.append(spec.source.problem(f"{where}: give `file:` or `app:`, not both", (*at, "file")))
            continue
        prof = profile(app_name(track.app))
        if prof is None or prof.kind != "music":
            problems.append(spec.source.problem(
                f"audio[{j}]: '{track.app}' is not a known music app (known: minimax/music-3-0)", (*at, "app")))
            continue
        if track.prompt is None:
            problems.append(spec.source.problem(f"{where}: a generated track needs a `prompt:`", at))
            continue
        texts: dict[str, str] = {}
        for fld, raw in (("prompt", track.prompt), ("lyrics", track.lyrics)):
            if raw is None:
                continue
            try:
                texts[fld] = renderer.render(inline=raw, context=context).strip()
            except PromptError as e:
                problems.append(spec.source.problem(f"{where}: {fld}: {e.message}", (*at, fld)))
                continue
            if not texts[fld]:
                problems.append(spec.source.problem(f"{where}: {fld}: renders to nothing", (*at, fld)))
        if len(texts) < 1 + (track.lyrics is not None) or any(not t for t in texts.values()):
            continue
        lyrics = texts.get("lyrics")
        if lyrics is None and not track.instrumental:
            problems.append(spec.source.problem(
                f"{where}: write `lyrics:` or set `instrumental: true`", at))
            continue
        if lyrics is not None and track.instrumental:
            problems.append(spec.source.problem(
                f"{where}: `lyrics:` and `instrumental: true` exclude each other; keep one", (*at, "instrumental")))
            continue
        if lyrics is not None and len(lyrics) > LYRICS_CHARS:
            problems.append(spec.source.problem(
                f"{where}: lyrics: {len(lyrics)} characters; the app takes at most {LYRICS_CHARS}", (*at, "lyrics")))
            continue
        version = pinned_version(track.app) or prof.current
        inputs: dict[str, Any] = {prof.concepts.get("prompt", "prompt"): texts["prompt"]}
        if lyrics is not None:
            inputs["lyrics"] = lyrics
        else:
            inputs["is_instrumental"] = True
        fade = DEFAULT_FADE_OUT if track.fade_out is None else track.fade_out
        out.append(MusicTrack(index=j, app=track.app, version=version, prompt=texts["prompt"], lyrics=lyrics,
                              instrumental=track.instrumental, inputs=inputs, volume=track.volume,
                              duck=track.duck, loop=track.loop, fade_out=fade))
    if problems:
        raise TemplateError(problems)
    return tuple(out)
