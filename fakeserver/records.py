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
    "now_iso",
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
    answer: dict[str, Any] = field(default_factory=dict)  # a text app's output (fakeserver.text)

    @property
    def extension(self) -> str:
        """The output file's suffix."""
        return {"video": "mp4", "image": "png", "audio": "wav"}[self.kind]


def now_iso() -> str:
    """The current UTC time as the API writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
