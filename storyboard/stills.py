"""Stills and characters on apps (pure): a still's concepts, where its fields are written,
and whether a shot's reference images fit its app (count, files, exclusions).

How a storyboard spells stills and characters is ``storyboard.spec.stills``; this module
is what apps make of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard import apps
from storyboard.errors import AppError, Problem
from storyboard.request import FrameRef, parse_frame_ref

if TYPE_CHECKING:
    from storyboard.apps import AppProfile, AppVersion
    from storyboard.spec import ResolvedShot, Spec

__all__ = ["keyframe_problems", "max_references", "reference_labels", "reference_problems", "references_note",
           "still_concepts", "still_field"]


def still_concepts(still: ResolvedShot, prompt: str) -> dict[str, Any]:
    """A still's concepts in storyboard's words (None = not set): no duration, no sound."""
    return {
        "prompt": prompt,
        "aspect_ratio": still.aspect_ratio,
        "resolution": still.resolution,
        "negative_prompt": still.negative_prompt,
    }


def still_field(spec: Spec, still: ResolvedShot, concept: str) -> tuple[str | int, ...]:
    """Where a still's concept is written (for error locations)."""
    if concept.startswith("inputs."):
        return ("stills", still.index, "inputs", concept.split(".", 1)[1])
    fld = "template" if concept == "prompt" and still.prompt is None else concept
    model = spec.model.stills[still.index]
    if fld in model.model_fields_set or fld == "template" or fld == "prompt":
        return ("stills", still.index, fld)
    if fld == "aspect_ratio" and fld in spec.model.defaults.model_fields_set:
        return ("defaults", fld)
    return ("stills", still.index)


def max_references(version: AppVersion, name: str, profile: AppProfile | None = None) -> int | None:
    """The most reference images the app takes: its schema's ``maxItems``, else its profile's
    ``max_references`` rule (a limit the schema only states in words: Wan's "≤ 5")."""
    ruled = profile.rule(version.version_id, "max_references") if profile is not None else None
    if isinstance(ruled, int):
        return ruled
    prop = version.properties.get(name, {})
    for option in [prop, *prop.get("anyOf", [])]:
        if isinstance(option, dict) and isinstance(option.get("maxItems"), int):
            return int(option["maxItems"])
    return None


def _file_problem(profile: AppProfile, version: AppVersion, src: Any) -> str | None:
    rules = profile.rule(version.version_id, "files") or {}
    path = Path(src.path)
    size = path.stat().st_size if path.exists() else 0
    limit = rules.get("max_bytes")
    if isinstance(limit, int) and size > limit:
        return f"reference '{src.rel}' is {size / 1e6:.1f} MB; {profile.app} takes at most {limit / 1e6:.0f} MB"
    formats = rules.get("formats")
    kind = "png" if path.read_bytes()[:4] == b"\x89PNG" else "jpeg"
    if isinstance(formats, list) and kind not in formats:
        return f"reference '{src.rel}' is {kind}; {profile.app} takes {', '.join(formats)}"
    low = rules.get("min_side")
    if isinstance(low, int) and min(src.width, src.height) < low:
        return (f"reference '{src.rel}' is {src.width}×{src.height} px; {profile.app} needs at least "
                f"{low} px on the short side")
    return None


def reference_problems(spec: Spec, shot: ResolvedShot, profile: AppProfile, version: AppVersion) -> list[Problem]:
    """Why a shot's reference images cannot go to its app, located; [] when they can (or
    when the app takes no references: then only the descriptions reach the prompt)."""
    if not shot.references or shot.is_still:
        return []
    name = profile.input_name("references", version)
    if name is None:
        return []
    where = spec.shot_path(shot.id, "characters")
    out: list[Problem] = []
    most = max_references(version, name, profile)
    if most is not None and len(shot.references) > most:
        out.append(spec.source.problem(
            f"shot '{shot.id}': its characters bring {len(shot.references)} reference images; "
            f"{profile.app} takes at most {most} ({name})", where))
    for src in shot.references:
        if not isinstance(src, FrameRef):
            why = _file_problem(profile, version, src)
            if why:
                out.append(spec.source.problem(f"shot '{shot.id}': {why}", where))
    frames = {"image": shot.image, "end_image": shot.end_image}
    blocked = set(profile.excludes.get(name, ()))
    clash = [role for role, src in frames.items()
             if src is not None and profile.input_name(_CONCEPT[role], version) in blocked]
    if clash:
        written = spec.shot_path(shot.id, clash[0]) in spec.source.values
        how = "" if written else f" (chained from {clash and _text(frames[clash[0]])})"
        out.append(spec.source.problem(
            f"shot '{shot.id}': {profile.app} takes reference images ({name}) or a start/end frame, not both; "
            f"this shot has characters with references and {_WORD[clash[0]]}{how}. "
            "Set image: null on the shot, or give it another app", spec.shot_path(shot.id, clash[0])
            if written else where))
    return out


