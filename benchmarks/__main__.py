"""Run every benchmark, print one table, write benchmarks/RESULTS.md and results.json.

    python -m benchmarks [--quick] [--only NAME ...]

Each benchmark makes its own inputs in a temp folder and measures storyboard against a
baseline run in the same process (ratios, not absolute timings). Misses are reported;
the exit code is 0 unless a benchmark crashed.

A measure that could not be taken (a benchmark whose import failed, a baseline whose
library is missing) is a row that says why (``skipped``), and the verdict counts it: a
run with skipped rows is reported as incomplete, never as all passed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

NAMES = ["plan_scale", "frames", "assemble", "animatic", "remote", "render", "mixed_board", "whole_render", "scale",
         "workers", "studio"]
HERE = Path(__file__).resolve().parent


def _verdict_cell(r: dict[str, Any]) -> str:
    if r.get("skipped"):
        return f"SKIPPED: {r['skipped']}"
    return "pass" if r.get("passed") else ("report" if r.get("passed") is None else "MISS")


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "pass" if v else "MISS"
    return str(v)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    head = ["measure", "storyboard", "baseline", "ratio", "target", "pass/miss"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.get("measure"), r.get("storyboard"), r.get("baseline"), r.get("ratio"), r.get("target"),
                 _verdict_cell(r)]
        out.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n".join(table_lines(rows)))


def verdict(rows: list[dict[str, Any]]) -> str:
    """One line: how many measures, missed and skipped; 'incomplete' when any was skipped."""
    misses = sum(1 for r in rows if r.get("passed") is False)
    skipped = sum(1 for r in rows if r.get("skipped"))
    state = "incomplete" if skipped else ("all passed" if not misses else "missed some")
    return f"{len(rows)} measures, {misses} missed, {skipped} skipped: {state}"


def results_markdown(machine: str, seconds: float, rows: list[dict[str, Any]]) -> str:
    """RESULTS.md, every line of it (hand-written notes go to NOTES.md)."""
    md = ["# Benchmark results", "", f"`python -m benchmarks` on {machine}; {seconds:.0f} s in all.",
          "Every line of this file is written by the command; ratios are storyboard ÷ a baseline "
          "measured in the same run. Notes by hand: NOTES.md.", "",
          *table_lines(rows), "", verdict(rows), ""]
    return "\n".join(md)


def run_benchmark(name: str, quick: bool, package: str = "benchmarks") -> tuple[list[dict[str, Any]], bool]:
    """(rows, crashed) of one benchmark; an import that fails is a skipped row naming why."""
    try:
        mod = importlib.import_module(f"{package}.{name}")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        return [{"measure": f"{name}: every measure", "benchmark": name, "passed": None,
                 "skipped": f"cannot import {missing} ({exc})"}], False
    try:
        got: list[dict[str, Any]] = mod.run(quick=quick)
    except Exception:
        traceback.print_exc()
        return [{"measure": f"{name}: crashed", "benchmark": name, "passed": False}], True
    for r in got:
        r.setdefault("benchmark", name)
    return got, False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--quick", action="store_true", help="a ~30 s version (CI)")
    ap.add_argument("--only", action="append", choices=NAMES)
    ap.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    # Byte-compile the package as an installed one would be (PYTHONDONTWRITEBYTECODE may
    # be set, and an editable install is otherwise recompiled by every process measured).
    import compileall

    compileall.compile_dir(str(HERE.parent / "storyboard"), quiet=1)
    rows: list[dict[str, Any]] = []
    crashed = []
    start = time.perf_counter()
    for name in args.only or NAMES:
        t0 = time.perf_counter()
        got, broke = run_benchmark(name, args.quick)
        if broke:
            crashed.append(name)
        rows.extend(got)
        print(f"# {name}: {len(got)} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    total = time.perf_counter() - start
    print_table(rows)
    print(f"\n{verdict(rows)}; {total:.0f} s, {os.cpu_count()} cores")
    if not args.no_write and not args.quick:
        meta = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        (HERE / "RESULTS.md").write_text(results_markdown(meta, total, rows))
        (HERE / "results.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1, default=str))
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
