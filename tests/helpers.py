"""Helpers shared by the tests that render against the fake inference.sh: the API key and
the three-shot board they use, an inference backend on the fake, an in-process render,
and a render in a real subprocess whose ``--json`` events are read as they come."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import storyboard
from fakeserver import FakeInference
from storyboard.backends.inference import InferenceBackend
from storyboard.events import WAITING_FOR_ANOTHER_RENDER, Event, RenderResult
from storyboard.runner import Pipeline
from tests.test_inference_backend import FAST

KEY = "sk-test-SECRET-9f8e7d"
SHOTS = 3
BOARD = """
storyboard: 1
defaults: {duration: 3, mode: std}
shots:
  - id: a
    prompt: a harbor at dusk
    image: start.png
  - id: b
    prompt: the keeper looks up
  - id: c
    prompt: a storm gathers
    image: start.png
cut: [a, b, c]
"""
# b starts on a's last frame; c is independent.


@contextlib.contextmanager
def fake_in_env(key: str, **options: Any) -> Iterator[FakeInference]:
    """The fake service, with INFERENCE_API_KEY and INFERENCE_BASE_URL pointing at it."""
    with FakeInference(api_key=key, latency=0.05, **options) as fake, pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFERENCE_API_KEY", key)
        mp.setenv("INFERENCE_BASE_URL", fake.url)
        yield fake


def wait_for_worker(address: str) -> None:
    """Wait until a Dask worker has joined the scheduler at ``address``."""
    import distributed

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with distributed.Client(address, timeout=5) as client:
                if client.scheduler_info()["workers"]:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no worker joined {address}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend_for(fake: FakeInference | None, **options: Any) -> InferenceBackend:
    """An inference backend on ``fake`` with the test key and fast retries."""
    settings: dict[str, Any] = {"api_key": KEY, **FAST, **options}
    if fake is not None:
        settings.setdefault("base_url", fake.url)
    return InferenceBackend(**settings)


def render(board_path: Path, backend: InferenceBackend, events: list[Event] | None = None,
           **options: Any) -> RenderResult:
    """One render in this process."""
    board = storyboard.load(board_path)
    sink = events.append if events is not None else None
    return asyncio.run(Pipeline(board, backend=backend, on_event=sink, **options).run())


class Render:
    """``storyboard render --backend inference --json`` in a subprocess, read as events come."""

    def __init__(self, board: Path, fake: FakeInference, cache: Path | str | None = None) -> None:
        env = {**os.environ, "INFERENCE_API_KEY": fake.api_key, "INFERENCE_BASE_URL": fake.url}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storyboard.cli", "render", str(board), "--backend", "inference", "--json",
             *(["--cache-dir", str(cache)] if cache is not None else [])],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue

    def kinds(self) -> list[str]:
        """The events so far, by kind."""
        return [e.get("event", "") for e in list(self.events)]

    def waiting(self) -> set[str]:
        """The shots this render has said it waits on another render for."""
        return {e["shot"] for e in list(self.events)
                if e.get("event") == "shot_progress" and e.get("status") == WAITING_FOR_ANOTHER_RENDER}

    def finish(self, timeout: float = 180) -> str:
        """Wait for the end; return stderr (the test fails on a non-zero exit)."""
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        assert self.proc.returncode == 0, err
        return err

    def kill(self) -> None:
        """SIGKILL, as a power cut would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def stop(self) -> None:
        """Kill it if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def wait_for(condition: Callable[[], bool], what: str, *renders: Render, timeout: float = 120,
             poll: float = 0.05) -> None:
    """Wait until ``condition``; fail when a render ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        for r in renders:
            if r.proc.poll() is not None:
                pytest.fail(f"a render ended (rc {r.proc.returncode}) before {what}: {r.kinds()}")
        if time.monotonic() > deadline:
            pytest.fail(f"never reached {what}: {[r.kinds() for r in renders]}")
        time.sleep(poll)