_CONCEPT = {"image": "start_frame", "end_image": "end_frame"}
_WORD = {"image": "a start frame", "end_image": "an end frame"}


def _text(src: Any) -> str:
    return src.text if isinstance(src, FrameRef) else str(src)


def references_note(shot: ResolvedShot, profile: AppProfile | None, version: AppVersion | None) -> str | None:
    """For ``plan``: a note when a shot's reference images are not sent (its app takes none)."""
    if not shot.references or profile is None or version is None:
        return None
    if profile.input_name("references", version) is not None:
        return None
    return (f"{profile.app} takes no reference images; {len(shot.references)} reference(s) of "
            f"{', '.join(shot.characters)} unused (the descriptions are in the prompt)")


def reference_labels(spec: Spec, shot: ResolvedShot) -> dict[str, str]:
    """Each of the shot's characters' reference images as its app names them in the prompt
    (klingai/video-o1: ``@image_1`` for the first of ``reference_images``), by its place in the
    shot's reference list; {} when the app names none (its profile's ``reference_names``)."""
    if not shot.references or shot.is_still:
        return {}
    try:
        ref = apps.parse_app_ref(shot.app)
    except AppError:
        return {}
    profile = apps.profile(ref.name)
    pattern = profile.rule(ref.version or profile.current, "reference_names") if profile is not None else None
    if not isinstance(pattern, str):
        return {}
    place = {_text(src) if isinstance(src, FrameRef) else Path(src.rel).as_posix(): n
             for n, src in enumerate(shot.references, 1)}
    out: dict[str, str] = {}
    for name in shot.characters:
        labels = []
        for value in spec.model.characters[name].references:
            try:
                frame = parse_frame_ref(value)
            except ValueError:
                continue
            n = place.get(FrameRef(frame.shot, "last").text if frame is not None else Path(value).as_posix())
            if n is not None:
                labels.append(pattern.format(n=n))
        if labels:
            out[name] = ", ".join(labels)
    return out


def keyframe_problems(spec: Spec, shot: ResolvedShot, profile: AppProfile, version: AppVersion) -> list[Problem]:
    """Why a shot's ``keyframes:`` cannot go to its app, located; [] when they can."""
    if not shot.keyframes or shot.is_still:
        return []
    where = spec.shot_path(shot.id, "keyframes")
    name = profile.input_name("keyframes", version)
    if name is None:
        return [spec.source.problem(
            f"shot '{shot.id}': {profile.app} takes no keyframes; give the shot an app that does "
            "(bfl/flux-3-video), or remove keyframes:", where)]
    out = []
    for j, (_, src) in enumerate(shot.keyframes):
        why = None if isinstance(src, FrameRef) else _file_problem(profile, version, src)
        if why:
            out.append(spec.source.problem(f"shot '{shot.id}': keyframe {why}", (*where, j, "image")))
    blocked = set(profile.excludes.get(name, ()))
    start = profile.input_name("start_frame", version)
    if shot.image is not None and start in blocked:
        written = spec.shot_path(shot.id, "image") in spec.source.values
        how = "" if written else f" (chained from {_text(shot.image)})"
        out.append(spec.source.problem(
            f"shot '{shot.id}': {profile.app} takes keyframes ({name}) or a start image, not both; this shot has "
            f"both{how}. Set image: null on the shot, or make the start image a keyframe at 0",
            spec.shot_path(shot.id, "image") if written else where))
    return out
