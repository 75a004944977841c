"""Backends by name: the built-ins, then the ``storyboard.backends`` entry point group."""

from __future__ import annotations

from typing import Any

from storyboard.backends.base import Backend, MemoryContext, ShotContext
from storyboard.errors import UsageError

BUILTIN = ("animatic", "inference")
ENTRY_POINT_GROUP = "storyboard.backends"


def available() -> list[str]:
    """The backend names that can be used: the built-ins, then the installed plugins."""
    from importlib.metadata import entry_points

    return [*BUILTIN, *sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN)]


def get_backend(name: str, **options: Any) -> Backend:
    """Make a backend by name. Plugins register a factory (or class) under the
    ``storyboard.backends`` entry point group."""
    if name == "animatic":
        from storyboard.backends.animatic import AnimaticBackend

        return AnimaticBackend(**options)
    if name == "inference":
        from storyboard.backends.inference import InferenceBackend

        return InferenceBackend(**options)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory = ep.load()
            backend: Backend = factory(**options)
            return backend
    raise UsageError(f"unknown backend '{name}'; available: {', '.join(available())}")


def backend_variant(name_or_backend: str | Backend) -> str:
    """What, besides the name, makes a backend's clips differ (e.g. the animatic's
    preview size): part of every cache key."""
    backend = get_backend(name_or_backend) if isinstance(name_or_backend, str) else name_or_backend
    variant = getattr(backend, "variant", None)
    return variant if isinstance(variant, str) else ""


__all__ = ["Backend", "MemoryContext", "ShotContext", "available", "backend_variant", "get_backend"]
