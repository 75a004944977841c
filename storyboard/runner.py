"""The runner: an asyncio scheduler over the shot graph, with the cache, the journal,
the budget check, events and the render report.

A shot starts as soon as the frames it needs exist. Remote calls are limited by a
semaphore (``concurrency``). A failed shot does not stop independent shots; its
descendants are skipped and no film is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from storyboard.backends import backend_variant, get_backend
from storyboard.backends.base import Backend
from storyboard.board import Board
from storyboard.cache import Cache, Entry, atomic_write_json
from storyboard.errors import (
    BudgetError,
    MediaError,
    Problem,
    RenderFailed,
    SpecError,
    StoryboardError,
)
from storyboard.plan import Plan, PlannedShot
from storyboard.request import FrameRef, ShotRequest, cache_key, chained_to, image_identity
from storyboard.spec import ImageSource

# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Base of every event. ``kind`` names it; ``to_dict()`` gives JSON-ready fields."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, (Path, Decimal)) else v
        return out


@dataclass(frozen=True)
class RenderStarted(Event):
    kind: ClassVar[str] = "render_started"
    shots: tuple[str, ...] = ()
    to_generate: int = 0
    estimate: Decimal | None = None


@dataclass(frozen=True)
class ShotWaiting(Event):
    kind: ClassVar[str] = "shot_waiting"
    shot: str = ""
    on: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShotStarted(Event):
    kind: ClassVar[str] = "shot_started"
    shot: str = ""
    key: str = ""


@dataclass(frozen=True)
class ShotProgress(Event):
    kind: ClassVar[str] = "shot_progress"
    shot: str = ""
    fraction: float | None = None
    status: str | None = None


@dataclass(frozen=True)
class ShotCached(Event):
    kind: ClassVar[str] = "shot_cached"
    shot: str = ""
    key: str = ""
    clip: Path | None = None


@dataclass(frozen=True)
class ShotDone(Event):
    kind: ClassVar[str] = "shot_done"
    shot: str = ""
    key: str = ""
    clip: Path | None = None
    seconds: float = 0.0
    cost: Decimal | None = None


@dataclass(frozen=True)
class ShotFailed(Event):
    kind: ClassVar[str] = "shot_failed"
    shot: str = ""
    error: str = ""


@dataclass(frozen=True)
class ShotSkipped(Event):
    kind: ClassVar[str] = "shot_skipped"
    shot: str = ""
    because: str = ""


@dataclass(frozen=True)
class Warning_(Event):
    kind: ClassVar[str] = "warning"
    message: str = ""
    shot: str | None = None


@dataclass(frozen=True)
class AssemblyProgress(Event):
    kind: ClassVar[str] = "assembly_progress"
    fraction: float = 0.0


@dataclass(frozen=True)
class FilmDone(Event):
    kind: ClassVar[str] = "film_done"
    film: Path | None = None
    duration: float = 0.0
    cost: Decimal = Decimal(0)
    seconds: float = 0.0
    method: str = ""


EventCallback = Callable[[Event], Any]

# --------------------------------------------------------------------------- results


@dataclass
class ShotResult:
    id: str
    key: str | None = None
    clip: Path | None = None
    status: str = "pending"  # cached | generated | failed | skipped | unused | pending
    cached: bool = False
    task_id: str | None = None
    billed_seconds: float | None = None
    cost: Decimal | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "status": self.status,
            "cache_hit": self.cached,
            "clip": str(self.clip) if self.clip else None,
            "task_id": self.task_id,
            "billed_seconds": self.billed_seconds,
            "cost": None if self.cost is None else str(self.cost),
            "seconds": self.seconds,
            "error": self.error,
            "facts": _jsonable(self.facts),
        }


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except (TypeError, ValueError):
        return json.loads(json.dumps(obj, default=str))


@dataclass
class RenderResult:
    plan: Plan
    film: Path | None = None
    shots: dict[str, ShotResult] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    report: Path | None = None
    duration: float | None = None
    seconds: float = 0.0
    method: str | None = None
    otio: Path | None = None
    film_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.film is not None


# --------------------------------------------------------------------------- context


class _JournalContext:
    """The ShotContext the runner gives a backend: the journal lives in the cache."""

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
        self._emit(ShotProgress(shot=self.shot_id, fraction=fraction, status=status))

    def remember(self, key: str, value: str) -> None:
        self.cache.remember(self.key, key, value, shot=self.shot_id, storyboard=str(self._board))
        if key == "task_id":
            self._result.task_id = value

    def recall(self, key: str) -> str | None:
        return self.cache.recall(self.key, key)

    def report(self, **fields: Any) -> None:
        self._result.facts.update(fields)
        if "task_id" in fields:
            self._result.task_id = str(fields["task_id"])
        if "billed_seconds" in fields and fields["billed_seconds"] is not None:
            with contextlib.suppress(TypeError, ValueError):
                self._result.billed_seconds = float(fields["billed_seconds"])


class _Skipped(Exception):
    def __init__(self, parent: str) -> None:
        self.parent = parent


# --------------------------------------------------------------------------- pipeline


def expand_force(board: Board, force: Iterable[str]) -> frozenset[str]:
    """Forcing a shot regenerates it and every shot chained from it."""
    out: set[str] = set()
    for f in force:
        out.add(f)
        out |= board.graph.descendants(f)
    return frozenset(out)


class Pipeline:
    """Render a storyboard: generate what is missing, then assemble the film.

    ``await Pipeline(board, backend="animatic").run()``
    """

    def __init__(
        self,
        board: Board,
        *,
        backend: str | Backend | None = None,
        backend_options: Mapping[str, Any] | None = None,
        output: str | Path | None = None,
        cache_dir: str | Path | None = None,
        concurrency: int = 4,
        budget: Decimal | float | str | None = None,
        force: Iterable[str] = (),
        dry_run: bool = False,
        on_event: EventCallback | None = None,
        otio: str | Path | None = None,
        report: bool = True,
    ) -> None:
        if concurrency < 1:
            raise StoryboardError("concurrency must be at least 1")
        self.board = board
        name = backend if backend is not None else board.spec.model.backend
        self.backend: Backend = get_backend(name, **dict(backend_options or {})) if isinstance(name, str) else name
        self.output = Path(output) if output else board.output
        self.cache_dir = cache_dir
        self.concurrency = concurrency
        self.budget = None if budget is None else Decimal(str(budget))
        ids = {s.id for s in board.shots}
        unknown = [f for f in force if f not in ids]
        if unknown:
            raise StoryboardError(f"--force names unknown shot '{unknown[0]}'")
        self.force = expand_force(board, force)
        self.dry_run = dry_run
        self.on_event = on_event
        self.otio = Path(otio) if otio else None
        self.write_report = report
        self.variant = backend_variant(self.backend)

    # ----------------------------------------------------------------- events

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # ----------------------------------------------------------------- checks

    def plan(self, cache: Cache | None = None) -> Plan:
        if cache is None:
            cache = Cache.for_board(self.board.path, self.cache_dir, create=False)
        return self.board.plan(backend=self.backend.name, cache=cache, variant=self.variant, force=self.force,
                               price=self.backend.price)

    def check_budget(self, plan: Plan) -> None:
        if self.budget is None or not getattr(self.backend, "paid", True):
            return
        pending = plan.pending
        if not pending:
            return
        cost = plan.cost
        if cost is None:
            unknown = [s.id for s in pending if s.cost is None]
            raise BudgetError(
                f"over budget: the price of {len(unknown)} shot(s) ({', '.join(unknown[:5])}) is unknown for "
                f"{self.backend.name}, and unknown prices count as over any --budget; nothing was paid"
            )
        if cost > self.budget:
            raise BudgetError(
                f"over budget: {len(pending)} shot(s), {plan.seconds_to_generate} s to generate, would cost "
                f"${cost:.3f}; --budget is ${self.budget:.2f}. Nothing was paid."
            )

    def check_media(self) -> None:
        """Probe the audio tracks before anything is paid for."""
        if not self.board.spec.audio:
            return
        from storyboard.media import probe_audio

        problems: list[Problem] = []
        for j, (path, _track) in enumerate(self.board.spec.audio):
            try:
                probe_audio(path)
            except MediaError as e:
                problems.append(self.board.spec.source.problem(
                    f"audio[{j}]: '{path.relative_to(self.board.spec.folder)}' is not a readable audio file "
                    f"({str(e).splitlines()[0]})", ("audio", j, "file")))
        if problems:
            raise SpecError(problems)

    # ----------------------------------------------------------------- run

    async def run(self) -> RenderResult:
        started = time.monotonic()
        self.check_media()
        if self.dry_run:
            plan = self.plan()
            self.check_budget(plan)
            return RenderResult(plan=plan)
        cache = Cache.for_board(self.board.path, self.cache_dir)
        cache.sweep_tmp()
        with cache.lock(self.output):
            plan = self.plan(cache)
            for key, why in cache.dropped:
                self.emit(Warning_(message=f"dropped cache entry {key[:10]}: {why}; it will be regenerated"))
            self.check_budget(plan)
            ready = getattr(self.backend, "check_ready", None)
            if plan.pending and callable(ready):
                ready()
            self.emit(RenderStarted(shots=tuple(s.id for s in plan.shots if s.status != "unused"),
                                    to_generate=len(plan.pending), estimate=plan.cost))
            result = RenderResult(plan=plan)
            try:
                await self._generate(plan, cache, result)
            finally:
                with contextlib.suppress(Exception):
                    await self.backend.aclose()
            result.cost = sum((r.cost or Decimal(0) for r in result.shots.values() if r.status == "generated"),
                              Decimal(0))
            failed = [r for r in result.shots.values() if r.status == "failed"]
            if failed:
                result.seconds = time.monotonic() - started
                self._report(result)
                skipped = [r.id for r in result.shots.values() if r.status == "skipped"]
                lines = [f"{len(failed)} shot(s) failed; no film was written (every other clip is cached):"]
                lines += [f"  {r.id}: {r.error}" for r in failed]
                if skipped:
                    lines.append(f"  skipped (they need a failed shot): {', '.join(skipped)}")
                lines.append("run the same command again to redo only what is missing")
                raise RenderFailed("\n".join(lines))
            await self._assemble(result)
            result.seconds = time.monotonic() - started
            self._report(result)
            self.emit(FilmDone(film=result.film, duration=result.duration or 0.0, cost=result.cost,
                               seconds=round(result.seconds, 3), method=result.method or ""))
            return result

    async def _generate(self, plan: Plan, cache: Cache, result: RenderResult) -> None:
        board = self.board
        futures: dict[str, asyncio.Future[Entry]] = {}
        loop = asyncio.get_running_loop()
        active = [s for s in plan.shots if s.status != "unused"]
        for s in plan.shots:
            result.shots[s.id] = ShotResult(id=s.id, status="unused" if s.status == "unused" else "pending")
        for s in active:
            futures[s.id] = loop.create_future()
        sem = asyncio.Semaphore(self.concurrency)
        frame_tasks: dict[tuple[str, str], asyncio.Task[Path]] = {}
        prep_tasks: dict[tuple[str, str], asyncio.Task[Path]] = {}

        async def frame(entry: Entry, selector: str | float) -> Path:
            from storyboard.media import extract_frame

            dest = cache.frame_path(entry.clip, selector)
            if dest.exists():
                return dest
            tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
            await extract_frame(entry.path, selector, tmp)
            return cache.publish(tmp, dest)

        def frame_task(entry: Entry, selector: str | float) -> asyncio.Task[Path]:
            k = (entry.clip, str(selector))
            if k not in frame_tasks:
                frame_tasks[k] = asyncio.ensure_future(frame(entry, selector))
            return frame_tasks[k]

        async def prepare(src_path: Path, token: str, aspect: str, label: str | None) -> Path:
            from storyboard.media import prepare_image

            digest = hashlib.sha256(f"{token}|{aspect}|v1".encode()).hexdigest()
            for suffix in (".png", ".jpg"):
                done = cache.prepared_path(digest, suffix)
                if done.exists():
                    return done
            tmp_dir = cache.tmp_dir("prep-")
            try:
                prepared = await asyncio.to_thread(prepare_image, src_path, aspect, tmp_dir / "image.png")
                if label is not None:  # frames of preview clips are small on purpose: no warnings
                    for note in prepared.notes:
                        self.emit(Warning_(message=f"{label}: {note}"))
                return cache.publish(prepared.path, cache.prepared_path(digest, prepared.path.suffix))
            finally:
                shutil.rmtree(tmp_dir, ignore_errors=True)

        async def image_for(src: ImageSource, aspect: str, entries: Mapping[str, Entry], shot_id: str) -> Path:
            if isinstance(src, FrameRef):
                self.emit(ShotProgress(shot=shot_id, status=f"extracting frame {src}"))
                raw = await frame_task(entries[src.shot], src.selector)
                token, label = f"{entries[src.shot].clip}-{src.selector}", None
            else:
                raw, token, label = src.path, f"{src.rel}|{src.sha256}", src.rel
            k = (token, aspect)
            if k not in prep_tasks:
                prep_tasks[k] = asyncio.ensure_future(prepare(raw, token, aspect, label))
            return await prep_tasks[k]

        async def shot_job(ps: PlannedShot) -> Entry:
            res = result.shots[ps.id]
            parents = board.graph.parents(ps.id)
            entries: dict[str, Entry] = {}
            if parents:
                waiting = tuple(p for p in parents if not futures[p].done())
                if waiting:
                    self.emit(ShotWaiting(shot=ps.id, on=waiting))
                for p in parents:
                    try:
                        entries[p] = await futures[p]
                    except BaseException:
                        raise _Skipped(p) from None
            clips = {p: e.clip for p, e in entries.items()}
            images = {role: image_identity(src, clips) for role, src in (("image", ps.image), ("end_image", ps.end_image))}
            key = cache_key(ps.request, backend=self.backend.name, variant=self.variant, images=images)
            res.key = key
            if ps.id not in self.force:
                hit = cache.lookup(key)
                if hit is not None:
                    res.status, res.cached, res.clip = "cached", True, hit.path
                    res.facts = dict(hit.facts)
                    res.task_id = hit.facts.get("task_id")
                    self.emit(ShotCached(shot=ps.id, key=key, clip=hit.path))
                    return hit
            aspect = ps.request.aspect_ratio
            image = await image_for(ps.image, aspect, entries, ps.id) if ps.image is not None else None
            end_image = await image_for(ps.end_image, aspect, entries, ps.id) if ps.end_image is not None else None
            request: ShotRequest = dataclasses.replace(ps.request, image=image, end_image=end_image)
            if cache.recall(key, "task_id") is None:
                if cache.recall(key, "submitting"):  # a render died mid-submission (see inference.py)
                    res.facts["uncertain_submission"] = cache.recall(key, "submitting")
                    self.emit(Warning_(shot=ps.id, message=(
                        f"shot '{ps.id}': an earlier render stopped while submitting this shot and never got "
                        "its task id; that task may exist (and be billed) but cannot be found to re-attach, so "
                        "the shot is submitted again — check your tasks on inference.sh")))
                self.emit(ShotProgress(shot=ps.id, status="queued for a slot"))
            async with sem:
                res.started = time.time()
                self.emit(ShotStarted(shot=ps.id, key=key))
                work = cache.tmp_dir(f"{ps.id}-")
                ctx = _JournalContext(cache, key, ps.id, work, board.path, self.emit, res)
                try:
                    clip = await self.backend.generate(request, ctx)
                    res.cost = ps.price
                    facts = {**res.facts, "task_id": res.task_id, "cost": None if ps.price is None else str(ps.price),
                             "generation_seconds": round(time.time() - res.started, 3)}  # shown on later hits
                    entry = cache.store(key, clip, shot=ps.id, facts=_jsonable(facts))
                    cache.forget(key)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                res.finished = time.time()
            res.status, res.clip = "generated", entry.path
            self.emit(ShotDone(shot=ps.id, key=key, clip=entry.path, seconds=res.seconds or 0.0, cost=res.cost))
            return entry

        async def run_one(ps: PlannedShot) -> None:
            fut = futures[ps.id]
            try:
                entry = await shot_job(ps)
            except _Skipped as e:
                res = result.shots[ps.id]
                res.status = "skipped"
                res.error = f"needs '{e.parent}', which did not finish"
                self.emit(ShotSkipped(shot=ps.id, because=e.parent))
                fut.set_exception(e)
                fut.exception()  # mark retrieved
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except StoryboardError as e:
                self._fail(result, ps.id, str(e), fut, e)
            except OSError as e:
                why = ("the disk is full; free some space, then render again (a paid task stays journalled)"
                       if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}")
                self._fail(result, ps.id, why, fut, e)
            except Exception as e:  # a backend bug must not lose the other shots
                self._fail(result, ps.id, f"{type(e).__name__}: {e}", fut, e)
            else:
                fut.set_result(entry)

        tasks = [asyncio.ensure_future(run_one(s)) for s in active]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            for side in (*frame_tasks.values(), *prep_tasks.values()):
                side.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _fail(self, result: RenderResult, shot_id: str, message: str, fut: asyncio.Future[Entry],
              exc: BaseException) -> None:
        res = result.shots[shot_id]
        res.status = "failed"
        prefix = f"shot '{shot_id}': "
        res.error = message[len(prefix):] if message.startswith(prefix) else message
        res.finished = time.time()
        self.emit(ShotFailed(shot=shot_id, error=res.error))
        fut.set_exception(exc)
        fut.exception()

    # ----------------------------------------------------------------- assembly

    def cut_layout(self, result: RenderResult) -> list[tuple[Path, str, float, bool]]:
        """The film in cut order: (clip, transition into it, its length, trim the seam frame)."""
        spec = self.board.spec
        out = []
        for j, sid in enumerate(spec.cut):
            shot = spec.shot(sid)
            clip = result.shots[sid].clip
            assert clip is not None
            chained = j > 0 and chained_to(shot.image, spec.cut[j - 1]) and shot.transition == "cut"
            out.append((clip, shot.transition, shot.transition_duration, chained and shot.seam == "trim"))
        return out

    def cut_clips(self, result: RenderResult) -> list[Any]:
        from storyboard.media import CutClip

        return [CutClip(path=p, transition=t, transition_duration=d, trim_first_frame=trim)
                for p, t, d, trim in self.cut_layout(result)]

    def film_key(self, result: RenderResult) -> str:
        """What the film is made of: clips (content hashes), transitions, seams, audio, loudness."""
        from storyboard.cache import file_sha256

        clips = [(p.stem, t, d, trim) for p, t, d, trim in self.cut_layout(result)]
        audio = [(file_sha256(p), t.volume, t.duck, t.loop) for p, t in self.board.spec.audio]
        blob = json.dumps({"v": 1, "clips": clips, "audio": audio, "loudness": self.board.spec.model.loudness})
        return hashlib.sha256(blob.encode()).hexdigest()

    def _unchanged_film(self, key: str) -> dict[str, Any] | None:
        """The previous report, when the film on disk is exactly what this render would make."""
        try:
            previous = json.loads(self.report_path().read_text())
            st = self.output.stat()
        except (OSError, ValueError):
            return None
        if (isinstance(previous, dict) and previous.get("film_key") == key
                and previous.get("film_size") == st.st_size and previous.get("film_mtime_ns") == st.st_mtime_ns):
            return previous
        return None

    async def _assemble(self, result: RenderResult) -> None:
        spec = self.board.spec
        key = self.film_key(result)
        result.film_key = key
        previous = self._unchanged_film(key)
        if previous is not None:  # nothing changed: keep the film as it is
            result.film, result.duration, result.method = self.output, previous.get("duration"), "unchanged"
        else:
            from storyboard.media import MixTrack, assemble

            tracks = [MixTrack(path=p, volume=t.volume, duck=t.duck, loop=t.loop) for p, t in spec.audio]
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.emit(AssemblyProgress(fraction=0.0))
            done = await assemble(self.cut_clips(result), self.output, audio=tracks, loudness=spec.model.loudness,
                                  progress=lambda f: self.emit(AssemblyProgress(fraction=f)))
            self.emit(AssemblyProgress(fraction=1.0))
            result.film, result.duration, result.method = done.path, done.duration, done.method
        if self.otio is not None:
            from storyboard.otio import write_otio

            result.otio = write_otio(self.board, result, self.otio)

    # ----------------------------------------------------------------- report

    def report_path(self) -> Path:
        return self.output.with_name(self.output.name + ".render.json")

    def _report(self, result: RenderResult) -> None:
        if not self.write_report:
            return
        data = {
            "storyboard": str(self.board.path),
            "title": self.board.title,
            "backend": self.backend.name,
            "film": str(result.film) if result.film else None,
            "duration": result.duration,
            "assembly": result.method,
            "film_key": result.film_key,
            "film_size": result.film.stat().st_size if result.film and result.film.exists() else None,
            "film_mtime_ns": result.film.stat().st_mtime_ns if result.film and result.film.exists() else None,
            "cost": str(result.cost),
            "estimate": None if result.plan.cost is None else str(result.plan.cost),
            "seconds": round(result.seconds, 3),
            "board_hash": result.plan.board_hash,
            "cut": list(self.board.cut),
            "shots": [
                {**result.shots[s.id].to_dict(), "prompt": s.request.prompt, "duration": s.request.duration,
                 "image": s.request.image_source, "end_image": s.request.end_image_source,
                 "in_cut": s.in_cut, "mode": s.request.mode, "sound": s.request.sound}
                for s in result.plan.shots
            ],
        }
        path = self.report_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)
        result.report = path


def render(board: Board | str | Path, backend: str | Backend | None = None, **options: Any) -> RenderResult:
    """Render a storyboard synchronously (see :class:`Pipeline` for the options)."""
    if not isinstance(board, Board):
        from storyboard.board import load

        board = load(board, vars=options.pop("vars", None))
    return asyncio.run(Pipeline(board, backend=backend, **options).run())
