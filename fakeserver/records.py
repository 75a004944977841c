"""What the fake server keeps: task statuses, requests received, files, tasks."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "REJECTED",
    "STATUS_NAMES",
    "TERMINAL",
    "Call",
    "FakeFile",
    "FakeTask",
    "next_change_at",
    "now_iso",
    "status_at",
]

STATUS_NAMES = {
    0: "unknown",
    1: "received",
    2: "queued",
    3: "dispatched",
    4: "preparing",
    5: "serving",
    6: "setting_up",
    7: "running",
    8: "cancelling",
    9: "uploading",
    10: "completed",
    11: "failed",
    12: "cancelled",
    13: "rejected",
}
COMPLETED, FAILED, CANCELLED, REJECTED = 10, 11, 12, 13
TERMINAL = {COMPLETED, FAILED, CANCELLED, REJECTED}


# ---------------------------------------------------------------- state


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str  # with the query string
    server: str  # "api" or "files"
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeFile:
    id: str
    uri: str
    upload_url: str
    filename: str | None
    content_type: str | None
    size: int
    data: bytes | None = None


@dataclass
class FakeTask:
    id: str
    app: str
    input: dict[str, Any]
    created: float  # monotonic
    created_at: str
    latency: float
    fail_error: str | None = None
    final: int | None = None  # set status (rejected / cancelled)
    final_at: float | None = None
    error: str | None = None
    clip: Future[bytes] | None = None  # the output file (mp4, png or wav)
    size: tuple[int, int] = (160, 90)
    version_id: str = ""
    kind: str = "video"  # video, image, audio or text: what the app makes
    effective: dict[str, Any] = field(default_factory=dict)  # known inputs + defaults
    file_kinds: dict[str, str] = field(default_factory=dict)  # file input given -> image/video/audio
    music: bool = False  # an audio app that makes music (not speech)
    seconds: float | None = None  # the output's real length (video frames / fps, audio samples / rate)
    answer: dict[str, Any] = field(default_factory=dict)  # a text app's output (fakeserver.text)

    @property
    def extension(self) -> str:
        """The output file's suffix."""
        return {"video": "mp4", "image": "png", "audio": "wav"}[self.kind]


# Fraction of the task latency at which each non-terminal status begins.
_TIMELINE = ((0.0, 1), (0.1, 2), (0.25, 4), (0.4, 7), (0.9, 9))


def status_at(task: FakeTask, now: float) -> int:
    """A task's status at monotonic time ``now``: it walks the timeline over its latency."""
    if task.final is not None:
        return task.final
    elapsed = now - task.created
    if elapsed >= task.latency:
        return FAILED if task.fail_error else COMPLETED
    status = 1
    for start, code in _TIMELINE:
        if elapsed >= start * task.latency:
            status = code
    return status


def next_change_at(task: FakeTask, now: float) -> float | None:
    """When the task's status next changes on its own (monotonic time), if it will: a
    stream sleeps until then, so an update goes out when it happens, as the real service
    pushes it."""
    if task.final is not None:
        return None
    elapsed = now - task.created
    marks = [start * task.latency for start, _ in _TIMELINE] + [task.latency]
    later = [m for m in marks if m > elapsed]
    return task.created + min(later) if later else None


def now_iso() -> str:
    """The current UTC time as the API writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
