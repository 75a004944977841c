"""One soak run: draw two boards and a fault schedule from a seed, render both boards at
once in real subprocesses (``storyboard render --backend inference --json``, the fake on
loopback, one shared ``--cache-dir``), SIGKILL them at the scheduled moments, restart
whatever died or failed (at most 3 restarts per film), then check the invariants."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeserver import FakeInference
from tests.helpers import Render
from tests.soak.boards import Boards, draw_boards
from tests.soak.check import Outcome, RunnerLog, check
from tests.soak.s3 import fetch_cache, remote_journals
from tests.soak.schedule import MAX_RESTARTS, Kill, Schedule, draw_schedule

__all__ = ["RunResult", "draw", "soak_many", "soak_run", "summary"]

KEY = "sk-soak-0123456789abcdef"
RUN_TIMEOUT = 120.0  # seconds a run may take before it counts as hung


@dataclass
class RunResult:
    seed: int
    boards: Boards
    schedule: Schedule
    outcome: Outcome
    seconds: float
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    on_s3: bool = False

    def report(self) -> str:
        return (f"seed {self.seed} FAILED: {'; '.join(self.outcome.failures)}\n"
                f"schedule: {self.schedule.describe()}\n{self.boards.describe()}\n"
                f"log: {' | '.join(self.notes)}\nreplay: python -m tests.soak --replay {self.seed}{' --quick' if self.quick else ''}{' --s3' if self.on_s3 else ''}")


def draw(seed: int, quick: bool) -> tuple[Boards, Schedule]:
    """What a seed means: the boards and the schedule (the same on every machine)."""
    rng = random.Random(seed)
    return draw_boards(rng, quick=quick), draw_schedule(rng, quick=quick)


Journals = Callable[[], Iterable[dict[str, Any]]]


def local_journals(cache: Path) -> Journals:
    def read() -> Iterator[dict[str, Any]]:
        for path in (cache / "journal").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                yield json.loads(path.read_text())
    return read


class _Trigger:
    """Watches for a kill's trigger moment: from the fake's records or the journal."""

    def __init__(self, kill: Kill, fake: FakeInference, journals: Journals, start: float, hold: float,
                 every: float) -> None:
        self.kill, self.fake, self.journals, self.start, self.every = kill, fake, journals, start, every
        self.base_submissions = len(fake.submissions)
        self.seen_at: float | None = None
        self.looked = 0.0
        if kill.trigger == "submitted":
            fake.slow("run", hold, 1)  # the next run's answer is held: the task exists, its id not yet known

    def _now_seen(self, now: float) -> bool:
        fake, trigger = self.fake, self.kill.trigger
        if trigger == "anytime":
            return True
        if trigger == "submitted":
            return len(fake.submissions) > self.base_submissions
        if trigger == "waiting":
            return fake.streams_opened > 0
        if trigger == "storing":
            return bool(fake.calls_to("GET", "/outputs/"))
        if now - self.looked < self.every:  # "submitting": read the journal (remote: not too often)
            return False
        self.looked = now
        states = (entry.get("state", {}) for entry in self.journals())
        return any(state.get("submitting") and not state.get("task_id") for state in states)

    def due(self, now: float) -> bool:
        if self.seen_at is None and self._now_seen(now):
            self.seen_at = self.start if self.kill.trigger == "anytime" else now
        return self.seen_at is not None and now >= self.seen_at + self.kill.delay


class _Runner:
    """One film: a render, restarted after each kill or failure (at most MAX_RESTARTS times)."""

    def __init__(self, name: str, board: Path, fake: FakeInference, cache: Path | str) -> None:
        self.name, self.board, self.fake, self.cache = name, board, fake, cache
        self.log = RunnerLog(name=name, film=board.parent / "out" / f"{board.stem}.mp4")
        self.render: Render | None = None
        self.done = False

    def start(self) -> None:
        self.render = Render(self.board, self.fake, self.cache)
        self.log.attempts += 1

    def _collect(self, how: str) -> None:
        assert self.render is not None
        self.log.events.extend(list(self.render.events))
        self.log.endings.append(how)
        self.render.stop()
        self.render = None

    def kill(self) -> None:
        if self.render is not None and self.render.proc.poll() is None:
            self.render.kill()
            time.sleep(0.05)  # the reader thread takes the last lines
            self._collect("killed")

    def poll(self) -> None:
        """Restart a render that ended badly; mark the film done when one ended well."""
        if self.render is None or self.done:
            return
        rc = self.render.proc.poll()
        if rc is None:
            return
        self.render._reader.join(timeout=5)
        err = self.render.proc.stderr.read() if self.render.proc.stderr else ""
        self._collect(f"exit {rc}")
        if rc == 0:
            self.done = True
            return
        self.log.errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {rc}")
        if self.log.attempts <= MAX_RESTARTS:
            self.start()

    @property
    def alive(self) -> bool:
        return self.render is not None


def _orchestrate(runners: dict[str, _Runner], schedule: Schedule, fake: FakeInference, journals: Journals,
                 every: float, notes: list[str]) -> bool:
    """Run both films to their end; False when the run hung."""
    start = time.monotonic()
    runners["a"].start()
    if schedule.two_at_once:
        runners["b"].start()
    hold = 1.0 if schedule.latency < 0.1 else 2.0
    pending = [_Trigger(k, fake, journals, start, hold, every) for k in schedule.kills]
    while any(r.alive for r in runners.values()) or not runners["b"].log.attempts:
        now = time.monotonic()
        if now - start > RUN_TIMEOUT:
            for r in runners.values():
                r.kill()
            notes.append(f"hung after {RUN_TIMEOUT:.0f} s")
            return False
        for trig in list(pending):
            runner = runners[trig.kill.runner]
            if runner.alive and trig.due(now):
                pending.remove(trig)
                notes.append(f"{now - start:.2f}s kill {runner.name} ({trig.kill.trigger})")
                runner.kill()
                if runner.log.attempts <= MAX_RESTARTS:
                    runner.start()
        for r in runners.values():
            r.poll()
        if not runners["b"].log.attempts and (runners["a"].done or runners["a"].log.endings):
            runners["b"].start()  # b starts late: after a's first ending
        time.sleep(0.02)
    return True


def soak_run(seed: int, *, quick: bool = False, keep: Path | None = None, s3: str | None = None) -> RunResult:
    """One run of the soak, checked. ``keep``: leave its folder there (else a temp one).
    ``s3``: a bucket URL (tests.soak.s3.moto_s3): both runners share ``s3://…/run-SEED``,
    each with its own local folder, as two machines would."""
    boards, schedule = draw(seed, quick)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix=f"soak-{seed}-")) if keep is None else keep
    notes: list[str] = []
    try:
        boards_at = {n: folder / (n if s3 else "") / f"{n}.yaml" for n in ("a", "b")}
        for name, path in boards_at.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(boards.a if name == "a" else boards.b)
        cache: Path | str = f"{s3}/run-{seed}-{uuid.uuid4().hex[:6]}" if s3 else folder / "cache"
        journals = (lambda: remote_journals(str(cache))) if s3 else local_journals(Path(cache))
        with FakeInference(api_key=KEY, latency=0.05, short_side=64, fps=4) as fake:
            schedule.apply(fake)
            runners = {n: _Runner(n, boards_at[n], fake, cache) for n in ("a", "b")}
            finished = _orchestrate(runners, schedule, fake, journals, 0.25 if s3 else 0.0, notes)
            notes.extend(f"film {r.name}: {r.log.endings} {r.log.errors}" for r in runners.values())
            fake.latency = 0.0  # nothing more is rendered; the fake's clip pool drains
            read = fetch_cache(str(cache), folder / "s3-copy") if s3 else Path(cache)
            outcome = check(fake, read, boards, [r.log for r in runners.values()], hung=not finished)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return RunResult(seed, boards, schedule, outcome, time.monotonic() - started, notes, quick, bool(s3))


def soak_many(seeds: list[int], *, quick: bool = False, workers: int = 1, s3: str | None = None,
              on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Runs of the soak, ``workers`` at a time (each has its own fake, folder and cache;
    its work is in its subprocesses), in seed order."""
    def one(seed: int) -> RunResult:
        result = soak_run(seed, quick=quick, s3=s3)
        if on_result is not None:
            on_result(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="soak") as pool:
        return list(pool.map(one, seeds))


def summary(results: list[RunResult]) -> dict[str, Any]:
    """The invariant summary over many runs."""
    failed = [r.seed for r in results if r.outcome.failures]
    return {
        "runs": len(results),
        "failed": len(failed),
        "failed_seeds": failed,
        "paid_tasks": sum(r.outcome.paid for r in results),
        "double_payments_outside_window": sum(r.outcome.double_outside for r in results),
        "window_payments": sum(r.outcome.window_payments for r in results),
        "window_warnings": sum(r.outcome.window_warnings for r in results),
        "kills": sum(r.outcome.kills for r in results),
        "restarts": sum(r.outcome.restarts for r in results),
        "films": sum(r.outcome.films for r in results),
        "corrupt_entries": sum(r.outcome.corrupt for r in results),
        "lost_clips": sum(r.outcome.lost for r in results),
        "seconds": round(sum(r.seconds for r in results), 1),
    }
