"""Error messages: pydantic's validation errors turned into located problems that say
what is allowed, with a did-you-mean for near misses.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ValidationError

from storyboard.errors import Problem
from storyboard.spec.models import (
    ASPECT_RATIOS,
    DEFAULT_APP,
    DEFAULT_IMAGE_APP,
    AudioTrack,
    Defaults,
    Shot,
    StoryboardModel,
    Transition,
)

if TYPE_CHECKING:
    from storyboard.spec.yamlpos import Path_, SourceMap


# (app reference as written, concept) → what that app allows, in words, or None: the
# caller's (board), since the file format knows no app (storyboard.shotinputs.allowed_values).
Allowed = Callable[[str, str], "str | None"]


class Flaw(NamedTuple):
    """A problem before it is located: its message and its path in the file."""

    message: str
    loc: Path_
    key: bool = False  # point at the key rather than its value


def near(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice closest to ``word`` (difflib), or None when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return match[0] if match else None


def did_you_mean(word: str, choices: Iterable[str], *, quote: str = "") -> str:
    """``"; did you mean 'X'?"`` for the nearest choice, or ``""``."""
    match = near(word, choices)
    return f"; did you mean '{quote}{match}'?" if match else ""


def _model_at(loc: Path_) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc`` (for 'did you mean')."""
    if not loc:
        return StoryboardModel
    if loc == ("defaults",):
        return Defaults
    if len(loc) == 2 and loc[0] == "shots":
        return Shot
    if len(loc) == 3 and loc[0] == "shots" and loc[2] == "transition":
        return Transition
    if len(loc) == 2 and loc[0] == "audio":
        return AudioTrack
    return None


def _where(loc: Path_, data: Any) -> str:
    if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int):
        try:
            sid = data["shots"][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            sid = None
        return f"shot '{sid}'" if isinstance(sid, str) else f"shots[{loc[1]}]"
    if loc and loc[0] == "defaults":
        return "defaults"
    if len(loc) >= 2 and loc[0] == "audio":
        return f"audio[{loc[1]}]"
    if len(loc) >= 2 and loc[0] == "stills":
        sid = _get(data, "stills", loc[1], "id")
        return f"still '{sid}'" if isinstance(sid, str) else f"stills[{loc[1]}]"
    return "the top level"


def _dotted(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # pydantic adds union member tags (e.g. 'Transition', 'str') to loc; drop them.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part[:1].isupper() or part in ("str", "int", "float", "bool", "literal[1]")):
            continue
        if isinstance(part, str) and part.startswith(("function-", "constrained-")):
            continue
        out.append(part)
    return tuple(out)


def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _app_at(loc: Path_, data: Any) -> str:
    """The app reference that the node at ``loc`` runs on, as the file says (or the default)."""
    default = _get(data, "defaults", "app")
    default = default if isinstance(default, str) else DEFAULT_APP
    if len(loc) >= 2 and loc[0] == "stills":
        own = _get(data, "stills", loc[1], "app")
        return own if isinstance(own, str) else DEFAULT_IMAGE_APP
    if len(loc) >= 2 and loc[0] == "shots":
        own = _get(data, "shots", loc[1], "app")
        return own if isinstance(own, str) else default
    return default


def _aspect_message(what: str, e: Any, loc: Path_, data: Any, allowed: Allowed | None) -> str:
    """An aspect ratio's problem, with what the node's own app allows (when known)."""
    app = _app_at(loc, data)
    clause = (allowed(app, "aspect_ratio") if allowed is not None else None) or f"allowed: {', '.join(ASPECT_RATIOS)}"
    if e["type"] == "aspect_unquoted":
        text = e["ctx"]["text"]
        return f"{what} is {e['input']}: YAML reads {text} unquoted as a number; write it quoted: \"{text}\" ({clause})"
    return f"{what} is {e['input']!r}; {clause}"


def problems_from_validation(err: ValidationError, data: Any, source: SourceMap,
                             allowed: Allowed | None = None) -> list[Problem]:
    """Each pydantic error as a located Problem that says what is allowed (``allowed``:
    what the node's own app takes, for an aspect ratio)."""
    problems: list[Problem] = []
    seen: set[tuple[Path_, str]] = set()
    for e in err.errors():
        loc = _clean_loc(e["loc"])
        kind = e["type"]
        if (loc, kind) in seen:
            continue
        seen.add((loc, kind))
        field_name = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            parent = loc[:-1]
            model = _model_at(parent)
            msg = f"unknown field '{field_name}' in {_where(parent, data)}"
            if model is not None:
                match = near(str(field_name), model.model_fields)
                if match:
                    msg += f"; did you mean '{match}'?"
                else:
                    msg += "; allowed: " + ", ".join(model.model_fields)
            problems.append(source.problem(msg, loc, key=True))
            continue
        if kind == "missing":
            parent = loc[:-1]
            if loc == ("storyboard",):
                msg = "missing 'storyboard: 1' (the format version) at the top of the file"
            else:
                msg = f"missing required field '{field_name}' in {_where(parent, data)}"
            problems.append(source.problem(msg, parent))
            continue
        value = e.get("input")
        what = (f"{_where(loc, data)}: {field_name}" if loc and loc[0] in ("shots", "audio", "stills")
                else _dotted(loc))
        if kind in ("aspect_unquoted", "aspect_ratio"):
            msg = _aspect_message(what, e, loc, data, allowed)
        elif kind == "literal_error":
            if loc == ("storyboard",):
                msg = f"unsupported format version {value!r}; this version of storyboard reads format 1 ('storyboard: 1')"
            else:
                expected = e.get("ctx", {}).get("expected", "")
                msg = f"{what} is {value!r}; allowed: {expected}"
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            msg = f"{what} is {value!r}; {e['msg'].lower().replace('input should be', 'it must be')}"
            if field_name == "duration" and "transition" not in loc:
                msg = f"{what} is {value!r}; a duration is a whole number of seconds, at least 1"
        elif kind.startswith("int") and field_name == "duration":
            msg = f"{what} is {value!r}; a duration is a whole number of seconds (an integer)"
        elif kind == "too_short" and loc == ("shots",):
            msg = "'shots' is empty; list at least one shot"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            msg = f"{what or 'the top level'} must be a mapping (key: value), not {type(value).__name__}"
            if not loc:
                msg = "the top level must be a mapping with 'storyboard: 1' and 'shots:', not a " + type(value).__name__
        elif kind == "list_type":
            msg = f"{what} must be a list, not {type(value).__name__}"
        else:
            msg = f"{what}: {e['msg']} (got {value!r})" if what else e["msg"]
        problems.append(source.problem(msg, loc))
    return problems

