"""From storyboard concepts to one app version's inputs (pure).

A shot says *what* it wants in storyboard's words (duration, aspect ratio, resolution,
sound, mode, negative prompt…). The app's profile says which input carries each
concept in this app; the version's schema says whether this version has it. This module
turns the one into the other and says, for each concept, why it cannot be sent:

* a concept the app lacks is a problem, never a silent drop;
* ``mode: std|pro`` on a version without ``mode`` picks the profile's tier
  (std → 720p, pro → 1080p), unless a resolution is also given (a conflict);
* the profile's storyboard defaults (``multi_shot: false``) apply where the shot says
  nothing, and every input the schema defaults is sent explicitly, so the cache key
  and the price never depend on a default that may change on the server;
* raw ``inputs:`` pass through, but may not set an input a concept already owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storyboard.apps._check import InputProblem, check_inputs
from storyboard.apps._profile import AppProfile, AppVersion

FILE_CONCEPTS = ("start_frame", "end_frame", "references", "keyframes")
# Concepts whose schema default is sent explicitly when the storyboard leaves them unset.
_EXPLICIT = ("duration", "aspect_ratio", "resolution", "sound", "multi_shot")
_WORDS = {
    "negative_prompt": "negative prompt", "aspect_ratio": "aspect ratio", "start_frame": "start frame",
    "end_frame": "end frame", "multi_shot": "multi-shot switch", "references": "reference input",
    "keyframes": "keyframes input",
}


@dataclass(frozen=True)
class ConceptProblem:
    """A concept (or raw input) this app version cannot take, and why."""

    concept: str
    message: str
    allowed: str = ""


@dataclass(frozen=True)
class AppInputs:
    """What one shot sends to one app version (files excluded), and where files go."""

    app: str
    version_id: str
    inputs: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # concept → input name (start_frame → image)
    problems: tuple[ConceptProblem, ...] = ()


def concept_word(concept: str) -> str:
    """A concept as a user reads it: ``aspect ratio``, ``negative prompt``."""
    return _WORDS.get(concept, concept.replace("_", " "))


def _no_concept(profile: AppProfile, version: AppVersion, concept: str) -> str:
    what = concept_word(concept)
    msg = f"{profile.app} (version {version.version_id}) has no {what}"
    if concept == "aspect_ratio" and profile.input_name("start_frame", version):
        msg += "; the clip takes the start frame's"
    elif concept == "negative_prompt":
        msg += "; say what to avoid in the prompt instead, or remove negative_prompt"
    return msg


def app_inputs(profile: AppProfile, version: AppVersion, concepts: Mapping[str, Any],
               raw: Mapping[str, Any] | None = None) -> AppInputs:
    """The inputs for ``concepts`` (None = unset) on this version, with every problem found."""
    problems: list[ConceptProblem] = []
    inputs: dict[str, Any] = {}
    given = {k: v for k, v in concepts.items() if v is not None}
    mode = given.pop("mode", None)
    if mode is not None and profile.input_name("mode", version) is None:
        tier = profile.mode_tiers.get(str(mode))
        if tier is None:
            problems.append(ConceptProblem("mode", _no_concept(profile, version, "mode")))
        elif "resolution" in given and any(given.get(k) != v for k, v in tier.items()):
            shown = ", ".join(f"{k} {v}" for k, v in tier.items())
            problems.append(ConceptProblem("mode", (
                f"mode {mode} and resolution {given['resolution']} disagree: {profile.app} has no mode, and mode "
                f"{mode} means {shown}; keep one of them")))
        else:
            for k, v in tier.items():
                given.setdefault(k, v)
    elif mode is not None:
        given["mode"] = mode
    for concept, value in profile.storyboard_defaults.items():
        if concept not in given and profile.input_name(concept, version):
            given[concept] = value
    files: dict[str, str] = {}
    for concept in FILE_CONCEPTS:
        name = profile.input_name(concept, version)
        if name is not None:
            files[concept] = name
    for concept, value in given.items():
        if concept in FILE_CONCEPTS:
            if concept not in files:
                problems.append(ConceptProblem(concept, _no_concept(profile, version, concept)))
            continue
        name = profile.input_name(concept, version)
        if name is None:
            problems.append(ConceptProblem(concept, _no_concept(profile, version, concept)))
            continue
        inputs[name] = translated(profile, concept, value)
    for concept in _EXPLICIT:
        name = profile.input_name(concept, version)
        if name is not None and name not in inputs and version.default(name) is not None:
            inputs[name] = version.default(name)
    owned = {profile.concepts[c] for c in profile.concepts}
    for name, value in (raw or {}).items():
        if name in owned or name in files.values():
            concept = next(c for c, n in profile.concepts.items() if n == name)
            problems.append(ConceptProblem(f"inputs.{name}", (
                f"inputs.{name} sets what storyboard's '{concept}' sets; write '{concept}:' on the shot instead")))
            continue
        inputs[name] = value
    for p in check_inputs(profile, version, inputs):
        problems.append(_as_concept(profile, p, raw or {}))
    for name, (low, high) in dict(profile.rule(version.version_id, "ranges", {})).items():
        value = inputs.get(name)
        if isinstance(value, int) and not low <= value <= high:
            problems.append(_as_concept(profile, InputProblem(
                name, f"{profile.app} allows {name} {low}..{high}; got {value}", f"{low}..{high}"), raw or {}))
    limit = profile.rule(version.version_id, "prompt_chars")
    prompt_name = profile.input_name("prompt", version)
    prompt = inputs.get(prompt_name) if prompt_name else None
    if isinstance(limit, int) and isinstance(prompt, str) and len(prompt) > limit:
        problems.append(ConceptProblem("prompt", (
            f"the prompt is {len(prompt)} characters after rendering; {profile.app} allows at most {limit}")))
    return AppInputs(profile.app, version.version_id, inputs, files, tuple(problems))


def translated(profile: AppProfile, concept: str, value: Any) -> Any:
    """A concept's value in the app's words (``720p`` → ``720P``, 5 → ``"5"``); as is otherwise."""
    rule = profile.translate.get(concept)
    if rule == "text":
        return str(value)
    if isinstance(rule, Mapping) and isinstance(value, str | int | bool) and str(value) in rule:
        return rule[str(value)]
    return value


def _as_concept(profile: AppProfile, p: InputProblem, raw: Mapping[str, Any]) -> ConceptProblem:
    owner = next((c for c, n in profile.concepts.items() if n == p.name), None)
    if owner is None and p.name in raw:
        return ConceptProblem(f"inputs.{p.name}", p.message, p.allowed)
    return ConceptProblem(owner or p.name, p.message, p.allowed)
