"""Rerolls (``--reroll-drifted N``): a chained shot whose seam drifted is generated again.

Right after a chained shot's clip exists (made or cached) its seam is scored: the
parent's handoff (or last) frame against the clip's first frame, under the ``drift:``
thresholds. A drifted shot is generated again as a new take (the next take number above
its declared takes, with that take's seed and its own cache entry) up to N more times,
stopping at the first take that does not drift. The best-scoring take (one that holds
before one that drifted, then the highest PSNR, a tie broken by the lower
colour-histogram distance) is the clip used in the film and by the shot's descendants.
A take pinned in the lock file wins: it is never rerolled.

Every reroll counts against ``--budget`` before it is paid: the render's planned cost
plus the rerolls paid so far plus the next reroll must stay within it, else rerolling
stops with a warning. A cached reroll costs nothing, so a second render repeats the same
choice for free. What was kept is remembered beside the cache's frames, so the plan of a
later render chains the descendants from the kept take too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard.board import Board
from storyboard.cache import Cache, Entry
from storyboard.errors import MediaError, StoryboardError
from storyboard.events import ShotResult, Warning_
from storyboard.facts import usd
from storyboard.plan import Plan, PlannedShot, request_for, take_request
from storyboard.request import FrameRef
from storyboard.runner._judge import judge_view
from storyboard.runner._scheduler import ShotScheduler, take_id
from storyboard.titles import is_title

__all__ = ["RerollView", "Rerolls", "chained_shots", "plan_view", "reroll_line", "reroll_totals",
           "reroll_worst_case"]


def chained_shots(board: Board) -> list[str]:
    """The shots whose seam is scored: each starts on another clip's last (or handoff) frame."""
    spec = board.spec
    out = []
    for shot in spec.shots:
        ref = shot.image
        if (isinstance(ref, FrameRef) and ref.selector == "last" and not shot.is_still
                and not spec.shot(ref.shot).is_still and not is_title(spec, shot.id)):
            out.append(shot.id)
    return out


def _rerollable(board: Board, plan: Plan) -> list[PlannedShot]:
    pinned = board.lock.picks if board.lock is not None else {}
    return [plan[s] for s in chained_shots(board) if plan[s].status != "unused" and s not in pinned]


def reroll_worst_case(board: Board, plan: Plan, count: int) -> Decimal | None:
    """What ``count`` rerolls of every chained, unpinned shot the plan uses would cost at
    most; None when a price is unknown."""
    total = Decimal(0)
    for ps in _rerollable(board, plan):
        if ps.price is None:
            return None
        total += ps.price * count
    return total


def reroll_line(board: Board, plan: Plan, count: int) -> str:
    """The plan's worst-case line for ``--reroll-drifted`` (with its newline; "" for 0)."""
    if not count:
        return ""
    shots = len(_rerollable(board, plan))
    return (f"+ up to {count} rerolls per chained shot: {usd(reroll_worst_case(board, plan, count))} "
            f"({shots} chained shot{'s' if shots != 1 else ''}, each rerolled only while its seam drifts)\n")


def reroll_totals(board: Board, plan: Plan, count: int) -> dict[str, Any]:
    """``--reroll-drifted`` in a JSON plan: ``{"reroll_drifted": {n, worst_case}}`` ({} for 0)."""
    if not count:
        return {}
    worst = reroll_worst_case(board, plan, count)
    return {"reroll_drifted": {"n": count, "worst_case": None if worst is None else str(worst)}}


def plan_view(cache: Any, board: Board, count: int) -> Any:
    """The cache as a plan with ``--reroll-drifted count`` sees it (itself for 0), and the
    takes the judge picked (`pick: auto`, runner/_judge.py)."""
    return judge_view(RerollView(cache, Rerolls.policy(board, count)) if count else cache, board)


def _memo_path(cache: Cache, key: str, policy: str) -> Path:
    return cache.frame_path(key, f"reroll-{policy}").with_suffix(".json")


