"""The benchmark runner's own honesty: a measure that was not taken is a row that says why,
and the verdict counts it; a row judged against a baseline never passes without one."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import remote
from benchmarks.__main__ import results_markdown, run_benchmark, table_lines, verdict


@pytest.fixture
def bench_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "fakebench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "needs_missing.py").write_text("import no_such_library_h26\n\ndef run(quick):\n    return []\n")
    (package / "fine.py").write_text(
        "def run(quick):\n    return [{'measure': 'x', 'storyboard': 1, 'passed': True}]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakebench"
    for name in [m for m in sys.modules if m.startswith("fakebench")]:
        del sys.modules[name]


def test_a_benchmark_that_cannot_import_is_a_skipped_row(bench_package: str) -> None:
    rows, crashed = run_benchmark("needs_missing", quick=True, package=bench_package)
    assert not crashed
    assert len(rows) == 1 and rows[0]["passed"] is None
    assert "no_such_library_h26" in rows[0]["skipped"]
    fine, _ = run_benchmark("fine", quick=True, package=bench_package)
    line = verdict(fine + rows)
    assert line == "2 measures, 0 missed, 1 skipped: incomplete", line
    assert any("SKIPPED: cannot import no_such_library_h26" in ln for ln in table_lines(rows))
    assert verdict(fine) == "1 measures, 0 missed, 0 skipped: all passed"


def _measured(upload_bytes: int) -> remote.Measured:
    return remote.Measured(shots=8, wall=2.1, requests=24, upload_bytes=upload_bytes, bytes_saved=0,
                           max_in_flight=4)


def test_remote_rows_judged_against_the_sdk_do_not_pass_without_it() -> None:
    rows = remote.rows_for(_measured(1000), None, distinct=2, latency=1.0, app_requests=1, app_ms=3,
                           preflight=(12.0, 30.0))
    upload = next(r for r in rows if r["measure"].startswith("upload bytes"))
    assert upload["passed"] is None and upload["skipped"] == remote.NO_SDK
    with_sdk = remote.rows_for(_measured(1000), _measured(4000), distinct=2, latency=1.0, app_requests=1,
                               app_ms=3, preflight=(12.0, 30.0))
    assert next(r for r in with_sdk if r["measure"].startswith("upload bytes"))["passed"] is True
    worse = remote.rows_for(_measured(1000), _measured(3000), distinct=2, latency=1.0, app_requests=1,
                            app_ms=3, preflight=(12.0, 30.0))
    assert next(r for r in worse if r["measure"].startswith("upload bytes"))["passed"] is False


def _cell(text: str) -> Any:
    return None if text == "—" else text


def read_results(text: str) -> tuple[str, float, list[dict[str, Any]]]:
    """RESULTS.md read back into (machine, seconds, rows) as the command would have had them."""
    lines = text.split("\n")
    head = re.fullmatch(r"`python -m benchmarks` on (.*); (\d+) s in all\.", lines[2])
    assert head, lines[2]
    rows = []
    for line in lines:
        if not line.startswith("| ") or line.startswith("| measure |"):
            continue
        measure, ours, base, ratio, target, verdict_cell = line[2:-2].split(" | ")
        row = {"measure": measure, "storyboard": _cell(ours), "baseline": _cell(base), "ratio": _cell(ratio),
               "target": _cell(target), "passed": {"pass": True, "MISS": False}.get(verdict_cell)}
        if verdict_cell.startswith("SKIPPED: "):
            row["skipped"] = verdict_cell.removeprefix("SKIPPED: ")
        rows.append(row)
    return head.group(1), float(head.group(2)), rows


def test_results_md_is_written_entirely_by_the_command() -> None:
    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md").read_text()
    machine, seconds, rows = read_results(text)
    assert rows
    assert results_markdown(machine, seconds, rows) == text  # a hand-written line anywhere fails here


# ------------------------------------------------ the matrix on 100 workers (issue 29)


def _sized(films: int, **changes: Any) -> Any:
    from benchmarks.workers import Measured

    fields: dict[str, Any] = {"films": films, "workers": 100, "distinct": films * 4, "paid": films * 4,
                              "paid_distinct": films * 4, "wall": 12.0, "ideal": 10.0, "failed": 0, "waits": 3,
                              "rate_limited": 5, "s3_requests": films * 100, "takeovers": 0, "races_lost": 1,
                              "cpu": 20.0, "cores": 2}
    fields.update(changes)
    return Measured(**fields)


def _verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("wall vs the ideal", "paid runs", "claim takeovers", "S3 requests per film,")
    return {k: all(r["passed"] for r in rows if k in r["measure"]) for k in keys}  # every size's


def test_worker_rows_pass_only_when_every_figure_is_met() -> None:
    from benchmarks.workers import rows_for

    good = _verdicts(rows_for([_sized(10), _sized(1000)]))
    assert good == dict.fromkeys(good, True)
    assert _verdicts(rows_for([_sized(10), _sized(1000, wall=12.6)]))["wall vs the ideal"] is False  # < 80 %
    assert _verdicts(rows_for([_sized(10), _sized(1000, failed=1)]))["wall vs the ideal"] is False
    assert _verdicts(rows_for([_sized(10), _sized(1000, paid=4001)]))["paid runs"] is False
    assert _verdicts(rows_for([_sized(10), _sized(1000, paid_distinct=3999)]))["paid runs"] is False
    assert _verdicts(rows_for([_sized(10), _sized(1000, takeovers=2)]))["claim takeovers"] is False
    grown = _verdicts(rows_for([_sized(10), _sized(1000, s3_requests=121_000)]))
    assert grown["S3 requests per film,"] is False  # 121 per film vs 100: not flat
    failed_small = _verdicts(rows_for([_sized(10, failed=1), _sized(1000)]))
    assert failed_small["S3 requests per film,"] is False  # a size that broke (> 1 %) proves nothing flat
    assert _verdicts(rows_for([_sized(10), _sized(1000, failed=10)]))["S3 requests per film,"] is True


def test_worker_ideal_replays_films_on_the_first_free_worker() -> None:
    from benchmarks.workers import ideal_wall

    latency = {"a": 2.0, "b": 3.0, "c": 1.0, "d": 4.0}
    # film 0 (worker 0) makes a and b by 3 s; film 1 (worker 1) waits for a (2 s) and makes c;
    # film 2 takes worker 1 at 2 s and makes d: 6 s
    assert ideal_wall([["a", "b"], ["a", "c"], ["d"]], latency, workers=2) == 6.0
    assert ideal_wall([["a", "b"], ["a", "c"], ["d"]], latency, workers=3) == 4.0
    assert ideal_wall([["a", "b"]], latency, workers=1, slots=1) == 5.0  # one slot: one after the other
    # a rate limit of 1 run a second: b starts at 1 s, c at 2 s, d at 3 s (then 4 s long)
    assert ideal_wall([["a", "b"], ["c"], ["d"]], latency, workers=3, rate=(1, 1.0)) == 7.0
    assert ideal_wall([["a", "b"], ["c"], ["d"]], latency, workers=3, rate=(2, 1.0)) == 5.0


def test_worker_workload_shares_thirty_percent_of_the_slots() -> None:
    from benchmarks.workers import SHOTS, workload

    rows = workload(100)
    slots = [p for row in rows for p in row.values()]
    shared = [p for p in slots if p.startswith("a shared look")]
    assert len(slots) == 100 * SHOTS and len(shared) == 150
    assert all(len(set(row.values())) == SHOTS for row in rows)  # never one shot twice in a film
    assert len(set(shared)) == 30 and workload(100) == rows  # each used by ~5 films; seeded
