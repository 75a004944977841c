"""The soak's fault schedule: what the fake server does wrong, and when each runner is killed.

Server faults are the fake's count-based knobs (:mod:`fakeserver.knobs`), consumed by
whichever runner meets them first. Kills are per runner: a trigger (a moment the
orchestrator can see from the fake's records or the cache's journal) and a delay after it.
The schedule is bounded so that a film can always finish within 3 restarts: each runner
is killed at most once, and the server's faults end at most two of its renders
(:func:`ends_a_render`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from fakeserver import FakeInference

__all__ = ["KILL_TRIGGERS", "MAX_RESTARTS", "Kill", "Schedule", "draw_schedule", "ends_a_render"]

MAX_RESTARTS = 3  # per film

# trigger -> what it waits for (see tests/soak/runs.py: Trigger)
KILL_TRIGGERS = {
    "submitting": "a journal holds a 'submitting' mark and no task id yet (between the mark and the POST)",
    "submitted": "a task was created while its answer is held (the documented window)",
    "waiting": "a task's update stream is open",
    "storing": "an output download began (the clip is being fetched and stored)",
    "anytime": "a random time after the start",
}


@dataclass(frozen=True)
class Kill:
    """SIGKILL runner ``runner`` ``delay`` seconds after ``trigger`` is first seen."""

    runner: str  # "a" or "b"
    trigger: str
    delay: float


@dataclass
class Schedule:
    """Knob values set on the fake before the runners start, latency spikes, and kills."""

    latency: float
    knobs: dict[str, Any] = field(default_factory=dict)
    spikes: list[tuple[str, float, int]] = field(default_factory=list)  # (endpoint, seconds, times)
    kills: list[Kill] = field(default_factory=list)
    two_at_once: bool = True  # b starts with a (else after a's first kill or finish)

    def apply(self, fake: FakeInference) -> None:
        fake.latency = self.latency
        for name, value in self.knobs.items():
            setattr(fake, name, value)
        for endpoint, seconds, times in self.spikes:
            fake.slow(endpoint, seconds, times)

    def describe(self) -> str:
        return repr(asdict(self))


def draw_schedule(rng: random.Random, *, quick: bool = False) -> Schedule:
    """A random fault schedule; ``quick`` keeps latencies and retries short."""
    s = Schedule(latency=0.05 if quick else rng.choice([0.05, 0.2, 0.5]))
    knobs = s.knobs
    if rng.random() < 0.4:
        knobs["drop_streams"] = rng.randint(1, 2)
    if rng.random() < 0.4:
        knobs["refuse_runs"] = rng.randint(1, 2)
        knobs["refuse_status"] = rng.choice([500, 502, 503, 429])
        # without Retry-After the client backs off on its own (1 s, then 2 s)
        knobs["retry_after"] = rng.choice(["0", None] if quick else ["0", "1", None])
    if rng.random() < 0.25:
        knobs["fail_tasks"] = 1
    if rng.random() < 0.3:
        knobs[rng.choice(["truncate_downloads", "corrupt_downloads"])] = 1
    if rng.random() < 0.3:
        knobs["upload_errors"] = 1
    if rng.random() < 0.15:
        knobs["drop_run_responses"] = 1  # accepted, answer lost: the documented window
    if rng.random() < 0.5:
        endpoint = rng.choice(["run", "stream", "download", "files", "task"])
        s.spikes.append((endpoint, round(rng.uniform(0.1, 0.4 if quick else 1.5), 2), rng.randint(1, 2)))
    for runner in ("a", "b"):
        if rng.random() < (0.5 if quick else 0.7):
            trigger = rng.choice(list(KILL_TRIGGERS))
            delay = round(rng.uniform(0.3, 1.5 if quick else 3.0), 2) if trigger == "anytime" \
                else round(rng.uniform(0, 0.15), 3)
            s.kills.append(Kill(runner, trigger, delay))
    s.two_at_once = rng.random() < 0.8
    _bound(knobs)
    return s


def ends_a_render(knobs: dict[str, Any]) -> int:
    """How many renders the server faults can end at most: a task that fails, a lost
    answer, and a refusal the client cannot tell from an accepted submission (500, 502, a
    503 without Retry-After: it does not resubmit, see storyboard's transport)."""
    status, retry_after = knobs.get("refuse_status"), knobs.get("retry_after")
    ambiguous = status in (500, 502) or (status == 503 and retry_after is None)
    return (knobs.get("refuse_runs", 0) if ambiguous else 0) + knobs.get("fail_tasks", 0) \
        + knobs.get("drop_run_responses", 0)


def _bound(knobs: dict[str, Any]) -> None:
    """Keep a film finishable in 3 restarts: one kill per runner plus at most 2 endings."""
    while ends_a_render(knobs) > MAX_RESTARTS - 1 and knobs.get("refuse_runs", 0) > 0:
        knobs["refuse_runs"] -= 1