class RerollView:
    """The cache as the plan sees it after rerolls: the key of a rerolled shot's picked take
    answers with the clip that was kept, so its descendants' keys are the ones a render makes."""

    def __init__(self, cache: Cache, policy: str) -> None:
        self.cache = cache
        self.policy = policy

    def __getattr__(self, name: str) -> Any:
        # everything else the plan may read (prepared audio, …) is the cache's own
        return getattr(self.cache, name)

    def clip_hash(self, key: str) -> str | None:
        """The kept clip's content hash where ``key`` was rerolled under this policy."""
        memo = _memo_path(self.cache, key, self.policy)
        if memo.exists():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                kept = self.cache.clip_hash(str(json.loads(memo.read_text())["kept_key"]))
                if kept is not None:
                    return kept
        return self.cache.clip_hash(key)


@dataclass(frozen=True)
class _Attempt:
    take: int
    entry: Entry
    psnr: float
    histogram: float
    drifted: bool
    cached: bool

    def row(self, kept: bool) -> dict[str, Any]:
        return {"take": self.take, "key": self.entry.key, "clip": str(self.entry.path), "psnr": self.psnr,
                "histogram": self.histogram, "drifted": self.drifted, "cached": self.cached, "kept": kept}


class _Stop(Exception):
    """No more rerolls of this shot (the reason is the message)."""


