"""networkx doing the render's graph work (issue 26): the scheduler starts the ready shot
with the longest remaining path first; what a forced shot invalidates comes from
``nx.descendants``; progress counts the levels of ``nx.topological_generations``."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import pytest

import storyboard
from storyboard.errors import StoryboardError
from storyboard.events import Event, RenderStarted, ShotStarted
from storyboard.graph import ShotGraph
from storyboard.progress import PlainLines
from storyboard.request import ShotRequest
from storyboard.runner import Pipeline, expand_force
from storyboard.runner._slots import PrioritySlots, expected_seconds
from tests.recording import RecordingBackend

# Two independent shots written first, then a chain of three: with one slot, the chain
# (more work hangs on it) goes first at every turn.
BOARD = """
storyboard: 1
defaults: {duration: 3, mode: std}
shots:
  - {id: x, prompt: an island, image: null}
  - {id: y, prompt: a lighthouse, image: null}
  - {id: a, prompt: a harbor, image: null}
  - {id: b, prompt: the keeper looks up, image: "@a:last"}
  - {id: c, prompt: a storm gathers, image: "@b:last"}
"""


def _started(board_path: Path, **options: object) -> tuple[list[str], list[Event]]:
    events: list[Event] = []
    backend = RecordingBackend(delays=dict.fromkeys("xyabc", 0.05))
    asyncio.run(Pipeline(storyboard.load(board_path), backend=backend, concurrency=1, on_event=events.append,
                         report=False, **options).run())  # type: ignore[arg-type]
    return [e.shot for e in events if isinstance(e, ShotStarted)], events


def test_the_ready_shot_with_the_longest_remaining_path_starts_first(write_board: Callable[..., Path]) -> None:
    order, events = _started(write_board(BOARD))
    assert order == ["a", "b", "c", "x", "y"]
    started = next(e for e in events if isinstance(e, RenderStarted))
    assert started.levels == (("x", "y", "a"), ("b",), ("c",))


def test_first_ready_is_kept_as_the_baseline(write_board: Callable[..., Path]) -> None:
    order, _ = _started(write_board(BOARD), order="first-ready")
    assert order.index("x") < order.index("b")  # first come, first served: the chain waits
    with pytest.raises(StoryboardError, match="order must be one of longest-path, first-ready"):
        Pipeline(storyboard.load(write_board(BOARD, "again.yaml")), backend="animatic", order="shortest")  # type: ignore[arg-type]


def test_remaining_paths_levels_and_descendants_are_networkx_answers() -> None:
    edges = [("a", "b", "last"), ("b", "c", "last"), ("a", "d", "first"), ("e", "d", "2.5")]
    weights = {"a": 5.0, "b": 1.0, "c": 1.0, "d": 10.0, "e": 1.0}
    g = ShotGraph("abcde", edges, weights)
    remaining = g.remaining(weights)
    assert remaining == {"a": 15.0, "b": 2.0, "c": 1.0, "d": 10.0, "e": 11.0}
    ref = g.g.copy()
    for u, v in list(ref.edges):  # node weights as edge weights into the node (plus a source)
        ref.edges[u, v]["w"] = weights[v]
    for n in "abcde":
        # the longest path from n runs inside n's descendants (weights are not negative)
        below = ref.subgraph(nx.descendants(ref, n) | {n})
        assert remaining[n] == weights[n] + nx.dag_longest_path_length(below, weight="w")
        assert g.descendants(n) == nx.descendants(ref, n)
    assert max(remaining.values()) == g.critical_path()[1] == 15.0  # one graph: the plan's answer agrees
    assert g.levels() == (("a", "e"), ("b", "d"), ("c",))
    assert g.levels(among=["c", "d"]) == (("d",), ("c",))


def test_forcing_a_shot_invalidates_its_descendants(write_board: Callable[..., Path]) -> None:
    board = storyboard.load(write_board(BOARD))
    assert expand_force(board, ["a"]) == {"a", "b", "c"}
    assert expand_force(board, ["x"]) == {"x"}


def test_expected_generation_time_weighs_duration_and_kind() -> None:
    short = ShotRequest(shot_id="s", prompt="p", duration=3)
    long = ShotRequest(shot_id="l", prompt="p", duration=10)
    still = ShotRequest(shot_id="i", prompt="p", duration=10, kind="still")
    assert expected_seconds(long) > expected_seconds(short) > 0
    assert expected_seconds(still) < expected_seconds(short)


async def test_a_freed_slot_goes_to_the_highest_priority_then_the_first_to_ask() -> None:
    slots = PrioritySlots(1)
    served: list[str] = []

    async def one(name: str, priority: float) -> None:
        async with slots.hold(priority):
            served.append(name)
            await asyncio.sleep(0.01)

    holder = asyncio.ensure_future(one("first", 0))
    await asyncio.sleep(0)
    waiters = [asyncio.ensure_future(one(n, p)) for n, p in [("low", 1), ("high", 9), ("low2", 1), ("gone", 99)]]
    await asyncio.sleep(0)
    waiters[3].cancel()  # a cancelled waiter's turn is skipped, its slot not lost
    await asyncio.gather(holder, *waiters[:3])
    assert served == ["first", "high", "low", "low2"]
    async with slots.hold():  # every slot came back
        pass


def test_progress_counts_the_levels(write_board: Callable[..., Path]) -> None:
    out = io.StringIO()
    lines = PlainLines(out)
    _, events = _started(write_board(BOARD))
    for e in events:
        lines(e)
    text = out.getvalue()
    assert "rendering 5 shots in 3 levels" in text
    settled = [line.split("] ", 1)[1] for line in text.splitlines() if " settled (" in line]
    # the chain's levels settle first; the first level waits for x and y, which went last
    assert settled == ["level 2 of 3 settled (1 of 3)", "level 3 of 3 settled (2 of 3)",
                       "level 1 of 3 settled (3 of 3)"]


def test_one_slot_with_rerolls_does_not_wait_on_itself(write_board: Callable[..., Path],
                                                       make_image: Callable[..., Path]) -> None:
    """A drifted parent's reroll needs a slot while its child waits on the parent: the
    parent's slot is not kept for the child then (with one slot, that would never end)."""
    from tests.test_reroll import BOARD as REROLL_BOARD
    from tests.test_reroll import Recorder

    make_image("start.png")
    path = write_board(REROLL_BOARD.format(drift=""))
    backend = Recorder(drift=("b",))
    pipeline = Pipeline(storyboard.load(path), backend=backend, concurrency=1, reroll_drifted=2, report=False)
    result = asyncio.run(asyncio.wait_for(pipeline.run(), timeout=60))
    assert ("b", 2) in backend.takes and result.film is not None
