"""--reroll-drifted N: a chained shot whose seam drifted is generated again (new takes, each
cached), the best-scoring take is kept for the film and the descendants, a pin wins, and
every reroll is counted against --budget before it is paid."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.backends.base import ShotContext
from storyboard.backends.inference import InferenceBackend
from storyboard.cli import main
from storyboard.events import Event, Warning_
from storyboard.request import ShotRequest
from storyboard.runner import Pipeline
from storyboard.takes import lock_path
from tests.media_helpers import decode_all, psnr
from tests.recording import RecordingBackend

BOARD = """
storyboard: 1
defaults: {{duration: 3, mode: std, sound: false}}
{drift}
shots:
  - id: a
    prompt: a harbor at dusk
    image: start.png
  - id: b
    prompt: the keeper looks up
  - id: c
    prompt: a storm gathers
"""


class Recorder(RecordingBackend):
    """The animatic at a small size, keeping (shot, take) of each call; take 1 of the shots
    in ``drift`` ignores its start frame, as a model that drifts does."""

    def __init__(self, drift: tuple[str, ...] = (), **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.short_side, self.fps = 90, 8
        self.drift = drift
        self.takes: list[tuple[str, int]] = []

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        self.takes.append((request.shot_id, request.take))
        if request.shot_id in self.drift and request.take == 1:
            request = dataclasses.replace(request, image=None)
        return await super().generate(request, ctx)


def _render(path: Path, backend: RecordingBackend, events: list[Event] | None = None,
            **options: object) -> storyboard.RenderResult:
    pipeline = Pipeline(storyboard.load(path), backend=backend, cache_dir=path.parent / "cache",
                        on_event=events.append if events is not None else None, **options)  # type: ignore[arg-type]
    return asyncio.run(pipeline.run())


@pytest.fixture
def board(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Callable[[str], Path]:
    make_image("start.png")
    return lambda drift="": write_board(BOARD.format(drift=drift))


def test_a_drifted_shot_is_rerolled_until_a_take_holds_and_descendants_chain_from_it(
    board: Callable[[str], Path],
) -> None:
    path = board("")
    events: list[Event] = []
    backend = Recorder(drift=("b",))
    result = _render(path, backend, events, reroll_drifted=3)
    # b's take 1 drifted; its first reroll (take 2) holds, so rerolling stops there
    assert sorted(backend.takes) == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    rerolls = result.shots["b"].facts["rerolls"]
    assert [(r["take"], r["drifted"], r["kept"]) for r in rerolls] == [(1, True, False), (2, False, True)]
    assert rerolls[1]["psnr"] > rerolls[0]["psnr"]
    kept = result.shots["b#2"].clip
    assert kept is not None and result.shots["b"].clip == kept and result.shots["b"].facts["kept_take"] == 2
    assert not result.shots["b"].facts["seam"]["drifted"]  # the film's seam is the kept take's
    assert any(isinstance(e, Warning_) and "rerolled 1×, kept take 2" in e.message for e in events)
    # the film and c use the kept take: c starts on the last frame of b's take 2
    clip_b = decode_all(kept)
    film = decode_all(result.film)  # type: ignore[arg-type]
    n_a = len(decode_all(result.shots["a"].clip))  # type: ignore[arg-type]
    assert psnr(film[n_a], clip_b[1]) > 35
    c_first = decode_all(result.shots["c"].clip)[0]  # type: ignore[arg-type]
    assert psnr(c_first, clip_b[-1]) > 30
    report = json.loads(result.report.read_text())  # type: ignore[union-attr]
    shot_b = next(s for s in report["shots"] if s["id"] == "b")
    assert [r["kept"] for r in shot_b["rerolls"]] == [False, True] and shot_b["clip"] == str(kept)
    from storyboard.report import write_report_html

    page = write_report_html(storyboard.load(path), result.report, cache_dir=path.parent / "cache")  # type: ignore[arg-type]
    html = page.read_text()
    assert "rerolls of <code>b</code>" in html
    assert f"take 2: PSNR {rerolls[1]['psnr']} dB" in html and "holds · <b>kept</b>" in html
    assert f"take 1: PSNR {rerolls[0]['psnr']} dB" in html

    # the rerolls are cached: the same render again costs 0 generations, and so does the plan
    again = Recorder(drift=("b",))
    second = _render(path, again, reroll_drifted=3)
    assert again.takes == [] and second.shots["b"].clip == kept
    plan = Pipeline(storyboard.load(path), backend=again, cache_dir=path.parent / "cache",
                    reroll_drifted=3).plan()
    assert [s.status for s in plan.shots] == ["cached", "cached", "cached"]


def test_every_reroll_drifts_so_n_are_made_and_the_best_is_kept(board: Callable[[str], Path]) -> None:
    path = board("drift: {psnr: 100}")  # strict: no lossy seam holds
    backend = Recorder()
    result = _render(path, backend, reroll_drifted=2)
    assert sorted(backend.takes) == [("a", 1), ("b", 1), ("b", 2), ("b", 3), ("c", 1), ("c", 2), ("c", 3)]
    for shot in ("b", "c"):
        rows = result.shots[shot].facts["rerolls"]
        assert len(rows) == 3 and sum(r["kept"] for r in rows) == 1
        best = max(rows, key=lambda r: (r["psnr"], -r["histogram"]))  # all drifted: the highest PSNR
        assert best["kept"]
        assert result.shots[shot].clip == Path(best["clip"])
    again = Recorder()
    _render(path, again, reroll_drifted=2)
    assert again.takes == []


def test_without_the_flag_nothing_is_rerolled(board: Callable[[str], Path]) -> None:
    path = board("drift: {psnr: 100}")
    backend = Recorder()
    result = _render(path, backend)
    assert sorted(backend.takes) == [("a", 1), ("b", 1), ("c", 1)]
    assert result.shots["b"].facts["seam"]["drifted"] and "rerolls" not in result.shots["b"].facts


def test_a_pinned_take_wins(board: Callable[[str], Path]) -> None:
    path = board("drift: {psnr: 100}")
    path.write_text(path.read_text().replace("prompt: the keeper looks up", "prompt: the keeper looks up\n    takes: 2"))
    lock_path(path).write_text("picks:\n  b: 2\n")
    events: list[Event] = []
    backend = Recorder()
    _render(path, backend, events, reroll_drifted=2)
    assert ("b", 3) not in backend.takes and ("c", 2) in backend.takes  # b pinned, c rerolled
    assert any(isinstance(e, Warning_) and "pin wins" in e.message and e.shot == "b" for e in events)
    # picking take 1 of a one-take shot pins it as well
    out = CliRunner().invoke(main, ["pick", str(path), "c", "1"])
    assert out.exit_code == 0, out.output
    assert "c: 1" in lock_path(path).read_text()
    again = Recorder()
    _render(path, again, reroll_drifted=3)
    assert again.takes == []  # c keeps take 1 (cached), and is not rerolled further
    c_rows = storyboard.load(path).lock
    assert c_rows is not None and c_rows.take("c") == 1 and "c" in c_rows.picks


def test_plan_shows_the_worst_case(board: Callable[[str], Path]) -> None:
    path = board("")
    out = CliRunner().invoke(main, ["plan", str(path), "--reroll-drifted", "2"])
    assert out.exit_code == 0, out.output
    assert "+ up to 2 rerolls per chained shot: $0 (2 chained shots" in out.output
    paid = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--reroll-drifted", "2", "--json"])
    assert paid.exit_code == 0, paid.output
    data = json.loads(paid.output)
    prices = {s["id"]: Decimal(s["price"]) for s in data["shots"]}
    assert Decimal(data["reroll_drifted"]["worst_case"]) == 2 * (prices["b"] + prices["c"]) > 0
    plain = CliRunner().invoke(main, ["plan", str(path)])
    assert "rerolls" not in plain.output
    bad = CliRunner().invoke(main, ["render", str(path), "--reroll-drifted", "-1"])
    assert bad.exit_code == 2 and "--reroll-drifted" in bad.output
    with pytest.raises(storyboard.StoryboardError, match="reroll_drifted"):
        Pipeline(storyboard.load(path), reroll_drifted=99)


# ----------------------------------------------------------------- paid: the budget

KEY = "sk-test-reroll-51ab"
PAID = """
storyboard: 1
defaults: {mode: std, duration: 3}
drift: {psnr: 100}
shots:
  - id: harbor
    prompt: a harbor at dusk
    image: start.png
  - id: keeper
    prompt: the keeper looks up
