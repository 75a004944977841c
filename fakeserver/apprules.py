"""Each app's own rules, as the fake judges a run: read from the app's bundled profile
(``storyboard/apps/data/<ns>/<name>/profile.json``) and from what its schema says of its
files. Nothing here names an app: an app added as data is judged by its own data.

* ``requires`` / ``excludes`` of the profile (an end frame needs the start frame the
  profile names; reference images cannot go with a start frame...);
* ``rules`` (per version id, else ``*``): ``ranges`` (``{"duration": [4, 15]}``) with
  ``also_allowed`` values outside them (``{"duration": [-1]}``: auto), ``prompt_chars``,
  ``text_chars`` and ``text_chars_by`` (a limit chosen by another input's value:
  ``{"model": {"eleven_v3": 5000, "*": 40000}}``), and ``files`` (limits a schema's
  description does not state);
* file inputs, single or listed, checked by the media kind their schema names (image,
  video, audio): the formats it names (any of that kind when it names none), bytes, sides.

Unknown inputs are never judged here (the real service ignores them).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

__all__ = ["FileRule", "app_problem", "file_rules", "image_info", "media_format", "profile_rule"]

_ALIASES = {"JPG": "JPEG", "HEIC": "HEIF", "TIF": "TIFF"}
_KNOWN = ("JPEG", "JPG", "PNG", "WEBP", "BMP", "HEIC", "HEIF", "GIF", "TIFF", "WAV", "MP3", "FLAC", "OGG",
          "M4A", "AAC", "MP4", "MOV", "WEBM")


@dataclass(frozen=True)
class FileRule:
    """What one file input takes."""

    kind: str  # image, video or audio
    formats: tuple[str, ...] = ()  # upper-case; () = any file of that kind
    max_bytes: int | None = None
    min_side: int | None = None
    max_side: int | None = None
    many: bool = False  # a list of files (references)


def profile_rule(profile: Mapping[str, Any], version_id: str, name: str, default: Any = None) -> Any:
    """A rule of this version, else the profile's general one (as ``AppProfile.rule``)."""
    rules = profile.get("rules") or {}
    for key in (version_id, "*"):
        if name in (rules.get(key) or {}):
            return rules[key][name]
    return default


def _file_spec(spec: Mapping[str, Any]) -> tuple[bool, bool]:
    """(is a file input, is a list of files)."""
    options = [spec, *[s for s in spec.get("anyOf") or [] if isinstance(s, dict)]]
    for option in options:
        if option.get("format") == "file":
            return True, False
        items = option.get("items")
        if option.get("type") == "array" and isinstance(items, dict) and _file_spec(items)[0]:
            return True, True
    return False, False


def _kind(name: str, text: str) -> str:
    for kind, words in (("audio", ("audio", "voice")), ("video", ("video", "clip"))):
        if any(w in name for w in words):
            return kind
    for kind, words in (("audio", ("audio", "wav/mp3")), ("video", ("video", "mp4"))):
        if any(w in text.lower() for w in words) and "image" not in name:
            return kind
    return "image"


def _number(pattern: str, text: str) -> int | None:
    match = re.search(pattern, text, re.IGNORECASE)
    return int(match.group(1)) if match else None


def file_rules(props: Mapping[str, Any], profile: Mapping[str, Any], version_id: str) -> dict[str, FileRule]:
    """Every file input of a version and its rule (the schema's words, then the profile's)."""
    described = {n: str(p.get("description") or "") for n, p in props.items() if isinstance(p, Mapping)}
    fallback = profile_rule(profile, version_id, "files", {}) or {}
    out: dict[str, FileRule] = {}
    for name, spec in props.items():
        is_file, many = _file_spec(spec) if isinstance(spec, Mapping) else (False, False)
        if not is_file:
            continue
        text = described.get(name, "")
        same = re.search(r"same \w+ limits as (\w+)", text, re.IGNORECASE)
        if same and same.group(1) in described:
            text = described[same.group(1)]
        kind = _kind(name, text)
        named = {_ALIASES.get(w.upper(), w.upper()) for w in re.findall(r"[A-Za-z0-9]+", text)} & set(_KNOWN)
        side = re.search(r"(\d+)\s*-\s*(\d+)\s*px", text)
        mb = _number(r"(?:max|up to)\s*(\d+)\s*MB", text)
        use_profile = kind == "image"
        out[name] = FileRule(
            kind=kind,
            formats=tuple(sorted(_ALIASES.get(f, f) for f in named)),
            max_bytes=mb * 1024 * 1024 if mb else fallback.get("max_bytes") if use_profile else None,
            min_side=int(side.group(1)) if side else _number(r"min\s*(\d+)\s*px", text)
            or (fallback.get("min_side") if use_profile else None),
            max_side=int(side.group(2)) if side else fallback.get("max_side") if use_profile else None,
            many=many,
        )
    return out


