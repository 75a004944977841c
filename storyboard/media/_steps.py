"""Running several ffmpeg steps as one: weighted, monotonic progress over parts that may
run at once, a bound on how many run together, and cancelling the rest on a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from storyboard.media._ffmpeg import run_ffmpeg


class WeightedProgress:
    """Monotonic progress over weighted parts that may run at once."""

    def __init__(self, report: Callable[[float], None] | None, weights: Sequence[float]) -> None:
        self.report = report
        total = sum(weights) or 1.0
        self.weights = [w / total for w in weights]
        self.done = [0.0] * len(weights)
        self.last = 0.0

    def part(self, index: int) -> Callable[[float], None] | None:
        """The progress callback of part ``index`` (None when nothing listens)."""
        if self.report is None:
            return None

        def update(fraction: float) -> None:
            self.done[index] = max(self.done[index], fraction)
            now = sum(w * d for w, d in zip(self.weights, self.done, strict=True))
            if all(d >= 1.0 or not w for w, d in zip(self.weights, self.done, strict=True)):
                now = 1.0  # every part done: exactly 1, whatever the rounding of the weights
            if now > self.last and self.report is not None:
                self.last = now
                self.report(min(now, 1.0))

        return update


async def limited(
    limit: asyncio.Semaphore, args: list[str], progress: Callable[[float], None] | None, seconds: float
) -> None:
    """Run one ffmpeg when ``limit`` lets it."""
    async with limit:
        await run_ffmpeg(args, progress=progress, total_seconds=seconds)


async def gather(jobs: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run the jobs; on the first failure cancel the rest (killing their ffmpeg)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
