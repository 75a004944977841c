"""Whole render with the animatic backend: python start to film written, as a ratio to the
film's length (target <= 0.5x real time on 2 cores).

The storyboard: 5 shots, ~12.5 s of film, with frame references (``@a:first``,
``@a:2.5``, a chain), a dissolve, a ducked music track and loudness normalization. Each
run starts from an empty cache: everything is generated, framed, assembled and measured.
The per-phase rows come from the render's own ``--json`` events.

    python benchmarks/whole_render.py [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

ASSETS = _ROOT / "examples" / "assets"

BOARD = """\
storyboard: 1
title: Whole render
defaults: {mode: std, duration: 3, sound: true}
shots:
  - id: a
    image: harbor.png
    prompt: Boats at their moorings in a quiet harbor at dusk.
  - id: b
    prompt: A lighthouse keeper walks along the harbor wall.
  - id: c
    image: "@a:2.5"
    prompt: The same boats, closer, rocking gently.
  - id: e
    prompt: Gulls resting on the harbor wall.
  - id: d
    image: "@a:first"
    end_image: "@e:first"
    duration: 4
    transition: {type: dissolve, duration: 0.5}
    prompt: The harbor again, the gulls landing one by one.
cut: [a, b, c, d]
audio:
  - file: score.m4a
    volume: 0.6
    duck: true
loudness: -14
"""


def _make(folder: Path) -> Path:
    shutil.copy(ASSETS / "harbor.png", folder / "harbor.png")
    shutil.copy(ASSETS / "score.m4a", folder / "score.m4a")
    path = folder / "board.yaml"
    path.write_text(BOARD)
    return path


def _phases(events: list[dict[str, Any]], wall: float) -> dict[str, float]:
    """Seconds per phase from the render's JSON events (``t`` is seconds since its start)."""
    times = {
        e.get("event"): e.get("t") for e in events if isinstance(e.get("t"), int | float)
    }
    starts = [e["t"] for e in events if e.get("event") == "shot_started" and "t" in e]
    ends = [e["t"] for e in events if e.get("event") == "shot_finished" and "t" in e]
    assembly = [e["t"] for e in events if e.get("event") == "assembly_progress" and "t" in e]
    out: dict[str, float] = {}
    if starts and ends:
        out["generation (first shot start to last shot end)"] = max(ends) - min(starts)
    if assembly:
        out["assembly incl. loudness"] = max(assembly) - min(assembly)
    if times:
        out["python start to first event"] = wall - (max(v for v in times.values() if v is not None))
    return out


def run(quick: bool = False) -> list[dict[str, Any]]:
    from benchmarks._measure import measure
    from storyboard.media import probe

    repeats = 1 if quick else 3
    best = float("inf")
    film_seconds = 0.0
    env = {**os.environ}
    env.pop("STORYBOARD_ANIMATIC_SIZE", None)
    env.pop("STORYBOARD_ANIMATIC_FPS", None)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            board = _make(folder)
            cmd = [sys.executable, "-m", "storyboard.cli", "render", str(board),
                   "--cache-dir", str(folder / "cache"), "-o", str(folder / "film.mp4")]
            wall, _, code = measure(cmd, env)
            if code != 0:
                raise RuntimeError(f"whole render failed with exit {code}")
            best = min(best, wall)
            film_seconds = probe(folder / "film.mp4").duration
    ratio = best / film_seconds
    return [{
        "measure": f"whole render, animatic: 5 shots, {film_seconds:.2f} s film, python start to film written (s)",
        "storyboard": round(best, 2), "baseline": round(film_seconds, 2), "ratio": round(ratio, 3),
        "target": "<= 0.5", "passed": ratio <= 0.5,
    }]  # fmt: skip


def phases(keep: Path | None = None) -> dict[str, float]:
    """One render with ``--json``, timed per phase (for the notes; not a benchmark row)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        board = _make(folder)
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "storyboard.cli", "render", str(board), "--json",
             "--cache-dir", str(folder / "cache"), "-o", str(folder / "film.mp4")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        wall = time.perf_counter() - start
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {"wall": wall, **_phases(events, wall)}


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    if "--phases" in sys.argv:
        print(json.dumps(phases(), indent=1))
    else:
        print_table(run(quick="--quick" in sys.argv))
