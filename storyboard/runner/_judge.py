"""The judge step (`pick: auto`): after a shot's takes exist, one request to the `judge:`
vision app picks the take its descendants and the film use, as if picked by hand.

Run by the scheduler after the shot's own take (``ShotScheduler.after_shot``), it waits
for the other takes, sends each take's last and middle frames, the references and the
start still with the prompt (:mod:`storyboard.judging`), and keeps the take named. The
verdict is cached under its key (the takes' keys), so a re-render asks nothing; the
choice is remembered beside the cache's frames (``frames/<key>-judge.json``) and plans
read it through :class:`JudgeView`. A hand pick in the lock file always wins and is
never sent. Offline (the animatic) take 1 is kept, free. With ``--reroll-drifted N`` the
judge may answer "none": one more take is made, within ``--budget``, and judged again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard.cache import Cache, Entry
from storyboard.events import ShotResult, Warning_
from storyboard.facts import usd
from storyboard.judging import (
    JUDGE_TOOL,
    auto_shots,
    judge_app,
    parse_verdict,
    reference_images,
    verdict_key,
    verdict_request,
)
from storyboard.plan import PlannedShot, request_for, take_request
from storyboard.request import FrameRef
from storyboard.runner._scheduler import ShotScheduler, take_id
from storyboard.runner._text import ask

__all__ = ["Judge", "JudgeView", "judge_view"]


def _memo(cache: Any, key: str) -> Path:
    return Path(cache.frame_path(key, "judge")).with_suffix(".json")


class JudgeView:
    """The cache as a plan sees it after the judge: a judged shot's take-1 key answers with
    the clip the judge kept, so its descendants' keys are the ones a render makes."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cache, name)

    def clip_hash(self, key: str) -> str | None:
        """The kept clip's content hash where ``key`` was judged, else the cache's own."""
        memo = _memo(self.cache, key)
        if memo.exists():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                kept: str | None = self.cache.clip_hash(str(json.loads(memo.read_text())["kept_key"]))
                if kept is not None:
                    return kept
        own: str | None = self.cache.clip_hash(key)
        return own


def judge_view(cache: Any, board: Any) -> Any:
    """The cache as a plan of ``board`` sees it (itself when no shot is judged)."""
    return JudgeView(cache) if auto_shots(board.spec) else cache


