"""The backend slots (``concurrency``) and who gets a freed one.

A freed slot goes to the waiting shot with the most work still hanging on it: the
longest remaining path through the shot graph, weighted by each node's expected
generation time (:func:`expected_seconds`). A chain's next shot therefore starts ahead
of independent shots that can wait, and the render's wall time approaches its critical
path. ``first-ready`` (every priority equal: first come, first served) is kept as the
baseline the benchmark measures against.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator
from typing import Literal

from storyboard.errors import StoryboardError
from storyboard.request import ShotRequest

Order = Literal["longest-path", "first-ready"]
ORDERS: tuple[Order, ...] = ("longest-path", "first-ready")

# Expected generation time, in seconds, by which paths are weighed (an ordering hint,
# never shown as a promise). A clip: CLIP_START_SECONDS to start, plus
# SECONDS_PER_CLIP_SECOND for each second of footage (video apps take roughly in
# proportion to the length asked for); any other node (a still, an image, a title card
# made here) takes OTHER_NODE_SECONDS. Only the ratios matter, and only between nodes.
CLIP_START_SECONDS = 30.0
SECONDS_PER_CLIP_SECOND = 10.0
OTHER_NODE_SECONDS = 15.0


def check_order(order: str) -> Order:
    """``order`` if it is one of :data:`ORDERS`, else a StoryboardError saying which are."""
    for known in ORDERS:
        if order == known:
            return known
    raise StoryboardError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")


def expected_seconds(request: ShotRequest) -> float:
    """How long generating ``request`` is expected to take (see the constants above)."""
    if request.kind != "shot":
        return OTHER_NODE_SECONDS
    return CLIP_START_SECONDS + SECONDS_PER_CLIP_SECOND * float(request.duration)


class Turn:
    """A held slot; ``pass_to(name)`` hands it, on release, to the shot ``name`` instead
    of the queue (a chain's next shot, about to prepare its frame)."""

    def __init__(self) -> None:
        self.heir: str | None = None

    def pass_to(self, name: str | None) -> None:
        """Keep the slot for ``name`` when this holder lets go (None: release as usual)."""
        self.heir = name


class PrioritySlots:
    """At most ``size`` holders at once; a freed slot goes to the waiter of highest
    priority, ties to the one that asked first (all priorities equal: a FIFO semaphore),
    unless its holder passed it to a named shot (:meth:`Turn.pass_to`)."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = itertools.count()
        self._granting = False  # a grant is scheduled
        self._kept: set[str] = set()  # shots a slot is kept for

    @contextlib.asynccontextmanager
    async def hold(self, priority: float = 0.0, name: str | None = None) -> AsyncIterator[Turn]:
        """Hold a slot for the ``async with`` body (the one kept for ``name``, if any)."""
        if name is not None and name in self._kept:
            self._kept.discard(name)
        else:
            await self._acquire(priority)
        turn = Turn()
        try:
            yield turn
        finally:
            if turn.heir is not None and turn.heir not in self._kept:
                self._kept.add(turn.heir)
            else:
                self._release()

    def forfeit(self, name: str) -> None:
        """``name`` will not come for the slot kept for it (cached, skipped, failed): free it."""
        if name in self._kept:
            self._kept.discard(name)
            self._release()

    def top_waiting(self) -> float | None:
        """The highest priority in line, or None when nobody waits."""
        live = [-p for p, _, turn in self._waiting if not turn.done()]
        return max(live, default=None)

    async def _acquire(self, priority: float) -> None:
        # Every request waits its turn, even with a slot free: the grant runs once the
        # requests made at the same moment (a render's first shots) are all in line.
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-priority, next(self._count), turn))
        self._grant_soon()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed a slot as it was cancelled: pass it on
                self._release()
            raise

    def _grant_soon(self) -> None:
        if not self._granting:
            self._granting = True
            asyncio.get_running_loop().call_soon(self._grant)

    def _grant(self) -> None:
        self._granting = False
        while self._free > 0 and self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # a cancelled waiter's turn is skipped
                self._free -= 1
                turn.set_result(None)

    def _release(self) -> None:
        self._free += 1
        self._grant_soon()
