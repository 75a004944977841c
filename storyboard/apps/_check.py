"""Checking inputs against an app version's input schema, with messages a user can act on.

App schemas use a small part of JSON Schema: ``type``, ``enum``, ``const``, ``minimum``/
``maximum`` (and their exclusive forms), ``minLength``/``maxLength``, ``minItems``/
``maxItems``, ``items``, ``properties``/``required``/``additionalProperties`` of nested
objects, ``anyOf`` (for "or null") and ``$ref`` to ``$defs``. This checks exactly those
keywords. ``jsonschema`` would do it too, but importing it costs 0.2-0.4 s, more than
planning a 1,000-shot film may take; ``tests/test_apps.py`` checks that this module and
``jsonschema`` agree on every bundled schema.

It fails closed: a version whose schema uses any other keyword (``pattern``, ``oneOf``,
``allOf``, ``if``...) is *also* checked with ``jsonschema``, imported then (lazily), so a
keyword this module does not know is never silently accepted (:func:`unchecked_keywords`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storyboard.apps._profile import AppProfile, AppVersion

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list, tuple), "object": (dict,), "null": (type(None),),
}


# keywords _violation implements, and annotations that constrain nothing
_CHECKED = frozenset({
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "minItems", "maxItems", "items", "properties", "required", "additionalProperties", "anyOf",
    "$ref", "$defs",
})
_NOTES = frozenset({
    "title", "description", "default", "examples", "format", "deprecated", "readOnly", "writeOnly",
    "$comment", "$schema", "$id", "contentMediaType", "contentEncoding",
})


def _unchecked(node: Any, found: set[str]) -> None:
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        if key in _NOTES or key.startswith("x-"):
            continue
        if key not in _CHECKED or (key == "items" and not isinstance(value, Mapping)):
            found.add(key)
        elif key in ("properties", "$defs") and isinstance(value, Mapping):
            for sub in value.values():
                _unchecked(sub, found)
        elif key == "anyOf" and isinstance(value, list):
            for sub in value:
                _unchecked(sub, found)
        elif key in ("items", "additionalProperties"):
            _unchecked(value, found)


@functools.lru_cache(maxsize=64)
def _unchecked_cached(schema_json: str) -> frozenset[str]:
    found: set[str] = set()
    _unchecked(json.loads(schema_json), found)
    return frozenset(found)


def unchecked_keywords(version: AppVersion) -> frozenset[str]:
    """The JSON-Schema keywords of the version's input schema that this module does not
    implement (empty for every bundled app today): such a version is checked with jsonschema."""
    return _unchecked_cached(json.dumps(version.input_schema, sort_keys=True))


@dataclass(frozen=True)
class InputProblem:
    """One input the app would not take: its name and why (naming what is allowed)."""

    name: str
    message: str
    allowed: str = ""


def _type_ok(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, (object,)))


def _fmt(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value).replace("True", "true").replace("False", "false")


def allowed_text(prop: Mapping[str, Any]) -> str:
    """What a schema property allows, in words: ``16:9, 9:16, 1:1``, ``3..15`` or ``a boolean``."""
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"] or [prop]
    parts = []
    for opt in options:
        if "enum" in opt:
            parts.append(", ".join(str(v) for v in opt["enum"]))
        elif "minimum" in opt or "maximum" in opt:
            parts.append(f"{opt.get('minimum', '')}..{opt.get('maximum', '')}")
        elif opt.get("type") == "string" and "maxLength" in opt:
            parts.append(f"text of at most {opt['maxLength']} characters")
        elif opt.get("format") == "file":
            parts.append("a file")
        elif "type" in opt:
            parts.append({"integer": "an integer", "number": "a number", "boolean": "true or false",
                          "string": "text", "array": "a list", "object": "a mapping"}.get(opt["type"], opt["type"]))
    return " or ".join(dict.fromkeys(parts))


def _violation(value: Any, prop: Mapping[str, Any]) -> str | None:
    """Why ``value`` breaks ``prop`` (None when it fits)."""
    if "anyOf" in prop:
        reasons = [_violation(value, opt) for opt in prop["anyOf"]]
        if any(r is None for r in reasons):
            return None
        real = [r for r, opt in zip(reasons, prop["anyOf"], strict=True) if opt.get("type") != "null"]
        return (real or reasons)[0]
    kind = prop.get("type")
    if isinstance(kind, str) and not _type_ok(value, kind):
        return "type"
    if ("enum" in prop and value not in prop["enum"]) or ("const" in prop and value != prop["const"]):
        return "enum"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _out_of_range(value, prop):
        return "range"
    if isinstance(value, str):
        if "maxLength" in prop and len(value) > prop["maxLength"]:
            return "length"
        if len(value) < prop.get("minLength", 0):
            return "short"
    if isinstance(value, (list, tuple)):
        return _list_violation(value, prop)
    if isinstance(value, Mapping):
        return _object_violation(value, prop)
    return None


def _out_of_range(value: float, prop: Mapping[str, Any]) -> bool:
    return (("minimum" in prop and value < prop["minimum"]) or ("maximum" in prop and value > prop["maximum"])
            or ("exclusiveMinimum" in prop and value <= prop["exclusiveMinimum"])
            or ("exclusiveMaximum" in prop and value >= prop["exclusiveMaximum"]))


def _list_violation(value: list[Any] | tuple[Any, ...], prop: Mapping[str, Any]) -> str | None:
    if "maxItems" in prop and len(value) > prop["maxItems"]:
        return "items"
    if len(value) < prop.get("minItems", 0):
        return "few"
    items = prop.get("items")
    if isinstance(items, Mapping) and any(_violation(item, items) is not None for item in value):
        return "item"
    return None


def _object_violation(value: Mapping[str, Any], prop: Mapping[str, Any]) -> str | None:
    """A nested object (a keyframe, a message): its properties, required and extra keys."""
    props = prop.get("properties") or {}
    if any(name not in value for name in prop.get("required", ())):
        return "field"
    extra = prop.get("additionalProperties", True)
    for name, item in value.items():
        sub = props.get(name)
        if sub is None and extra is False:
            return "field"
        sub = sub if sub is not None else extra if isinstance(extra, Mapping) else None
        if sub is not None and _violation(item, sub) is not None:
            return "field"
    return None


def _jsonschema_problems(version: AppVersion, inputs: Mapping[str, Any]) -> list[InputProblem]:
    """What ``jsonschema`` finds wrong (for a version using keywords this module lacks)."""
    try:
        import jsonschema  # lazily: only a schema beyond this module's keywords pays its import
    except ImportError:  # fail closed: refused, never accepted unchecked
        words = ", ".join(sorted(unchecked_keywords(version)))
        return [InputProblem("app", f"{version.app} version {version.version_id} uses schema keywords storyboard "
                                 f"does not check itself ({words}); install jsonschema to check them "
                                 "(pip install 'storyboard-film[schemas]')")]
    known = {k: v for k, v in inputs.items() if k in version.properties}
    validator = jsonschema.Draft202012Validator(version.input_schema)
    out = []
    for error in validator.iter_errors(known):
        name = str(error.absolute_path[0]) if error.absolute_path else "app"
        where = ".".join(str(p) for p in error.absolute_path) or "input"
        out.append(InputProblem(name, f"{version.app}: {where}: {error.message}"))
    return out


def check_inputs(profile: AppProfile | None, version: AppVersion, inputs: Mapping[str, Any]) -> list[InputProblem]:
    """Every way ``inputs`` (app's names) break the version's schema or the profile's rules."""
    props = version.properties
    app = version.app
    problems: list[InputProblem] = []
    for name, value in inputs.items():
        prop = props.get(name)
        if prop is None:
            takes = ", ".join(props)
            problems.append(InputProblem(name, f"{app} has no input '{name}' (it takes: {takes})", takes))
            continue
        why = _violation(value, prop)
        if why is None:
            continue
        allowed = allowed_text(prop)
        if why == "length":
            msg = f"{name} is {len(value)} characters; {app} allows at most {_max_length(prop)}"
        elif why == "items":
            msg = f"{name} lists {len(value)}; {app} takes at most {_max_items(prop)}"
        else:
            msg = f"{app} allows {name} {allowed}; got {_fmt(value)}"
        problems.append(InputProblem(name, msg, allowed))
    if unchecked_keywords(version):  # fail closed: never accept what this module cannot judge
        named = {p.name for p in problems}
        problems += [p for p in _jsonschema_problems(version, inputs) if p.name not in named]
    for name in version.required:
        if inputs.get(name) is None:
            problems.append(InputProblem(name, f"{app} requires '{name}'", allowed_text(props.get(name, {}))))
    if profile is not None:
        for name, others in profile.excludes.items():
            clash = [o for o in others if inputs.get(o) not in (None, [], "")]
            if inputs.get(name) not in (None, [], "") and clash:
                problems.append(InputProblem(name, f"{app}: '{name}' cannot go with {', '.join(clash)}"))
        for name, needed in profile.requires.items():
            if inputs.get(name) is not None and inputs.get(needed) is None and needed in props:
                problems.append(InputProblem(name, f"{app}: '{name}' needs '{needed}' too"))
    return problems


def _max_length(prop: Mapping[str, Any]) -> Any:
    return next((o["maxLength"] for o in prop.get("anyOf", [prop]) if "maxLength" in o), "?")


def _max_items(prop: Mapping[str, Any]) -> Any:
    return next((o["maxItems"] for o in prop.get("anyOf", [prop]) if "maxItems" in o), "?")
