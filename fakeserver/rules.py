"""The apps the fake server plays, and how each one judges its input.

Apps are the bundled snapshots in ``storyboard/apps/data/<namespace>/<name>/versions/``
(read as data; nothing of ``storyboard.apps`` is imported). Like the real service:

* ``POST /apps/run`` input is checked against the app version's input schema with
  ``jsonschema`` (type, enum, minimum/maximum, lengths, required);
* unknown inputs are silently ignored (``unknown="permissive"``, the app SDK's input model
  does that) or refused with 422 naming the field (``unknown="strict"``);
* then each app's own rules (:mod:`fakeserver.apprules`, from its profile and schema):
  what needs what, ranges, text limits, and its file inputs by media kind.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from fakeserver.apprules import app_problem
from fakeserver.text import is_text_app

__all__ = [
    "DATA_DIR",
    "AppVersion",
    "Catalog",
    "drift_schema",
    "effective_inputs",
    "input_problem",
    "parse_ref",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "storyboard" / "apps" / "data"


@dataclass(frozen=True)
class AppVersion:
    """One version of one app: its schemas, as ``GET /apps/..`` serves them."""

    app: str  # namespace/name
    version_id: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    profile: Mapping[str, Any] = field(default_factory=dict)  # the app's profile.json (its own rules)

    @property
    def kind(self) -> str:
        """What the app makes: video, image or audio (its output schema's main field)."""
        props = self.output_schema.get("properties") or {}
        for kind in ("video", "image", "audio"):
            if kind in props:
                return kind
        return "text" if is_text_app(self.output_schema) else "video"

    @property
    def known(self) -> set[str]:
        """The input names the schema knows."""
        return set(self.input_schema.get("properties") or {})

    def app_object(self) -> dict[str, Any]:
        """The app as the API answers ``GET /apps/{namespace}/{name}``."""
        namespace, name = self.app.split("/", 1)
        app_id = f"app_{namespace}_{name}".replace("-", "_")
        return {
            "id": app_id,
            "namespace": namespace,
            "name": name,
            "version_id": self.version_id,
            "version": {
                "id": self.version_id,
                "app_id": app_id,
                "input_schema": self.input_schema,
                "output_schema": self.output_schema,
            },
        }


def parse_ref(ref: str) -> tuple[str, str]:
    """``[app/]namespace/name[@version][:function]`` as (``namespace/name``, version or "");
    ``@latest`` is unversioned (the SDK's ``Ref.parse``)."""
    full = ref
    colon, at = full.rfind(":"), full.rfind("@")
    if colon != -1 and colon > at:
        full = full[:colon]
    name, _, version = full.partition("@")
    if name.startswith("app/") and name.count("/") == 2:
        name = name[4:]
    return name, "" if version == "latest" else version


class Catalog:
    """Every bundled app version, newest last (version ids sort by their date)."""

    def __init__(self, data_dir: Path = DATA_DIR) -> None:
        self.versions: dict[str, list[AppVersion]] = {}
        profiles: dict[Path, dict[str, Any]] = {}
        for path in sorted(data_dir.glob("*/*/versions/*.json")):
            raw = json.loads(path.read_text(encoding="utf-8"))
            folder = path.parent.parent
            if folder not in profiles:
                prof = folder / "profile.json"
                profiles[folder] = json.loads(prof.read_text(encoding="utf-8")) if prof.is_file() else {}
            version = AppVersion(
                app=str(raw["app"]),
                version_id=str(raw["version_id"]),
                input_schema=raw["input_schema"],
                output_schema=raw.get("output_schema") or {},
                profile=profiles[folder],
            )
            self.versions.setdefault(version.app, []).append(version)
        for versions in self.versions.values():
            versions.sort(key=lambda v: v.version_id)

    def find(self, app: str, version: str | None = None) -> AppVersion | None:
        """One version of an app (the newest when ``version`` is None), or None."""
        versions = self.versions.get(app)
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return next((v for v in versions if v.version_id == version), None)

    def by_app_id(self, app_id: str) -> str | None:
        """``namespace/name`` of an app id as :meth:`AppVersion.app_object` makes it."""
        for app, versions in self.versions.items():
            if versions[0].app_object()["id"] == app_id:
                return app
        return None


def drift_schema(
    schema: dict[str, Any], drift: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """A copy of an input schema with properties changed (``None`` removes one).

    ``{"duration": {"maximum": 10}}`` lowers the maximum; a property with a ``$ref`` gets
    the change beside it (both apply, as JSON Schema says).
    """
    changed = copy.deepcopy(schema)
    props = changed.setdefault("properties", {})
    for name, change in drift.items():
        if change is None:
            props.pop(name, None)
            changed["required"] = [r for r in changed.get("required", []) if r != name]
        else:
            props.setdefault(name, {}).update(copy.deepcopy(dict(change)))
    return changed


def effective_inputs(version: AppVersion, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The known inputs with the schema's defaults filled in (what the app runs with)."""
    props = version.input_schema.get("properties") or {}
    out = {name: spec["default"] for name, spec in props.items() if "default" in spec}
    out.update({k: v for k, v in inputs.items() if k in props})
    return out


def input_problem(
    version: AppVersion,
    inputs: Any,
    *,
    unknown: str = "permissive",
    file_bytes: Callable[[str], bytes | None] | None = None,
) -> str | None:
    """Why the app refuses ``inputs`` (a 422 detail), or None when it runs them."""
    if not isinstance(inputs, dict):
        return "input must be an object"
    extra = sorted(set(inputs) - version.known)
    if extra and unknown == "strict":
        return f"input: unknown field(s) {', '.join(extra)} (the app takes {', '.join(sorted(version.known))})"
    known = {k: v for k, v in inputs.items() if k in version.known}
    validator = Draft202012Validator(version.input_schema)
    errors = sorted(validator.iter_errors(known), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path)
        return f"input.{where}: {error.message}" if where else f"input: {error.message}"
    props = version.input_schema.get("properties") or {}
    return app_problem(props, version.profile, version.version_id, known, effective_inputs(version, known),
                       file_bytes)
