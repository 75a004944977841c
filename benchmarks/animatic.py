"""Animatic render speed: render time / film length for 720p shots.

    python benchmarks/animatic.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.frames import print_table
from storyboard.media import animatic_clip

ROOT = Path(__file__).resolve().parent.parent
HARBOR = ROOT / "examples" / "assets" / "harbor.png"


async def _render(tmp: Path, shots: int, seconds: float) -> float:
    start = time.perf_counter()
    for i in range(shots):
        kind = i % 3  # title card, start image, start + end image
        await animatic_clip(
            tmp / f"shot{i}.mp4", duration=seconds, aspect_ratio="16:9",
            start_image=HARBOR if kind else None, end_image=HARBOR if kind == 2 else None,
            title=f"shot{i}", text="A lighthouse keeper looks up at the sky. " * 4,
            sound=True, seed=str(i),
        )  # fmt: skip
    return time.perf_counter() - start


def run(quick: bool = False) -> list[dict[str, object]]:
    shots, seconds = (3, 2.0) if quick else (10, 5.0)
    with tempfile.TemporaryDirectory() as tmp:
        elapsed = asyncio.run(_render(Path(tmp), shots, seconds))
    film = shots * seconds
    ratio = elapsed / film
    return [{
        "measure": f"animatic {shots} x {seconds:g} s 720p: render s / film s",
        "storyboard": round(elapsed, 2), "baseline": film,
        "ratio": round(ratio, 3), "target": "<= 0.5", "passed": ratio <= 0.5,
    }]  # fmt: skip


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
