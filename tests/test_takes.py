"""Takes: N clips of a shot, each its own cache entry, a committed lock file picking one,
descendants chaining from the pick, every take counted in the plan, and bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from storyboard.cli import main
from storyboard.errors import SpecError, StoryboardError
from storyboard.events import Event, Warning_
from storyboard.runner import Pipeline
from storyboard.takes import lock_path, pick, read_lock, take_seed, write_lock
from tests.media_helpers import decode_all, psnr
from tests.recording import RecordingBackend

BOARD = """
storyboard: 1
defaults: {duration: 3, mode: std, sound: false}
shots:
  - id: a
    prompt: a harbor at dusk
    image: start.png
    takes: 3
  - id: b
    prompt: the keeper looks up
  - id: c
    prompt: a storm gathers
"""


class Recorder(RecordingBackend):
    """The animatic at a small size, keeping each request."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.short_side, self.fps = 90, 10
        self.takes: list[tuple[str, int]] = []

    async def generate(self, request: storyboard.ShotRequest, ctx: storyboard.ShotContext) -> Path:
        self.takes.append((request.shot_id, request.take))
        return await super().generate(request, ctx)


@pytest.fixture
def film(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("start.png")
    return write_board(BOARD)


def _render(path: Path, backend: Recorder, events: list[Event] | None = None) -> storyboard.RenderResult:
    board = storyboard.load(path)
    pipeline = Pipeline(board, backend=backend, cache_dir=path.parent / "cache",
                        on_event=events.append if events is not None else None)
    return asyncio.run(pipeline.run())


def test_takes_are_generated_picked_and_descendants_chain_from_the_pick(film: Path) -> None:
    events: list[Event] = []
    first = Recorder()
    one = _render(film, first, events)
    assert sorted(first.takes) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1)]
    clips = {n: one.shots["a" if n == 1 else f"a#{n}"].clip for n in (1, 2, 3)}
    assert len({c.stem for c in clips.values() if c}) == 3  # each take is its own clip
    frames = {n: decode_all(c)[-1] for n, c in clips.items() if c}
    assert psnr(frames[1], frames[2]) < 40  # the animatic moves each take its own way
    assert any(isinstance(e, Warning_) and "none picked" in e.message for e in events)
    report = json.loads(one.report.read_text())  # type: ignore[union-attr]
    assert [t["take"] for t in report["shots"][0]["takes"]] == [1, 2, 3]
    assert report["shots"][0]["takes"][0]["picked"]

    out = CliRunner().invoke(main, ["pick", str(film), "a", "2"])
    assert out.exit_code == 0, out.output
    assert lock_path(film).read_text().endswith("picks:\n  a: 2\n")
    second = Recorder()
    two = _render(film, second)
    assert second.takes == [("b", 1), ("c", 1)]  # exactly the descendants of a
    assert two.shots["a"].clip == clips[2]
    assert two.shots["b"].key != one.shots["b"].key

    again = CliRunner().invoke(main, ["pick", str(film), "a", "2"])
    assert "already picked" in again.output
    third = Recorder()
    _render(film, third)
    assert third.takes == []  # re-picking the picked take costs 0 calls


def test_plan_and_budget_count_every_take(film: Path) -> None:
    backend = Recorder(price_per_second=Decimal("0.1"), paid=True)
    plan = storyboard.load(film).plan(backend=backend)
    assert plan.cost == Decimal("0.1") * 3 * (3 + 1 + 1)
    assert plan.to_json()["totals"]["takes_to_generate"] == 5
    assert plan.seconds_to_generate == 15
    board = storyboard.load(film)
    with pytest.raises(storyboard.BudgetError):
        asyncio.run(Pipeline(board, backend=backend, cache_dir=film.parent / "cache", budget="1.0").run())
    assert backend.takes == []


def test_a_take_has_its_own_cache_key() -> None:
    r = storyboard.ShotRequest(shot_id="a", prompt="p", inputs={"prompt": "p"})
    import dataclasses

    from storyboard.request import cache_key

    keys = {cache_key(dataclasses.replace(r, take=n), backend="x", images={}) for n in (1, 2, 3)}
    assert len(keys) == 3


