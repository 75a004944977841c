"""The fake server's fault knobs: public attributes a test sets before or while it runs.

The count-based ones (``refuse_runs``, ``drop_streams``...) are consumed one per request
of that kind (:meth:`FaultKnobs._take`); ``delays``/``slow`` hold a request back.
"""

from __future__ import annotations

import collections
import math
import random
import threading
import time
from typing import Any

from fakeserver.text import Script

__all__ = ["FaultKnobs"]


class FaultKnobs:
    """Faults and pacing of the fake, with the lock that guards them."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.refuse_runs = 0  # first N POST /apps/run answered refuse_status
        self.refuse_status = 503  # or 429
        self.retry_after: str | None = "0"  # seconds or an HTTP-date; None: no header
        self.payment_required = False  # POST /apps/run -> 402 (a low balance: no code)
        # the next POST /apps/run answered (status, code, meta) as the service does, one each:
        # (402, "limit_exceeded", {...}), (403, "insufficient_scope", {"required_scope": ..}),
        # (500, "entitlement_unavailable", {}) ...
        self.run_errors: list[tuple[int, str, dict[str, Any]]] = []
        self.reject = False  # tasks are created REJECTED (no balance; never ran)
        self.fail_prompt: str | None = None  # tasks whose prompt contains it FAIL
        self.fail_error = "content policy: the model refused this prompt"
        self.fail_tasks = 0  # the next N tasks created FAIL (whatever their prompt)
        self.drop_run_responses = 0  # accept the task, then cut the connection unanswered
        self.drop_streams = 0  # streams cut (no final chunk) after the first snapshot
        self.end_streams = 0  # streams ended cleanly after the first snapshot (never with the last)
        self.heartbeat_streams = 0  # streams that only ever send heartbeats
        self.terminal_partial = False  # the final event is a partial update without output
        self.messages: list[Any] = []  # the envelope's "messages" on every JSON answer
        self.upload_errors = 0  # uploads whose bytes are kept, then answered 500 (the client cannot tell)
        self.app_failures = 0  # GET /apps/.. answered 503 (with retry_after, if set)
        self.output_404 = 0  # output downloads answered 404
        self.truncate_downloads = 0  # downloads cut short of their Content-Length
        self.corrupt_downloads = 0  # downloads of half the file, no Content-Length
        self.no_output_apps: set[str] = set()  # apps whose tasks complete with no output file
        self.speech_chars_per_second = 15.0  # a TTS app's tone lasts len(text) / this (at least 0.5 s)
        self.music_seconds = 6.0  # what a music app returns (it takes no duration)
        self.text_script: Script = []  # scripted text-app answers, one per text task (fakeserver.text)
        self.delays: dict[str, float] = {}  # endpoint -> seconds before answering, always
        # output files sent at this many bytes a second (a real link), None: at once
        self.download_rate: float | None = None
        self.downloaded: dict[str, float] = {}  # task id -> when its output's last byte went out
        self._delay_queue: dict[str, list[float]] = {}
        # each task's latency drawn uniformly from (low, high) seconds, from latency_seed;
        # None: every task takes the fake's ``latency``
        self.latency_range: tuple[float, float] | None = None
        self.latency_seed = 0
        self._latencies: random.Random | None = None
        # (runs, seconds): at most that many accepted POST /apps/run per API key in any
        # window of that many seconds; one more is answered 429 with Retry-After (whole
        # seconds until the window has room), as a service's per-key rate limit
        self.rate_limit: tuple[int, float] | None = None
        self.rate_limited = 0  # POST /apps/run answered 429 by the rate limit
        self.extra_keys: set[str] = set()  # API keys accepted beside ``api_key``, each its own limit
        self._runs_by_key: dict[str, collections.deque[float]] = {}
        # endpoints: files, upload, app, run, task, stream, cancel, download

    def slow(self, endpoint: str, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` requests to ``endpoint`` by ``seconds``."""
        with self._lock:
            self._delay_queue.setdefault(endpoint, []).extend([seconds] * times)

    def _task_latency(self, default: float) -> float:
        """A new task's latency: drawn from ``latency_range`` when set, else ``default``."""
        with self._lock:
            if self.latency_range is None:
                return default
            if self._latencies is None:
                self._latencies = random.Random(self.latency_seed)
            low, high = self.latency_range
            return self._latencies.uniform(low, high)

    def _rate_wait(self, key: str) -> int | None:
        """Whole seconds the caller with ``key`` must wait before another run, or None
        (then the run is counted in its window)."""
        with self._lock:
            if self.rate_limit is None:
                return None
            runs, window = self.rate_limit
            now = time.monotonic()
            recent = self._runs_by_key.setdefault(key, collections.deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= runs:
                self.rate_limited += 1
                return max(1, math.ceil(recent[0] + window - now))
            recent.append(now)
            return None

    def _take(self, knob: str) -> bool:
        """Consume one unit of a count-based fault."""
        with self._lock:
            left = int(getattr(self, knob))
            if left > 0:
                setattr(self, knob, left - 1)
                return True
            return False

    def _delay(self, endpoint: str) -> None:
        with self._lock:
            queue = self._delay_queue.get(endpoint)
            seconds = queue.pop(0) if queue else self.delays.get(endpoint, 0.0)
        if seconds > 0:
            time.sleep(seconds)
