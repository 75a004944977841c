"""The scheduler's frame and image steps: a finished clip's frames (last, first, by time,
the handoff frame), extracted once into the cache; each shot's start/end images prepared
to the model's rules once; and the early hand-off, where a chained child's start frame is
prepared and uploaded while its parent's clip is still being stored."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.backends.base import Backend
from storyboard.board import Board
from storyboard.cache import Cache, Entry, known_sha256
from storyboard.errors import StoryboardError
from storyboard.events import Event, ShotProgress, ShotResult, Warning_
from storyboard.plan import PlannedShot
from storyboard.request import FrameRef
from storyboard.spec import ImageSource


@dataclass
class RenderState:
    """What the shots of one render share: each shot's future clip, and the frame and
    image-preparation tasks (made once however many shots need them)."""

    futures: dict[str, asyncio.Future[Entry]] = field(default_factory=dict)
    frames: dict[tuple[str, str], asyncio.Task[Path]] = field(default_factory=dict)
    prepared: dict[tuple[str, str], asyncio.Task[Path]] = field(default_factory=dict)
    handoffs: dict[tuple[str, str], asyncio.Task[tuple[Path, float]]] = field(default_factory=dict)
    staged: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)  # uploads started early

    def side_tasks(self) -> list[asyncio.Task[Any]]:
        """The frame, image and staging tasks (cancelled with the render)."""
        return [*self.frames.values(), *self.prepared.values(), *self.handoffs.values(), *self.staged.values()]


class ImageSteps:
    """Frames and images for :class:`~storyboard.runner._scheduler.ShotScheduler` (its base)."""

    board: Board
    backend: Backend
    cache: Cache
    emit: Callable[[Event], None]
    results: dict[str, ShotResult]
    state: RenderState
    planned: dict[str, str]

    def hand_off_early(self, ps: PlannedShot, key: str, clip: Path) -> None:
        """Publish the last frame the backend decoded while downloading (``<clip>.last.png``,
        beside ``<clip>.sha256``) and start the children's start images from it now, before
        the clip is stored. Only free work starts early: preparing, and the backend's upload
        (``stage``); no child is submitted before its parent's clip is stored."""
        last = clip.with_name(clip.name + ".last.png")
        digest = known_sha256(clip)
        if digest is None or not last.exists():
            return
        dest = self.cache.frame_path(digest, "last")
        try:
            if not dest.exists():
                self.cache.publish(last, dest)
        except StoryboardError:  # a frame is never a reason not to store a paid clip
            return
        if ps.id == ps.request.shot_id:
            self.prefetch(ps.id, Entry(key, digest, clip, {}), early=True)

    # ----------------------------------------------------------------- frames and images

    async def frame(self, entry: Entry, selector: str | float) -> Path:
        """A frame of a cached clip, extracted once into the cache."""
        from storyboard.media import extract_frame

        dest = self.cache.frame_path(entry.clip, selector)
        if dest.exists():
            return dest
        # Unique per extraction: films rendered at once in one process may extract the
        # same frame together, and each publishes its own copy (the same bytes).
        tmp = dest.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{dest.name}")
        await extract_frame(entry.path, selector, tmp)
        return self.cache.publish(tmp, dest)

    async def handoff(self, shot_id: str, entry: Entry) -> tuple[Path, float]:
        """The handoff frame of a clip under its shot's rule, and its time; found once
        per clip and rule (kept in the cache with the time beside it), and recorded in
        the shot's result for the report and the cut."""
        rule = self.board.spec.shot(shot_id).handoff_rule
        assert rule is not None
        k = (entry.clip, f"handoff-{rule}")
        if k not in self.state.handoffs:
            self.state.handoffs[k] = asyncio.ensure_future(self._find_handoff(entry, rule))
        path, seconds = await self.state.handoffs[k]
        self.results[shot_id].facts["handoff"] = {"rule": rule, "time": seconds}
        return path, seconds

    async def _find_handoff(self, entry: Entry, rule: str) -> tuple[Path, float]:
        from storyboard.media import handoff_frame

        dest = self.cache.frame_path(entry.clip, f"handoff-{rule.replace(':', '-')}")
        note = dest.with_suffix(".json")
        if dest.exists() and note.exists():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                return dest, float(json.loads(note.read_text())["time"])
        tmp = dest.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{dest.name}")
        found = await handoff_frame(entry.path, tmp, float(rule.split(":", 1)[1]))
        tmp_note = tmp.with_suffix(".json")
        tmp_note.write_text(json.dumps({"time": found.time, "sharpness": found.sharpness}))
        self.cache.publish(tmp_note, note)
        return self.cache.publish(tmp, dest), found.time

    async def prepared_image(self, src_path: Path, token: str, aspect: str, label: str | None) -> Path:
        """An image prepared to the model's rules, made once into the cache."""
        from storyboard.media import prepare_image

        digest = hashlib.sha256(f"{token}|{aspect}|v1".encode()).hexdigest()
        for suffix in (".png", ".jpg"):
            done = self.cache.prepared_path(digest, suffix)
            if done.exists():
                return done
        tmp_dir = self.cache.tmp_dir("prep-")
        try:
            # label None: a frame or still this render made itself (checked when it was made)
            prepared = await asyncio.to_thread(prepare_image, src_path, aspect, tmp_dir / "image.png",
                                               trusted=label is None)
            if label is not None:  # frames of preview clips are small on purpose: no warnings
                for note in prepared.notes:
                    self.emit(Warning_(message=f"{label}: {note}"))
            return self.cache.publish(prepared.path, self.cache.prepared_path(digest, prepared.path.suffix))
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def prefetch(self, shot_id: str, entry: Entry, *, early: bool = False) -> None:
        """Start extracting and preparing the frames of a finished clip that the shots to
        be generated from it will need: ready by the time their other parents are, and
        off the chain's critical path when they have none (the tasks :meth:`image_for` uses).
        ``early``: the clip is not stored yet; only its published last frame is used."""
        if self.board.spec.shot(shot_id).is_still:
            return
        for child in self.board.graph.children(shot_id):
            if self.planned.get(child) in (None, "cached", "unused"):
                continue
            shot = self.board.spec.shot(child)
            for src in (shot.image, shot.end_image, *shot.references):
                if not isinstance(src, FrameRef) or src.shot != shot_id:
                    continue
                rule = self.board.spec.shot(shot_id).handoff_rule if src.selector == "last" else None
                if early and (src.selector != "last" or rule is not None):
                    continue  # these read the stored clip: after it is stored
                raw: asyncio.Task[Any]
                if rule is not None:
                    k, token = (entry.clip, f"handoff-{rule}"), f"{entry.clip}-handoff-{rule}"
                    if k not in self.state.handoffs:
                        self.state.handoffs[k] = asyncio.ensure_future(self._find_handoff(entry, rule))
                    raw = self.state.handoffs[k]
                elif early:  # the frame the backend decoded, published; the clip is not stored yet
                    token = f"{entry.clip}-last"
                    raw = asyncio.ensure_future(_ready(self.cache.frame_path(entry.clip, "last")))
                else:
                    k, token = (entry.clip, str(src.selector)), f"{entry.clip}-{src.selector}"
                    if k not in self.state.frames:
                        self.state.frames[k] = asyncio.ensure_future(self.frame(entry, src.selector))
                    raw = self.state.frames[k]
                pk = (token, shot.aspect_ratio)
                if pk not in self.state.prepared:
                    task = asyncio.ensure_future(self._prepared_from(raw, token, shot.aspect_ratio))
                    task.add_done_callback(retrieved)  # a child that never runs never asks
                    self.state.prepared[pk] = task
                    self.state.staged[pk] = asyncio.ensure_future(self._stage(task))

    async def _prepared_from(self, raw: asyncio.Task[Any], token: str, aspect: str) -> Path:
        found = await raw
        return await self.prepared_image(found[0] if isinstance(found, tuple) else found, token, aspect, None)

    async def _stage(self, prepared: asyncio.Task[Path]) -> None:
        """Upload a child's prepared image ahead of its submission, when the backend can
        (``stage``: free, deduplicated by content; a failure is the child's to report)."""
        stage = getattr(self.backend, "stage", None)
        if stage is None:
            return
        with contextlib.suppress(Exception):
            await stage(await prepared)

    async def image_for(self, src: ImageSource, aspect: str, entries: Mapping[str, Entry], shot_id: str) -> Path:
        """The prepared image for a start/end frame: a file, or a frame of a parent's clip."""
        if isinstance(src, FrameRef) and self.board.spec.shot(src.shot).is_still:
            entry = entries[src.shot]  # a still is its image: nothing to extract
            raw, token, label = entry.path, f"{entry.clip}-still", None
        elif isinstance(src, FrameRef):
            self.emit(ShotProgress(shot=shot_id, status=f"extracting frame {src}"))
            entry = entries[src.shot]
            rule = self.board.spec.shot(src.shot).handoff_rule if src.selector == "last" else None
            if rule is not None:
                raw, _ = await self.handoff(src.shot, entry)
                token, label = f"{entry.clip}-handoff-{rule}", None
            else:
                k = (entry.clip, str(src.selector))
                if k not in self.state.frames:
                    self.state.frames[k] = asyncio.ensure_future(self.frame(entry, src.selector))
                raw = await self.state.frames[k]
                token, label = f"{entry.clip}-{src.selector}", None
        else:
            raw, token, label = src.path, f"{src.rel}|{src.sha256}", src.rel
        pk = (token, aspect)
        if pk not in self.state.prepared:
            self.state.prepared[pk] = asyncio.ensure_future(self.prepared_image(raw, token, aspect, label))
        return await self.state.prepared[pk]


def retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _ready(path: Path) -> Path:
    return path
