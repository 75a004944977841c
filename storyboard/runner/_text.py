"""The text step, before anything else of a render: every text node (``vars:`` written by a
text app, :mod:`storyboard.textnodes`) made in order, each cached by its key, and the
board reloaded with their answers so that every prompt, line and key reads them.

Offline (a backend that is not paid: the animatic) a node is its placeholder, free. With
inference.sh a node is a request through the backend's own submit, journal, wait path
(``kind="text"``), claimed like a paid shot; its cost is the tokens its ``usage`` reports.
Before the first call the apps are read live (the versions key the nodes) and the
estimate is held against ``--budget``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyboard import apps
from storyboard.backends.base import Backend
from storyboard.board import Board, load
from storyboard.cache import Cache, atomic_write_json
from storyboard.errors import BackendError, BudgetError, CacheError, NoOutputError, SpecError
from storyboard.events import AppResolved, Event, ShotDone, ShotResult, ShotStarted
from storyboard.facts import usd
from storyboard.request import ShotRequest, estimate, usage_cost
from storyboard.runner._context import JournalContext, holding, warn_if_uncertain
from storyboard.runner._preflight import remembered_path
from storyboard.textnodes import TextNode, render_texts, text_key

__all__ = ["TextsMade", "ask", "make_texts", "read_answer", "with_cached_texts"]


@dataclass
class TextsMade:
    """The text nodes of a render: each answer and what happened (for the report)."""

    values: dict[str, str] = field(default_factory=dict)
    results: dict[str, ShotResult] = field(default_factory=dict)

    @property
    def cost(self) -> Decimal:
        """What the text calls of this render cost (by their usage)."""
        return sum((r.cost or Decimal(0) for r in self.results.values() if r.status == "generated"), Decimal(0))


def read_answer(path: Path) -> dict[str, Any]:
    """A text app's answer kept in the cache: ``response``, ``tool_calls``, ``usage``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


async def _versions(board: Board, backend: Backend, cache: Cache, emit: Callable[[Event], None]) -> dict[str, str]:
    """Each unpinned text app's version read live (remembered beside the cache); every
    node's inputs checked against it. Raises SpecError before anything is paid."""
    get_app = getattr(backend, "get_app", None)
    versions: dict[str, str] = {}
    if not callable(get_app):
        return versions
    problems = []
    for ref_text in dict.fromkeys(n.spec.app for n in board.texts):
        ref = apps.parse_app_ref(ref_text)
        version = apps.app_from_api(await get_app(ref_text), ref.name)
        if ref.version is None:
            versions[ref_text] = version.version_id
        with contextlib.suppress(CacheError):
            atomic_write_json(remembered_path(cache, ref_text), version.to_json())
        emit(AppResolved(app=ref.name, version=version.version_id, pinned=ref.version is not None))
        prof = apps.profile(ref.name)
        for node in (n for n in board.texts if n.spec.app == ref_text):
            problems += [board.spec.source.problem(f"vars.{node.name}: {ref.name} (live, version "
                                                   f"{version.version_id}): {p.message}", ("vars", node.name))
                         for p in apps.check_inputs(prof, version, node.request.model_inputs())]
    if problems:
        raise SpecError(problems)
    return versions


async def ask(request: ShotRequest, key: str, node_id: str, backend: Backend, cache: Cache,
              emit: Callable[[Event], None], board_path: Path, result: ShotResult) -> dict[str, Any]:
    """One text call (cached by ``key``; claimed and journalled like a paid shot): its answer."""
    entry = cache.lookup(key)
    if entry is not None:
        result.status, result.cached = "cached", True
        return read_answer(entry.path)
    async with holding(cache, key):
        entry = cache.lookup(key)
        if entry is not None:
            result.status, result.cached = "cached", True
            return read_answer(entry.path)
        work = cache.tmp_dir(node_id.replace(":", "-") + "-")
        try:
            result.started = time.time()
            emit(ShotStarted(shot=node_id, key=key))
            ctx = JournalContext(cache, key, node_id, work, board_path, emit, result)
            warn_if_uncertain(cache, key, node_id, result, emit)
            try:
                got = await backend.generate(request, ctx)
            except BackendError as e:
                if isinstance(e, NoOutputError):
                    cache.forget(key)
                raise BackendError(f"{node_id} ({request.app}): {e}", status=e.status, retryable=e.retryable) from None
            answer = read_answer(got)
            cost = usage_cost(request, answer.get("usage"))
            result.cost = cost if cost is not None else estimate(request)
            dest = cache.store(key, got, shot=node_id, facts={"kind": "text", "app": request.app,
                                                               "cost": None if result.cost is None else str(result.cost),
                                                               "usage": answer.get("usage")}).path
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cache.forget(key)
        result.status, result.finished = "generated", time.time()
        emit(ShotDone(shot=node_id, key=key, clip=dest, seconds=result.seconds or 0.0, cost=result.cost))
        return answer


