"""Whole render with the animatic backend: python start to film written, as a ratio to the
film's length (target <= 0.5x real time on 2 cores).

The storyboard: 5 shots, ~12.5 s of film, with frame references (``@a:first``,
``@a:2.5``, a chain), a dissolve, a ducked music track and loudness normalization. Each
run starts from an empty cache: everything is generated, framed, assembled and measured.
The per-phase rows come from when the render's ``--json`` events arrive.

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


def _phases(folder: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall seconds per phase of one render, from when its ``--json`` events arrive."""
    cmd = [sys.executable, "-m", "storyboard.cli", "render", str(folder / "board.yaml"), "--json",
           "--cache-dir", str(folder / "cache"), "-o", str(folder / "film.mp4")]
    start = time.perf_counter()
    seen: dict[str, float] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line).get("event", "")
            seen.setdefault(event, time.perf_counter() - start)
            if event == "shot_done":
                seen["last shot_done"] = time.perf_counter() - start
    end = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"whole render failed with exit {proc.returncode}")
    return {
        "python start, import, validate, plan": seen["render_started"],
        "generate 5 shots (4 deep) incl. frame extraction": seen["last shot_done"] - seen["render_started"],
        "assemble incl. loudness": seen["film_done"] - seen["last shot_done"],
        "exit": end - seen["film_done"],
    }


def _render(tmp: Path, name: str, env: dict[str, str]) -> tuple[float, float]:
    from benchmarks._measure import measure
    from storyboard.media import probe

    folder = tmp / name
    folder.mkdir()
    board = _make(folder)
    cmd = [sys.executable, "-m", "storyboard.cli", "render", str(board),
           "--cache-dir", str(folder / "cache"), "-o", str(folder / "film.mp4")]
    wall, _, code = measure(cmd, env)
    if code != 0:
        raise RuntimeError(f"whole render failed with exit {code}")
    return wall, probe(folder / "film.mp4").duration


def run(quick: bool = False) -> list[dict[str, Any]]:
    repeats = 1 if quick else 3
    rows: list[dict[str, Any]] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("STORYBOARD_ANIMATIC_")}
    # the default preview size, then the small one the CI workflow in docs/ci.md uses
    for label, env in (("default 720p", base), ("360p", {**base, "STORYBOARD_ANIMATIC_SIZE": "360"})):
        with tempfile.TemporaryDirectory() as tmp:
            runs = [_render(Path(tmp), f"run{i}", env) for i in range(repeats)]
            wall, film = min(w for w, _ in runs), runs[0][1]
            ratio = wall / film
            rows.append({
                "measure": f"whole render, animatic {label}: python start to film written, 5 shots, "
                           f"{film:.2f} s film (s)",
                "storyboard": round(wall, 2), "baseline": round(film, 2), "ratio": round(ratio, 3),
                "target": "<= 0.5", "passed": ratio <= 0.5,
            })  # fmt: skip
            if label.startswith("default"):
                folder = Path(tmp) / "phases"
                folder.mkdir()
                _make(folder)
                for phase, seconds in _phases(folder, env).items():
                    rows.append({"measure": f"  whole render {label}: {phase} (s)",
                                 "storyboard": round(seconds, 2), "target": "report", "passed": None})
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table(run(quick="--quick" in sys.argv))
