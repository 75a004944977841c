"""Each shot's app inputs: its concepts resolved against the profile of the app it runs
on, checked against that app version's schema, every problem located in the file.

Pure. ``resolve_inputs`` runs at load (offline, against the bundled or pulled snapshot)
and again before the first paid call with the versions read live from inference.sh; a
problem found only live says what changed, names the shots, and that nothing was paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from storyboard import apps
from storyboard.errors import AppError, Problem, SpecError
from storyboard.spec.models import DEFAULT_APP, DEFAULT_IMAGE_APP
from storyboard.stills import keyframe_problems, reference_problems, still_concepts, still_field

if TYPE_CHECKING:
    from storyboard.spec import ResolvedShot, Spec

# A concept's field in the storyboard file, where the two differ.
_FIELD = {"start_frame": "image", "end_frame": "end_image"}


@dataclass(frozen=True)
class ShotInputs:
    """What one shot sends: app (as written), resolved version, inputs, file input names."""

    app: str  # as written (``klingai/video-v3`` or ``klingai/video-v3@VERSION``)
    name: str  # ``namespace/name``
    version_id: str
    pinned: bool
    inputs: Mapping[str, Any]
    files: Mapping[str, str]
    price: Decimal | None
    tier: str
    rate: Decimal | None
    dropped: tuple[str, ...] = ()  # storyboard-wide defaults this app has no input for (not sent)


def concepts_of(shot: ResolvedShot, prompt: str) -> dict[str, Any]:
    """A shot's concepts in storyboard's words (None = not set)."""
    if shot.is_still:
        return still_concepts(shot, prompt)
    return {
        "prompt": prompt,
        "duration": shot.duration,
        "aspect_ratio": shot.aspect_ratio,
        "resolution": shot.resolution,
        "sound": shot.sound,
        "negative_prompt": shot.negative_prompt,
        "mode": shot.mode,
        "multi_shot": shot.multi_shot,
    }


def allowed_values(app: str, concept: str) -> str | None:
    """What ``app`` (a reference as written) allows for a concept, as a clause naming the
    app (``klingai/video-v3 allows 16:9, 9:16, 1:1``); None for an app storyboard does not
    know. The file format's messages use it (``spec.load_spec(allowed=...)``)."""
    try:
        ref = apps.parse_app_ref(app)
    except AppError:
        return None
    profile = apps.profile(ref.name)
    version = (profile.version(ref.version) or profile.version()) if profile is not None else None
    if profile is None or version is None:
        return None
    name = profile.input_name(concept, version)
    prop = version.properties.get(name) if name is not None else None
    if prop is None:
        return f"{ref.name} has no {apps.concept_word(concept)}; remove it"
    return f"{ref.name} allows {apps.allowed_text(prop)}"


def _field_path(spec: Spec, shot: ResolvedShot, concept: str) -> tuple[str | int, ...]:
    if shot.is_still:
        return still_field(spec, shot, concept)
    if concept.startswith("inputs."):
        name = concept.split(".", 1)[1]
        if name in spec.model.shots[shot.index].inputs or name not in spec.model.defaults.inputs:
            return ("shots", shot.index, "inputs", name)
        return ("defaults", "inputs", name)
    fld = _FIELD.get(concept, concept)
    if concept == "prompt" and shot.prompt is None:
        fld = "template"
    model = spec.model.shots[shot.index]
    if fld in model.model_fields_set or fld not in spec.model.defaults.model_fields_set:
        return ("shots", shot.index, fld)
    return ("defaults", fld)


def _takes(profile: apps.AppProfile, version: apps.AppVersion, concept: str) -> bool:
    """Whether this app version has an input for the concept (``mode`` may map to a tier)."""
    if profile.input_name(concept, version) is not None:
        return True
    return concept == "mode" and bool(profile.mode_tiers)


def _written(spec: Spec, shot: ResolvedShot, concept: str, value: Any) -> bool:
    """Whether the node itself says ``value`` for the concept (not a default or override)."""
    model = spec.model.stills[shot.index] if shot.is_still else spec.model.shots[shot.index]
    return concept in model.model_fields_set and getattr(model, concept, None) == value


