"""The runner with the animatic backend: cache hits, Merkle invalidation, force,
corruption, failure policy, budget, concurrency and scheduling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import storyboard
from storyboard.errors import BudgetError, RenderFailed
from storyboard.events import Event, ShotCached, ShotDone, Warning_
from storyboard.media import probe
from storyboard.runner import Pipeline
from tests.recording import RecordingBackend

BOARD = """
storyboard: 1
defaults: {{duration: 3, mode: std}}
shots:
  - id: a
    prompt: "{a}"
    image: start.png
  - id: b
    prompt: the keeper looks up
  - id: c
    prompt: a storm gathers
  - id: d
    prompt: a side branch
    image: "@a:first"
    sound: false
cut: [a, b, c, d]
"""


@pytest.fixture
def board_path(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("start.png")
    return write_board(BOARD.format(a="a harbor at dusk"))


def run(board: storyboard.Board, backend: RecordingBackend, **options: object) -> storyboard.RenderResult:
    return asyncio.run(Pipeline(board, backend=backend, **options).run())  # type: ignore[arg-type]


def test_render_then_unchanged_rerender_calls_nothing(board_path: Path) -> None:
    backend = RecordingBackend()
    result = run(storyboard.load(board_path), backend)
    assert sorted(backend.calls) == ["a", "b", "c", "d"]
    assert result.film is not None and result.film.exists()
    info = probe(result.film)
    assert info.has_audio
    assert result.report is not None
    report = json.loads(result.report.read_text())
    assert {s["id"] for s in report["shots"]} == {"a", "b", "c", "d"}
    assert all(s["cache_hit"] is False for s in report["shots"])

    again = RecordingBackend()
    events: list[Event] = []
    result2 = run(storyboard.load(board_path), again, on_event=events.append)
    assert again.calls == []
    assert {e.shot for e in events if isinstance(e, ShotCached)} == {"a", "b", "c", "d"}
    assert result2.film is not None and result2.film.read_bytes() == result.film.read_bytes()
    assert result2.method == "unchanged"  # nothing changed: not even re-assembled

    # A film that was touched or deleted is assembled again from the cached clips.
    result.film.unlink()
    result3 = run(storyboard.load(board_path), RecordingBackend())
    assert result3.method != "unchanged" and result3.film is not None and result3.film.exists()
    assert probe(result3.film).duration == pytest.approx(probe(result2.film).duration, abs=0.15)


def test_editing_one_prompt_regenerates_it_and_its_descendants_only(board_path: Path) -> None:
    run(storyboard.load(board_path), RecordingBackend())
    # b is chained from a; c from b; d from a's first frame. Editing b touches b, c.
    text = board_path.read_text().replace("the keeper looks up", "the keeper looks down")
    board_path.write_text(text)
    backend = RecordingBackend()
    plan = Pipeline(storyboard.load(board_path), backend=backend).plan()
    assert {s.id for s in plan.pending} == {"b", "c"}
    run(storyboard.load(board_path), backend)
    assert sorted(backend.calls) == ["b", "c"]


def test_editing_the_root_regenerates_everything_below(board_path: Path) -> None:
    run(storyboard.load(board_path), RecordingBackend())
    board_path.write_text(BOARD.format(a="a harbor at dawn"))
    backend = RecordingBackend()
    run(storyboard.load(board_path), backend)
    assert sorted(backend.calls) == ["a", "b", "c", "d"]


def test_force_regenerates_the_shot_and_its_descendants(board_path: Path) -> None:
    run(storyboard.load(board_path), RecordingBackend())
    backend = RecordingBackend()
    run(storyboard.load(board_path), backend, force=["b"])
    assert sorted(backend.calls) == ["b", "c"]


def test_corrupted_cached_clip_is_detected_and_regenerated(board_path: Path) -> None:
    first = run(storyboard.load(board_path), RecordingBackend())
    clip = first.shots["c"].clip
    assert clip is not None
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])  # truncated
    backend = RecordingBackend()
    events: list[Event] = []
    result = run(storyboard.load(board_path), backend, on_event=events.append)
    assert backend.calls == ["c"]
    assert result.film is not None
    assert any("dropped cache entry" in getattr(e, "message", "") for e in events)


def test_garbage_in_the_cache_is_regenerated(board_path: Path) -> None:
    first = run(storyboard.load(board_path), RecordingBackend())
    clip = first.shots["a"].clip
    assert clip is not None
    clip.write_bytes(b"\x00garbage" * 100)
    backend = RecordingBackend()
    run(storyboard.load(board_path), backend)
    # a's clip is regenerated; the animatic is deterministic, so its children stay cached
    assert backend.calls == ["a"]


def test_a_failed_shot_keeps_siblings_skips_descendants_and_writes_no_film(board_path: Path) -> None:
    backend = RecordingBackend(fail={"b"})
    board = storyboard.load(board_path)
    with pytest.raises(RenderFailed) as err:
        run(board, backend)
    assert "b: " in str(err.value) and "the model refused this prompt" in str(err.value)
    assert "skipped" in str(err.value) and "c" in str(err.value)
    assert sorted(backend.calls) == ["a", "b", "d"]  # c needs b: never called
    assert not board.output.exists()
    report = json.loads(board.output.with_name(board.output.name + ".render.json").read_text())
    status = {s["id"]: s["status"] for s in report["shots"]}
    assert status == {"a": "generated", "b": "failed", "c": "skipped", "d": "generated"}
    # Running again redoes only what is missing.
    again = RecordingBackend()
    result = run(storyboard.load(board_path), again)
    assert sorted(again.calls) == ["b", "c"]
    assert result.film is not None and result.film.exists()


def test_budget_refusal_calls_nothing(board_path: Path) -> None:
    backend = RecordingBackend(price_per_second=Decimal("0.1"), paid=True)
    with pytest.raises(BudgetError) as err:
        run(storyboard.load(board_path), backend, budget="1.00")
    assert "would cost $1.2;" in str(err.value) and "--budget is $1." in str(err.value)
    assert backend.calls == []
    assert err.value.exit_code == 3


def test_unknown_price_is_over_any_budget(board_path: Path) -> None:
    backend = RecordingBackend(price_per_second=None, paid=True)
    with pytest.raises(BudgetError, match="unknown"):
        run(storyboard.load(board_path), backend, budget="1000")
    assert backend.calls == []


def test_budget_counts_only_what_is_not_cached(board_path: Path) -> None:
    run(storyboard.load(board_path), RecordingBackend(price_per_second=Decimal("0.1"), paid=True))
    board_path.write_text(board_path.read_text().replace("a storm gathers", "a storm breaks"))
    backend = RecordingBackend(price_per_second=Decimal("0.1"), paid=True)
    result = run(storyboard.load(board_path), backend, budget="0.30")  # only c: 3 s × $0.1
    assert backend.calls == ["c"]
    assert result.cost == Decimal("0.3")


def test_concurrency_limit_is_respected(write_board: Callable[..., Path]) -> None:
    shots = "\n".join(f"  - id: s{i}\n    prompt: shot {i}\n    image: null" for i in range(6))
    path = write_board(f"storyboard: 1\ndefaults: {{duration: 3}}\nshots:\n{shots}\n")
    backend = RecordingBackend(delays={f"s{i}": 0.3 for i in range(6)})
    run(storyboard.load(path), backend, concurrency=2)
    assert len(backend.calls) == 6
    assert backend.max_in_flight == 2


def test_a_branch_does_not_wait_for_an_unrelated_slow_shot(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        defaults: {duration: 3}
        shots:
          - id: slow
            prompt: slow one
          - id: quick
            prompt: quick root
            image: null
          - id: child
            prompt: child of quick
    """)
    backend = RecordingBackend(delays={"slow": 2.0})
    run(storyboard.load(path), backend)
    # child starts when quick is done, long before slow finishes
    assert backend.started_at["child"] < backend.finished_at["slow"] - 0.5


