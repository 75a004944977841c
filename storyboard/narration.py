"""Narration, planned: each shot's `say:` line rendered, keyed, placed on the cut and split
into caption cues. Pure: no audio is made here (that is media's), nothing is paid.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storyboard.apps import app_name, check_inputs, pinned_version, profile
from storyboard.errors import Problem, PromptError, SpecError, TemplateError
from storyboard.prompts import PromptRenderer
from storyboard.request import ShotRequest, node_key
from storyboard.shotcontext import template_context
from storyboard.spec import Spec, near
from storyboard.spec.models import Voice

# Readable captions (the usual broadcast rule): at most 2 lines of about 42 characters,
# each cue on screen at most 7 s.
CUE_CHARS = 42
CUE_LINES = 2
CUE_SECONDS = 7.0
# Speaking rate for the length estimate before anything is voiced (espeak-ng's default
# is 175 words a minute; people narrate slower).
WORDS_PER_SECOND = 2.5


@dataclass(frozen=True)
class Line:
    """One narration line: the shot it is spoken over and its text."""

    shot: str
    text: str
    fit: str  # "error" | "extend" | "overlap"


@dataclass(frozen=True)
class PlacedLine:
    """A voiced line placed on the film: where it starts, how long it runs."""

    shot: str
    text: str
    start: float
    seconds: float

    @property
    def end(self) -> float:
        """When the line stops, in film seconds."""
        return self.start + self.seconds


@dataclass(frozen=True)
class Cue:
    """One caption: film seconds and at most :data:`CUE_LINES` lines of text."""

    start: float
    end: float
    text: str


def voice_of(spec: Spec) -> Voice:
    """The file's `voice:` (the default voice when only `say:` lines are written)."""
    return spec.model.voice or Voice.model_validate({})


def line_key(app: str, version: str, voice: str | None, text: str, inputs: Mapping[str, Any] | None = None) -> str:
    """The cache key of one voiced line: app, version, voice and text, and the `voice:`'s
    extra app inputs when it has any (speed…), nothing else."""
    return node_key({"app": app, "version": version, "voice": voice, "text": text,
                     **({"inputs": dict(inputs)} if inputs else {})}, spaced=True)


def voice_version(spec: Spec, live: Mapping[str, str] | None = None) -> str:
    """The TTS app version a voiced line is keyed by: pinned, else the one last read live
    (``live``: app reference as written → version id), else the profile's current."""
    ref = voice_of(spec).app
    prof = profile(app_name(ref))
    return pinned_version(ref) or (live or {}).get(ref) or (prof.current if prof is not None else "")


def line_request(spec: Spec, line: Line, live: Mapping[str, str] | None = None) -> ShotRequest:
    """What the TTS app is asked for one line: its text and voice, by the app's own names."""
    voice = voice_of(spec)
    prof = profile(app_name(voice.app))
    concepts = prof.concepts if prof is not None else {}
    inputs: dict[str, Any] = {**voice.inputs, concepts.get("text", "text"): line.text}
    if voice.voice is not None:
        inputs[concepts.get("voice", "voice")] = voice.voice
    return ShotRequest(shot_id=f"say:{line.shot}", prompt=line.text, app=voice.app, version=voice_version(spec, live),
                       inputs=inputs, kind="audio", image_input=None, end_image_input=None)


def remote_line_key(spec: Spec, line: Line, live: Mapping[str, str] | None = None) -> str:
    """The cache key of a line voiced by the `voice:` app (version: :func:`voice_version`)."""
    voice = voice_of(spec)
    return line_key(app_name(voice.app), voice_version(spec, live), voice.voice, line.text,
                    voice.inputs)


def rooms(spec: Spec) -> dict[str, float]:
    """Each cut shot's room for its line from the file alone: to the next shot's start
    (less the transition into it), or to the film's end."""
    out: dict[str, float] = {}
    cut = spec.cut
    for j, sid in enumerate(cut):
        room = float(spec.shot(sid).duration)
        if j + 1 < len(cut):
            nxt = spec.shot(cut[j + 1])
            if nxt.transition != "cut":
                room -= nxt.transition_duration
        out[sid] = room
    return out


def early_fit_problems(spec: Spec, lines: Mapping[str, Line], seconds: Mapping[str, float]) -> list[Problem]:
    """The lines that cannot fit, known from their voiced lengths and the file alone (before
    any shot is paid): a `fit: error` line longer than its shot's room, or an `overlap`
    line running past the film's planned end. `fit: extend` always fits (its shot holds)."""
    problems: list[Problem] = []
    room = rooms(spec)
    total, at = sum(room.values()), 0.0
    for sid in spec.cut:
        line = lines.get(sid)
        length = seconds.get(sid)
        if line is not None and length is not None and line.fit != "extend":
            if line.fit == "error" and length > room[sid] + 1e-3:
                problems.append(spec.source.problem(
                    f"shot '{sid}': the line takes {length:.2f} s but the shot has {room[sid]:.2f} s; shorten the "
                    "line, or set `fit: extend` (hold the shot's last frame) or `fit: overlap` (run into the next "
                    "shot)", spec.shot_path(sid, "say")))
            elif line.fit == "overlap" and at + length > total + 1e-3:
                problems.append(spec.source.problem(
                    f"shot '{sid}': the line takes {length:.2f} s but the shot has {room[sid]:.2f} s; it would run "
                    "past the end of the film", spec.shot_path(sid, "say")))
        at += room[sid]
    return problems