class Rerolls:
    """The reroll step, run by the scheduler after each shot (see the module docstring)."""

    def __init__(self, scheduler: ShotScheduler, count: int, allowance: Decimal | None) -> None:
        self.s = scheduler
        self.count = count
        self.allowance = allowance  # what rerolls may spend in all; None: no limit
        self.spent = Decimal(0)
        drift = scheduler.board.spec.model.drift
        self.thresholds = (drift.psnr, drift.histogram)
        self.chained = set(chained_shots(scheduler.board))

    @staticmethod
    def policy(board: Board, count: int) -> str:
        """What the kept take depends on besides the clips: the count and the thresholds."""
        drift = board.spec.model.drift
        return f"{count}-{drift.psnr:g}-{drift.histogram:g}"

    async def after(self, ps: PlannedShot, entry: Entry) -> Entry:
        """The clip a shot keeps: ``entry``, or its best reroll when its seam drifted."""
        if ps.id != ps.request.shot_id or ps.id not in self.chained:
            return entry
        board = self.s.board
        parents = {p: self.s.state.futures[p].result() for p in board.graph.parents(ps.id)}
        first = await self._score(ps, entry, parents, cached=bool(self.s.results[ps.id].cached))
        if first is None or not first.drifted:
            return entry
        ref = board.spec.shot(ps.id).image
        assert isinstance(ref, FrameRef)
        pinned = board.lock is not None and ps.id in board.lock.picks
        if pinned:
            self.s.emit(Warning_(shot=ps.id, message=(
                f"shot '{ps.id}': the seam from '{ref.shot}' drifted (PSNR {first.psnr} dB), but take {ps.take} "
                f"is pinned in {board.lock.path.name if board.lock else 'the lock file'}; the pin wins, "
                "so it is not rerolled")))
            return entry
        attempts = [first]
        stopped: str | None = None
        shot = board.spec.shot(ps.id)
        for k in range(1, self.count + 1):
            try:
                attempt = await self._reroll(ps, shot.takes + k, parents)
            except _Stop as e:
                stopped = str(e)
                self.s.emit(Warning_(shot=ps.id, message=stopped))
                break
            if attempt is None:
                break
            attempts.append(attempt)
            if not attempt.drifted:
                break
        # a take that holds beats one that drifted; then the highest PSNR, the lower colour
        # distance, and among equals the earliest (the pick itself when nothing is better)
        best = max(attempts, key=lambda a: (not a.drifted, a.psnr, -a.histogram))
        self._record(ps, attempts, best, stopped)
        return best.entry

    async def _score(self, ps: PlannedShot, entry: Entry, parents: Mapping[str, Entry], *,
                     cached: bool) -> _Attempt | None:
        from storyboard.media import seam_continuity

        ref = self.s.board.spec.shot(ps.request.shot_id).image
        assert isinstance(ref, FrameRef)
        parent = parents[ref.shot]
        try:
            if self.s.board.spec.shot(ref.shot).handoff_rule is not None:
                frame, _ = await self.s.handoff(ref.shot, parent)
            else:
                frame = await self.s.frame(parent, "last")
            score = await seam_continuity(frame, entry.path)
        except MediaError as e:  # a score is a note: no reroll on a seam that cannot be scored
            self.s.emit(Warning_(shot=ps.id, message=f"seam from '{ref.shot}' not scored, so not rerolled: {e}"))
            return None
        return _Attempt(take=ps.take, entry=entry, psnr=score.psnr, histogram=score.histogram,
                        drifted=score.drifted(*self.thresholds), cached=cached)

    async def _reroll(self, ps: PlannedShot, take: int, parents: Mapping[str, Entry]) -> _Attempt | None:
        """Make (or find cached) one more take of the shot, paid only within the budget."""
        s = self.s
        shot = s.board.spec.shot(ps.id)
        request = take_request(s.board, shot, request_for(s.board, shot), take)
        price = s.backend.price(request)
        tid = take_id(ps.id, take)
        tps = dataclasses.replace(ps, id=tid, request=request, key=None, status="generate", take=take, takes=(),
                                  cost=price, price=price)
        key = s.shot_key(tps, parents)
        tps = dataclasses.replace(tps, key=key)
        s.results[tid] = ShotResult(id=tid, status="pending", key=key)
        forced = ps.request.shot_id in s.force
        hit = None if forced else s.lookup(key)
        if hit is None:
            self._pay(ps.id, take, price)
            try:
                hit = await self.s.generate_claimed(tps, key, parents, forced)
            except (StoryboardError, OSError) as e:  # a failed reroll loses nothing: the best take stays
                res = s.results[tid]
                res.status, res.error = "skipped", f"reroll failed: {e}"
                s.emit(Warning_(shot=ps.id, message=f"shot '{ps.id}': reroll take {take} failed ({e}); "
                                                    "keeping the best take so far"))
                return None
            cached = False
        else:
            s.take_cached(tid, hit)
            cached = True
        return await self._score(tps, hit, parents, cached=cached)

    def _pay(self, shot_id: str, take: int, price: Decimal | None) -> None:
        """Count a reroll against the budget before it is paid, or stop."""
        if not self.s.paid or self.allowance is None:
            return
        if price is None:
            raise _Stop(f"shot '{shot_id}': reroll take {take} not made: its price is unknown, and an unknown "
                        "price counts as over any --budget")
        if self.spent + price > self.allowance:
            raise _Stop(f"shot '{shot_id}': reroll take {take} not made: it costs {usd(price)} and only "
                        f"{usd(self.allowance - self.spent)} of --budget is left after the planned shots; "
                        "stopped rerolling (nothing over budget is paid)")
        self.spent += price

    def _record(self, ps: PlannedShot, attempts: list[_Attempt], best: _Attempt, stopped: str | None) -> None:
        """The rerolls in the shot's result (report), a note, and the memo for later plans."""
        s = self.s
        res = s.results[ps.id]
        res.facts["rerolls"] = [a.row(a is best) for a in attempts]
        if stopped:
            res.facts["reroll_stopped"] = stopped
        if best is not attempts[0]:
            res.clip, res.key = best.entry.path, best.entry.key
            res.facts["kept_take"] = best.take
        ref = s.board.spec.shot(ps.id).image
        assert isinstance(ref, FrameRef)
        tried = len(attempts) - 1
        s.emit(Warning_(shot=ps.id, message=(
            f"shot '{ps.id}': the seam from '{ref.shot}' drifted (PSNR {attempts[0].psnr} dB, colour distance "
            f"{attempts[0].histogram}); rerolled {tried}×, kept take {best.take} (PSNR {best.psnr} dB"
            f"{', still drifted' if best.drifted else ''})")))
        key = attempts[0].entry.key
        dest = _memo_path(s.cache, key, self.policy(s.board, self.count))
        tmp = dest.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{dest.name}")
        with contextlib.suppress(OSError):  # the memo only sharpens later plans; losing it costs nothing
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"kept_key": best.entry.key, "kept_take": best.take}))
            s.cache.publish(tmp, dest)
