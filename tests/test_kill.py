"""SIGKILL of a real ``storyboard render --backend inference --json`` process at each
point of a shot's life, then a second render: it must finish the film, and the total
number of paid submissions must equal the number of shots.

The one exception is a process killed after inference.sh accepted a submission but
before its answer (the task id) arrived: that task exists and is billed, but the API
offers no way to find it. The next render warns, out loud, that it submits the shot
again; the test counts that extra payment (see docs/reliability.md).

The fake server runs in this process; kill points are detected from the server's side
(its call log, with a delay holding the renderer at that point) or from the renderer's
``--json`` event stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fakeserver import FakeInference
from storyboard.cache import open_cache
from storyboard.cli import main
from storyboard.media import probe
from tests.helpers import BOARD, KEY, SHOTS, Render, wait_for

HOLD = 60.0  # seconds a held request waits: far longer than any kill takes


def settled(fake: FakeInference) -> bool:
    """Every task the server created has been followed by its client, which journals
    the task id before it opens the stream."""
    followed = {c.path.split("/")[2] for c in fake.calls_to("GET", "/tasks/")}
    return bool(fake.submissions) and {t.id for t in fake.submissions} <= followed


Condition = Callable[[Render], bool]


# kill point -> arrange the fake; return the condition to kill on
def _before_submit(fake: FakeInference) -> Condition:
    fake.delays["files"] = HOLD  # the uploads (every shot has a start image) are held
    return lambda r: bool(fake.calls_to("POST", "/files"))


def _after_submit(fake: FakeInference) -> Condition:
    fake.delays["run"] = HOLD  # tasks are created, their answers held: no task id reaches the client
    return lambda r: bool(fake.submissions)


def _while_waiting(fake: FakeInference) -> Condition:
    fake.latency = 30.0
    # a and c are independent (b waits on a): kill once both are submitted and followed, not
    # while c is between its "submitting" mark and its POST (that is the point before this one)
    return lambda r: len(fake.submissions) >= 2 and settled(fake) and fake.streams_opened >= 1


def _while_downloading(fake: FakeInference) -> Condition:
    fake.delays["download"] = HOLD
    return lambda r: bool(fake.calls_to("GET", "/outputs/")) and settled(fake)


def _while_assembling(fake: FakeInference) -> Condition:
    return lambda r: "assembly_progress" in r.kinds()


POINTS: dict[str, Callable[[FakeInference], Condition]] = {
    "before_submit": _before_submit,
    "after_submit_before_journal": _after_submit,
    "while_waiting": _while_waiting,
    "while_downloading": _while_downloading,
    "while_assembling": _while_assembling,
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_then_render_again_finishes_paying_each_shot_once(
    point: str, write_board: Callable[..., Path], make_image: Callable[..., Path]
) -> None:
    make_image("start.png")
    board = write_board(BOARD)
    film = board.parent / "out" / "film.mp4"
    with FakeInference(api_key=KEY, latency=0.5) as fake:
        condition = POINTS[point](fake)
        render = Render(board, fake)
        try:
            wait_for(lambda: condition(render), point, render, timeout=60, poll=0.02)
            if point == "after_submit_before_journal":
                time.sleep(0.5)  # let any sibling submission arrive too
        finally:
            render.kill()
        held = len(fake.submissions) if point == "after_submit_before_journal" else 0
        fake.delays, fake.latency = {}, 0.5
        for task in fake.tasks.values():  # tasks still running remotely finish soon
            task.latency = min(task.latency, 0.5)

        if point != "while_assembling":
            assert not film.exists(), "a killed render left a film"
        elif film.exists():  # assembly writes a temp file and renames it: a film is whole or absent
            probe(film)

        result = CliRunner().invoke(
            main, ["render", str(board), "--backend", "inference", "--json"],
            env={"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url},
        )
        assert result.exit_code == 0, result.output
        assert film.exists() and probe(film).duration > 8
        events = [json.loads(ln) for ln in result.stdout.splitlines() if ln.startswith("{")]
        warnings = [e for e in events if e["event"] == "warning" and "while submitting" in e["message"]]
        assert len(fake.submissions) == SHOTS + held, [t.input["prompt"] for t in fake.submissions]
        assert len(warnings) == held
        if point == "after_submit_before_journal":
            assert held >= 1
        assert list(open_cache(board).journal_entries()) == []