def test_shots_outside_the_cut_are_made_only_when_needed(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        defaults: {duration: 3}
        shots:
          - id: source
            prompt: a plate we only need a frame of
          - id: main
            prompt: the shot in the film
          - id: unused
            prompt: nobody needs this
            image: null
        cut: [main]
    """)
    backend = RecordingBackend()
    result = run(storyboard.load(path), backend)
    assert sorted(backend.calls) == ["main", "source"]
    assert result.shots["unused"].status == "unused"
    assert result.duration is not None and abs(result.duration - 3.0) < 0.2


def test_frames_are_extracted_once_per_clip_and_selector(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        defaults: {duration: 3}
        shots:
          - id: root
            prompt: root
          - id: x
            prompt: x
            image: "@root"
          - id: y
            prompt: y
            image: "@root:last"
        cut: [root, x, y]
    """)
    run(storyboard.load(path), RecordingBackend())
    frames = list((path.parent / ".storyboard" / "frames").glob("*.png"))
    assert len(frames) == 1


def test_events_carry_the_shot_and_done_has_timings(board_path: Path) -> None:
    events: list[Event] = []
    run(storyboard.load(board_path), RecordingBackend(), on_event=events.append)
    done = [e for e in events if isinstance(e, ShotDone)]
    assert {e.shot for e in done} == {"a", "b", "c", "d"}
    assert all(e.seconds >= 0 and e.clip is not None for e in done)
    kinds = [e.kind for e in events]
    assert kinds[0] == "render_started" and kinds[-1] == "film_done"
    json.dumps([e.to_dict() for e in events])  # every event is JSON-ready