def estimate_seconds(text: str) -> float:
    """How long the line takes to say, roughly (the offline placeholder's length)."""
    return round(0.3 + len(text.split()) / WORDS_PER_SECOND, 3)


def render_lines(spec: Spec, base: Mapping[str, Any]) -> dict[str, Line]:
    """Render every shot's `say:` template with the shot's context (as its prompt sees
    it). A line that renders empty is a located error; so is a template error."""
    renderer = PromptRenderer(spec.template_dirs)
    problems: list[Problem] = []
    lines: dict[str, Line] = {}
    for raw in spec.model.shots:
        shot = spec.shot(raw.id)
        if raw.say is None:
            continue
        where = spec.shot_path(shot.id, "say")
        context = template_context(base, shot)
        try:
            text = " ".join(renderer.render(inline=raw.say, context=context).split())
        except PromptError as e:
            problems.append(spec.source.problem(f"shot '{shot.id}': say: {e.message}", where))
            continue
        if not text:
            problems.append(spec.source.problem(
                f"shot '{shot.id}': say: renders to nothing; write the line or remove `say:`", where))
            continue
        lines[shot.id] = Line(shot.id, text, raw.fit or "error")
    if lines:
        problems += voice_problems(spec, lines)
    if problems:
        raise TemplateError(problems)
    return lines


def voice_problems(spec: Spec, lines: Mapping[str, Line]) -> list[Problem]:
    """What the TTS app would refuse, found before anything is paid: an app that is not a
    known TTS app, a voice it does not have, an extra input it would not take, a line
    over its text limit."""
    voice = voice_of(spec)
    at = ("voice", "app") if spec.model.voice is not None else ("shots", spec.shot(next(iter(lines))).index, "say")
    prof = profile(app_name(voice.app))
    if prof is None or prof.kind != "tts":
        return [spec.source.problem(f"voice: '{voice.app}' is not a known TTS app (known: "
                                    "falai/kokoro-tts, elevenlabs/tts)", at)]
    version = prof.version()
    problems: list[Problem] = []
    name = prof.concepts.get("voice")
    allowed = (version.properties.get(name, {}).get("enum") if version and name else None) or []
    if voice.voice is not None and allowed and voice.voice not in allowed:
        hint = near(voice.voice, allowed)
        problems.append(spec.source.problem(
            f"voice: {voice.app} has no voice '{voice.voice}'" + (f"; did you mean '{hint}'?" if hint else "")
            + f" ({len(allowed)} voices: {', '.join(allowed[:6])}, ...)", ("voice", "voice")))
    own = {prof.concepts.get("text", "text"), name}
    for extra, value in voice.inputs.items():
        where = ("voice", "inputs", extra)
        if extra in own:
            problems.append(spec.source.problem(
                f"voice: inputs: '{extra}' is set by storyboard (the line, `voice.voice`); remove it", where))
        elif version is not None:
            problems += [spec.source.problem(f"voice: inputs: {p.message}", where)
                         for p in check_inputs(prof, version, {extra: value}) if p.name == extra]
    limit = prof.limit(version, "text_chars", voice.inputs) if version else prof.rule(prof.current, "text_chars")
    for line in lines.values():
        if isinstance(limit, int) and len(line.text) > limit:
            problems.append(spec.source.problem(
                f"shot '{line.shot}': say: the line has {len(line.text)} characters; {voice.app} takes at most "
                f"{limit}", spec.shot_path(line.shot, "say")))
    return problems


def holds_for(
    lines: Mapping[str, Line],
    cut: Sequence[str],
    starts: Sequence[float],
    total: float,
    seconds: Mapping[str, float],
) -> dict[str, float]:
    """Seconds to hold each `fit: extend` shot's last frame so that its line fits."""
    holds: dict[str, float] = {}
    for j, sid in enumerate(cut):
        line = lines.get(sid)
        if line is None or line.fit != "extend":
            continue
        room = (starts[j + 1] if j + 1 < len(cut) else total) - starts[j]
        if seconds[sid] > room + 1e-3:
            # a breath before the cut, more than the hold loses to whole frames
            holds[sid] = round(seconds[sid] - room + 0.1, 3)
    return holds