def follow_app(spec: Spec, shot: ResolvedShot, profile: apps.AppProfile, version: apps.AppVersion,
               concepts: dict[str, Any], raw: dict[str, Any], elsewhere: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Defaults follow the app: a storyboard-wide value (``defaults:``, an override, the
    format's own default) for a concept this app has no input for is not sent; it is
    taken out of ``concepts`` and named in what is returned. So is a `defaults.inputs`
    name this app lacks that another app of the board takes (``elsewhere``): one no app
    takes stays, a mistake to report. A value written on the node itself stays, so the
    app's check reports it, located."""
    dropped: list[str] = []
    for concept, value in concepts.items():
        if value is None or concept == "prompt" or _takes(profile, version, concept):
            continue
        if not _written(spec, shot, concept, value):
            concepts[concept] = None
            dropped.append(concept)
    own = spec.model.stills[shot.index].inputs if shot.is_still else spec.model.shots[shot.index].inputs
    for name in [n for n in raw if n not in own and n not in version.properties and n in elsewhere]:
        del raw[name]
        dropped.append(f"inputs.{name}")
    return tuple(dropped)


def _node(shot: ResolvedShot) -> str:
    return f"{shot.kind} '{shot.id}'"


def _version(profile: apps.AppProfile, ref: apps.AppRef,
             live: Mapping[str, apps.AppVersion] | None) -> apps.AppVersion | None:
    if live is not None and ref.text in live:
        return live[ref.text]
    return profile.version(ref.version) or profile.version()


def resolve_inputs(spec: Spec, prompts: Mapping[str, str],
                   live: Mapping[str, apps.AppVersion] | None = None) -> dict[str, ShotInputs]:
    """Every shot's inputs; raises SpecError with every problem, located.

    ``live`` maps an app reference as written to the version read from inference.sh.
    """
    problems: dict[tuple[Any, ...], Problem] = {}
    elsewhere = _inputs_of_apps(spec, live)
    live_groups: dict[tuple[str, str, str], list[tuple[ResolvedShot, Any]]] = {}
    out: dict[str, ShotInputs] = {}
    for shot in spec.shots:
        if shot.id not in prompts or shot.kind == "title":  # a title card is drawn here: no app
            continue
        try:
            ref = apps.parse_app_ref(shot.app)
        except AppError as e:
            loc = _field_path(spec, shot, "app")
            problems[(loc, str(e))] = spec.source.problem(f"{_node(shot)}: {e}", loc)
            continue
        profile = apps.profile(ref.name)
        if profile is None:
            loc = _field_path(spec, shot, "app")
            known = ", ".join(apps.known_apps())
            msg = f"unknown app '{ref.name}'; storyboard knows: {known} (add a profile, or `storyboard apps pull`)"
            problems[(loc, msg)] = spec.source.problem(f"{_node(shot)}: {msg}", loc)
            continue
        wanted = "image" if shot.is_still else "video"
        if profile.kind != wanted:
            loc = _field_path(spec, shot, "app")
            example = DEFAULT_IMAGE_APP if shot.is_still else DEFAULT_APP
            what = "a still needs an image app" if shot.is_still else "a shot needs a video app"
            msg = f"{ref.name} is an {profile.kind} app; {what} (e.g. {example})"
            problems[(loc, msg)] = spec.source.problem(f"{_node(shot)}: {msg}", loc)
            continue
        version = _version(profile, ref, live)
        if version is None:
            continue
        concepts = concepts_of(shot, prompts[shot.id])
        raw = dict(shot.inputs)
        dropped = follow_app(spec, shot, profile, version, concepts, raw, elsewhere)
        got = apps.app_inputs(profile, version, concepts, raw)
        for flaw in reference_problems(spec, shot, profile, version) + keyframe_problems(spec, shot, profile, version):
            problems[(flaw.message,)] = flaw
        for p in got.problems:
            loc = _field_path(spec, shot, p.concept)
            if live is not None:
                value = concepts.get(p.concept, (shot.inputs).get(p.concept[7:]))
                live_groups.setdefault((ref.text, version.version_id, p.concept), []).append((shot, value))
                continue
            where = "defaults" if loc[0] == "defaults" else _node(shot)
            problems[(loc, p.message)] = spec.source.problem(f"{where}: {p.message}", loc)
        sent = {got.files[c]: n for c, n in (("start_frame", int(shot.image is not None)),
                                             ("end_frame", int(shot.end_image is not None)),
                                             ("references", len(shot.references))) if n and c in got.files}
        quote = apps.quote(profile, got.inputs, sent, version)  # file inputs sent can set the rate (Seedance)
        out[shot.id] = ShotInputs(
            app=ref.text, name=ref.name, version_id=version.version_id, pinned=ref.version is not None,
            inputs=got.inputs, files=got.files, price=quote.usd, tier=quote.tier, rate=quote.rate,
            dropped=dropped)
    for (app, vid, concept), shots in live_groups.items():
        problems[(app, vid, concept)] = _live_problem(spec, app, vid, concept, shots, live or {})
    if problems:
        raise SpecError(list(problems.values()))
    return out


def _inputs_of_apps(spec: Spec, live: Mapping[str, apps.AppVersion] | None) -> frozenset[str]:
    """Every input name that some app of the board's nodes takes."""
    names: set[str] = set()
    for app in {s.app for s in spec.shots if s.kind != "title"}:
        try:
            ref = apps.parse_app_ref(app)
        except AppError:
            continue
        profile = apps.profile(ref.name)
        version = _version(profile, ref, live) if profile is not None else None
        names |= set(version.properties) if version is not None else set()
    return frozenset(names)


def _live_problem(spec: Spec, app: str, vid: str, concept: str, shots: list[tuple[ResolvedShot, Any]],
                  live: Mapping[str, apps.AppVersion]) -> Problem:
    """One line per field: what the live app allows, which shots ask for what, and what to do."""
    first = shots[0][0]
    version = live[app]
    name = apps.profile(apps.app_name(app))
    input_name = name.concepts.get(concept, concept) if name else concept
    prop = version.properties.get(input_name.removeprefix("inputs."))
    ids = ", ".join(s.id for s, _ in shots[:8]) + (" …" if len(shots) > 8 else "")
    values = sorted({repr(v) if not isinstance(v, str) else v for _, v in shots})
    if prop is None:
        what = f"no longer has an input for {apps.concept_word(concept)}"
    else:
        what = f"allows {input_name} {apps.allowed_text(prop)}"
    msg = (f"{app} (version {vid}, read live from inference.sh) {what}; shot{'s' if len(shots) > 1 else ''} {ids} "
           f"ask{'' if len(shots) > 1 else 's'} for {', '.join(values)}. Nothing was paid: change the storyboard, "
           "or pin the version it was written for (app: NAME@VERSION)")
    return spec.source.problem(msg, _field_path(spec, first, concept))