def test_dry_run_generates_nothing(board_path: Path) -> None:
    backend = RecordingBackend()
    result = run(storyboard.load(board_path), backend, dry_run=True)
    assert backend.calls == []
    assert result.film is None and len(result.plan.pending) == 4
    assert not (board_path.parent / ".storyboard").exists()


def test_public_api_render_sync(board_path: Path) -> None:
    result = storyboard.render(storyboard.load(board_path), backend="animatic")
    assert result.film is not None and result.film.exists()
    assert result.shots["b"].clip is not None and result.shots["b"].clip.exists()
    assert result.cost == Decimal(0)


def test_a_backend_warning_becomes_a_warning_event_of_its_shot(board_path: Path) -> None:
    events: list[Event] = []
    backend = RecordingBackend(warn={"b": "the server says: content was softened"})
    run(storyboard.load(board_path), backend, on_event=events.append)
    warnings = [e for e in events if isinstance(e, Warning_)]
    assert [(w.shot, w.message) for w in warnings] == [("b", "the server says: content was softened")]


def test_public_api_exports_backend_context_and_events() -> None:
    from storyboard import events
    from storyboard.backends import base

    assert storyboard.Backend is base.Backend and storyboard.ShotContext is base.ShotContext
    for name in events.__all__:
        if name != "WAITING_FOR_ANOTHER_RENDER":
            assert getattr(storyboard, name) is getattr(events, name), name
            assert name in storyboard.__all__


def test_a_cancelled_render_stops_waiting_shots_without_calling_them_skipped(
        write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    # Ctrl-C cancels the render: a shot waiting on its parent is stopped, not "skipped" (a
    # skip settles the shot as if its parent had failed, and the render could go on).
    make_image("start.png")
    board = storyboard.load(write_board(BOARD.format(a="a harbor")))
    events: list[Event] = []

    async def go() -> None:
        pipeline = Pipeline(board, backend=RecordingBackend(delays={"a": 5.0}), on_event=events.append)
        task = asyncio.ensure_future(pipeline.run())
        while not any(type(e).__name__ == "ShotWaiting" for e in events):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert not [e for e in events if type(e).__name__ == "ShotSkipped"]
