"""Loading: read, parse and validate a storyboard file, then resolve it into a Spec.

Resolution is one function per question (which ids? which image? which transition? which
model inputs? which cut? which audio? which template folders? which output?). Each takes
and returns plain values, and reports what is wrong as :class:`Flaw` s (a message and
where in the file); :func:`resolve` locates them all and raises one SpecError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from storyboard.errors import Problem, SpecError
from storyboard.facts import DEFAULT_TRANSITION_SECONDS, TRANSITIONS
from storyboard.request import FrameRef, parse_frame_ref
from storyboard.spec.images import ImageChecks, check_image_file, inside
from storyboard.spec.keyframes import shot_keyframes
from storyboard.spec.messages import Allowed, Flaw, did_you_mean, near, problems_from_validation
from storyboard.spec.models import (
    FORMAT_VERSION,
    ID_PATTERN,
    OVERRIDABLE,
    AudioTrack,
    Defaults,
    Shot,
    StoryboardModel,
)
from storyboard.spec.resolved import ImageSource, ResolvedShot, Spec
from storyboard.spec.stills import (
    character_references,
    cut_still_flaws,
    resolve_stills,
    shot_references,
    still_ids,
    still_ref_problem,
)
from storyboard.spec.yamlpos import Path_, SourceMap, parse_yaml, read_text

__all__ = ["Flaw", "check_overrides", "load_spec", "resolve"]

def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate model-input overrides that apply to every shot (e.g. an aspect-ratio variant)."""
    unknown = [k for k in overrides if k not in OVERRIDABLE]
    if unknown:
        raise SpecError(f"cannot override '{unknown[0]}'; allowed: {', '.join(OVERRIDABLE)}")
    try:
        checked = Defaults.model_validate(overrides)
    except ValidationError as err:
        e = err.errors()[0]
        raise SpecError(f"override {'.'.join(str(x) for x in e['loc'])}: {e['msg']} (got {e.get('input')!r})") from None
    return {k: getattr(checked, k) for k in overrides}


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None, *, allowed: Allowed | None = None) -> Spec:
    """Read and validate a storyboard file (everything but prompts). Raises SpecError
    listing every problem found, each with file, line and column (``allowed``: what an
    app allows, for messages; see :data:`storyboard.spec.messages.Allowed`). A wrong
    format version is one of them: the rest of the file is still checked as format 1."""
    path = Path(path)
    name = str(path)
    text = read_text(path)
    data, source = parse_yaml(text, name)
    if not isinstance(data, dict):
        raise SpecError(
            f"the top level must be a mapping with 'storyboard: 1' and 'shots:', not a {type(data).__name__}",
            file=name,
            line=1,
            column=1,
        )
    version = version_problems(data, source)
    if version:
        data = {**data, "storyboard": FORMAT_VERSION}  # check the rest as format 1: every problem at once
    try:
        model = StoryboardModel.model_validate(data)
    except ValidationError as err:
        raise SpecError(version + problems_from_validation(err, data, source, allowed)) from None
    try:
        spec = resolve(path, model, source, check_overrides(dict(overrides)) if overrides else {})
    except SpecError as e:
        raise SpecError(version + e.problems) from None
    if version:
        raise SpecError(version)
    return spec


def version_problems(data: Mapping[str, Any], source: SourceMap) -> list[Problem]:
    """The format version: missing or other than 1 is a problem (located)."""
    if "storyboard" not in data:
        return [Problem("missing 'storyboard: 1' (the format version) at the top of the file", source.file, 1, 1)]
    value = data["storyboard"]
    if value != FORMAT_VERSION or isinstance(value, bool):
        return [source.problem(f"unsupported format version {value!r}; this version of storyboard reads format 1 "
                               "('storyboard: 1')", ("storyboard",))]
    return []


