"""Events a render emits, and the results it returns.

Listeners (the progress displays, the report, the OTIO writer, a user's callback) take
an :class:`Event` and read the fields they know: a field added later breaks no one,
because ``to_dict()`` and attribute access ignore what a listener does not ask for.
This module imports only ``request`` (and the plan's type, for type checkers only).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from storyboard.plan import Plan

__all__ = [
    "WAITING_FOR_ANOTHER_RENDER",
    "AppResolved",
    "AssemblyProgress",
    "Event",
    "EventCallback",
    "FilmDone",
    "RenderResult",
    "RenderStarted",
    "ShotCached",
    "ShotDone",
    "ShotFailed",
    "ShotProgress",
    "ShotResult",
    "ShotSkipped",
    "ShotStarted",
    "ShotWaiting",
    "Warning_",
]

# The ShotProgress status of a shot whose key another render has claimed.
WAITING_FOR_ANOTHER_RENDER = "waiting for another render"


@dataclass(frozen=True)
class Event:
    """Base of every event. ``kind`` names it; ``to_dict()`` gives JSON-ready fields."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready fields, ``event`` naming its kind."""
        out: dict[str, Any] = {"event": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, (Path, Decimal)) else v
        return out


@dataclass(frozen=True)
class RenderStarted(Event):
    """The plan is checked; generation starts."""

    kind: ClassVar[str] = "render_started"
    shots: tuple[str, ...] = ()
    to_generate: int = 0
    estimate: Decimal | None = None
    levels: tuple[tuple[str, ...], ...] = ()  # the shots by level of the graph (progress counts them)


@dataclass(frozen=True)
class ShotWaiting(Event):
    """A shot waits for the shots it takes frames from."""

    kind: ClassVar[str] = "shot_waiting"
    shot: str = ""
    on: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShotStarted(Event):
    """A shot got a slot and its backend was called."""

    kind: ClassVar[str] = "shot_started"
    shot: str = ""
    key: str = ""


@dataclass(frozen=True)
class ShotProgress(Event):
    """A phase (uploading, queued, running…) and/or a fraction of one shot."""

    kind: ClassVar[str] = "shot_progress"
    shot: str = ""
    fraction: float | None = None
    status: str | None = None


@dataclass(frozen=True)
class ShotCached(Event):
    """A shot's clip came from the cache."""

    kind: ClassVar[str] = "shot_cached"
    shot: str = ""
    key: str = ""
    clip: Path | None = None


@dataclass(frozen=True)
class ShotDone(Event):
    """A shot was generated and stored."""

    kind: ClassVar[str] = "shot_done"
    shot: str = ""
    key: str = ""
    clip: Path | None = None
    seconds: float = 0.0
    cost: Decimal | None = None


@dataclass(frozen=True)
class ShotFailed(Event):
    """A shot could not be made (its error, one line)."""

    kind: ClassVar[str] = "shot_failed"
    shot: str = ""
    error: str = ""


@dataclass(frozen=True)
class ShotSkipped(Event):
    """A shot was not tried: a shot it needs failed."""

    kind: ClassVar[str] = "shot_skipped"
    shot: str = ""
    because: str = ""


@dataclass(frozen=True)
class AppResolved(Event):
    """An app was read live before paying: the version every shot on it is checked against."""

    kind: ClassVar[str] = "app_resolved"
    app: str = ""
    version: str = ""
    pinned: bool = False

    @property
    def message(self) -> str:
        """What to tell the user once per render."""
        if self.pinned:
            return f"{self.app}: pinned version {self.version} (read live; inputs checked against it)"
        return (f"{self.app}: inference.sh serves version {self.version} (unpinned; inputs checked against it "
                f"and this render's requests pinned to it; pin it with `app: {self.app}@{self.version}`)")


@dataclass(frozen=True)
class Warning_(Event):
    """Something the user should know that does not stop the render."""

    kind: ClassVar[str] = "warning"
    message: str = ""
    shot: str | None = None


@dataclass(frozen=True)
class AssemblyProgress(Event):
    """How far the film's assembly is (0..1)."""

    kind: ClassVar[str] = "assembly_progress"
    fraction: float = 0.0


@dataclass(frozen=True)
class FilmDone(Event):
    """The film is written (or was already there, unchanged)."""

    kind: ClassVar[str] = "film_done"
    film: Path | None = None
    duration: float = 0.0
    cost: Decimal = Decimal(0)
    seconds: float = 0.0
    method: str = ""


EventCallback = Callable[[Event], Any]


def jsonable(obj: Any) -> Any:
    """``obj`` as it would come back from JSON (unknown types as text)."""
    try:
        json.dumps(obj)
        return obj
    except (TypeError, ValueError):
        return json.loads(json.dumps(obj, default=str))


@dataclass
class ShotResult:
    """What happened to one shot in a render."""

    id: str
    key: str | None = None
    clip: Path | None = None
    status: str = "pending"  # cached | generated | failed | skipped | unused | pending
    cached: bool = False
    task_id: str | None = None
    billed_seconds: float | None = None
    cost: Decimal | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """Wall time from the backend call to the stored clip."""
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 3)

    def to_dict(self) -> dict[str, Any]:
        """The shot's entry in the render report."""
        return {
            "id": self.id,
            "key": self.key,
            "status": self.status,
            "cache_hit": self.cached,
            "clip": str(self.clip) if self.clip else None,
            "task_id": self.task_id,
            "billed_seconds": self.billed_seconds,
            "cost": None if self.cost is None else str(self.cost),
            "seconds": self.seconds,
            "error": self.error,
            "facts": jsonable(self.facts),
        }


@dataclass
class RenderResult:
    """What a render made: the film, every shot's result, the cost."""

    plan: Plan
    film: Path | None = None
    shots: dict[str, ShotResult] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    report: Path | None = None
    duration: float | None = None
    seconds: float = 0.0
    method: str | None = None
    otio: Path | None = None
    film_key: str | None = None
    captions: tuple[Path, ...] = ()  # the .srt and .vtt beside the film, when it has narration
    narration: list[Any] = field(default_factory=list)  # narration.PlacedLine, in cut order

    @property
    def ok(self) -> bool:
        """True when a film was written."""
        return self.film is not None
