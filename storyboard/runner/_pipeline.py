"""The Pipeline: checks (media, budget), the render lock, the scheduler, assembly of
the film, and the render report. The shot-by-shot steps are in ``_scheduler``.

A failed shot does not stop independent shots; its descendants are skipped and no film
is written. An unchanged film is not assembled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard.backends import backend_variant, get_backend
from storyboard.backends.base import Backend
from storyboard.board import Board
from storyboard.cache import Cache, atomic_write_json, file_sha256, open_cache
from storyboard.errors import (
    BudgetError,
    MediaError,
    Problem,
    RenderFailed,
    SpecError,
    StoryboardError,
)
from storyboard.events import (
    Event,
    EventCallback,
    FilmDone,
    RenderResult,
    RenderStarted,
    Warning_,
)
from storyboard.facts import TAKES_MAX, usd
from storyboard.judging import auto_shots
from storyboard.narration import voice_of
from storyboard.plan import Plan
from storyboard.request import chained_to
from storyboard.runner._film import make_film
from storyboard.runner._judge import Judge, then
from storyboard.runner._preflight import live_check, with_remembered
from storyboard.runner._reroll import Rerolls, plan_view
from storyboard.runner._scheduler import ShotScheduler
from storyboard.runner._slots import Order, check_order
from storyboard.runner._spend import Spend


def verify_clip(path: Path) -> None:
    """Raise when ``path`` is not a readable video, or for a still a readable image (the
    cache's check of a changed clip)."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
        return
    if path.suffix.lower() == ".json":  # a text app's answer
        json.loads(path.read_text(encoding="utf-8"))
        return
    from storyboard.media import probe

    probe(path)

# --------------------------------------------------------------------------- pipeline


def expand_force(board: Board, force: Iterable[str]) -> frozenset[str]:
    """Forcing a shot regenerates it and every shot chained from it."""
    out: set[str] = set()
    for f in force:
        out.add(f)
        out |= board.graph.descendants(f)
    return frozenset(out)


class SeenIndex:
    """The cache as one render's plans see it: each key's clip hash is read once. A render
    plans up to three times (before and after the live checks), and on a shared store
    each read is a request; a shot the plans call missing is looked up again before it
    is paid for."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._hashes: dict[str, str | None] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cache, name)

    def clip_hash(self, key: str) -> str | None:
        """The cache's answer for ``key``, asked once."""
        if key not in self._hashes:
            self._hashes[key] = self.cache.clip_hash(key)
        return self._hashes[key]


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
        reroll_drifted: int = 0,
        order: Order = "longest-path",
    ) -> None:
        if concurrency < 1:
            raise StoryboardError("concurrency must be at least 1")
        self.order = check_order(order)  # who gets a freed backend slot (runner/_slots.py)
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
        self.holds: dict[str, float] = {}  # `fit: extend`: seconds each shot's last frame is held
        self.audio: Any = None  # runner._audio.AudioMade: the voiced lines and generated music
        self.texts: Any = None  # runner._text.TextsMade: the text nodes' answers
        if (not isinstance(reroll_drifted, int) or isinstance(reroll_drifted, bool)
                or not 0 <= reroll_drifted <= TAKES_MAX):
            raise StoryboardError(f"reroll_drifted must be a whole number from 0 to {TAKES_MAX}, "
                                  f"got {reroll_drifted!r}")
        self.reroll_drifted = reroll_drifted  # --reroll-drifted N: see runner/_reroll.py
        self.loudness: dict[str, Any] | None = None  # media.Loudness of the finished film, as a dict

    # ----------------------------------------------------------------- events

    def emit(self, event: Event) -> None:
        """Pass an event to the listener, if there is one."""
        if self.on_event is not None:
            self.on_event(event)

    # ----------------------------------------------------------------- checks

    def plan(self, cache: Cache | None = None) -> Plan:
        """The plan against the cache: what is cached, what is pending, the cost."""
        if cache is None:
            cache = open_cache(self.board.path, self.cache_dir, create=False, verify=verify_clip)
        from storyboard.runner._audio import speaker_for

        # with --reroll-drifted, rerolled shots' descendants chain from the kept take
        return self.board.plan(backend=self.backend.name, cache=plan_view(cache, self.board, self.reroll_drifted),
                               variant=self.variant, force=self.force, price=self.backend.price,
                               speaker=speaker_for(self.backend))

    def check_budget(self, plan: Plan) -> None:
        """Raise BudgetError (nothing paid) when the pending shots cost more than --budget."""
        if self.budget is None or not getattr(self.backend, "paid", True):
            return
        pending = plan.pending
        if not pending and not plan.pending_audio:
            return
        cost = plan.cost
        if cost is None:
            unknown = [s.id for s in pending if s.cost is None] + [a.id for a in plan.pending_audio if a.cost is None]
            raise BudgetError(
                f"over budget: the price of {len(unknown)} {'node' if plan.pending_audio else 'shot'}(s) "
                f"({', '.join(unknown[:5])}) is unknown for "
                f"{self.backend.name}, and unknown prices count as over any --budget; nothing was paid"
            )
        if cost > self.budget:
            audio = plan.pending_audio
            also = f" and {len(audio)} narration line(s) or music track(s)" if audio else ""
            raise BudgetError(
                f"over budget: {len(pending)} shot(s), {plan.seconds_to_generate} s to generate{also}, would cost "
                f"{usd(cost)}; --budget is {usd(self.budget)}. Nothing was paid."
            )

    def take_notes(self) -> list[str]:
        """Dropped picks of the lock file, and shots with several takes but no pick."""
        lock = self.board.lock
        notes = list(lock.dropped) if lock is not None else []
        judged = set(auto_shots(self.board.spec))  # `pick: auto`: the judge picks (runner/_judge.py)
        for shot in self.board.shots:
            if shot.takes > 1 and (lock is None or shot.id not in lock.picks) and shot.id not in judged:
                notes.append(f"shot '{shot.id}': {shot.takes} takes, none picked; take 1 is used "
                             f"(storyboard pick {self.board.path.name} {shot.id} N)")
        return notes

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

    async def checked_plan(self, cache: Cache) -> Plan:
        """The plan, checked against the budget offline, then against the app versions
        served now (the live checks), before anything is paid."""
        seen: Any = SeenIndex(cache)  # the plans below read each key's index once
        plan = self.plan(seen)
        for note in self.take_notes():
            self.emit(Warning_(message=note))
        for key, why in cache.dropped:
            self.emit(Warning_(message=f"dropped cache entry {key[:10]}: {why}; it will be regenerated"))
        self.check_budget(plan)  # offline first: an over-budget render costs not even a request
        ready = getattr(self.backend, "check_ready", None)
        if (plan.pending or plan.pending_audio) and callable(ready):
            ready()
        if plan.pending and getattr(self.backend, "paid", True):
            # before the first paid call: every shot against the app versions served now
            self.board = await live_check(self.board, self.backend, cache, self.emit)
            plan = self.plan(seen)
            self.check_budget(plan)
        if plan.pending_audio and getattr(self.backend, "paid", True):
            from storyboard.runner._audio import live_check_audio

            self.board = await live_check_audio(self.board, plan, self.backend, cache, self.emit)
            plan = self.plan(seen)  # keyed by the versions served now
            self.check_budget(plan)
        return plan

    async def run(self) -> RenderResult:
        """Generate what is missing, then assemble the film (see the class docstring)."""
        started = time.monotonic()
        self.check_media()
        if self.dry_run:
            plan = self.plan()
            self.check_budget(plan)
            return RenderResult(plan=plan)
        cache = open_cache(self.board.path, self.cache_dir, verify=verify_clip)
        cache.sweep_tmp()
        with cache.lock(self.output):
            from storyboard.runner._text import make_texts

            # text nodes first: every prompt, line and key reads their answers
            self.board, self.texts = await make_texts(self.board, self.backend, cache, self.emit, self.budget)
            if self.budget is not None and getattr(self.backend, "paid", True):
                self.budget -= self.texts.cost
            self.board = with_remembered(self.board, cache)  # keys hold the app versions last read live
            from storyboard.runner._audio import with_remembered_audio

            self.board = with_remembered_audio(self.board, cache)
            plan = await self.checked_plan(cache)
            used = tuple(s.id for s in plan.shots if s.status != "unused")
            self.emit(RenderStarted(shots=used, to_generate=len(plan.pending), estimate=plan.cost,
                                    levels=self.board.graph.levels(used)))
            result = RenderResult(plan=plan)
            scheduler = ShotScheduler(board=self.board, backend=self.backend, variant=self.variant, cache=cache,
                                      force=self.force, concurrency=self.concurrency, emit=self.emit,
                                      results=result.shots, order=self.order)
            if self.reroll_drifted:
                allowance = (None if self.budget is None
                             else self.budget - plan.cost if plan.cost is not None else Decimal(0))
                scheduler.after_shot = Rerolls(scheduler, self.reroll_drifted, allowance).after
            judge = Judge(scheduler, self.reroll_drifted, None if self.budget is None else
                          self.budget - plan.cost if plan.cost is not None else Decimal(0))
            if judge.auto:  # `pick: auto`: the judge picks the take before rerolls and descendants see it
                scheduler.after_shot = then(judge.after, scheduler.after_shot)
            try:
                from storyboard.runner._audio import make_audio

                # lines and music first (they need no shot): a line too long for its shot stops here
                self.audio = await make_audio(self.board, plan, self.backend, cache, self.emit, self.concurrency)
                if getattr(self.backend, "paid", True):  # each paid shot checks --budget against the spend
                    scheduler.spend = Spend(self.budget, spent=self.audio.cost if self.audio is not None else Decimal(0))
                # text nodes in the report and the cost (--budget was lowered by theirs already)
                self.audio.results.update(self.texts.results)
                await scheduler.run(plan)
                await scheduler.cut_handoffs()
                await scheduler.score_seams()
            finally:
                with contextlib.suppress(Exception):
                    await self.backend.aclose()
            result.cost = sum((r.cost or Decimal(0) for r in result.shots.values() if r.status == "generated"),
                              Decimal(0)) + (self.audio.cost if self.audio is not None else Decimal(0))
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
            await self._assemble(result, cache)
            result.seconds = time.monotonic() - started
            self._report(result)
            self.emit(FilmDone(film=result.film, duration=result.duration or 0.0, cost=result.cost,
                               seconds=round(result.seconds, 3), method=result.method or ""))
            return result

    # ----------------------------------------------------------------- assembly

    def cut_layout(self, result: RenderResult) -> list[tuple[Path, str, float, bool, float | None]]:
        """The film in cut order: (clip, transition into it, its length, trim the seam frame,
        the time of its handoff frame where the cut ends, else None)."""
        spec = self.board.spec
        out = []
        for j, sid in enumerate(spec.cut):
            shot = spec.shot(sid)
            clip = result.shots[sid].clip
            assert clip is not None
            chained = j > 0 and chained_to(shot.image, spec.cut[j - 1]) and shot.transition == "cut"
            handoff = result.shots[sid].facts.get("handoff")
            end_at = float(handoff["time"]) if isinstance(handoff, dict) else None
            out.append((clip, shot.transition, shot.transition_duration, chained and shot.seam == "trim", end_at))
        return out

    def cut_clips(self, result: RenderResult) -> list[Any]:
        """The film's clips as media's CutClip, in cut order."""
        from storyboard.media import CutClip

        holds = self.holds
        return [CutClip(path=p, transition=t, transition_duration=d, trim_first_frame=trim,
                        hold=holds.get(sid, 0.0), end_at=end)
                for (p, t, d, trim, end), sid in zip(self.cut_layout(result), self.board.spec.cut, strict=True)]

    def film_key(self, result: RenderResult) -> str:
        """What the film is made of: clips (content hashes), transitions, seams, audio, loudness."""
        clips = [(p.stem, t, d, trim, *(() if end is None else (end,))) for p, t, d, trim, end in
                 self.cut_layout(result)]
        audio = [(file_sha256(p), t.volume, t.duck, t.loop, *(() if t.fade_out is None else (t.fade_out,)))
                 for p, t in self.board.spec.audio]
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

    async def _assemble(self, result: RenderResult, cache: Cache | None = None) -> None:
        spec = self.board.spec
        narration = None
        if cache is not None:
            from storyboard.runner._audio import speaker_for, voiced_lines
            from storyboard.runner._narration import prepare_narration

            made = voiced_lines(self.audio) if self.audio is not None else None
            narration = await prepare_narration(self.board, cache, self.cut_clips(result), self.emit, made,
                                                speaker_for(self.backend) or voice_of(spec).app)
            self.holds = narration.holds if narration is not None else {}
            for sid, held in self.holds.items():  # the OTIO export and the report show the hold
                result.shots[sid].facts["hold"] = held
        key = self.film_key(result)
        if narration is not None:
            key = hashlib.sha256(f"{key}:{narration.key}".encode()).hexdigest()
        if self.board.overlays:
            text = json.dumps([dataclasses.astuple(o) for o in self.board.overlays.values()])
            key = hashlib.sha256(f"{key}:{text}".encode()).hexdigest()
        if self.board.music and self.audio is not None:
            from storyboard.runner._audio import music_key

            key = hashlib.sha256(f"{key}:{music_key(self.board, self.audio)}".encode()).hexdigest()
        result.film_key = key
        previous = self._unchanged_film(key)
        if previous is not None:  # nothing changed: keep the film as it is
            result.film, result.duration, result.method = self.output, previous.get("duration"), "unchanged"
            self.loudness = previous.get("loudness")
        else:
            self.loudness = await make_film(self, result, narration, cache)
        if narration is not None:
            from storyboard.media import write_captions

            result.captions = write_captions([(c.start, c.end, c.text) for c in narration.cues], self.output)
            result.narration = narration.placed
        if self.otio is not None:
            from storyboard.otio import write_otio
            from storyboard.runner._audio import music_files

            result.otio = write_otio(self.board, result, self.otio, music=music_files(self.board, self.audio))

    # ----------------------------------------------------------------- report

    def report_path(self) -> Path:
        """Where the render report goes: beside the film."""
        return self.output.with_name(self.output.name + ".render.json")

    def _report(self, result: RenderResult) -> None:
        if not self.write_report:
            return
        from storyboard.runner._reportfile import report_data

        path = self.report_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, report_data(self, result))
        result.report = path


def render(board: Board | str | Path, backend: str | Backend | None = None, **options: Any) -> RenderResult:
    """Render a storyboard synchronously (see :class:`Pipeline` for the options)."""
    if not isinstance(board, Board):
        from storyboard.board import load

        board = load(board, vars=options.pop("vars", None))
    return asyncio.run(Pipeline(board, backend=backend, **options).run())
