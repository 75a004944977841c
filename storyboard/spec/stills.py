"""Stills and characters: the ``stills:`` list resolved into graph nodes of kind "still",
and each shot's ``characters:`` resolved into their reference images.

A still is an image made by an image app from a Jinja2 prompt. It is a node of the same
graph as the shots (same ids space, same cache, plan and journal), but it is never part
of the film: a shot starts or ends on it with ``image: "@ID"``, and a character may use
it as a reference image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from storyboard.request import FrameRef, parse_frame_ref
from storyboard.spec.images import ImageChecks, check_image_file
from storyboard.spec.messages import Flaw, did_you_mean
from storyboard.spec.models import ID_PATTERN, StoryboardModel
from storyboard.spec.resolved import ImageSource, ResolvedShot

__all__ = ["resolve_stills", "shot_references", "still_ids", "unused_characters"]


def still_ids(model: StoryboardModel, shot_ids: Mapping[str, int], flaws: list[Flaw]) -> dict[str, int]:
    """Each still's id and index; bad ids and ids shared with a shot or still are flaws."""
    ids: dict[str, int] = {}
    for i, still in enumerate(model.stills):
        loc = ("stills", i, "id")
        if not ID_PATTERN.match(still.id):
            flaws.append(Flaw(f"still id '{still.id}' may use only lower-case letters, digits, '_' and '-'", loc))
        if still.id in shot_ids:
            flaws.append(Flaw(f"still id '{still.id}' is also a shot's id; ids are shared by shots and stills", loc))
        elif still.id in ids:
            flaws.append(Flaw(f"duplicate still id '{still.id}' (first used by stills[{ids[still.id]}])", loc))
        else:
            ids[still.id] = i
    return ids


def resolve_stills(model: StoryboardModel, flaws: list[Flaw]) -> list[ResolvedShot]:
    """Each still as a graph node of kind "still" (no frames, no duration, no sound)."""
    out: list[ResolvedShot] = []
    for i, still in enumerate(model.stills):
        if (still.prompt is None) == (still.template is None):
            flaws.append(Flaw(f"still '{still.id}' needs exactly one of 'prompt' and 'template'", ("stills", i)))
        out.append(ResolvedShot(
            index=i, id=still.id, prompt=still.prompt, template=still.template, image=None, end_image=None,
            vars=dict(still.vars), transition="cut", transition_duration=0.0, seam=model.seam, app=still.app,
            mode=None, resolution=still.resolution,
            aspect_ratio=still.aspect_ratio or model.defaults.aspect_ratio, duration=0, sound=False,
            multi_shot=None, negative_prompt=still.negative_prompt, inputs=dict(still.inputs), kind="still"))
    return out


def still_ref_problem(ref: FrameRef, stills: Mapping[str, int]) -> str | None:
    """Why a frame reference to a still is wrong (a still has one image: no time in it)."""
    if ref.shot in stills and isinstance(ref.selector, float):
        return f"'{ref.shot}' is a still (one image); write '@{ref.shot}', without a time"
    return None


def character_references(
    model: StoryboardModel, stills: Mapping[str, int], shots: Mapping[str, int], folder: Path,
    checked: ImageChecks, flaws: list[Flaw],
) -> dict[str, tuple[ImageSource, ...]]:
    """Each character's reference images: checked files, or stills (``@ID``)."""
    out: dict[str, tuple[ImageSource, ...]] = {}
    for name, char in model.characters.items():
        refs: list[ImageSource] = []
        for j, value in enumerate(char.references):
            loc = ("characters", name, "references", j)
            try:
                ref = parse_frame_ref(value)
            except ValueError as e:
                flaws.append(Flaw(f"character '{name}': {e}", loc))
                continue
            if ref is None:
                if value not in checked:
                    checked[value] = check_image_file(folder, value)
                img, why = checked[value]
                if img is None:
                    flaws.append(Flaw(f"character '{name}': reference: {why}", loc))
                else:
                    refs.append(img)
            elif ref.shot in stills:
                if isinstance(ref.selector, float):
                    flaws.append(Flaw(f"character '{name}': '{ref.shot}' is a still (one image); "
                                      f"write '@{ref.shot}'", loc))
                refs.append(FrameRef(ref.shot, "last"))
            elif ref.shot in shots:
                flaws.append(Flaw(f"character '{name}': reference '@{ref.shot}' names a shot, not a still; "
                                  "references are image files or stills", loc))
            else:
                flaws.append(Flaw(f"character '{name}': reference names unknown still '{ref.shot}'"
                                  f"{did_you_mean(ref.shot, list(stills))}", loc))
        out[name] = tuple(refs)
    return out


def shot_references(
    model: StoryboardModel, i: int, refs: Mapping[str, tuple[ImageSource, ...]], flaws: list[Flaw],
) -> tuple[tuple[str, ...], tuple[ImageSource, ...]]:
    """A shot's characters (checked names) and their reference images, each image once."""
    shot = model.shots[i]
    names: list[str] = []
    images: dict[str, ImageSource] = {}
    for j, name in enumerate(shot.characters):
        if name not in model.characters:
            known = list(model.characters)
            hint = did_you_mean(name, known) or (f" (known: {', '.join(known)})" if known else
                                                 " (the file has no top-level 'characters:')")
            flaws.append(Flaw(f"shot '{shot.id}': unknown character '{name}'{hint}", ("shots", i, "characters", j)))
            continue
        if name in names:
            continue
        names.append(name)
        for src in refs.get(name, ()):
            images.setdefault(src.text if isinstance(src, FrameRef) else src.rel, src)
    return tuple(names), tuple(images.values())


def unused_characters(model: StoryboardModel) -> list[str]:
    """Characters no shot lists (a warning, not an error)."""
    used = {n for s in model.shots for n in s.characters}
    return [n for n in model.characters if n not in used]


def cut_still_flaws(cut: Sequence[str], stills: Mapping[str, int]) -> list[Flaw]:
    """A still is an image, not a clip: it cannot be in the film's cut."""
    return [Flaw(f"cut names '{sid}', a still (an image); the cut lists shots. Start a shot on it with "
                 f"image: \"@{sid}\"", ("cut", j)) for j, sid in enumerate(cut) if sid in stills]
