"""The audio step, before any shot is paid: voice every `say:` line and make every generated
music track, in parallel, each cached by its key (``plan.audio``).

Offline (a backend that does not voice lines with the app: the animatic) a line is spoken
by espeak-ng or a quiet placeholder, and music is a soft placeholder chord, free. With a
paid backend (inference.sh) each node is a request to its app through the backend's own
submit, journal, wait and download path (``kind="audio"``), claimed like a paid shot so
that two renders never pay for it twice. Once the lines are voiced their real lengths are
checked against the shots (:func:`storyboard.narration.early_fit_problems`), so a line
longer than its shot stops the render before any video is paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard import apps
from storyboard.backends.base import Backend
from storyboard.board import Board
from storyboard.cache import Cache, atomic_write_json
from storyboard.errors import (
    AuthError,
    BackendError,
    CacheError,
    NoOutputError,
    Problem,
    SpecError,
    StoryboardError,
)
from storyboard.events import AppResolved, Event, ShotDone, ShotResult, ShotStarted
from storyboard.music import planned_seconds
from storyboard.narration import early_fit_problems, estimate_seconds, voice_of
from storyboard.plan import Plan, PlannedAudio
from storyboard.request import billed_cost
from storyboard.runner._context import JournalContext, holding, warn_if_uncertain
from storyboard.runner._preflight import remembered_path


@dataclass
class AudioMade:
    """The audio nodes of a render: each file, and what happened to each (for the report)."""

    files: dict[str, Path] = field(default_factory=dict)  # node id ("say:a", "audio[0]") -> file
    keys: dict[str, str] = field(default_factory=dict)
    results: dict[str, ShotResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # shot id -> its voiced line's length

    @property
    def cost(self) -> Decimal:
        """What was paid for the audio made this render."""
        return sum((r.cost or Decimal(0) for r in self.results.values() if r.status == "generated"), Decimal(0))

    def report(self) -> list[dict[str, Any]]:
        """One entry per node for the render report."""
        return [{"id": r.id, "key": r.key, "status": r.status, "file": str(r.clip) if r.clip else None,
                 "task_id": r.task_id, "cost": None if r.cost is None else str(r.cost),
                 "actual_cost": r.facts.get("billed_cost")}
                for r in self.results.values()]


def speaker_for(backend: object) -> str | None:
    """Who voices lines offline for this backend ("espeak-ng", "placeholder"), or None when
    the backend voices them with the `voice:` app (a paid backend)."""
    speaker = getattr(backend, "speaker", None)
    if isinstance(speaker, str):
        return speaker
    if getattr(backend, "paid", True):
        return None
    from storyboard.media import espeak_path

    return "espeak-ng" if espeak_path() else "placeholder"


def audio_apps(board: Board) -> list[str]:
    """The app references the audio nodes use, as written (the voice app, then music apps)."""
    refs = [voice_of(board.spec).app] if board.lines else []
    refs += [t.app for t in board.music]
    refs += [n.spec.app for n in board.texts]  # text nodes' versions are remembered the same way
    return list(dict.fromkeys(refs))


def with_remembered_audio(board: Board, cache: Cache) -> Board:
    """The board with the voice and music app versions last read live (its audio keys hold them)."""
    known: dict[str, str] = {}
    for ref in audio_apps(board):
        if "@" in ref:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            known[ref] = str(json.loads(remembered_path(cache, ref).read_text())["version_id"])
    return replace(board, audio_versions=known) if known else board


async def live_check_audio(board: Board, plan: Plan, backend: object, cache: Cache,
                           emit: Callable[[Event], None]) -> Board:
    """Before the first paid call: read the voice and music apps live and check what each
    pending node sends (an unknown voice, text over a limit): one located line per problem.
    Returns the board keyed by the versions read (unpinned apps)."""
    get_app = getattr(backend, "get_app", None)
    pending = [a for a in plan.pending_audio if a.kind != "judge"]  # the judge is checked by its step
    if not callable(get_app) or not pending:
        return board
    spec = board.spec
    versions = dict(board.audio_versions)
    problems: list[Problem] = []
    for ref_text in dict.fromkeys(a.request.app for a in pending):
        ref = apps.parse_app_ref(ref_text)
        try:
            payload = await get_app(ref_text)
        except AuthError:
            raise
        except BackendError as e:
            raise BackendError(f"could not check {ref_text} against inference.sh before paying ({e}); "
                               "nothing was paid", status=e.status, retryable=e.retryable) from None
        version = apps.app_from_api(payload, ref.name)
        if ref.version is None:
            versions[ref_text] = version.version_id
        with contextlib.suppress(CacheError):
            atomic_write_json(remembered_path(cache, ref_text), version.to_json())
        emit(AppResolved(app=ref.name, version=version.version_id, pinned=ref.version is not None))
        prof = apps.profile(ref.name)
        for node in (a for a in pending if a.request.app == ref_text):
            for p in apps.check_inputs(prof, version, node.request.model_inputs()):
                problems.append(spec.source.problem(f"{node.id}: {ref.name} (live, version {version.version_id}): "
                                                    f"{p.message}", _where(board, node, p.name)))
    if problems:
        raise SpecError(problems)
    return replace(board, audio_versions=versions)


def _where(board: Board, node: PlannedAudio, name: str) -> tuple[str | int, ...]:
    """Where in the file a node's input is written: the `say:`, the `voice:`, the track."""
    if node.kind == "text":
        return ("vars", node.id.split(":", 1)[1])
    if node.kind == "line":
        voice_field = apps.profile(apps.app_name(voice_of(board.spec).app))
        if voice_field is not None and voice_field.concepts.get("voice") == name and board.spec.model.voice:
            return ("voice", "voice")
        return board.spec.shot_path(node.id.split(":", 1)[1], "say")
    return ("audio", int(node.id[6:-1]))


