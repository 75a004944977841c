"""The runner end to end.

- remote render: 20 shots (4 chains, depth 5) through the real runner and the inference
  backend against the loopback fake server with 1 s task latency: wall ÷ critical path
  of remote latency (target ≤ 1.05), and the same as local time per level of the chain
  (per-level overhead, target ≤ 50 ms at 360p);
- memory: peak RSS of the render process for 20 vs 200 shots (flat, ≤ 1.2×);
- unchanged re-render of a 20-shot storyboard: wall < 1 s and 0 backend calls, against
  the CLI start-up floor (`storyboard --help`);
- CLI start-up: `storyboard --help` (< 0.3 s) against `python -c pass`.

    python benchmarks/render.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

KEY = "sk-bench-not-a-secret"


def _board(folder: Path, chains: int, depth: int, duration: int = 3) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 360), (30, 60, 90))
    ImageDraw.Draw(img).ellipse([200, 80, 440, 280], fill=(230, 180, 60))
    img.save(folder / "start.png")
    lines = ["storyboard: 1", f"defaults: {{mode: std, duration: {duration}, sound: true}}", "shots:"]
    for c in range(chains):
        for d in range(depth):
            lines.append(f"  - id: c{c}-s{d}")
            lines.append(f'    prompt: "chain {c}, shot {d}"')
            if d == 0:
                lines.append("    image: start.png")
    path = folder / f"board-{chains}x{depth}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait4(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    from benchmarks._measure import measure

    return measure(argv, env)


class _FakeProcess:
    """The fake inference.sh in a process of its own, so that its threads do not share
    the measured process's interpreter lock (a real server is on another machine)."""

    def __init__(self, latency: float, short_side: int = 360) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fakeserver", "--key", KEY, "--latency", str(latency),
             "--short-side", str(short_side), "--heartbeat", "0.01", "--reuse-clips"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_ROOT)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.stats: dict[str, Any] = {}

    def close(self) -> None:
        import json

        out, _ = self.proc.communicate("", timeout=30)
        self.stats = json.loads(out.strip().splitlines()[-1])


def remote_rows(quick: bool) -> list[dict[str, Any]]:
    import storyboard
    from storyboard.backends.inference import InferenceBackend

    latency = 1.0
    chains, depth = (2, 3) if quick else (4, 5)
    rows: list[dict[str, Any]] = []
    fake = _FakeProcess(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Warm up: the fake renders its one clip, imports and connections happen once.
            warm = Path(tmp) / "warm"
            warm.mkdir()
            warm_backend = InferenceBackend(api_key=KEY, base_url=fake.url, poll_interval=0.05)
            asyncio.run(storyboard.Pipeline(storyboard.load(_board(warm, 1, 2)), backend=warm_backend).run())
            board = storyboard.load(_board(Path(tmp), chains, depth))
            backend = InferenceBackend(api_key=KEY, base_url=fake.url, poll_interval=0.05)
            start = time.perf_counter()
            result = asyncio.run(storyboard.Pipeline(board, backend=backend, concurrency=4).run())
            wall = time.perf_counter() - start
    finally:
        fake.close()
    generation = max(r.finished or 0 for r in result.shots.values()) - min(
        r.started or 1e18 for r in result.shots.values())
    critical = depth * latency
    n = chains * depth
    paid = fake.stats["submissions"] - 2  # less the warm-up shots
    rows.append({
        "measure": f"remote render, {n} shots depth {depth}, {latency:g} s latency: generation wall ÷ critical path",
        "storyboard": round(generation, 2), "baseline": critical, "ratio": round(generation / critical, 3),
        "target": "<= 1.05", "passed": generation / critical <= 1.05,
    })
    overhead = (generation - critical) / depth * 1000
    rows.append({
        "measure": f"remote render, {n} shots depth {depth}: per-level overhead at 360p (ms: download, hash, "
                   "last frame, store, prepare, upload, submit)",
        "storyboard": round(overhead), "baseline": None, "ratio": None,
        "target": "<= 50", "passed": overhead <= 50,
    })
    rows.append({
        "measure": f"remote render, {n} shots: whole render incl. assembly (s)",
        "storyboard": round(wall, 2), "baseline": critical, "ratio": round(wall / critical, 3),
        "target": "report", "passed": None,
    })
    rows.append({
        "measure": f"remote render, {n} shots: paid submissions (max {fake.stats['max_in_flight']} in flight)",
        "storyboard": paid, "baseline": n, "ratio": round(paid / n, 3), "target": "= 1", "passed": paid == n,
    })
    return rows


def memory_rows(quick: bool) -> list[dict[str, Any]]:
    from fakeserver import FakeInference

    sizes = (5, 20) if quick else (20, 200)
    rss: dict[int, float] = {}
    with FakeInference(api_key=KEY, latency=0.05) as fake:
        env = {**os.environ, "INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                path = _board(Path(tmp), n // 5, 5)
                _, mem, code = _wait4([sys.executable, "-m", "storyboard.cli", "render", str(path),
                                       "--backend", "inference", "--concurrency", "8"], env)
                if code != 0:
                    raise RuntimeError(f"render of {n} shots failed with exit {code}")
                rss[n] = mem
    a, b = sizes
    return [{
        "measure": f"render peak RSS, {b} vs {a} shots (MB)",
        "storyboard": round(rss[b], 1), "baseline": round(rss[a], 1), "ratio": round(rss[b] / rss[a], 3),
        "target": "<= 1.2 (flat)", "passed": rss[b] / rss[a] <= 1.2,
    }]


def rerender_rows(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "STORYBOARD_ANIMATIC_SIZE": "90", "STORYBOARD_ANIMATIC_FPS": "8"}
    with tempfile.TemporaryDirectory() as tmp:
        chains = 2 if quick else 4
        path = _board(Path(tmp), chains, 5)
        subprocess.run([sys.executable, "-m", "storyboard.cli", "render", str(path)], env=env, check=True,
                       capture_output=True)
        cli = [sys.executable, "-m", "storyboard.cli", "render", str(path), "--json"]
        t = min(_wait4(cli, env)[0] for _ in range(3))
        out = subprocess.run(cli, env=env, check=True, capture_output=True, text=True).stdout
        started = out.count('"event": "shot_started"')
        help_t = min(_wait4([sys.executable, "-m", "storyboard.cli", "--help"], env)[0] for _ in range(3))
        rows.append({
            "measure": f"unchanged re-render, {chains * 5} shots, whole CLI process (s)",
            "storyboard": round(t, 3), "baseline": round(help_t, 3), "ratio": round(t / help_t, 2),
            "target": "< 1 s", "passed": t < 1.0,
        })
        rows.append({
            "measure": f"unchanged re-render, {chains * 5} shots: backend calls",
            "storyboard": started, "baseline": 0, "ratio": None, "target": "0", "passed": started == 0,
        })
        bare = min(_wait4([sys.executable, "-c", "pass"], env)[0] for _ in range(3))
        rows.append({
            "measure": "CLI start-up: storyboard --help (s)",
            "storyboard": round(help_t, 3), "baseline": round(bare, 3), "ratio": round(help_t / bare, 2),
            "target": "< 0.3 s", "passed": help_t < 0.3,
        })
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return [*remote_rows(quick), *memory_rows(quick), *rerender_rows(quick)]


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table(run(quick="--quick" in sys.argv))