@functools.lru_cache(maxsize=64)
def image_info(data: bytes) -> tuple[str | None, int, int] | None:
    """(format, width, height) of image bytes, decoded in full once; None if not an image.
    The upload handler reads it as a file arrives, as a service checks an upload once."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            w, h = im.size
            im.load()
    except Exception:
        return None
    return fmt, w, h


def media_format(data: bytes) -> tuple[str, str] | None:
    """(kind, format) of audio or video bytes by their signature; None when neither."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio", "WAV"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio", "MP3"
    if data[:4] == b"fLaC":
        return "audio", "FLAC"
    if data[:4] == b"OggS":
        return "audio", "OGG"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"qt  ":
            return "video", "MOV"
        return ("audio", "M4A") if brand == b"M4A " else ("video", "MP4")
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "video", "WEBM"
    return None


def _file_problem(name: str, uri: Any, rule: FileRule, file_bytes: Callable[[str], bytes | None] | None) -> str | None:
    if not isinstance(uri, str):
        return f"input.{name}: must be a file URI"
    data = file_bytes(uri) if file_bytes is not None else None
    if data is None:
        return f"input.{name}: {uri} is not an uploaded file"
    if rule.max_bytes is not None and len(data) > rule.max_bytes:
        return f"input.{name}: larger than {rule.max_bytes // (1024 * 1024)} MB"
    if rule.kind == "image":
        info = image_info(data)
        if info is None:
            return f"input.{name}: not an image"
        fmt, w, h = info
        fmt = _ALIASES.get(str(fmt), str(fmt))
        if rule.min_side is not None and min(w, h) < rule.min_side:
            return f"input.{name}: at least {rule.min_side} px on each side (got {w}x{h})"
        if rule.max_side is not None and max(w, h) > rule.max_side:
            return f"input.{name}: at most {rule.max_side} px on each side (got {w}x{h})"
    else:
        found = media_format(data)
        if found is None or found[0] != rule.kind:
            return f"input.{name}: not {'an' if rule.kind == 'audio' else 'a'} {rule.kind} file"
        fmt = found[1]
    if rule.formats and fmt not in rule.formats:
        return f"input.{name}: must be {', '.join(f.lower() for f in rule.formats)} (got {fmt.lower()})"
    return None


def _given(value: Any) -> bool:
    return value not in (None, [], "")


def _as_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _limit_problems(profile: Mapping[str, Any], vid: str, given: Mapping[str, Any],
                    effective: Mapping[str, Any]) -> str | None:
    also = profile_rule(profile, vid, "also_allowed", {}) or {}
    for name, (low, high) in (profile_rule(profile, vid, "ranges", {}) or {}).items():
        number = _as_number(given.get(name))
        if number is not None and not low <= number <= high and number not in also.get(name, []):
            extra = f" or {', '.join(str(v) for v in also[name])}" if also.get(name) else ""
            return f"input.{name}: must be {low}..{high}{extra} (got {given[name]})"
    concepts = profile.get("concepts") or {}
    for concept, rule in (("prompt", "prompt_chars"), ("text", "text_chars")):
        field = concepts.get(concept, concept)
        text = given.get(field)
        limit = profile_rule(profile, vid, rule)
        by = profile_rule(profile, vid, f"{rule}_by") or {}
        for on, table in by.items():
            limit = table.get(str(effective.get(on)), table.get("*", limit))
        if isinstance(text, str) and isinstance(limit, int) and len(text) > limit:
            return f"input.{field}: at most {limit:,} characters here (got {len(text):,})"
    return None


def app_problem(props: Mapping[str, Any], profile: Mapping[str, Any], version_id: str, given: Mapping[str, Any],
                effective: Mapping[str, Any], file_bytes: Callable[[str], bytes | None] | None) -> str | None:
    """Why the app refuses known inputs ``given`` by its own rules (None when it runs them)."""
    for name, needed in (profile.get("requires") or {}).items():
        if _given(given.get(name)) and needed in props and not _given(given.get(needed)):
            return f"input.{name}: requires input.{needed}"
    for name, others in (profile.get("excludes") or {}).items():
        clash = [o for o in others if _given(given.get(o))]
        if _given(given.get(name)) and clash:
            return f"input.{name}: cannot be combined with {', '.join('input.' + c for c in clash)}"
    problem = _limit_problems(profile, version_id, given, effective)
    if problem:
        return problem
    for name, rule in file_rules(props, profile, version_id).items():
        value = given.get(name)
        if value is None:
            continue
        for item in (value if rule.many and isinstance(value, list) else [value]):
            problem = _file_problem(name, item, rule, file_bytes)
            if problem:
                return problem
    return None
