"""Scheduling a mixed board: one chain of 8 and 12 independent shots, 4 in flight, 1 s
task latency (the loopback fake server, in a process of its own).

The chain is the critical path (8 × 1 s); the 12 independent shots fit beside it. The
runner starts the ready shot with the longest remaining path first (and passes a
finished shot's slot to its chained child), so the chain never queues behind shots that
can wait: target wall ÷ critical path ≤ 1.15. The baseline, measured in the same run
against the same server, is first-ready order (first come, first served), which lets
the chain wait behind the independent shots.

    python benchmarks/mixed_board.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.render import KEY, _FakeProcess  # noqa: E402
from storyboard.runner import ORDERS, Order  # noqa: E402

CHAIN, INDEPENDENT, CONCURRENCY, LATENCY, TARGET = 8, 12, 4, 1.0, 1.15


def board_text(chain: int = CHAIN, independent: int = INDEPENDENT) -> str:
    """The chain first in the file (first-ready then starts it at once), then the rest."""
    lines = ["storyboard: 1", "defaults: {mode: std, duration: 3, sound: false}", "shots:"]
    for i in range(chain):
        image = "null" if i == 0 else f"'@c{i - 1}:last'"
        lines.append(f"  - {{id: c{i}, prompt: 'the chain, shot {i}', image: {image}}}")
    for i in range(independent):
        lines.append(f"  - {{id: i{i}, prompt: 'an independent shot {i}', image: null}}")
    return "\n".join(lines) + "\n"


def _generation_wall(folder: Path, url: str, order: Order) -> float:
    """One render's generation wall: the first shot's start to the last shot's end."""
    import storyboard
    from storyboard.backends.inference import InferenceBackend

    folder.mkdir(parents=True)
    path = folder / "mixed.yaml"
    path.write_text(board_text())
    backend = InferenceBackend(api_key=KEY, base_url=url, poll_interval=0.05)
    result = asyncio.run(storyboard.Pipeline(storyboard.load(path), backend=backend, concurrency=CONCURRENCY,
                                             order=order, report=False).run())
    shots = [r for r in result.shots.values() if r.started and r.finished]
    assert len(shots) == CHAIN + INDEPENDENT, [r.id for r in result.shots.values() if not r.finished]
    return max(r.finished or 0.0 for r in shots) - min(r.started or 0.0 for r in shots)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Longest-path-first and first-ready, alternating on one server (``quick``: one pair)."""
    pairs = 1 if quick else 2
    walls: dict[Order, list[float]] = {order: [] for order in ORDERS}
    fake = _FakeProcess(LATENCY)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            warm = Path(tmp) / "warm"  # imports, connections and the fake's clip, once
            warm.mkdir()
            _generation_wall_warm(warm, fake.url)
            for k in range(pairs):
                for order in ORDERS if k % 2 == 0 else ORDERS[::-1]:
                    walls[order].append(_generation_wall(Path(tmp) / f"{order}-{k}", fake.url, order))
    finally:
        fake.close()
    critical = CHAIN * LATENCY
    ours, base = min(walls["longest-path"]), min(walls["first-ready"])
    return [{
        "measure": f"mixed board (a chain of {CHAIN} + {INDEPENDENT} independent shots, {CONCURRENCY} in flight, "
                   f"{LATENCY:g} s latency): generation wall ÷ critical path ({critical:g} s), longest-path-first; "
                   "baseline first-ready",
        "storyboard": round(ours / critical, 3), "baseline": round(base / critical, 3),
        "ratio": round(ours / base, 3), "target": f"≤ {TARGET}", "passed": ours / critical <= TARGET,
    }]


def _generation_wall_warm(folder: Path, url: str) -> None:
    import storyboard
    from storyboard.backends.inference import InferenceBackend

    path = folder / "warm.yaml"
    path.write_text(board_text(2, 1))
    backend = InferenceBackend(api_key=KEY, base_url=url, poll_interval=0.05)
    asyncio.run(storyboard.Pipeline(storyboard.load(path), backend=backend, report=False).run())


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv[1:]):
        print(row)
