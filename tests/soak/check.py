"""The soak's invariant checker: reads the fake's records, the runners' events and the cache.

1. Every paid unit (a shot's take, a still, a line, a text node: one tag, see
   :mod:`tests.soak.boards`) was paid at most once, except inside the documented window
   (a submission whose answer was lost: the next render says "while submitting" and pays
   again; docs/reliability.md): each extra payment of a unit must be matched by such a
   warning about that same unit. Payments beyond that are failures; window payments are
   counted apart. A task that FAILED or was CANCELLED is not a delivered payment.
2. Every paid, completed output is in the cache (a shot's or still's index entry names
   its task; a line by its bytes' hash) or still journalled (window orphans aside).
3. Every film was finished after at most 3 restarts.
4. No cache entry is corrupt: every index entry names a clip whose SHA-256 is its name.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeserver import FakeInference, FakeTask
from fakeserver.records import CANCELLED, COMPLETED, FAILED
from tests.soak.boards import TAG, Boards

__all__ = ["Outcome", "RunnerLog", "check"]

WINDOW_WARNING = "while submitting"


@dataclass
class RunnerLog:
    """What one film's renders did: their --json events, how each ended, their errors."""

    name: str
    film: Path
    attempts: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def window_warnings(self) -> Counter[str]:
        """The "while submitting" warnings, by the tag of the unit they were about."""
        return Counter(_unit_of(str(e.get("shot"))) for e in self.events
                       if e.get("event") == "warning" and WINDOW_WARNING in str(e.get("message")))


def _unit_of(node: str) -> str:
    """The tag of a node named in an event: ``s2#2`` (a take) → s2, ``text:text0`` → text0,
    ``say:s1`` → line0 (one line per run), a still's id is its tag."""
    if node.startswith("say:"):
        return "line0"
    return node.split(":", 1)[1] if node.startswith("text:") else node.split("#")[0]


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    paid: int = 0
    not_delivered: int = 0  # failed or cancelled tasks
    double_outside: int = 0
    window_payments: int = 0
    window_warnings: int = 0
    kills: int = 0
    restarts: int = 0
    films: int = 0
    corrupt: int = 0
    lost: int = 0


def _tag(task: FakeTask) -> str | None:
    text = str(task.input.get("prompt") or task.input.get("text") or "")
    found = TAG.search(text)
    return found.group(1) if found else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class _Cached:
    hashes: set[str] = field(default_factory=set)  # clip hashes indexed
    shots: set[str] = field(default_factory=set)  # shot (node) names indexed
    task_ids: set[str] = field(default_factory=set)  # the task each indexed clip came from, where known
    journalled: set[str] = field(default_factory=set)  # task ids still journalled


def _cache_state(cache: Path, out: Outcome) -> _Cached:
    """What the cache holds; counts (and reports) corrupt entries."""
    got = _Cached()
    hashes, shots = got.hashes, got.shots
    for index in sorted((cache / "index").glob("*/*.json")):
        meta = json.loads(index.read_text())
        digest, suffix = str(meta["clip"]), str(meta.get("suffix", ".mp4"))
        clip = cache / "clips" / digest[:2] / f"{digest}{suffix}"
        if not clip.is_file() or _sha256(clip) != digest:
            out.corrupt += 1
            out.failures.append(f"corrupt cache entry {index.name}: clip {digest[:12]} missing or hash mismatch")
            continue
        hashes.add(digest)
        shots.add(str(meta.get("shot")))
        task_id = (meta.get("facts") or {}).get("task_id")
        if task_id:
            got.task_ids.add(str(task_id))
    for clip in sorted((cache / "clips").glob("*/*")):
        if clip.name.startswith(".") or clip.name.endswith(".sha256"):
            continue
        if _sha256(clip) != clip.name.split(".")[0]:
            out.corrupt += 1
            out.failures.append(f"corrupt clip {clip.name}: its bytes do not hash to its name")
    for entry in (cache / "journal").glob("*.json"):
        state = json.loads(entry.read_text()).get("state", {})
        if state.get("task_id"):
            got.journalled.add(str(state["task_id"]))
    return got


def _payments(fake: FakeInference, boards: Boards, logs: list[RunnerLog], out: Outcome) -> list[FakeTask]:
    """Invariant 1; returns the tasks that delivered (completed) output."""
    delivered: list[FakeTask] = []
    per_tag: Counter[str] = Counter()
    for task in list(fake.submissions):
        status = fake.status_of(task)
        out.paid += 1
        if status in (FAILED, CANCELLED):
            out.not_delivered += 1
            continue
        tag = _tag(task)
        if tag is None or tag not in boards.units:
            out.failures.append(f"task {task.id} paid for nothing the boards ask for: {task.input}")
            continue
        per_tag[tag] += 1
        if status == COMPLETED:
            delivered.append(task)
    warned: Counter[str] = Counter()
    for log in logs:
        warned.update(log.window_warnings())
    out.window_warnings = sum(warned.values())
    for tag, n in per_tag.items():  # a unit's extra payments, each covered by a warning about that unit
        extra = max(0, n - boards.units[tag])
        out.window_payments += min(extra, warned[tag])
        out.double_outside += extra - min(extra, warned[tag])
    if out.double_outside:
        over = {t: n for t, n in per_tag.items() if n > boards.units[t]}
        out.failures.append(f"{out.double_outside} payment(s) beyond the documented window: paid {over}, "
                            f"'while submitting' warnings {dict(warned)}")
    return delivered


def _output_hash(task: FakeTask) -> str | None:
    if task.clip is None:
        return None
    try:
        return hashlib.sha256(task.clip.result(timeout=60)).hexdigest()
    except Exception:  # the fake could not make it: nothing to lose
        return None


def check(fake: FakeInference, cache: Path, boards: Boards, logs: list[RunnerLog], *, hung: bool = False) -> Outcome:
    """Check the four invariants after a run; ``failures`` is empty when they hold."""
    out = Outcome()
    if hung:
        out.failures.append("the run hung (a film still rendering after the time limit)")
    delivered = _payments(fake, boards, logs, out)
    cached = _cache_state(cache, out)
    orphans = []
    for task in delivered:
        if task.id in cached.journalled:
            continue
        if task.kind == "text":  # its answer is stored re-serialized, under its node's name
            kept = any(s.startswith("text:") for s in cached.shots)
        elif task.kind in ("video", "image"):  # a shot's or still's entry names its task
            kept = task.id in cached.task_ids
        else:  # a line's entry names no task: its bytes, by hash
            kept = _output_hash(task) in cached.hashes
        if not kept:
            orphans.append(task)
    out.lost = max(0, len(orphans) - out.window_payments)  # a window payment's first task is never fetched
    if out.lost:
        out.failures.append(f"{out.lost} paid output(s) neither cached nor journalled: {[t.id for t in orphans]}")
    for log in logs:
        out.kills += log.endings.count("killed")
        out.restarts += max(0, log.attempts - 1)
        if log.endings[-1:] == ["exit 0"] and log.film.is_file():
            out.films += 1
        else:
            out.failures.append(f"film {log.name} not finished after {log.attempts - 1} restart(s): "
                                f"{log.endings}, {log.errors[-1:] or ''}")
    return out