def resolve(path: Path, model: StoryboardModel, source: SourceMap, overrides: Mapping[str, Any]) -> Spec:
    """Resolve a validated model into a Spec. Raises SpecError with every problem found."""
    folder = path.parent
    flaws: list[Flaw] = []
    shot_only = shot_ids(model.shots, flaws)
    stills = still_ids(model, shot_only, flaws)
    ids = {**shot_only, **{k: v for k, v in stills.items() if k not in shot_only}}
    durations = {**{k: 0 for k in stills}, **shot_durations(model, overrides)}
    checked: ImageChecks = {}
    refs = character_references(model, stills, shot_only, folder, checked, flaws)
    shots: list[ResolvedShot] = resolve_stills(model, flaws)
    for i, shot in enumerate(model.shots):
        flaws += prompt_flaws(shot, i) + title_flaws(shot, i)
        image, end_image = shot_frames(model, i, ids, durations, folder, checked, flaws, stills)
        names, references = shot_references(model, i, refs, flaws)
        found: list[tuple[str, Path_]] = []
        keyframes = shot_keyframes(model, i, stills, shot_only, durations[shot.id], folder, checked, found)
        flaws += [Flaw(message, loc) for message, loc in found]
        ttype, tdur = shot_transition(shot, i, flaws)
        resolved = ResolvedShot(
            index=i, id=shot.id, prompt=shot.prompt, template=shot.template, image=image,
            end_image=end_image, vars=dict(shot.vars), transition=ttype, transition_duration=tdur,
            seam=shot.seam or model.seam, handoff=shot.handoff or model.defaults.handoff,
            handoff_window=shot.handoff_window or model.defaults.handoff_window,
            takes=shot.takes or model.defaults.takes, **shot_inputs(shot, model.defaults, durations[shot.id]),
            characters=names, references=references, keyframes=keyframes,
            kind="title" if shot.kind == "title" else "shot",
        )
        if overrides and not resolved.is_still:
            resolved = dataclasses.replace(resolved, **overrides)
        shots.append(resolved)
    cut = film_cut(model, ids, flaws)
    flaws += cut_still_flaws(cut, stills)
    flaws += cut_transition_flaws(cut, {s.id: s for s in shots})
    audio = audio_tracks(folder, model.audio, flaws)
    template_dirs = template_folders(folder, model.templates, flaws)
    output = film_output(path, model.output, flaws)
    if flaws:
        raise SpecError([source.problem(f.message, f.loc, key=f.key) for f in flaws])
    return Spec(path=path, model=model, shots=tuple(shots), cut=cut, audio=tuple(audio),
                template_dirs=tuple(template_dirs), output=output, source=source)


def shot_ids(shots: Sequence[Shot], flaws: list[Flaw]) -> dict[str, int]:
    """Each shot id and its index; bad and duplicate ids are flaws."""
    ids: dict[str, int] = {}
    for i, shot in enumerate(shots):
        if not ID_PATTERN.match(shot.id):
            flaws.append(Flaw(f"shot id '{shot.id}' may use only lower-case letters, digits, '_' and '-'",
                              ("shots", i, "id")))
        if shot.id in ids:
            flaws.append(Flaw(f"duplicate shot id '{shot.id}' (first used by shots[{ids[shot.id]}])",
                              ("shots", i, "id")))
        else:
            ids[shot.id] = i
    return ids


def shot_durations(model: StoryboardModel, overrides: Mapping[str, Any]) -> dict[str, int]:
    """Each shot's duration in seconds (needed before frame times can be checked)."""
    if "duration" in overrides:
        return {s.id: int(overrides["duration"]) for s in model.shots}
    return {s.id: (s.duration if s.duration is not None else model.defaults.duration) for s in model.shots}


def prompt_flaws(shot: Shot, i: int) -> list[Flaw]:
    """A shot needs exactly one of 'prompt' and 'template'."""
    if shot.prompt is not None and shot.template is not None:
        return [Flaw(f"shot '{shot.id}' has both 'prompt' and 'template'; keep one",
                     ("shots", i, "template"), key=True)]
    if shot.prompt is None and shot.template is None:
        return [Flaw(f"shot '{shot.id}' has neither 'prompt' nor 'template'; give it one", ("shots", i))]
    return []


# What a title card has no use for: it is drawn here from its text, never sent to an app.
_NOT_ON_TITLES = ("app", "mode", "resolution", "sound", "multi_shot", "negative_prompt", "inputs", "end_image",
                  "characters", "takes", "handoff", "handoff_window")


def title_flaws(shot: Shot, i: int) -> list[Flaw]:
    """A title card (`kind: title`) is drawn from its text, for its duration and aspect
    ratio: an app's field written on it, or a start frame, would be silently unused."""
    if shot.kind != "title":
        return []
    where = f"shot '{shot.id}' is a title card (drawn from its text, never sent to an app)"
    flaws = [Flaw(f"{where}: it has no {name}; remove it", ("shots", i, name), key=True)
             for name in _NOT_ON_TITLES if name in shot.model_fields_set]
    if shot.image is not None:
        flaws.append(Flaw(f"{where}: it starts on no image; remove image", ("shots", i, "image"), key=True))
    return flaws


