"""Following one inference.sh task to its end: the NDJSON stream, reconciles, reconnects.

The stream is read until a terminal status. When it ends, breaks, or sends only
heartbeats for ``stall_timeout`` seconds, ``GET /tasks/{id}`` reconciles and the stream
is reopened after ``poll_interval`` (doubling, up to 8×, while streams bring nothing).
Consecutive broken streams are bounded by ``max_attempts``; a quiet task only by
``task_timeout`` (a queued Kling task may be silent for minutes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from storyboard.backends.base import ShotContext
from storyboard.backends.inference.protocol import (
    TERMINAL,
    TaskStatus,
    apply_update,
    describe_exception,
    parse_status,
    phase,
    retry_after_seconds,
    video_url,
)
from storyboard.backends.inference.transport import Retryable, Transport
from storyboard.errors import BackendError, TaskFailed

__all__ = ["ShotState", "TaskFollower"]

log = logging.getLogger("storyboard.backends.inference")


@dataclass
class ShotState:
    """Per-shot state of one ``generate`` call."""

    ctx: ShotContext
    shot: str
    phase: str | None = None
    fraction: float | None = None


class TaskFollower:
    """Waits for a task to end, reporting its phase and progress to the shot's context."""

    def __init__(
        self,
        http: Transport,
        read_task: Callable[[str, ShotState], Awaitable[Any]],
        *,
        poll_interval: float,
        stall_timeout: float,
        max_attempts: int,
        task_timeout: float,
    ) -> None:
        self._http = http
        self._read_task = read_task
        self.base_url = http.base_url
        self.stats = http.stats
        self.poll_interval = poll_interval
        self.stall_timeout = stall_timeout
        self.max_attempts = max_attempts
        self.task_timeout = task_timeout
        self.timeout = http.timeout
        self.connect_timeout = http.connect_timeout

    def note(self, snapshot: dict[str, Any], shot: ShotState) -> None:
        """Report a phase or progress change to the context."""
        status = parse_status(snapshot.get("status"))
        fraction: float | None = None
        raw = snapshot.get("progress")
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw >= 0:
            fraction = min(1.0, raw / 100 if raw > 1 else float(raw))
        if status is None or status in TERMINAL:
            return
        current = phase(status)
        if current != shot.phase or fraction != shot.fraction:
            shot.phase, shot.fraction = current, fraction
            shot.ctx.progress(fraction, status=current)

    async def wait(self, task: dict[str, Any], shot: ShotState) -> dict[str, Any]:
        """Follow the task until it ends and return its last snapshot."""
        task_id = str(task["id"])
        snapshot = dict(task)
        self.note(snapshot, shot)
        if parse_status(snapshot.get("status")) in TERMINAL:
            return snapshot
        deadline = time.monotonic() + self.task_timeout
        failures = 0  # consecutive broken streams: bounded by max_attempts
        quiet = 0  # consecutive rounds without a real event: slows the reconnects
        last = ""
        while True:
            try:
                done, got_events = await self._follow(task_id, snapshot, shot)
                if done and not self._lacks_output(snapshot):
                    return snapshot
                failures = 0
                quiet = 0 if got_events else quiet + 1
                last = "the update stream ended" if got_events else "the update stream went quiet"
            except Retryable as exc:
                failures += 1
                last = exc.reason
            log.debug("task %s: %s; reconciling", task_id, last)
            fresh = await self._read_task(task_id, shot)
            if isinstance(fresh, dict):
                snapshot.update(fresh)
                self.note(snapshot, shot)
            if parse_status(snapshot.get("status")) in TERMINAL:
                return snapshot
            if failures >= self.max_attempts:
                raise BackendError(
                    f"lost the update stream of task {task_id} {failures} times in a row ({last}); "
                    "it may still finish: render again to re-attach to it",
                    shot=shot.shot,
                )
            if time.monotonic() > deadline:
                raise BackendError(
                    f"task {task_id} has not finished after {self.task_timeout:.0f}s "
                    f"(status {snapshot.get('status')}); render again to re-attach to it",
                    shot=shot.shot,
                )
            self.stats.reconnects += 1
            # A stream that keeps ending at once degrades to polling, not to a busy loop.
            delay = self.poll_interval * 2 ** min(quiet + failures, 3)
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))

    @staticmethod
    def _lacks_output(snapshot: dict[str, Any]) -> bool:
        """Completed per a partial update that did not carry the output: read the task."""
        completed = parse_status(snapshot.get("status")) == TaskStatus.COMPLETED
        return completed and video_url(snapshot.get("output")) is None

    async def _follow(
        self, task_id: str, snapshot: dict[str, Any], shot: ShotState
    ) -> tuple[bool, bool]:
        """Read the task's NDJSON stream into ``snapshot``.

        Returns (terminal status reached, any real event received). Raises Retryable
        when the stream cannot be opened or breaks.
        """
        url = f"{self.base_url}/tasks/{task_id}/stream"
        headers = {
            "Accept": "application/x-ndjson",
            "Cache-Control": "no-cache",
            "Accept-Encoding": "identity",
        }
        timeout = httpx.Timeout(
            self.timeout, connect=self.connect_timeout, read=self.stall_timeout + 10
        )
        got_events = False
        try:
            async with self._http.stream(url, headers, timeout) as r:
                if r.status_code >= 400:
                    await r.aread()
                    if r.status_code in (429,) or r.status_code >= 500:
                        raise Retryable(
                            f"the update stream answered HTTP {r.status_code}",
                            retry_after_seconds(r.headers.get("Retry-After")),
                        )
                    raise self._http.error(r, f"follow task {task_id}", shot.shot)
                lines = r.aiter_lines()
                last_event = time.monotonic()
                while True:
                    remaining = self.stall_timeout - (time.monotonic() - last_event)
                    if remaining <= 0:
                        return False, got_events
                    try:
                        async with asyncio.timeout(remaining):
                            line = await anext(lines)
                    except (StopAsyncIteration, TimeoutError):
                        return False, got_events
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if not isinstance(event, dict) or event.get("type") == "heartbeat":
                        continue
                    if event.get("event") == "delta":  # LLM token deltas: not for video apps
                        continue
                    last_event = time.monotonic()
                    got_events = True
                    apply_update(snapshot, event)
                    self.note(snapshot, shot)
                    if parse_status(snapshot.get("status")) in TERMINAL:
                        return True, got_events
        except httpx.TransportError as exc:
            raise Retryable(f"the update stream broke ({describe_exception(exc)})") from exc

    def outcome(self, task: dict[str, Any], shot: ShotState) -> Any:
        """The output of an ended task, or the error it ended with."""
        task_id = task.get("id")
        status = parse_status(task.get("status"))
        error = task.get("error")
        error_text = self._http.redact(str(error)) if error else ""
        if status == TaskStatus.COMPLETED:
            return task.get("output")
        if status == TaskStatus.FAILED:
            raise TaskFailed(
                f"task {task_id} failed on inference.sh: {error_text or 'no error message'}",
                shot=shot.shot,
            )
        if status == TaskStatus.CANCELLED:
            raise TaskFailed(f"task {task_id} was cancelled", shot=shot.shot)
        if status == TaskStatus.REJECTED:
            raise TaskFailed(
                f"task {task_id} was rejected: insufficient balance on inference.sh (or no payment method)"
                f"{': ' + error_text if error_text else ''}; top up the account, then render again",
                shot=shot.shot,
            )
        raise BackendError(
            f"task {task_id} ended with unexpected status {task.get('status')!r}", shot=shot.shot
        )
