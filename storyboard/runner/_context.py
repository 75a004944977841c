"""The ShotContext the runner hands a backend: the journal lives in the cache, progress
and warnings become events, facts go into the shot's result. And holding a paid key's
claim (:func:`holding`), the one way shots, rerolls and audio nodes take it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from storyboard.cache import Cache, Claim
from storyboard.events import Event, ShotProgress, ShotResult, Warning_

T = TypeVar("T")


class JournalContext:
    """A backend's view of one shot while it is generated."""

    def __init__(self, cache: Cache, key: str, shot_id: str, work_dir: Path, board: Path,
                 emit: Callable[[Event], None], result: ShotResult) -> None:
        self.cache = cache
        self.key = key
        self.shot_id = shot_id
        self.work_dir = work_dir
        self._board = board
        self._emit = emit
        self._result = result

    def progress(self, fraction: float | None = None, status: str | None = None) -> None:
        """Emit a ShotProgress event."""
        self._emit(ShotProgress(shot=self.shot_id, fraction=fraction, status=status))

    def warn(self, message: str) -> None:
        """Emit a Warning_ event for this shot (e.g. a server's message)."""
        self._emit(Warning_(shot=self.shot_id, message=message))

    def remember(self, key: str, value: str) -> None:
        """Journal ``key`` beside the shot's claim, durably."""
        self.cache.remember(self.key, key, value, shot=self.shot_id, storyboard=str(self._board))
        if key == "task_id":
            self._result.task_id = value

    def recall(self, key: str) -> str | None:
        """What this render, or one before it, journalled for this shot key."""
        return self.cache.recall(self.key, key)

    def report(self, **fields: Any) -> None:
        """Record facts for the render report."""
        self._result.facts.update(fields)
        if "task_id" in fields:
            self._result.task_id = str(fields["task_id"])
        if "billed_seconds" in fields and fields["billed_seconds"] is not None:
            with contextlib.suppress(TypeError, ValueError):
                self._result.billed_seconds = float(fields["billed_seconds"])


def warn_if_uncertain(cache: Cache, key: str, shot_id: str, result: ShotResult,
                      emit: Callable[[Event], None]) -> None:
    """Before a paid key is submitted: say when an earlier render died mid-submission
    (journalled ``submitting``, no task id: the task may exist, billed, and cannot be
    found), and record it in the report as ``uncertain_submission``. Shots, lines, music
    and text nodes all come through here, so none is ever paid twice silently."""
    if cache.recall(key, "task_id") is not None:
        return
    submitting = cache.recall(key, "submitting")
    if submitting:  # see backends/inference/backend.py: _submit
        result.facts["uncertain_submission"] = submitting
        emit(Warning_(shot=shot_id, message=(
            f"shot '{shot_id}': an earlier render stopped while submitting this shot and never got "
            "its task id; that task may exist (and be billed) but cannot be found to re-attach, so "
            "the shot is submitted again — check your tasks on inference.sh")))


CLAIM_POLL_SECONDS = 0.2  # how soon a key waiting on another render's claim looks again
CLAIM_POLL_GROWTH = 1.5  # each look after that waits longer, up to the cache's claim_poll_most


@contextlib.asynccontextmanager
async def holding(cache: Cache, key: str, on_wait: Callable[[], None] | None = None) -> AsyncIterator[Claim]:
    """Claim ``key`` (waiting while another render holds it; ``on_wait`` is called once
    then) and release it at the end. A leased claim renews itself while held; a look at
    a shared store's claim runs off the loop, so the render's other shots go on."""
    announced = False
    pause = CLAIM_POLL_SECONDS
    while (claim := await off_loop(cache, cache.try_claim, key)) is None:
        if not announced and on_wait is not None:
            on_wait()
        announced = True
        await asyncio.sleep(min(pause, max(CLAIM_POLL_SECONDS, cache.claim_poll_most)))
        pause *= CLAIM_POLL_GROWTH
    try:
        yield claim
    finally:
        claim.release()  # in place: a cancelled render must not leave a claim held


async def off_loop(cache: Cache, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, a cache call: in a thread when the cache is on a shared store (it
    waits on the network), in place on a local one (it is quick)."""
    if cache.remote:
        return await asyncio.to_thread(call, *args)
    return call(*args)