async def make_texts(board: Board, backend: Backend, cache: Cache, emit: Callable[[Event], None],
                     budget: Decimal | None) -> tuple[Board, TextsMade]:
    """Make every text node of the board in order; the board with their answers."""
    made = TextsMade()
    if not board.texts:
        return board, made
    if not getattr(backend, "paid", True):  # offline: the placeholder, free
        for node in board.texts:
            made.results[node.id] = ShotResult(id=node.id, key="", status="generated", cost=Decimal(0))
            made.values[node.name] = node.value
        return board, made
    specs = [n.spec for n in board.texts]
    base = {k: v for k, v in board.vars.items() if all(k != s.name for s in specs)}
    cached, remembered = _cached(board, cache)
    if len(cached) == len(specs):  # every answer is cached: no call, no live read
        for node in board.texts:
            made.results[node.id] = ShotResult(id=node.id, key=None, status="cached", cached=True)
        made.values = cached
        out = reload(board, cached)
        return replace(out, audio_versions={**out.audio_versions, **remembered}), made
    pending = [n for n in board.texts if n.name not in cached]
    _check_budget(pending, budget)
    ready = getattr(backend, "check_ready", None)
    if callable(ready):
        ready()
    versions = await _versions(board, backend, cache, emit)
    for i, _spec in enumerate(specs):  # in order: a node sees the answers of those it reads
        nodes, _ = render_texts(board.spec, specs, base, made.values, versions)
        node = nodes[i]
        req = replace(node.request, version=versions.get(node.spec.app, node.request.version))
        key = text_key(req, "app")
        res = made.results[node.id] = ShotResult(id=node.id, key=key)
        answer = await ask(req, key, node.id, backend, cache, emit, board.path, res)
        made.values[node.name] = str(answer.get("response") or "").strip()
    return reload(board, made.values), made


def _cached(board: Board, cache: Cache) -> tuple[dict[str, str], dict[str, str]]:
    """The answers of the board's text nodes found in the cache, in order until the first
    missing one (keyed by the versions last read live), and those versions."""
    versions: dict[str, str] = {}
    for ref in dict.fromkeys(n.spec.app for n in board.texts if "@" not in n.spec.app):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            versions[ref] = str(json.loads(remembered_path(cache, ref).read_text())["version_id"])
    specs = [n.spec for n in board.texts]
    base = {k: v for k, v in board.vars.items() if all(k != s.name for s in specs)}
    values: dict[str, str] = {}
    for i, ts in enumerate(specs):
        nodes, _ = render_texts(board.spec, specs, base, values, versions)
        entry = cache.lookup(text_key(nodes[i].request, "app"))
        if entry is None:
            break
        values[ts.name] = str(read_answer(entry.path).get("response") or "").strip()
    return values, versions


def with_cached_texts(board: Board, cache: Cache) -> Board:
    """The board with the answers of its text nodes already cached (by the versions last
    read live), so that a plan keys the shots reading them as a render would; the board
    itself when the first is not cached."""
    if not board.texts:
        return board
    values, versions = _cached(board, cache)
    if not values:
        return board
    out = reload(board, values)
    return replace(out, audio_versions={**out.audio_versions, **versions})


def reload(board: Board, values: dict[str, str]) -> Board:
    """The board loaded again with its text nodes' answers."""
    names = {n.name for n in board.texts}
    given = {k: v for k, v in board.vars.items() if k not in names}
    out = load(board.path, vars=given, overrides=board.overrides or None, texts=values)
    return replace(out, audio_versions=board.audio_versions)


def _check_budget(pending: list[TextNode], budget: Decimal | None) -> None:
    if budget is None:
        return
    costs = [estimate(n.request) for n in pending]
    if any(c is None for c in costs):
        raise BudgetError(f"over budget: the price of {pending[0].id} is unknown; nothing was paid")
    total = sum((c for c in costs if c is not None), Decimal(0))
    if total > budget:
        raise BudgetError(f"over budget: {len(pending)} text node(s) would cost up to {usd(total)}; "
                          f"--budget is {usd(budget)}. Nothing was paid.")

