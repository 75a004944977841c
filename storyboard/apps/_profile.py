"""App references, versions and profiles, read from data files.

A profile (``data/<namespace>/<name>/profile.json``) says which storyboard *concept*
each of the app's inputs carries, the app's extra rules (file limits, what needs what),
and its price rule. Its versions (``versions/<version id>.json``) are snapshots of the
input and output schemas as the API serves them. A folder named by
``$STORYBOARD_APPS`` (``storyboard apps pull`` writes there) is read before the
packaged data, so a pulled schema is what offline validation uses.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from storyboard.errors import AppError

APPS_ENV = "STORYBOARD_APPS"
CONCEPTS = (
    "prompt", "start_frame", "end_frame", "duration", "aspect_ratio", "resolution", "sound",
    "negative_prompt", "mode", "multi_shot", "references", "seed", "text", "voice", "keyframes",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_REF_TYPES = ("app", "agent", "skill", "knowledge")  # the SDK's reference types; storyboard runs apps
LATEST = "latest"
REF_SYNTAX = "[app/]namespace/name[@version][:function]"


@dataclass(frozen=True)
class AppRef:
    """An app reference, the SDK's ``[type/]namespace/name[@version][:function]``.

    ``version`` is a version id, or None when unversioned; ``@latest`` is unversioned
    too (``latest`` is True): "read live, then pin for this render", never an id.
    """

    name: str
    version: str | None = None
    function: str | None = None
    latest: bool = False

    @property
    def text(self) -> str:
        """The reference in its one written form (no type, no ``@latest``)."""
        return self.pinned_to(self.version)

    def pinned_to(self, version: str | None) -> str:
        """The reference as sent to ``POST /apps/run`` with ``version`` (None: unversioned)."""
        at = f"@{version}" if version else ""
        return f"{self.name}{at}:{self.function}" if self.function else f"{self.name}{at}"


def parse_app_ref(text: str) -> AppRef:
    """Parse an app reference (see :class:`AppRef`); AppError naming what is allowed."""
    raw = text.strip() if isinstance(text, str) else ""
    rest, function = raw, None
    colon, at = raw.rfind(":"), raw.rfind("@")
    if colon != -1 and colon > at:  # the function follows the version (the SDK's rule)
        rest, function = raw[:colon], raw[colon + 1:]
        if not _FUNCTION.match(function):
            raise AppError(f"app '{text}': ':{function}' is not a function name; write {REF_SYNTAX}")
    full, sep, version = rest.partition("@")
    parts = full.split("/")
    if len(parts) == 3 and parts[0] in _REF_TYPES:
        if parts[0] != "app":
            raise AppError(f"app '{text}' is a{'n' if parts[0][0] in 'aeiou' else ''} {parts[0]} reference; "
                           f"a shot runs an app: write {REF_SYNTAX} (e.g. klingai/video-v3)")
        full = "/".join(parts[1:])
    if not _NAME.match(full):
        raise AppError(f"app '{text}' is not an app reference; write {REF_SYNTAX} (e.g. klingai/video-v3, "
                       "klingai/video-v3@VERSION)")
    if sep and not _VERSION.match(version):
        raise AppError(f"app '{text}': '@{version}' is not a version id; a version is letters, digits, "
                       f"'.', '_' or '-' (e.g. klingai/video-v3@abc123, or @{LATEST})")
    latest = version == LATEST
    return AppRef(full, None if latest or not sep else version, function, latest)


def app_name(text: str) -> str:
    """The ``namespace/name`` a reference names (any form; the text before '@' when it does
    not parse: the parse error is said where the reference is checked)."""
    try:
        return parse_app_ref(text).name
    except AppError:
        return text.split("@", 1)[0]


def pinned_version(text: str) -> str | None:
    """The version id a reference pins (None when unversioned or ``@latest``, or unparsable)."""
    try:
        return parse_app_ref(text).version
    except AppError:
        return None


@dataclass(frozen=True)
class AppVersion:
    """One version of an app: its id and its input/output JSON schemas."""

    app: str
    version_id: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    @functools.cached_property
    def properties(self) -> Mapping[str, Any]:
        """The input schema's properties, ``$ref``s to ``$defs`` resolved."""
        return _resolved_properties(self)

    @property
    def required(self) -> tuple[str, ...]:
        """Inputs the schema requires."""
        return tuple(self.input_schema.get("required", ()))

    def default(self, name: str) -> Any:
        """The schema's default for an input (None when it has none)."""
        return self.properties.get(name, {}).get("default")

    def to_json(self) -> dict[str, Any]:
        """The snapshot file's content."""
        return {"app": self.app, "version_id": self.version_id, "source": self.source,
                "input_schema": self.input_schema, "output_schema": self.output_schema}


@functools.lru_cache(maxsize=64)
def _props_cache(app: str, version_id: str, schema_json: str) -> dict[str, Any]:
    schema = json.loads(schema_json)
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                merged = {**defs.get(ref.rsplit("/", 1)[1], {}), **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged)
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(x) for x in node]
        return node

    props: dict[str, Any] = resolve(schema.get("properties", {}))
    return props


def _resolved_properties(v: AppVersion) -> Mapping[str, Any]:
    return _props_cache(v.app, v.version_id, json.dumps(v.input_schema))


def app_from_api(payload: Mapping[str, Any], fallback_name: str = "") -> AppVersion:
    """The AppVersion in an API answer (``GET /apps/{namespace}/{name}``)."""
    version = payload.get("version") if isinstance(payload.get("version"), Mapping) else {}
    assert isinstance(version, Mapping)
    vid = payload.get("version_id") or version.get("id")
    schema = version.get("input_schema")
    if not isinstance(vid, str) or not isinstance(schema, Mapping):
        raise AppError(f"inference.sh answered app '{fallback_name}' without a version id and input schema")
    ns, name = payload.get("namespace"), payload.get("name")
    app = f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else fallback_name
    out = version.get("output_schema")
    return AppVersion(app, vid, dict(schema), dict(out) if isinstance(out, Mapping) else {}, source="live")


