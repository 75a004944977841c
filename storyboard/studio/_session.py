"""One open storyboard in the studio: the board as loaded, its plan against the cache,
each node's card (status, cost, app, seam, takes), and what the page may change: edits,
picks, renders. Every change goes through the parts the CLI uses (``storyboard.load``,
``Pipeline``, ``storyboard.takes``), so the studio and the CLI never disagree."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard.board import Board, load
from storyboard.errors import SpecError, StoryboardError
from storyboard.facts import usd
from storyboard.plan import Plan, PlannedShot
from storyboard.reportdata import read_render_report, report_json_path
from storyboard.runner import Pipeline, verify_clip
from storyboard.studio._edit import EditError, check_text, edit_text, node_line, replace_file
from storyboard.studio._safety import redact
from storyboard.studio._worker import Hub, Message, Worker
from storyboard.takes import lock_path, pick, write_lock
from storyboard.titles import is_title

__all__ = ["PREVIEW_BACKEND", "Session", "StudioOptions"]

PREVIEW_BACKEND = "animatic"  # what an edit's preview is rendered on: offline, free
LIVE = {"shot_started": "generating", "shot_progress": "generating", "shot_cached": "cached",
        "shot_done": "cached", "shot_failed": "failed", "shot_skipped": "failed"}


@dataclass(frozen=True)
class StudioOptions:
    """What ``storyboard studio`` was started with."""

    backend: str | None = None  # default: the file's
    budget: Decimal | None = None
    cache_dir: str | None = None
    concurrency: int = 4


def _located(e: StoryboardError) -> str:
    if isinstance(e, SpecError):
        return "\n".join(str(p) for p in e.problems)
    return str(e)


@dataclass
class Session:
    """The studio's state for one storyboard file."""

    path: Path
    options: StudioOptions = field(default_factory=StudioOptions)
    vars: dict[str, str] | None = None  # a matrix row's values
    output: Path | None = None  # a matrix row's film (else the file's output)
    board: Board | None = None
    error: str | None = None  # the file on disk is invalid: its located problems
    plan: Plan | None = None
    live: dict[str, str] = field(default_factory=dict)  # shot → status from the running render
    marked: dict[str, str] = field(default_factory=dict)  # shot → why it will be regenerated
    hub: Hub = field(default_factory=Hub)
    worker: Worker | None = None
    seen: tuple[int, int] = (0, 0)  # mtime_ns of the file and its lock file, as last read
    preview_pending: bool = False

    # ------------------------------------------------------------------ loading

    def reload(self) -> None:
        """Read the file (and its lock) again; an invalid file keeps its error for the page."""
        self.seen = self._stamps()
        try:
            self.board = load(self.path, vars=self.vars)
            self.error = None
        except StoryboardError as e:
            self.board, self.error = None, _located(e)
        self.replan()

    def _stamps(self) -> tuple[int, int]:
        def stamp(p: Path) -> int:
            try:
                return p.stat().st_mtime_ns
            except OSError:
                return 0
        return stamp(self.path), stamp(lock_path(self.path))

    def changed_on_disk(self) -> bool:
        """Whether the file or its lock changed since the studio last read or wrote them."""
        return self._stamps() != self.seen

    @property
    def backend(self) -> str:
        """The backend renders run on: --backend, else the file's."""
        if self.options.backend:
            return self.options.backend
        return self.board.spec.model.backend if self.board is not None else PREVIEW_BACKEND

    def pipeline(self, *, preview: bool = False) -> Pipeline:
        """The CLI's pipeline for this board (a preview: on the animatic)."""
        assert self.board is not None
        backend = PREVIEW_BACKEND if preview else self.backend
        return Pipeline(self.board, backend=backend, output=self.film_path(preview=preview),
                        cache_dir=self.options.cache_dir, concurrency=self.options.concurrency,
                        budget=None if preview else self.options.budget,
                        on_event=self.worker.event if self.worker else None)

    def replan(self) -> None:
        """The plan against the cache, as ``storyboard plan`` shows it."""
        self.plan = None
        if self.board is not None:
            try:
                self.plan = self.pipeline().plan()
            except StoryboardError as e:
                self.error = _located(e)

    def film_path(self, *, preview: bool = False) -> Path:
        """The film (a preview of a board on a paid backend goes beside it, ``.preview.mp4``)."""
        assert self.board is not None
        out = self.output or self.board.output
        if preview and self.backend != PREVIEW_BACKEND:
            return out.with_name(f"{out.stem}.preview{out.suffix}")
        return out

    def shown_film(self) -> Path | None:
        """The film the page plays: the newest of the film and its preview."""
        if self.board is None:
            return None
        films = [p for p in (self.film_path(), self.film_path(preview=True)) if p.is_file()]
        return max(films, key=lambda p: p.stat().st_mtime_ns) if films else None

    def cache(self) -> Any:
        """The board's cache (read-only view, as the plan uses)."""
        from storyboard.cache import open_cache

        return open_cache(self.path, self.options.cache_dir, create=False, verify=verify_clip)

    def report(self) -> dict[str, Any]:
        """The last render's report (seam scores, judges' reasons), or nothing."""
        if self.board is None:
            return {}
        try:
            shots = read_render_report(report_json_path(self.film_path())).shots
            return {s.id: s.model_dump(mode="json") for s in shots}
        except StoryboardError:
            return {}

    # ------------------------------------------------------------------ cards

    def status(self, s: PlannedShot) -> str:
        """A card's status: live during a render, else the plan's."""
        if s.id in self.live:
            return self.live[s.id]
        return {"cached": "cached", "unused": "unused"}.get(s.status, "to generate")

    def cards(self) -> list[dict[str, Any]]:
        """Every node in graph order, with what its card shows."""
        if self.board is None or self.plan is None:
            return []
        board, report = self.board, self.report()
        nodes: list[Any] = [*board.spec.model.stills, *board.spec.model.shots]
        models = {m.id: m for m in nodes}
        out = []
        for sid in board.graph.order():
            s, model, rep = self.plan[sid], models[sid], report.get(sid, {})
            seam = rep.get("seam") if isinstance(rep.get("seam"), dict) else None
            out.append({
                "id": sid, "kind": "still" if s.is_still else "title" if is_title(board.spec, sid) else "shot",
                "parents": board.graph.parents(sid), "status": self.status(s), "cost": usd(s.cost),
                "price": usd(s.price), "app": s.request.app, "duration": s.request.duration,
                "prompt": model.prompt or "", "say": getattr(model, "say", None) or "",
                "line": board.lines[sid].text if sid in board.lines else "",
                "overlay": board.overlays[sid].text if sid in board.overlays else "",
                "seam": seam, "judge": (seam or {}).get("reason") or rep.get("judge_reason"),
                "marked": self.marked.get(sid), "in_cut": s.in_cut, "takes": self._takes(s, rep),
                "rendered": board.prompts.get(sid, ""),
            })
        return out

    def _takes(self, s: PlannedShot, rep: dict[str, Any]) -> list[dict[str, Any]]:
        if not s.takes:
            return []
        reported = {t.get("take"): t for t in rep.get("takes") or []}
        rows = [(s.take, s.status), *((t.take, t.status) for t in s.takes)]
        return [{"take": n, "picked": n == s.take, "cached": status == "cached",
                 "seam": (reported.get(n) or {}).get("seam") or (rep.get("seam") if n == s.take else None),
                 "judge": (reported.get(n) or {}).get("reason")} for n, status in sorted(rows)]

    def clip(self, shot: str, take: int | None = None) -> Path | None:
        """The cached clip (or still) of a shot's picked take, or of take ``take``."""
        if self.plan is None or shot not in self.plan.by_id:
            return None
        s = self.plan[shot]
        key = s.key if take in (None, s.take) else next((t.key for t in s.takes if t.take == take), None)
        entry = self.cache().lookup(key) if key else None
        return Path(entry.path) if entry is not None else None

    async def frame(self, shot: str, which: str, take: int | None = None) -> Path | None:
        """The first or last frame of a shot's clip (a still: the image), kept in the cache."""
        clip = self.clip(shot, take)
        if clip is None or clip.suffix.lower() in (".png", ".jpg", ".jpeg"):
            return clip
        from storyboard.media import extract_frame

        cache = self.cache()
        dest: Path = cache.frame_path(clip.stem, which)
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.png")
            await extract_frame(clip, which, tmp)
            cache.publish(tmp, dest)
        return dest

    def audio(self) -> list[dict[str, Any]]:
        """The narration lines and music tracks: nodes made before the shots (plan.audio)."""
        if self.plan is None:
            return []
        return [{"id": a.id, "kind": a.kind, "app": a.app, "text": a.text, "cost": usd(a.cost),
                 "status": "cached" if a.status == "cached" else "to generate"} for a in self.plan.audio]

    def totals(self) -> dict[str, Any]:
        """The plan's totals for the page's header."""
        p = self.plan
        if p is None:
            return {}
        return {"cost": usd(p.cost), "to_generate": len(p.pending) + len(p.pending_takes),
                "full": usd(p.full_cost), "backend": p.backend, "budget": usd(self.options.budget)
                if self.options.budget is not None else None}

    # ------------------------------------------------------------------ changes

    def _write(self, text: str) -> None:
        check_text(text, self.path, lambda p: load(p, vars=self.vars))  # raises EditError; nothing written
        replace_file(self.path, text)
        self.reload()

    def edit(self, shot: str | None, fields: dict[str, str], vars: dict[str, str]) -> list[str]:
        """Apply an edit (round-trip), check it, write it; the shots whose request changed."""
        before = {s.id: s.key or s.recipe for s in self.plan.shots} if self.plan else {}
        text = self.path.read_text(encoding="utf-8")
        new = edit_text(text, self.path, shot=shot, fields=fields, vars=vars)
        if new == text:
            return []
        self._write(new)
        after = {s.id: s.key or s.recipe for s in self.plan.shots} if self.plan else {}
        return [sid for sid, k in after.items() if before.get(sid) != k]

    def replace_source(self, text: str) -> None:
        """Replace the whole file (the page's source editor), checked first."""
        self._write(text)

    def pick(self, shot: str, take: int) -> list[str]:
        """Pick a take (the lock file ``storyboard pick`` writes); the descendants it marks."""
        if self.board is None or self.board.lock is None:
            raise EditError(self.error or f"{self.path}: cannot pick while the storyboard is invalid")
        takes = {s.id: s.takes for s in self.board.shots}
        try:
            lock = pick(self.board.lock, takes, shot, take)
        except StoryboardError as e:
            where = node_line(self.path.read_text(encoding="utf-8"), self.path, shot) if shot in takes \
                else str(self.path)
            raise EditError(f"{where}: {e}") from None
        write_lock(lock)
        self.reload()
        assert self.board is not None and self.plan is not None
        marked = sorted(d for d in self.board.graph.descendants(shot) if self.plan[d].to_generate)
        self.marked = {d: f"regenerate: chained from take {take} of {shot}" for d in marked}
        if self.plan[shot].to_generate:
            self.marked[shot] = f"take {take} picked: to generate"
        return marked

    # ------------------------------------------------------------------ renders

    def confirm_needed(self, confirm: str | None) -> Message | None:
        """For a paid render, the planned cost to confirm (None: go ahead)."""
        pipe = self.pipeline()
        if not getattr(pipe.backend, "paid", True):
            return None
        p = pipe.plan()
        cost = p.cost
        if (cost is None or cost > 0) and confirm != str(cost):
            return {"confirm": str(cost), "message": f"this render is paid: planned cost {usd(cost)} "
                    f"on {pipe.backend.name}" + (f" (--budget {usd(self.options.budget)})"
                                                  if self.options.budget is not None else "")}
        return None

    def start(self, kind: str) -> None:
        """Start a render (or an edit's preview) in the worker."""
        assert self.worker is not None
        if self.board is None:
            raise EditError(self.error or "the storyboard is invalid")
        self.live, self.marked = {}, {} if kind == "render" else self.marked
        self.worker.start(kind, lambda: self.pipeline(preview=kind == "preview"))
        self.hub.publish({"event": "render_begun", "kind": kind})

    def on_event(self, data: Message) -> None:
        """A runner event (on the server's loop): update the live status, tell the pages."""
        shot, kind = data.get("shot"), data.get("event", "")
        if isinstance(shot, str) and kind in LIVE and "#" not in shot:
            self.live[shot] = LIVE[kind]
            data = {**data, "status": LIVE[kind]}
        self.hub.publish(data)

    def on_end(self, kind: str, outcome: Message) -> None:
        """A render ended: re-plan, tell the pages; run a preview that waited."""
        self.replan()
        failed = {k: v for k, v in self.live.items() if v == "failed"}
        self.live = failed
        film = self.shown_film()
        if outcome.get("error"):
            outcome = {**outcome, "error": redact(str(outcome["error"]))}
        self.hub.publish({"event": "render_end", "kind": kind, **outcome,
                          "film_version": film.stat().st_mtime_ns if film else None})
        if self.preview_pending and self.board is not None:
            self.preview_pending = False
            self.start("preview")

    async def watch(self, every: float = 0.3) -> None:
        """Reload the file when it changes on disk (another editor), with a notice."""
        while True:
            await asyncio.sleep(every)
            if self.changed_on_disk() and (self.worker is None or not self.worker.busy):
                self.reload()
                self.hub.publish({"event": "board", "notice": f"{self.path.name} changed on disk; reloaded",
                                  "error": self.error})