async def make_audio(board: Board, plan: Plan, backend: Backend, cache: Cache, emit: Callable[[Event], None],
                     concurrency: int) -> AudioMade:
    """Voice every line and make every generated track the plan lists (cached ones are
    looked up), in parallel; then check the voiced lines fit their shots (SpecError)."""
    made = AudioMade()
    # text nodes are made before (runner/_text.py), verdicts by the judge step (runner/_judge.py)
    nodes = [n for n in plan.audio if n.kind not in ("text", "judge")]
    if not nodes:
        return made
    speaker = speaker_for(backend)
    slots = asyncio.Semaphore(concurrency)
    seconds = planned_seconds(board.spec)

    async def one(node: PlannedAudio) -> None:
        res = made.results[node.id] = ShotResult(id=node.id, key=node.key)
        made.keys[node.id] = node.key
        hit = _cached(cache, node)
        if hit is None:
            async with slots:
                hit = await (_offline(node, cache, seconds) if speaker is not None
                             else _remote(board, node, backend, cache, emit, res))
            res.status = "generated"
        else:
            res.status, res.cached = "cached", True
        res.clip = made.files[node.id] = hit

    tasks = [asyncio.ensure_future(one(n)) for n in nodes]
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for out in outcomes:  # every node that could be made is kept; then the first failure is said
        if isinstance(out, BaseException):
            raise out
    check_fit(board, made)
    return made


def check_fit(board: Board, made: AudioMade) -> None:
    """Raise SpecError when a voiced line cannot fit its shot (from the file alone)."""
    if not board.lines:
        return
    from storyboard.media import probe_audio

    made.seconds = {sid: probe_audio(made.files[f"say:{sid}"]).duration for sid in board.lines
                    if f"say:{sid}" in made.files}  # probed once: the narration step places them
    problems = early_fit_problems(board.spec, board.lines, made.seconds)
    if problems:
        raise SpecError(problems)


def _cached(cache: Cache, node: PlannedAudio) -> Path | None:
    """The node's audio file in the cache (a shared cache downloads it once), or None."""
    entry = cache.lookup(node.key)
    return entry.path if entry is not None else None