def test_seeds_are_recorded_where_the_app_has_one(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        defaults: {app: bytedance/seedance-2-0, duration: 5, takes: 2}
        shots:
          - id: a
            prompt: a harbor
            image: null
    """)
    plan = storyboard.load(path).plan(backend="inference")
    shot = plan["a"]
    assert shot.request.inputs is not None and shot.request.inputs["seed"] == take_seed("a", 1)
    assert shot.takes[0].request.inputs is not None
    assert shot.takes[0].request.inputs["seed"] == take_seed("a", 2)
    assert take_seed("a", 1) != take_seed("a", 2)


@pytest.mark.parametrize("takes", ["0", "9", "1.5"])
def test_takes_out_of_range_is_a_located_error(film: Path, takes: str) -> None:
    film.write_text(film.read_text().replace("takes: 3", f"takes: {takes}"))
    with pytest.raises(SpecError) as err:
        storyboard.load(film)
    assert "film.yaml:7:" in str(err.value) and "takes" in str(err.value)


def test_picking_an_unknown_shot_or_take_is_an_error(film: Path) -> None:
    lock = read_lock(film, {"a": 3, "b": 1})
    with pytest.raises(StoryboardError, match="no shot 'zz'"):
        pick(lock, {"a": 3, "b": 1}, "zz", 1)
    with pytest.raises(StoryboardError, match="has 3 take"):
        pick(lock, {"a": 3, "b": 1}, "a", 4)
    out = CliRunner().invoke(main, ["pick", str(film), "a", "7"])
    assert out.exit_code != 0 and "has 3 take(s)" in out.output and "Traceback" not in out.output
    assert not lock_path(film).exists()


def test_a_pick_of_a_gone_shot_is_dropped_with_a_warning(film: Path) -> None:
    write_lock(pick(pick(read_lock(film, {"a": 3, "gone": 2}), {"a": 3, "gone": 2}, "gone", 2),
                    {"a": 3, "gone": 2}, "a", 3))
    board = storyboard.load(film)
    assert board.lock is not None and dict(board.lock.picks) == {"a": 3}
    assert len(board.lock.dropped) == 1 and "shot 'gone' is gone" in board.lock.dropped[0]
    assert f"{lock_path(film)}:4:" in board.lock.dropped[0]


@pytest.mark.parametrize(("text", "line"), [
    ("picks:\n  a: [2\n", 3), ("picks:\n  a: two\n", 2), ("- a\n", 1), ("pics:\n  a: 2\n", 1),
])
def test_a_garbage_lock_file_names_the_file_and_line(film: Path, text: str, line: int) -> None:
    lock_path(film).write_text(text)
    with pytest.raises(SpecError) as err:
        storyboard.load(film)
    assert str(err.value).startswith(f"{lock_path(film)}:{line}:")
    out = CliRunner().invoke(main, ["validate", str(film)])
    assert out.exit_code != 0 and f"film.takes.yaml:{line}:" in out.output and "Traceback" not in out.output


def test_the_report_shows_takes_side_by_side_and_seam_scores(film: Path) -> None:
    from storyboard.report import write_report_html

    result = _render(film, Recorder())
    assert result.report is not None
    page = write_report_html(storyboard.load(film), result.report, cache_dir=film.parent / "cache")
    html = page.read_text()
    assert "storyboard pick film.yaml a 2" in html and "storyboard pick film.yaml a 3" in html
    assert html.count("<figure class=take>") == 3 and "<b>picked</b>" in html
    assert 'alt="a take 2 first frame"' in html  # the other takes' frames are shown too
    assert "seam from <code>a</code>: PSNR" in html and "seam from <code>b</code>: PSNR" in html


def test_the_lock_file_pins_app_versions_and_keeps_them_on_pick(tmp_path: Path) -> None:
    board = tmp_path / "film.yaml"
    lock_path(board).write_text("picks:\n  a: 2\napps:\n  klingai/video-v3: v123\n")
    lock = read_lock(board, {"a": 3})
    assert lock.apps == {"klingai/video-v3": "v123"}
    assert lock.app_lines["klingai/video-v3"] == f"{lock_path(board)}:4:3"
    write_lock(pick(lock, {"a": 3}, "a", 3))
    again = read_lock(board, {"a": 3})
    assert again.picks == {"a": 3} and again.apps == {"klingai/video-v3": "v123"}


@pytest.mark.parametrize("text", ["apps: [x]\n", "apps:\n  klingai: v1\n", "apps:\n  klingai/video-v3: ''\n",
                                  "apps:\n  klingai/video-v3@v1: v1\n"])
def test_a_bad_app_pin_is_a_located_error(tmp_path: Path, text: str) -> None:
    board = tmp_path / "film.yaml"
    lock_path(board).write_text("picks: {}\n" + text)
    with pytest.raises(SpecError) as info:
        read_lock(board, {})
    assert f"{lock_path(board).name}:2:" in str(info.value) or ":3:" in str(info.value)