@dataclass(frozen=True)
class AppProfile:
    """What storyboard knows of one app: concepts → input names, rules, price, versions."""

    app: str
    kind: str
    current: str
    concepts: Mapping[str, str]
    storyboard_defaults: Mapping[str, Any]
    mode_tiers: Mapping[str, Mapping[str, Any]]
    requires: Mapping[str, str]
    rules: Mapping[str, Mapping[str, Any]]
    price: Mapping[str, Any]
    versions: Mapping[str, AppVersion]
    about: str = ""
    translate: Mapping[str, Any] = field(default_factory=dict)  # concept → {ours: theirs} or "text"
    excludes: Mapping[str, Sequence[str]] = field(default_factory=dict)  # input → inputs it cannot go with

    def version(self, version_id: str | None = None) -> AppVersion | None:
        """A known version (the current one when ``version_id`` is None)."""
        return self.versions.get(version_id or self.current)

    def input_name(self, concept: str, version: AppVersion) -> str | None:
        """The app's input carrying ``concept`` in this version, or None when it has none."""
        name = self.concepts.get(concept)
        return name if name is not None and name in version.properties else None

    def rule(self, version_id: str, name: str, default: Any = None) -> Any:
        """A rule of this version (``files``, ``prompt_chars``), else the profile's general one."""
        for key in (version_id, "*"):
            if name in self.rules.get(key, {}):
                return self.rules[key][name]
        return default

    def limit(self, version: AppVersion, name: str, inputs: Mapping[str, Any]) -> Any:
        """A limit rule (``text_chars``) for these inputs: where the profile has ``<name>_by``,
        chosen by another input's value (its schema default when unset): ElevenLabs takes
        5,000 characters on eleven_v3 and 40,000 on the other models."""
        value = self.rule(version.version_id, name)
        for on, table in dict(self.rule(version.version_id, f"{name}_by", {})).items():
            chosen = inputs.get(on, version.default(on))
            value = table.get(str(chosen), table.get("*", value))
        return value


def pulled_dir() -> Path:
    """Where `storyboard apps pull` saves schemas: $STORYBOARD_APPS, else the user data folder."""
    return Path(os.environ.get(APPS_ENV) or Path.home() / ".local/share/storyboard/apps")


def _roots() -> Iterator[Path | Any]:
    yield pulled_dir()
    yield resources.files("storyboard.apps").joinpath("data")


def _read(path: Any) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise AppError(f"{path}: an app file must hold a JSON object")
    return data


@functools.cache
def _load_profile(name: str, roots_key: str) -> AppProfile | None:
    ns, _, short = name.partition("/")
    raw: dict[str, Any] | None = None
    current: str | None = None  # a pulled snapshot (first root) wins over the profile's
    versions: dict[str, AppVersion] = {}
    for root in _roots():
        folder = root.joinpath(ns).joinpath(short)
        if not folder.is_dir():
            continue
        prof = folder.joinpath("profile.json")
        if raw is None and prof.is_file():
            raw = _read(prof)
        pointer = folder.joinpath("current")
        if current is None and pointer.is_file():
            current = pointer.read_text().strip() or None
        vdir = folder.joinpath("versions")
        if vdir.is_dir():
            for f in vdir.iterdir():
                if f.name.endswith(".json"):
                    snap = _read(f)
                    vid = str(snap.get("version_id") or f.name[:-5])
                    versions.setdefault(vid, AppVersion(name, vid, snap.get("input_schema", {}),
                                                        snap.get("output_schema", {}), str(snap.get("source", ""))))
    if raw is None and not versions:
        return None
    raw = raw or {"app": name, "kind": "unknown"}
    return AppProfile(
        app=name, kind=str(raw.get("kind", "video")),
        current=current or str(raw.get("current") or next(iter(sorted(versions)), "")),
        concepts=dict(raw.get("concepts", {})), storyboard_defaults=dict(raw.get("storyboard_defaults", {})),
        mode_tiers=dict(raw.get("mode_tiers", {})), requires=dict(raw.get("requires", {})),
        rules=dict(raw.get("rules", {})), price=dict(raw.get("price", {})), versions=versions,
        about=str(raw.get("about", "")), translate=dict(raw.get("translate", {})),
        excludes=dict(raw.get("excludes", {})),
    )


def profile(name: str) -> AppProfile | None:
    """The profile of ``namespace/name`` (no ``@version``); None for an app with no profile data."""
    return _load_profile(name, os.environ.get(APPS_ENV, ""))


def known_apps() -> list[str]:
    """Every app with a profile, sorted."""
    names: set[str] = set()
    for root in _roots():
        if not root.is_dir():
            continue
        for ns in root.iterdir():
            if ns.is_dir():
                names.update(f"{ns.name}/{app.name}" for app in ns.iterdir()
                             if app.is_dir() and app.joinpath("profile.json").is_file())
    return sorted(names)


def save_snapshot(version: AppVersion, folder: Path | None = None) -> Path:
    """Write a pulled version as the snapshot offline validation uses (``$STORYBOARD_APPS``)."""
    base = folder or pulled_dir()
    ns, _, short = version.app.partition("/")
    dest = base / ns / short / "versions" / f"{version.version_id}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(version.to_json(), indent=1) + "\n")
    (base / ns / short / "current").write_text(version.version_id + "\n")
    _load_profile.cache_clear()
    return dest