def _store(cache: Cache, node: PlannedAudio, made: Path, cost: Decimal | None) -> Path:
    """Keep a made line or track in the cache under its key, like a clip (shared caches too)."""
    facts = {"kind": node.kind, "app": node.app, "cost": None if cost is None else str(cost)}
    return cache.store(node.key, made, shot=node.id, facts=facts).path


async def _offline(node: PlannedAudio, cache: Cache, film_seconds: float) -> Path:
    """A line spoken here, or the placeholder music bed, kept in the cache."""
    from storyboard.media import music_placeholder, speak_offline

    work = cache.tmp_dir("voice-")
    try:
        tmp = work / "audio.wav"
        if node.kind == "line":
            await speak_offline(node.text, tmp, estimate_seconds(node.text))
        else:
            await music_placeholder(tmp, max(1.0, film_seconds))
        return _store(cache, node, tmp, Decimal(0))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _remote(board: Board, node: PlannedAudio, backend: Backend, cache: Cache,
                  emit: Callable[[Event], None], res: ShotResult) -> Path:
    """The node through the backend (submit, journal, wait, download), claimed first."""
    async with holding(cache, node.key):
        hit = _cached(cache, node)  # the render we waited for may have made it
        if hit is not None:
            return hit
        work = cache.tmp_dir(f"{node.id.replace(':', '-').replace('[', '-').strip(']')}-")
        try:
            res.started = time.time()
            emit(ShotStarted(shot=node.id, key=node.key))
            ctx = JournalContext(cache, node.key, node.id, work, board.path, emit, res)
            warn_if_uncertain(cache, node.key, node.id, res, emit)
            try:
                got = await backend.generate(node.request, ctx)
            except BackendError as e:
                if isinstance(e, NoOutputError):  # a finished task to never re-attach to
                    cache.forget(node.key)
                raise _named(node, e) from None
            dest = _store(cache, node, got, node.price)
            billed = billed_cost(node.request, res.facts.get("output_meta"))
            if billed is not None:  # what the task says it cost, beside the estimate
                res.facts["billed_cost"] = str(billed)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cache.forget(node.key)
        res.cost, res.finished = node.price, time.time()
        emit(ShotDone(shot=node.id, key=node.key, clip=dest, seconds=res.seconds or 0.0, cost=res.cost))
        return dest


def _named(node: PlannedAudio, e: BackendError) -> StoryboardError:
    """The backend's error naming the node; an app that answered no audio said plainly."""
    what = "the music app" if node.kind == "music" else "the voice app"
    if isinstance(e, NoOutputError):
        return BackendError(f"{node.id} ({node.request.app}): {what} returned no audio ({e}); nothing already "
                            "made is lost: render again to retry this one", status=e.status)
    return BackendError(f"{node.id} ({node.request.app}): {e}", status=e.status, retryable=e.retryable)


def music_tracks(board: Board, made: AudioMade) -> list[Any]:
    """The generated tracks as media MixTracks, behaving like file tracks (looped or
    trimmed to the film), each fading out at the end."""
    from storyboard.media import MixTrack

    return [MixTrack(path=made.files[t.id], volume=t.volume, duck=t.duck, loop=t.loop, fade_out=t.fade_out)
            for t in board.music if t.id in made.files]


def music_files(board: Board, made: AudioMade | None) -> list[tuple[Path, Any]]:
    """Each generated track's file with its track (for the OTIO export)."""
    if made is None:
        return []
    return [(made.files[t.id], t) for t in board.music if t.id in made.files]


def music_key(board: Board, made: AudioMade) -> str:
    """What the generated tracks add to the film's key."""
    return "|".join(f"{t.id}:{made.keys.get(t.id)}:{t.volume}:{t.duck}:{t.loop}:{t.fade_out}" for t in board.music)


def voiced_lines(made: AudioMade) -> Mapping[str, tuple[str, Path, float]]:
    """Shot id -> (line key, voiced file, its length in seconds), for the narration step."""
    return {sid: (made.keys[i], p, made.seconds[sid]) for i, p in made.files.items()
            if i.startswith("say:") and (sid := i.split(":", 1)[1]) in made.seconds}