def place_lines(
    spec: Spec,
    lines: Mapping[str, Line],
    cut: Sequence[str],
    starts: Sequence[float],
    total: float,
    seconds: Mapping[str, float],
) -> list[PlacedLine]:
    """Each line starts with its shot in the cut (``starts``: after any holds). A line
    longer than its shot's room (to the next shot's start) is an error naming both
    lengths, unless `fit: overlap` (or `fit: extend`, whose hold is in ``starts``); no
    line may run past the film's end. Lines of shots not in the cut are not placed."""
    placed: list[PlacedLine] = []
    problems: list[Problem] = []
    for j, sid in enumerate(cut):
        line = lines.get(sid)
        if line is None:
            continue
        start = starts[j]
        room = (starts[j + 1] if j + 1 < len(cut) else total) - start
        length = seconds[sid]
        if length > room + 1e-3 and (line.fit != "overlap" or start + length > total + 1e-3):
            why = ("it would run past the end of the film" if line.fit == "overlap"
                   else "shorten the line, or set `fit: extend` (hold the shot's last frame) or "
                   "`fit: overlap` (run into the next shot)")
            problems.append(spec.source.problem(
                f"shot '{sid}': the line takes {length:.2f} s but the shot has {room:.2f} s; {why}",
                spec.shot_path(sid, "say")))
            continue
        placed.append(PlacedLine(sid, line.text, round(start, 6), round(length, 6)))
    if problems:
        raise SpecError(problems)
    return placed


def _chunks(text: str) -> list[str]:
    rows = textwrap.wrap(text, CUE_CHARS, break_long_words=True, break_on_hyphens=False)
    return ["\n".join(rows[i:i + CUE_LINES]) for i in range(0, len(rows), CUE_LINES)]


def split_cues(line: PlacedLine) -> list[Cue]:
    """The line as readable cues: at most 2 lines of about 42 characters each, time shared
    by length; a cue that would stay over 7 s is split into single lines, and one still
    over 7 s is cut short (the voice goes on; the text does not linger)."""
    chunks = _chunks(line.text)
    per_char = line.seconds / max(1, sum(len(c) for c in chunks))
    if any(len(c) * per_char > CUE_SECONDS for c in chunks):
        chunks = textwrap.wrap(line.text, CUE_CHARS, break_long_words=True, break_on_hyphens=False)
        per_char = line.seconds / max(1, sum(len(c) for c in chunks))
    cues: list[Cue] = []
    at = line.start
    for k, chunk in enumerate(chunks):
        end = line.end if k == len(chunks) - 1 else at + len(chunk) * per_char
        cues.append(Cue(round(at, 6), round(min(end, at + CUE_SECONDS), 6), chunk))
        at = end
    return cues


def cues_of(placed: Sequence[PlacedLine]) -> list[Cue]:
    """Every caption cue of the film, in time order."""
    return sorted((c for p in placed for c in split_cues(p)), key=lambda c: c.start)


def duck_windows(placed: Sequence[PlacedLine]) -> tuple[tuple[float, float], ...]:
    """The film seconds during which a line plays (overlapping lines merged)."""
    out: list[list[float]] = []
    for p in sorted(placed, key=lambda p: p.start):
        if out and p.start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], p.end)
        else:
            out.append([p.start, p.end])
    return tuple((a, b) for a, b in out)


@dataclass(frozen=True)
class OverlayText:
    """A shot's overlay, rendered and checked: text, seconds within the shot, style."""

    shot: str
    text: str
    start: float
    end: float
    position: str
    size: float
    font: str | None  # an absolute font file, or None for the font that ships with Pillow


def render_overlays(spec: Spec, base: Mapping[str, Any]) -> dict[str, OverlayText]:
    """Render and check every shot's `overlay:`: its text must not be empty, its time
    range must lie inside the shot and its font file must exist. Each problem located."""
    renderer = PromptRenderer(spec.template_dirs)
    problems: list[Problem] = []
    out: dict[str, OverlayText] = {}
    for raw in spec.model.shots:
        shot = spec.shot(raw.id)
        over = raw.overlay
        if over is None:
            continue
        where = f"shot '{shot.id}': overlay"
        context = template_context(base, shot)
        found = len(problems)  # text, time range and font are each checked and reported
        try:
            text = renderer.render(inline=over.text, context=context).strip()
        except PromptError as e:
            problems.append(spec.source.problem(f"{where}: text: {e.message}", spec.shot_path(shot.id, "overlay", "text")))
            text = None
        if text == "":
            problems.append(spec.source.problem(f"{where}: the text renders to nothing",
                                                spec.shot_path(shot.id, "overlay", "text")))
        end = shot.duration if over.end is None else over.end
        if over.start >= end or end > shot.duration:
            fld = "end" if over.end is not None and over.end > shot.duration else "start"
            problems.append(spec.source.problem(
                f"{where}: {over.start:g}..{end:g} s is outside the shot (0..{shot.duration} s)",
                spec.shot_path(shot.id, "overlay", fld)))
        font = None
        if over.font is not None:
            path = (spec.folder / over.font).resolve()
            if not path.is_file():
                problems.append(spec.source.problem(
                    f"{where}: font file '{over.font}' not found (no fallback: text would not shape)",
                    spec.shot_path(shot.id, "overlay", "font")))
            font = str(path)
        if len(problems) == found and text:
            out[shot.id] = OverlayText(shot.id, text, over.start, end, over.position, over.size, font)
    if problems:
        raise TemplateError(problems)
    return out
