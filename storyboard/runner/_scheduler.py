"""The scheduler: every shot of a render walks the same named steps.

    wait_for_parents → shot_key → lookup → claim → prepare_inputs → generate → store

A shot starts as soon as the clips it takes frames from exist. Backend calls are
limited to ``concurrency`` slots; a freed slot goes to the ready shot with the longest
remaining path through the graph (``runner/_slots.py``; ``order="first-ready"``: first
come, first served). A paid shot is claimed (see
``storyboard.cache.claims``) before anything is submitted, and the claim is waited for
outside the semaphore, so renders waiting on each other's claims cannot deadlock. A
failed shot does not stop independent shots; its descendants are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard.backends.base import Backend
from storyboard.board import Board
from storyboard.cache import Cache, Entry
from storyboard.errors import MediaError, NoOutputError, StoryboardError
from storyboard.events import (
    WAITING_FOR_ANOTHER_RENDER,
    Event,
    ShotCached,
    ShotDone,
    ShotFailed,
    ShotProgress,
    ShotResult,
    ShotSkipped,
    ShotStarted,
    ShotWaiting,
    Warning_,
    jsonable,
)
from storyboard.plan import PAID_STATUSES, Plan, PlannedShot, PlannedTake
from storyboard.request import FrameRef, ShotRequest, billed_cost, cache_key, image_identity
from storyboard.runner._context import JournalContext, holding, off_loop, warn_if_uncertain
from storyboard.runner._images import ImageSteps, RenderState
from storyboard.runner._slots import Order, PrioritySlots, expected_seconds
from storyboard.runner._spend import Spend
from storyboard.spec import ImageSource
from storyboard.titles import TITLE_BACKEND, card_args, is_title


class Skipped(Exception):
    """A shot's parent did not finish, so the shot is not tried."""

    def __init__(self, parent: str) -> None:
        self.parent = parent


