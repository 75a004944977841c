"""The Backend protocol: what the runner asks of a video model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from storyboard.request import ShotRequest


@runtime_checkable
class ShotContext(Protocol):
    """What a backend may do while generating one shot."""

    shot_id: str
    work_dir: Path  # a private folder for this shot's temporary files (same disk as the cache)

    def progress(self, fraction: float | None = None, status: str | None = None) -> None:
        """Report progress (0..1) and/or a phase: uploading, queued, running, downloading."""

    def warn(self, message: str) -> None:
        """Tell the user something that does not stop the shot (e.g. a server's message)."""

    def remember(self, key: str, value: str) -> None:
        """Persist small state in the shot journal, durably, before waiting on it."""

    def recall(self, key: str) -> str | None:
        """Read state a crashed earlier render remembered for this very shot."""

    def report(self, **fields: Any) -> None:
        """Record facts for the render report (task_id, billed_seconds, output_meta…)."""


@runtime_checkable
class Backend(Protocol):
    """A video generator that can price and make a shot's clip."""

    name: str
    paid: bool  # False for offline backends: budgets ignore them

    def price(self, request: ShotRequest) -> Decimal | None:
        """USD this request will cost; None when unknown."""

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        """Make the clip and return the path of an mp4 inside ``ctx.work_dir``."""

    async def aclose(self) -> None:
        """Release connections. Called once when the render ends."""

    # Optional: ``async def stage(self, path: Path) -> None`` uploads an image that a shot
    # about to be submitted will use (a chained child's start frame, while its parent's
    # clip is being stored). Only free work; the runner calls it when a backend has it.


@dataclass
class MemoryContext:
    """A ShotContext that keeps everything in memory (tests, one-off calls)."""

    shot_id: str
    work_dir: Path
    journal: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[float | None, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    on_progress: Callable[[float | None, str | None], None] | None = None

    def progress(self, fraction: float | None = None, status: str | None = None) -> None:
        """Keep the progress (and pass it to ``on_progress``)."""
        self.events.append((fraction, status))
        if self.on_progress is not None:
            self.on_progress(fraction, status)

    def warn(self, message: str) -> None:
        """Keep the warning."""
        self.warnings.append(message)

    def remember(self, key: str, value: str) -> None:
        """Keep the value in memory."""
        self.journal[key] = value

    def recall(self, key: str) -> str | None:
        """A value remembered earlier."""
        return self.journal.get(key)

    def report(self, **fields: Any) -> None:
        """Keep the facts."""
        self.facts.update(fields)
