"""Assembly progress: monotonic, "100%" once and only when the film is done, and no long
silent step after it (drawing text and the loudness check report their progress)."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import storyboard
from storyboard.events import AssemblyProgress, Event, FilmDone
from storyboard.progress import PlainLines

ROOT = Path(__file__).resolve().parent.parent


def test_plain_lines_print_one_hundred_percent_once_and_only_at_the_end() -> None:
    out = io.StringIO()
    display = PlainLines(stream=out)
    for fraction in (0.0, 0.3, 0.6, 0.996, 0.9999, 1.0, 1.0):
        display(AssemblyProgress(fraction=fraction))
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines.count("assembling 100%") == 1 and lines[-1] == "assembling 100%", lines


def test_the_narrated_render_reports_progress_to_its_end(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    seen: list[tuple[float, Event]] = []
    storyboard.render(tmp_path / "examples" / "narrated.yaml", backend="animatic", output=tmp_path / "film.mp4",
                      cache_dir=tmp_path / "cache", on_event=lambda e: seen.append((time.monotonic(), e)))
    steps = [(t, e.fraction) for t, e in seen if isinstance(e, AssemblyProgress)]
    fractions = [f for _, f in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert fractions.count(1.0) == 1 and fractions[-1] == 1.0
    done = next(t for t, e in seen if isinstance(e, FilmDone))
    assembling = steps[-1][0] - steps[0][0]
    # what runs after "100%" (the report) is short next to the assembly: no silent step
    assert done - steps[-1][0] < 0.25 * assembling, (done - steps[-1][0], assembling)