def frame_source(
    value: str, shot_id: str, fld: str, ids: Mapping[str, int], durations: Mapping[str, int],
    folder: Path, checked: ImageChecks, stills: Mapping[str, int] | None = None,
) -> tuple[ImageSource | None, str | None]:
    """What an ``image``/``end_image`` value names: a frame of another shot or an image
    file; (source, None) or (None, why not). ``checked`` caches image-file checks."""
    try:
        ref = parse_frame_ref(value)
    except ValueError as e:
        return None, f"shot '{shot_id}': {e}"
    if ref is None:
        if value not in checked:
            checked[value] = check_image_file(folder, value)
        img, why = checked[value]
        return img, (None if img is not None else f"shot '{shot_id}': {fld}: {why}")
    if ref.shot not in ids:
        match = near(ref.shot, ids)
        hint = f"; did you mean '@{match}'?" if match else "; known shots: " + ", ".join(list(ids)[:12])
        return None, f"shot '{shot_id}': {fld} refers to unknown shot '{ref.shot}'{hint}"
    if ref.shot == shot_id:
        return None, f"shot '{shot_id}': {fld} refers to the shot itself"
    if stills and ref.shot in stills:
        why = still_ref_problem(ref, stills)
        return (None, f"shot '{shot_id}': {fld}: {why}") if why else (FrameRef(ref.shot, "last"), None)
    if isinstance(ref.selector, float) and ref.selector > durations[ref.shot]:
        lasts = durations[ref.shot]
        return None, (f"shot '{shot_id}': {fld} asks for {ref.selector:g} s into '{ref.shot}', "
                      f"which lasts {lasts} s; allowed: 0..{lasts}")
    return ref, None


def shot_frames(
    model: StoryboardModel, i: int, ids: Mapping[str, int], durations: Mapping[str, int],
    folder: Path, checked: ImageChecks, flaws: list[Flaw], stills: Mapping[str, int] | None = None,
) -> tuple[ImageSource | None, ImageSource | None]:
    """Which start and end frames shot ``i`` uses. Without ``image`` a chained shot starts
    on the previous shot's last frame; ``image: null`` means none."""
    shot = model.shots[i]
    image: ImageSource | None = None
    image_failed = False
    if "image" in shot.model_fields_set:
        if shot.image is not None:
            image, why = frame_source(shot.image, shot.id, "image", ids, durations, folder, checked, stills)
            if why is not None:
                image_failed = True
                flaws.append(Flaw(why, ("shots", i, "image")))
    elif model.chain and i > 0 and shot.kind != "title":  # a title card starts on no frame
        image = FrameRef(model.shots[i - 1].id, "last")
    end_image: ImageSource | None = None
    if shot.end_image is not None:
        end_image, why = frame_source(shot.end_image, shot.id, "end_image", ids, durations, folder, checked,
                                      stills)
        if why is not None:
            flaws.append(Flaw(why, ("shots", i, "end_image")))
        if image is None and not image_failed:
            flaws.append(Flaw(
                f"shot '{shot.id}': end_image needs a start image; give the shot an 'image' (an end frame needs a start frame)",
                ("shots", i, "end_image"), key=True))
    return image, end_image


def shot_transition(shot: Shot, i: int, flaws: list[Flaw]) -> tuple[str, float]:
    """The transition into a shot and its length in seconds ("cut" and 0 for none)."""
    t = shot.transition
    if t is None:
        return "cut", 0.0
    ttype, tdur = (t, DEFAULT_TRANSITION_SECONDS) if isinstance(t, str) else (t.type, t.duration)
    if ttype not in TRANSITIONS:
        flaws.append(Flaw(
            f"shot '{shot.id}': unknown transition '{ttype}'{did_you_mean(ttype, sorted(TRANSITIONS))} "
            "(allowed: cut, dissolve, fade, fadeblack, wipeleft, slideleft… any ffmpeg xfade name)",
            ("shots", i, "transition")))
    return ttype, (0.0 if ttype == "cut" else tdur)


