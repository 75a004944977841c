"""Ctrl-C during a render: exit 130, remote tasks left running and journalled, and the
next render re-attaches to them — every shot is paid for exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fakeserver import FakeInference
from storyboard.cache import open_cache

KEY = "sk-test-interrupt-41ab"


def test_ctrl_c_leaves_a_resumable_state(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    make_image("start.png")
    path = write_board("""
        storyboard: 1
        defaults: {mode: std, duration: 3}
        shots:
          - {id: one, prompt: first, image: start.png}
          - {id: two, prompt: second, image: start.png}
          - {id: three, prompt: third}
    """)
    with FakeInference(api_key=KEY, latency=2.0) as fake:
        env = {**os.environ, "INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
        cmd = [sys.executable, "-m", "storyboard.cli", "render", str(path), "--backend", "inference", "--json"]
        # A job started in the background by a shell without job control inherits SIGINT
        # ignored (POSIX); a terminal's Ctrl-C is the default handler, so restore it.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 30
        while len(fake.submissions) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake.submissions) == 2, "the two independent shots were never submitted"
        time.sleep(0.3)  # let the journal be written (it is written before waiting)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
        journal = dict(open_cache(path).journal_entries())
        assert {d["shot"] for d in journal.values()} == {"one", "two"}
        assert not (path.parent / "out" / "film.mp4").exists()

        # The next render re-attaches to both tasks and pays only for the third shot.
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(fake.calls_to("POST", "/apps/run")) == 3
        assert (path.parent / "out" / "film.mp4").exists()
        assert list(open_cache(path).journal_entries()) == []
