"""`storyboard plan` on generated storyboards of 10 … 10,000 shots (a distinct prompt per
shot, chains with branches): wall time and peak memory of the whole process (``--json``,
and the table at 1,000 shots), against a process that only parses the same YAML (the
floor any tool pays).

    python benchmarks/plan_scale.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any


def make_storyboard(folder: Path, shots: int) -> Path:
    """A realistic board: a distinct prompt per shot, chains of 5 (each shot starts on the
    previous one's last frame) with a branch off every chain's head (frame references)."""
    lines = [
        "storyboard: 1",
        "title: scale test",
        "defaults: {mode: std, duration: 5}",
        "vars: {style: cinematic, hero: a keeper}",
        "shots:",
    ]
    for i in range(shots):
        lines.append(f"  - id: s{i}")
        lines.append(f'    prompt: "Shot {i}: {{{{ hero }}}} walks, {{{{ style }}}}, {{{{ shot.id }}}}"')
        if i % 5 == 0:
            lines.append("    image: null" if i % 10 == 0 else f"    image: '@s{max(0, i - 5)}:first'")
        if i % 7 == 3:
            lines.append("    transition: {type: dissolve, duration: 0.5}")
    path = folder / f"board{shots}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one child process."""
    from benchmarks._measure import measure as run_measured

    seconds, rss, code = run_measured(argv)
    if code != 0:
        raise RuntimeError(f"{argv} failed with exit {code}")
    return seconds, rss


def run(quick: bool = False) -> list[dict[str, Any]]:
    sizes = (10, 1000) if quick else (10, 100, 1000, 10000)
    targets = {1000: (1.0, 150.0), 10000: (10.0, None)}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = make_storyboard(Path(tmp), n)
            cli = [sys.executable, "-m", "storyboard.cli", "plan", str(path), "--json"]
            parse = [sys.executable, "-c", f"import yaml; yaml.load(open({str(path)!r}), Loader=yaml.CSafeLoader)"]
            t, mem = min(measure(cli) for _ in range(1 if n >= 10000 else 3))
            tb, memb = min(measure(parse) for _ in range(1 if n >= 10000 else 3))
            t_target, m_target = targets.get(n, (None, None))
            rows.append({
                "measure": f"plan, {n} shots: wall (s)",
                "storyboard": round(t, 3), "baseline": round(tb, 3), "ratio": round(t / tb, 2),
                "target": f"< {t_target:g} s" if t_target else "report",
                "passed": None if t_target is None else t < t_target,
            })
            if n == 1000:  # what a user types: the table (a summary and the first/last rows)
                table = [sys.executable, "-m", "storyboard.cli", "plan", str(path)]
                tt, _ = min(measure(table) for _ in range(3))
                rows.append({
                    "measure": f"plan, {n} shots, table: wall (s)",
                    "storyboard": round(tt, 3), "baseline": round(tb, 3), "ratio": round(tt / tb, 2),
                    "target": "< 1 s", "passed": tt < 1.0,
                })
            rows.append({
                "measure": f"plan, {n} shots: peak RSS (MB)",
                "storyboard": round(mem, 1), "baseline": round(memb, 1), "ratio": round(mem / memb, 2),
                "target": f"< {m_target:g} MB" if m_target else "report",
                "passed": None if m_target is None else mem < m_target,
            })
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table(run(quick="--quick" in sys.argv))
