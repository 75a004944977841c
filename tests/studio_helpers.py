"""Helpers for the studio tests: a real `storyboard studio` process and a real Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.environ.get("STORYBOARD_SCREENSHOTS")  # a folder: keep the screenshots there (docs/img)


@dataclass
class Studio:
    """A running studio: its base URL and token."""

    url: str
    token: str
    process: subprocess.Popen[str]

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kw)  # type: ignore[arg-type]

    def post(self, path: str, json: object, **kw: object) -> httpx.Response:
        headers = {"X-Studio-Token": self.token, **dict(kw.pop("headers", {}))}  # type: ignore[call-overload]
        return httpx.post(self.base + path, json=json, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


def ten_shots(folder: Path, *, takes: bool = False) -> Path:
    """A 10-shot animatic board of independent shots; with ``takes``, s1 has 2 takes and s2,
    s3 chain from it (a shot with no ``image:`` starts on the last frame of the one before)."""
    lines = ["# ten shots, for the studio tests", "storyboard: 1", "title: Ten", "backend: animatic",
             "defaults:", "  app: klingai/video-v3", "  duration: 3", "vars:", "  style: golden hour  # the look",
             "shots:"]
    for i in range(10):
        lines += [f"  - id: s{i}", f'    prompt: "Shot {i} of the harbor, {{{{ style }}}}"']
        if takes and i == 1:
            lines.append("    takes: 2")
        if takes and i in (2, 3):
            lines.append(f'    image: "@s{i - 1}:last"')
        elif i:
            lines.append("    image: null  # its own start: not chained to the shot before")
    path = folder / "ten.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def studio(board: Path, *extra: str) -> Iterator[Studio]:
    """``storyboard studio BOARD --no-browser`` in its own process, stopped with Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", "from storyboard.cli import main; main()", "studio",
                             str(board), "--no-browser", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("storyboard studio: http://127.0.0.1:"), (line, proc.stderr.read() if proc.stderr else "")
        url = line.split(": ", 1)[1].strip()
        yield Studio(url=url, token=url.split("token=", 1)[1], process=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium(width: int = 1280) -> Iterator[object]:
    """A page in the system's headless Chromium (Playwright drives it; nothing downloaded)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            yield page
        finally:
            browser.close()
