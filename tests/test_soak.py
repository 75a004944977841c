"""The randomized soak of the money path (issue 29 item 1; tests/soak, docs/reliability.md):
20 quick seeded runs in CI, the checker's own ability to see a broken invariant, and the
regression tests of the defects the soak found (named after their seeds)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fakeserver import FakeInference
from storyboard.errors import StoryboardError
from storyboard.events import Event, Warning_
from tests.helpers import backend_for, fake_in_env, render
from tests.soak.boards import draw_boards
from tests.soak.check import RunnerLog, check
from tests.soak.runs import soak_many, soak_run, summary

KEY = "sk-test-SECRET-9f8e7d"  # tests.helpers.backend_for's key
CI_SEEDS = range(1, 21)

TEXT_AND_LINE = """
storyboard: 1
defaults: {duration: 3, sound: false}
vars:
  caption: {app: anthropic/claude-haiku-4-5, prompt: "A four-word caption", max_tokens: 20}
voice: {app: falai/kokoro-tts, voice: af_heart}
shots:
  - id: a
    image: null
    prompt: "a quay at dawn {{ caption }}"
    say: "Morning on the quay."
"""


@pytest.mark.parametrize(("node", "kind"), [("text:caption", "text"), ("say:a", "audio")])
def test_soak_seed_3_a_text_node_or_line_whose_answer_was_lost_warns_before_paying_again(
    write_board: Callable[..., Path], node: str, kind: str
) -> None:
    """Seed 3: a text node's submission answer was lost (the task was created, its id never
    came back); the next render submitted it again without a word, so the payment was
    outside the documented window, which is always said out loud. Lines and music went
    the same way: only shots checked the journal's 'submitting' mark."""
    board = write_board(TEXT_AND_LINE)
    with fake_in_env(KEY) as fake:
        text_first = kind == "text"  # text nodes are made first, then lines, then shots
        if not text_first:
            fake.text_script = [{"response": "Four words for you"}]
            render(board, backend_for(fake))  # the text node, the line and the shot, all paid
            fake.submissions.clear()
            board.write_text(TEXT_AND_LINE.replace("Morning on the quay.", "Evening on the quay."))
        fake.drop_run_responses = 1  # the next submission (the node's) is accepted, its answer lost
        with pytest.raises(StoryboardError, match=r"check your tasks on inference\.sh"):
            render(board, backend_for(fake), concurrency=1)
        lost = [t for t in fake.submissions if t.kind == kind]
        assert len(lost) == 1
        events: list[Event] = []
        result = render(board, backend_for(fake), events, concurrency=1)
        assert result.film is not None and result.film.exists()
        assert len([t for t in fake.submissions if t.kind == kind]) == 2  # paid again...
        warned = [e for e in events if isinstance(e, Warning_) and "while submitting" in e.message]
        assert [e.shot for e in warned] == [node]  # ...and said so


def test_the_checker_sees_a_double_payment_a_corrupt_entry_and_an_unfinished_film(tmp_path: Path) -> None:
    """The checker is not constant: a clean run passes; one more paid task for a unit, paid
    clips in no cache, a flipped byte in a cached clip and a film that never ended each
    fail it."""
    result = soak_run(5, quick=True, keep=tmp_path)
    assert not result.outcome.failures, result.report()
    boards = draw_boards(random.Random(5), quick=True)
    logs = [RunnerLog("a", tmp_path / "out" / "a.mp4", attempts=1, endings=["exit 0"]),
            RunnerLog("b", tmp_path / "out" / "b.mp4", attempts=1, endings=["exit 0"])]
    with FakeInference(api_key=KEY, latency=0.01) as fake:
        fake.text_script = []
        body = {"app": "klingai/video-v3", "input": {"prompt": "soak shot [s0] again", "duration": 3}}
        fake.create_task(body)
        fake.create_task(body)  # s0 paid twice, and no render said "while submitting"
        time.sleep(0.2)  # both complete: two paid clips that no cache entry or journal holds
        outcome = check(fake, tmp_path / "cache", boards, logs)
    assert outcome.double_outside == 1 and any("beyond the documented window" in f for f in outcome.failures)
    assert outcome.lost == 2 and any("neither cached nor journalled" in f for f in outcome.failures)

    clip = next(p for p in (tmp_path / "cache" / "clips").glob("*/*.mp4"))
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF
    clip.write_bytes(bytes(data))
    logs[1].endings = ["killed", "killed", "killed", "killed"]
    with FakeInference(api_key=KEY, latency=0.01) as fake:
        outcome = check(fake, tmp_path / "cache", boards, logs)
    assert outcome.corrupt >= 1 and any("corrupt" in f for f in outcome.failures)
    assert any("film b not finished" in f for f in outcome.failures)


@pytest.mark.slow
def test_twenty_quick_soak_runs_keep_every_invariant() -> None:
    """CI's soak: 20 seeded runs (two overlapping boards at once on one cache, faults,
    SIGKILLs and restarts); every invariant holds, and the summary says what happened."""
    results = soak_many(list(CI_SEEDS), quick=True, workers=2)
    total = summary(results)
    print({"soak_summary": total})
    assert total["failed"] == 0, "\n\n".join(r.report() for r in results if r.outcome.failures)
    assert total["films"] == 2 * len(CI_SEEDS)
    assert total["double_payments_outside_window"] == 0 and total["corrupt_entries"] == 0
    assert total["lost_clips"] == 0
    assert total["kills"] >= 5 and total["restarts"] >= total["kills"]  # the schedule really killed runners


@pytest.mark.slow
def test_quick_soak_runs_on_one_s3_cache_keep_every_invariant() -> None:
    """The same soak with both runners on one ``s3://`` cache (moto on loopback), each with
    its own local folder, as two machines: claims are conditional creates with a lease."""
    from tests.soak.s3 import moto_s3

    with moto_s3() as bucket:
        results = soak_many([1, 2, 3], quick=True, s3=bucket)
    total = summary(results)
    print({"soak_summary_s3": total})
    assert total["failed"] == 0, "\n\n".join(r.report() for r in results if r.outcome.failures)
    assert total["films"] == 6 and total["kills"] >= 1


def test_a_seed_draws_the_same_boards_and_schedule_and_every_drawn_board_loads(tmp_path: Path) -> None:
    """Replay rests on this: a seed means one pair of boards and one schedule. Every board
    of the CI seeds and the full soak's range is valid (3–12 shots in a, shared shots in b),
    and no schedule can end a film's renders more often than it may restart."""
    from storyboard import load
    from tests.soak.runs import draw
    from tests.soak.schedule import MAX_RESTARTS, ends_a_render

    assert draw(1042, False) == draw(1042, False) and draw(1042, False) != draw(1043, False)
    for seed, quick in [*((s, True) for s in CI_SEEDS), *((s, False) for s in range(1000, 1200))]:
        boards, schedule = draw(seed, quick)
        loaded = []
        for name, text in (("a", boards.a), ("b", boards.b)):
            path = tmp_path / f"{name}.yaml"
            path.write_text(text)
            loaded.append(load(path))
        a, b = loaded
        shots = [s for s in a.spec.shots if not s.id.startswith("still")]  # stills are nodes too
        assert 3 <= len(shots) <= (4 if quick else 12), seed
        assert set(boards.shared) <= {s.id for s in b.spec.shots}, seed
        assert ends_a_render(schedule.knobs) + 1 <= MAX_RESTARTS, seed