class Judge:
    """The judge step, run by the scheduler after each shot (see the module docstring)."""

    def __init__(self, scheduler: ShotScheduler, rerolls: int, allowance: Decimal | None) -> None:
        self.s = scheduler
        board = scheduler.board
        picks = board.lock.picks if board.lock is not None else {}
        self.auto = set(auto_shots(board.spec)) - set(picks)  # a hand pick always wins
        self.app = judge_app(board.spec)
        self.rerolls = rerolls
        self.allowance = allowance
        self.spent = Decimal(0)

    async def after(self, ps: PlannedShot, entry: Entry) -> Entry:
        """The take a judged shot keeps (``entry`` for every other shot)."""
        if ps.id != ps.request.shot_id or ps.id not in self.auto:
            return entry
        s = self.s
        takes: dict[int, Entry] = {ps.take: entry}
        for t in ps.takes:
            with contextlib.suppress(Exception):  # a failed take is simply not judged
                takes[t.take] = await s.state.futures[take_id(ps.id, t.take)]
        if not s.paid:
            return self._keep(ps, entry, takes, ps.take, "offline: take 1 is kept (the judge runs with inference)")
        left = self.rerolls
        while True:
            take, reason = await self._ask(ps, takes, allow_none=left > 0)
            if take is not None or left <= 0:
                break
            left -= 1
            extra = await self._reroll(ps, max(takes) + 1)
            if extra is None:
                break
            takes[max(takes) + 1] = extra
        if take is None:
            s.emit(Warning_(shot=ps.id, message=f"shot '{ps.id}': the judge accepted no take ({reason}); "
                                                f"take {ps.take} is kept"))
            take = ps.take
        return self._keep(ps, entry, takes, take, reason)

    async def _ask(self, ps: PlannedShot, takes: dict[int, Entry], *, allow_none: bool) -> tuple[int | None, str]:
        s = self.s
        order = sorted(takes)
        images: list[Path] = []
        rule = s.board.spec.shot(ps.id).handoff_rule
        for n in order:  # each take's handoff frame (where its children start) and its middle frame
            last = (await s.handoff(ps.id, takes[n]))[0] if rule is not None else await s.frame(takes[n], "last")
            images += [last, await s.frame(takes[n], round(ps.request.duration / 2, 3))]
        for src in reference_images(s.board.spec, ps.id):
            images.append(s.state.futures[src.shot].result().path if isinstance(src, FrameRef) else src.path)
        version = s.board.audio_versions.get(self.app)
        request = verdict_request(self.app, ps.id, ps.request.prompt, len(order), allow_none=allow_none,
                                  images=images, version=version)
        keys = [takes[n].key for n in order]
        verdict = None
        for attempt in (1, 2):  # an answer with no call and no JSON is asked once more, told how to answer
            if attempt == 2:
                text = f"{(request.inputs or {})['text']}\nAnswer only by calling {JUDGE_TOOL}."
                request = dataclasses.replace(request, inputs={**dict(request.inputs or {}), "text": text})
            key = verdict_key(request, keys, attempt)
            jid = f"judge:{ps.id}" + ("" if attempt == 1 else "#retry")
            result = s.results[jid] = ShotResult(id=jid, key=key)
            answer = await ask(request, key, jid, s.backend, s.cache, s.emit, s.board.path, result)
            verdict = parse_verdict(answer, len(order), allow_none)
            if verdict is not None:
                break
        if verdict is None:
            return None, f"the judge answered twice with no call of {JUDGE_TOOL} and no JSON object"
        index, reason = verdict
        return (None if index is None else order[index - 1]), reason

    async def _reroll(self, ps: PlannedShot, take: int) -> Entry | None:
        """One more take of the shot (cached, or paid within the budget); None when stopped."""
        s = self.s
        board = s.board
        shot = board.spec.shot(ps.id)
        request = take_request(board, shot, request_for(board, shot), take)
        price = s.backend.price(request)
        parents = {p: s.state.futures[p].result() for p in board.graph.parents(ps.id)}
        tid = take_id(ps.id, take)
        tps = dataclasses.replace(ps, id=tid, request=request, key=None, status="generate", take=take, takes=(),
                                  cost=price, price=price)
        key = s.shot_key(tps, parents)
        s.results[tid] = ShotResult(id=tid, status="pending", key=key)
        hit = s.lookup(key)
        if hit is not None:
            return s.take_cached(tid, hit)
        if self.allowance is not None and (price is None or self.spent + price > self.allowance):
            s.emit(Warning_(shot=ps.id, message=f"shot '{ps.id}': the judge accepted no take, and another take "
                                                f"({usd(price)}) is over what --budget leaves; not rerolled"))
            return None
        self.spent += price or Decimal(0)
        return await s.generate_claimed(dataclasses.replace(tps, key=key), key, parents, False)

    def _keep(self, ps: PlannedShot, entry: Entry, takes: dict[int, Entry], take: int, reason: str) -> Entry:
        """Record the verdict (report, note, memo for later plans); the kept take's entry."""
        s = self.s
        chosen = takes.get(take, entry)
        res = s.results[ps.id]
        res.facts["judge"] = {"app": self.app if s.paid else "offline", "take": take, "reason": reason,
                              "takes": sorted(takes)}
        if chosen is not entry:
            res.clip, res.key = chosen.path, chosen.key
            res.facts["kept_take"] = take
        s.emit(Warning_(shot=ps.id, message=f"shot '{ps.id}': the judge kept take {take}: {reason}"))
        _remember(s.cache, entry.key, chosen)
        return chosen


def _remember(cache: Cache, key: str, chosen: Entry) -> None:
    dest = _memo(cache, key)
    tmp = dest.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{dest.name}")
    with contextlib.suppress(OSError):  # the memo only sharpens later plans; losing it costs nothing
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"kept_key": chosen.key}))
        cache.publish(tmp, dest)


def then(first: Any, second: Any) -> Any:
    """Two after-shot steps as one: ``first`` (the judge), then ``second`` (rerolls) if any."""
    if second is None:
        return first

    async def both(ps: PlannedShot, entry: Entry) -> Entry:
        kept: Entry = await second(ps, await first(ps, entry))
        return kept

    return both
