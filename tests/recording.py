"""A real backend for runner tests: the animatic, plus a record of what was asked,
optional delays per shot, failures and warnings on demand, and the number in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path

from storyboard.backends.animatic import AnimaticBackend
from storyboard.backends.base import ShotContext
from storyboard.errors import TaskFailed
from storyboard.request import ShotRequest


class RecordingBackend(AnimaticBackend):
    def __init__(
        self,
        *,
        delays: Mapping[str, float] | None = None,
        fail: Iterable[str] = (),
        price_per_second: Decimal | None = None,
        paid: bool = False,
        warn: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.delays = dict(delays or {})
        self.fail = set(fail)
        self.in_flight = 0
        self.max_in_flight = 0
        self.started_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.price_per_second = price_per_second
        self.paid = paid
        self.warn = dict(warn or {})

    def price(self, request: ShotRequest) -> Decimal | None:
        if self.price_per_second is None:
            return Decimal(0) if not self.paid else None
        return self.price_per_second * request.duration

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        loop = asyncio.get_running_loop()
        self.calls.append(request.shot_id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started_at[request.shot_id] = loop.time()
        try:
            await asyncio.sleep(self.delays.get(request.shot_id, 0.0))
            if request.shot_id in self.warn:
                ctx.warn(self.warn[request.shot_id])
            if request.shot_id in self.fail:
                raise TaskFailed("the model refused this prompt (test)", shot=request.shot_id)
            return await super().generate(request, ctx)
        finally:
            self.in_flight -= 1
            self.finished_at[request.shot_id] = loop.time()