def shot_inputs(shot: Shot, defaults: Defaults, duration: int) -> dict[str, Any]:
    """A shot's inputs in storyboard's words: its own value where set, else the file's default."""
    def pick(name: str) -> Any:
        own = getattr(shot, name)
        return own if own is not None else getattr(defaults, name)

    return {
        "app": pick("app"), "mode": pick("mode"), "resolution": pick("resolution"),
        "aspect_ratio": pick("aspect_ratio"), "duration": duration, "sound": pick("sound"),
        "multi_shot": pick("multi_shot"), "negative_prompt": pick("negative_prompt"),
        "inputs": {**defaults.inputs, **shot.inputs},
    }


def film_cut(model: StoryboardModel, ids: Mapping[str, int], flaws: list[Flaw]) -> tuple[str, ...]:
    """The film's order: the file's ``cut``, or every shot in file order."""
    cut = model.cut
    if cut is None:
        return tuple(s.id for s in model.shots)
    if not cut:
        flaws.append(Flaw("'cut' is empty; list the shots of the film in order (or leave 'cut' out)", ("cut",)))
    for j, sid in enumerate(cut):
        if sid not in ids:
            flaws.append(Flaw(f"cut names unknown shot '{sid}'{did_you_mean(sid, ids)}", ("cut", j)))
    return tuple(cut)


def cut_transition_flaws(cut: Sequence[str], by_id: Mapping[str, ResolvedShot]) -> list[Flaw]:
    """Transitions checked against their neighbours in the cut."""
    flaws: list[Flaw] = []
    for j, sid in enumerate(cut):
        s = by_id.get(sid)
        if s is None or s.transition == "cut":
            continue
        loc = ("shots", s.index, "transition")
        if j == 0:
            flaws.append(Flaw(f"shot '{sid}' opens the film, so it has no shot before it to "
                              f"{s.transition} from; remove its transition", loc))
            continue
        prev = by_id.get(cut[j - 1])
        if prev is not None and s.transition_duration >= min(prev.duration, s.duration):
            flaws.append(Flaw(
                f"shot '{sid}': transition lasts {s.transition_duration:g} s; it must be shorter than both "
                f"neighbouring clips ('{prev.id}' {prev.duration} s, '{sid}' {s.duration} s)", loc))
    return flaws


def audio_tracks(folder: Path, tracks: Sequence[AudioTrack], flaws: list[Flaw]) -> list[tuple[Path, AudioTrack]]:
    """Each audio track with its file, which must exist inside the folder."""
    out: list[tuple[Path, AudioTrack]] = []
    for j, track in enumerate(tracks):
        if track.file is None or track.app is not None:  # generated music: storyboard.music checks it
            continue
        p, why = inside(folder, track.file)
        if p is None:
            flaws.append(Flaw(f"audio[{j}]: {why}", ("audio", j, "file")))
        elif not p.is_file():
            flaws.append(Flaw(f"audio[{j}]: audio file '{track.file}' does not exist", ("audio", j, "file")))
        else:
            out.append((p, track))
    return out


def template_folders(folder: Path, rels: Sequence[str], flaws: list[Flaw]) -> list[Path]:
    """The ``templates:`` folders, which must exist inside the storyboard's folder."""
    out: list[Path] = []
    for j, rel in enumerate(rels):
        p, why = inside(folder, rel)
        if p is None:
            flaws.append(Flaw(f"templates[{j}]: {why}", ("templates", j)))
        elif not p.is_dir():
            flaws.append(Flaw(f"templates[{j}]: template folder '{rel}' does not exist", ("templates", j)))
        else:
            out.append(p)
    return out


def film_output(path: Path, output: str | None, flaws: list[Flaw]) -> Path:
    """Where the film goes: ``output:`` inside the folder, else out/<file stem>.mp4."""
    default = path.parent / "out" / f"{path.stem}.mp4"
    if not output:
        return default
    # A storyboard must not write outside its folder (--output may, on purpose), nor over itself.
    out_path, why = inside(path.parent, output)
    if out_path is None:
        flaws.append(Flaw(f"output: {why} (use --output to write the film elsewhere)", ("output",)))
    elif out_path.resolve() == path.resolve():
        flaws.append(Flaw("output: is the storyboard file itself; name a video file such as out/film.mp4",
                          ("output",)))
    else:
        return out_path
    return default