"""


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.05) as server:
        yield server


def test_a_budget_for_one_reroll_pays_for_exactly_one(
    fake: FakeInference, write_board: Callable[..., Path], make_image: Callable[..., Path]
) -> None:
    make_image("start.png")
    path = write_board(PAID)
    backend = InferenceBackend(api_key=KEY, base_url=fake.url)
    plan = storyboard.load(path).plan(backend=backend)
    one = plan["keeper"].price
    assert plan.cost is not None and one is not None
    budget = plan.cost + one + one / 2  # the planned shots and one reroll, not two
    events: list[Event] = []
    pipeline = Pipeline(storyboard.load(path), backend=backend, cache_dir=path.parent / "cache", budget=budget,
                        on_event=events.append, reroll_drifted=3)
    result = asyncio.run(pipeline.run())
    assert len(fake.submissions) == 3  # harbor, keeper, one reroll of keeper
    stops = [e.message for e in events if isinstance(e, Warning_) and "stopped rerolling" in e.message]
    assert len(stops) == 1 and "reroll take 3 not made" in stops[0] and "--budget" in stops[0]
    assert result.cost == plan.cost + one <= budget
    assert result.shots["keeper"].facts["reroll_stopped"] == stops[0]
    assert len(result.shots["keeper"].facts["rerolls"]) == 2
    assert Decimal(str(result.cost)) <= budget


class FailingRerolls(Recorder):
    """Every take after the first of ``b`` is refused by the model."""

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        if request.shot_id == "b" and request.take > 1:
            self.takes.append((request.shot_id, request.take))
            raise storyboard.TaskFailed("the model refused this prompt (test)", shot="b")
        return await super().generate(request, ctx)


def test_a_failed_reroll_keeps_the_best_take_so_far_and_the_film(board: Callable[[str], Path]) -> None:
    path = board("drift: {psnr: 100}")
    events: list[Event] = []
    backend = FailingRerolls()
    result = _render(path, backend, events, reroll_drifted=2)
    assert ("b", 2) in backend.takes and result.film is not None
    assert result.shots["b#2"].status == "skipped" and "reroll failed" in (result.shots["b#2"].error or "")
    assert [r["take"] for r in result.shots["b"].facts["rerolls"] if r["kept"]] == [1]
    assert any(isinstance(e, Warning_) and "reroll take 2 failed" in e.message for e in events)


def test_the_render_command_takes_the_flag(board: Callable[[str], Path]) -> None:
    path = board("drift: {psnr: 100}")
    dry = CliRunner().invoke(main, ["render", str(path), "--reroll-drifted", "1", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "+ up to 1 rerolls per chained shot: $0" in dry.output and "nothing paid" in dry.output
    out = CliRunner().invoke(main, ["render", str(path), "--reroll-drifted", "1", "--json"],
                             env={"STORYBOARD_ANIMATIC_SIZE": "90", "STORYBOARD_ANIMATIC_FPS": "8"})
    assert out.exit_code == 0, out.output
    events = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    assert {e["shot"] for e in events if e["event"] == "shot_done"} >= {"b#2", "c#2"}
    assert any(e["event"] == "warning" and "rerolled 1×" in e["message"] for e in events)


def test_the_plan_view_is_the_cache_for_everything_else(tmp_path: Path) -> None:
    from storyboard.cache import Cache
    from storyboard.runner._reroll import RerollView

    cache = Cache(tmp_path / "cache")
    view = RerollView(cache, "2-20-0.35")
    assert view.prepared_path("voice-x", ".wav") == cache.prepared_path("voice-x", ".wav")  # audio in plans
    assert view.clip_hash("0" * 64) is None
