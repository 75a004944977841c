"""Checking inputs against an app version's input schema, with messages a user can act on.

App schemas use a small part of JSON Schema: ``type``, ``enum``, ``minimum``/``maximum``,
``maxLength``, ``maxItems``, ``anyOf`` (for "or null") and ``$ref`` to ``$defs``. This
checks exactly those keywords. ``jsonschema`` would do it too, but importing it costs
0.2-0.4 s, more than planning a 1,000-shot film may take; ``tests/test_apps.py`` checks
that this module and ``jsonschema`` agree on every bundled schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storyboard.apps._profile import AppProfile, AppVersion

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list, tuple), "object": (dict,), "null": (type(None),),
}


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
    if "enum" in prop and value not in prop["enum"]:
        return "enum"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in prop and value < prop["minimum"]:
            return "range"
        if "maximum" in prop and value > prop["maximum"]:
            return "range"
    if isinstance(value, str) and "maxLength" in prop and len(value) > prop["maxLength"]:
        return "length"
    if isinstance(value, (list, tuple)):
        if "maxItems" in prop and len(value) > prop["maxItems"]:
            return "items"
        items = prop.get("items")
        if isinstance(items, Mapping):
            for item in value:
                if _violation(item, items) is not None:
                    return "item"
    return None


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