class ShotScheduler(ImageSteps):
    """Generates what a plan needs, each shot through the named steps."""

    def __init__(self, *, board: Board, backend: Backend, variant: str, cache: Cache, force: frozenset[str],
                 concurrency: int, emit: Callable[[Event], None], results: dict[str, ShotResult],
                 order: Order = "longest-path") -> None:
        self.board = board
        self.backend = backend
        self.variant = variant
        self.cache = cache
        self.force = force
        self.slots = PrioritySlots(concurrency)
        self.order = order
        self.priority: dict[str, float] = {}  # shot id -> the work hanging on it (expected seconds)
        self.emit = emit
        self.results = results
        self.paid = bool(getattr(backend, "paid", True))
        self.state = RenderState()
        self.planned: dict[str, str] = {}  # each shot's planned status (prefetch skips cached ones)
        # a step after each shot's clip exists, before its descendants see it (rerolls)
        self.after_shot: Callable[[PlannedShot, Entry], Awaitable[Entry]] | None = None
        self.spend = Spend(None)  # what paid calls cost so far; the pipeline sets --budget on it

    # ----------------------------------------------------------------- the whole render

    async def run(self, plan: Plan) -> None:
        """Make every shot the plan uses; the results say what happened to each."""
        loop = asyncio.get_running_loop()
        active = [s for s in plan.shots if s.status != "unused"]
        for s in plan.shots:
            self.results[s.id] = ShotResult(id=s.id, status="unused" if s.status == "unused" else "pending")
        takes = [self.take_shot(s, t) for s in active for t in s.takes]
        for s in takes:
            self.results[s.id] = ShotResult(id=s.id, status="pending")
        for s in [*active, *takes]:
            self.state.futures[s.id] = loop.create_future()
        self.planned = {s.id: s.status for s in plan.shots}
        self.priority = self.priorities(plan) if self.order == "longest-path" else {}
        tasks = [asyncio.ensure_future(self.run_shot(s)) for s in [*active, *takes]]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            for side in self.state.side_tasks():
                side.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def priorities(self, plan: Plan) -> dict[str, float]:
        """Each node's longest remaining path, weighted by expected generation time (0 for
        what is cached); another take (``SHOT#N``) weighs its own time only: no shot
        chains from it."""
        weights = {s.id: expected_seconds(s.request) if s.to_generate else 0.0 for s in plan.shots}
        out = self.board.graph.remaining(weights)
        for s in plan.shots:
            for t in s.takes:
                out[take_id(s.id, t.take)] = expected_seconds(t.request) if t.to_generate else 0.0
        return out

    async def cut_handoffs(self) -> None:
        """Find the handoff frame of every finished shot whose last frame feeds another
        under a handoff rule, cached children included: the film's cut ends there."""
        feeders = {ref.shot for s in self.board.spec.shots for _, ref in s.parents() if ref.selector == "last"}
        for sid in sorted(feeders):
            fut = self.state.futures.get(sid)
            if self.board.spec.shot(sid).handoff_rule is not None and _finished(fut):
                assert fut is not None
                await self.handoff(sid, fut.result())

    async def score_seams(self) -> None:
        """Score every chained seam (a shot starting on another's last or handoff frame):
        the parent's frame against the child's first frame; recorded in the child's result."""
        from storyboard.media import seam_continuity

        drift = self.board.spec.model.drift
        for shot in self.board.spec.shots:
            ref = shot.image
            if not isinstance(ref, FrameRef) or ref.selector != "last" or self.board.spec.shot(ref.shot).is_still:
                continue
            parent, child = self.state.futures.get(ref.shot), self.state.futures.get(shot.id)
            if not (_finished(parent) and _finished(child)):
                continue
            assert parent is not None and child is not None
            if self.board.spec.shot(ref.shot).handoff_rule is not None:
                frame, _ = await self.handoff(ref.shot, parent.result())
            else:
                frame = await self.frame(parent.result(), "last")
            try:
                score = await seam_continuity(frame, child.result().path)
            except MediaError as e:  # a score is a note, never a reason to lose the film
                self.emit(Warning_(shot=shot.id, message=f"seam from '{ref.shot}' not scored: {e}"))
                continue
            self.results[shot.id].facts["seam"] = {
                "from": ref.shot, "psnr": score.psnr, "histogram": score.histogram,
                "drifted": score.drifted(drift.psnr, drift.histogram)}

    @staticmethod
    def take_shot(ps: PlannedShot, take: PlannedTake) -> PlannedShot:
        """Another take of a shot, walked through the same steps under the id ``SHOT#N``
        (its request keeps the shot's id; the graph and --force go by that)."""
        return dataclasses.replace(ps, id=take_id(ps.id, take.take), request=take.request, key=take.key,
                                   status=take.status, cost=take.cost, take=take.take, takes=())

    async def run_shot(self, ps: PlannedShot) -> None:
        """Make one shot and settle its future; a failure is recorded, not raised."""
        fut = self.state.futures[ps.id]
        try:
            entry = await self.make_shot(ps)
            if self.after_shot is not None:
                entry = await self.after_shot(ps, entry)
        except Skipped as e:
            res = self.results[ps.id]
            res.status = "skipped"
            res.error = f"needs '{e.parent}', which did not finish"
            self.emit(ShotSkipped(shot=ps.id, because=e.parent))
            self._settle_failed(fut, e)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except StoryboardError as e:
            self.fail(ps.id, str(e), fut, e)
        except OSError as e:
            why = ("the disk is full; free some space, then render again (a paid task stays journalled)"
                   if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}")
            self.fail(ps.id, why, fut, e)
        except Exception as e:  # a backend bug must not lose the other shots
            self.fail(ps.id, f"{type(e).__name__}: {e}", fut, e)
        else:
            fut.set_result(entry)
            if ps.id == ps.request.shot_id:
                self.prefetch(ps.id, entry)
        finally:
            self.slots.forfeit(ps.id)  # a slot kept for a shot that no longer needs one

    async def make_shot(self, ps: PlannedShot) -> Entry:
        """The steps of one shot, in order."""
        entries = await self.wait_for_parents(ps.request.shot_id)
        key = self.shot_key(ps, entries)
        self.results[ps.id].key = key
        forced = ps.request.shot_id in self.force
        # On a shared store the plan read this key's index a moment ago: a shot it found
        # missing goes straight to its claim, and is looked up again once claimed.
        planned_miss = self.cache.remote and ps.status == "generate"
        hit = None if forced or planned_miss else await off_loop(self.cache, self.lookup, key)
        if hit is not None:
            return self.take_cached(ps.id, hit)
        return await self.generate_claimed(ps, key, entries, forced)

    async def generate_claimed(self, ps: PlannedShot, key: str, entries: Mapping[str, Entry],
                               forced: bool) -> Entry:
        """claim → lookup again → prepare → generate → store (a paid key is claimed first;
        offline backends pay nothing and need no claim)."""
        if not self.paid:
            return await self.prepare_and_generate(ps, key, entries)
        waiting = functools.partial(self.emit, ShotProgress(shot=ps.id, status=WAITING_FOR_ANOTHER_RENDER))
        async with holding(self.cache, key, waiting):
            # Looked up again once claimed: the render we waited for may have stored it.
            hit = None if forced else await off_loop(self.cache, self.lookup, key)
            if hit is not None:
                return self.take_cached(ps.id, hit)
            return await self.prepare_and_generate(ps, key, entries)

    async def prepare_and_generate(self, ps: PlannedShot, key: str, entries: Mapping[str, Entry]) -> Entry:
        """Prepare the images, check the journal, then generate and store in a slot."""
        request = await self.prepare_inputs(ps, entries)
        self.check_journal(ps.id, key)
        async with self.slots.hold(self.priority.get(ps.id, 0.0), ps.id) as turn:
            entry = await self.generate_and_store(ps, key, request)
            turn.pass_to(self.heir(ps))
            return entry

    def heir(self, ps: PlannedShot) -> str | None:
        """The child a finished shot's slot passes to: the one with the longest remaining
        path, to be generated, whose other parents are done, when nothing in line weighs
        more. It prepares its frame while the slot waits for it (a chain never queues
        behind shots that can wait)."""
        # With rerolls the child waits on this shot's reroll, which may need the very slot
        if not self.priority or ps.id != ps.request.shot_id or self.after_shot is not None:
            return None
        graph = self.board.graph
        kids = [c for c in graph.children(ps.id) if self.planned.get(c) in PAID_STATUSES and all(
            p == ps.id or _finished(self.state.futures.get(p)) for p in graph.parents(c))]
        best = max(kids, key=self.priority.__getitem__, default=None)
        top = self.slots.top_waiting()
        return best if best is not None and (top is None or self.priority[best] >= top) else None

    # ----------------------------------------------------------------- the steps

    async def wait_for_parents(self, shot_id: str) -> dict[str, Entry]:
        """The cached clips of the shots this one takes frames from, once they exist."""
        parents = self.board.graph.parents(shot_id)
        waiting = tuple(p for p in parents if not self.state.futures[p].done())
        if waiting:
            self.emit(ShotWaiting(shot=shot_id, on=waiting))
        entries: dict[str, Entry] = {}
        for p in parents:
            try:
                entries[p] = await self.state.futures[p]
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():  # the render is stopping (Ctrl-C): not a skip
                    raise
                raise Skipped(p) from None
            except BaseException:
                raise Skipped(p) from None
        return entries

    def shot_key(self, ps: PlannedShot, entries: Mapping[str, Entry]) -> str:
        """The shot's cache key, now that the clips it chains from are known."""
        clips = {p: e.clip for p, e in entries.items()}
        handoffs = {p: self.board.spec.shot(p).handoff_rule for p in entries}
        images: dict[str, Any] = {
            role: image_identity(src, clips, handoffs) for role, src in (("image", ps.image), ("end_image", ps.end_image))}
        if ps.references:
            images["references"] = [image_identity(src, clips) for src in ps.references]
        keyframes = self.board.spec.shot(ps.request.shot_id).keyframes
        if keyframes:
            images["keyframes"] = [[at, image_identity(src, clips)] for at, src in keyframes]
        maker = TITLE_BACKEND if is_title(self.board.spec, ps.id) else self.backend.name
        return cache_key(ps.request, backend=maker, variant=self.variant, images=images)

    def lookup(self, key: str) -> Entry | None:
        """The checked clip cached under ``key``, if any."""
        return self.cache.lookup(key)

    def take_cached(self, shot_id: str, hit: Entry) -> Entry:
        """Record a cache hit as the shot's result."""
        res = self.results[shot_id]
        res.status, res.cached, res.clip = "cached", True, hit.path
        res.facts = dict(hit.facts)
        res.task_id = hit.facts.get("task_id")
        self.emit(ShotCached(shot=shot_id, key=hit.key, clip=hit.path))
        return hit

    async def prepare_inputs(self, ps: PlannedShot, entries: Mapping[str, Entry]) -> ShotRequest:
        """The request with its images as local files prepared to the model's rules."""
        aspect = ps.request.aspect_ratio

        async def one(src: ImageSource | None) -> Path | None:
            return None if src is None else await self.image_for(src, aspect, entries, ps.id)

        # side by side: a start and an end frame are extracted and prepared at once
        keyframes = self.board.spec.shot(ps.request.shot_id).keyframes if ps.request.keyframes_input else ()
        image, end_image, *refs = await asyncio.gather(one(ps.image), one(ps.end_image), *map(one, ps.references),
                                                       *(one(src) for _, src in keyframes))
        frames = refs[len(refs) - len(keyframes):]
        refs = refs[:len(refs) - len(keyframes)]
        return dataclasses.replace(ps.request, image=image, end_image=end_image,
                                   references=tuple(r for r in refs if r is not None),
                                   keyframes=tuple((at, p) for (at, _), p in zip(keyframes, frames, strict=True)
                                                   if p is not None))

    def check_journal(self, shot_id: str, key: str) -> None:
        """Before the backend runs: say when an earlier render died mid-submission."""
        warn_if_uncertain(self.cache, key, shot_id, self.results[shot_id], self.emit)
        self.emit(ShotProgress(shot=shot_id, status="queued for a slot"))

    async def generate_and_store(self, ps: PlannedShot, key: str, request: ShotRequest) -> Entry:
        """Run the backend in a private work folder, then store its clip (in a slot)."""
        res = self.results[ps.id]
        paid = self.paid and not is_title(self.board.spec, ps.request.shot_id)
        if paid:  # --budget against what was actually spent so far, before this call is paid
            self.spend.reserve(ps.id, ps.price, paid_already=self.cache.recall(key, "task_id") is not None)
        res.started = time.time()
        self.emit(ShotStarted(shot=ps.id, key=key))
        work = self.cache.tmp_dir(f"{ps.id}-")
        try:
            try:
                clip = await self.generate(ps.id, key, request, work)
            except NoOutputError:  # a finished task: re-attaching to it could never help
                self.cache.forget(key)
                raise
            except BaseException:
                self.spend.release(ps.id)
                raise
            self.hand_off_early(ps, key, clip)
            # off the loop: the children's images prepare and upload while the clip is stored
            storing = asyncio.ensure_future(asyncio.to_thread(self.store, ps, key, clip))
            try:
                entry = await asyncio.shield(storing)
            except asyncio.CancelledError:  # a paid clip is stored before its work folder goes
                await asyncio.wait([storing])
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if paid:
            billed = res.facts.get("billed_cost")
            over = self.spend.settle(ps.id, ps.price, None if billed is None else Decimal(str(billed)))
            if over is not None:
                self.emit(Warning_(shot=ps.id, message=over))
        res.finished = time.time()
        res.status, res.clip = "generated", entry.path
        self.emit(ShotDone(shot=ps.id, key=key, clip=entry.path, seconds=res.seconds or 0.0, cost=res.cost))
        return entry

    async def generate(self, shot_id: str, key: str, request: ShotRequest, work: Path) -> Path:
        """Submit and wait through the backend (it re-attaches to a journalled task)."""
        if is_title(self.board.spec, shot_id):  # a text card, made here for free
            from storyboard.media import title_clip

            return await title_clip(work / f"{shot_id}.mp4", request.prompt, **card_args(request))
        ctx = JournalContext(self.cache, key, shot_id, work, self.board.path, self.emit, self.results[shot_id])
        return await self.backend.generate(request, ctx)

    def store(self, ps: PlannedShot, key: str, clip: Path) -> Entry:
        """Move the clip into the cache under ``key``; the journal is done with."""
        res = self.results[ps.id]
        res.cost = ps.price
        billed = billed_cost(ps.request, res.facts.get("output_meta"))
        if billed is not None:  # what output_meta says was billed, beside the estimate
            res.facts["billed_cost"] = str(billed)
        facts = {**res.facts, "task_id": res.task_id, "cost": None if ps.price is None else str(ps.price),
                 "generation_seconds": round(time.time() - res.started, 3) if res.started else None}
        entry = self.cache.store(key, clip, shot=ps.id, facts=jsonable(facts))
        self.cache.forget(key)
        return entry

    # ----------------------------------------------------------------- failures

    def fail(self, shot_id: str, message: str, fut: asyncio.Future[Entry], exc: BaseException) -> None:
        """Record a failed shot; its descendants will be skipped."""
        res = self.results[shot_id]
        res.status = "failed"
        prefix = f"shot '{shot_id}': "
        res.error = message[len(prefix):] if message.startswith(prefix) else message
        res.finished = time.time()
        self.emit(ShotFailed(shot=shot_id, error=res.error))
        self._settle_failed(fut, exc)

    @staticmethod
    def _settle_failed(fut: asyncio.Future[Entry], exc: BaseException) -> None:
        fut.set_exception(exc)
        fut.exception()  # mark retrieved


def _finished(fut: asyncio.Future[Entry] | None) -> bool:
    return fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None


def take_id(shot_id: str, take: int) -> str:
    """How another take of a shot is named in results and events: ``harbor#2``."""
    return f"{shot_id}#{take}"
