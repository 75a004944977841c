"""Claims on the local cache (issue 19): renders sharing a cache folder never pay twice
for a shot key, even when they run at the same moment or one of them is SIGKILLed while
it holds the claim.

Real processes (``python -m storyboard.cli render … --json``), one real cache folder, the
fake inference.sh on loopback counting paid submissions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fakeserver import FakeInference
from storyboard.cache import Cache, LocalClaims
from storyboard.events import WAITING_FOR_ANOTHER_RENDER
from tests.helpers import KEY, Render, wait_for

# a and b are the same in both storyboards (same prompt, same start image); c differs.
# b does not chain from a (image: null), so all three are submitted at once.
BOARD = """
storyboard: 1
defaults: {duration: 3, mode: std}
shots:
  - id: a
    prompt: a harbor at dusk
    image: start.png
  - id: b
    prompt: the keeper looks up
    image: null
  - id: c
    prompt: a storm gathers, PART
    image: start.png
cut: [a, b, c]
"""


@pytest.fixture
def boards(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> list[Path]:
    out = []
    for name in ("one", "two"):
        make_image(f"{name}/start.png")  # the same pixels in both folders: the same file hash
        out.append(write_board(BOARD.replace("PART", name), name=f"{name}/film.yaml"))
    return out


def test_two_storyboards_sharing_two_shots_at_once_pay_four_times(boards: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    with FakeInference(api_key=KEY, latency=3.0) as fake:
        renders = [Render(b, fake, cache) for b in boards]
        try:
            for r in renders:
                r.finish()
        finally:
            for r in renders:
                r.stop()
        paid = sorted(t.input["prompt"] for t in fake.submissions)
    assert len(paid) == 4, paid  # a, b once; each storyboard's own c
    assert len(set(paid)) == 4, paid
    for b in boards:
        assert (b.parent / "out" / "film.mp4").is_file()
    # One render met the other's claims and waited rather than paying again.
    assert set().union(*(r.waiting() for r in renders)) <= {"a", "b"}
    assert any(r.waiting() for r in renders), "neither render waited on the other's claim"
    assert list(Cache(cache).journal_entries()) == []
    assert list((cache / "claims").iterdir()) == []  # released claims leave no files


def test_owner_sigkilled_while_holding_the_claim_the_waiter_reattaches(boards: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    with FakeInference(api_key=KEY, latency=60.0) as fake:
        first = Render(boards[0], fake, cache)
        second: Render | None = None
        try:
            # The first render submitted its three shots and journalled every task id.
            def journalled() -> bool:
                entries = [j for _, j in Cache(cache, create=False).journal_entries()]
                return len(fake.submissions) == 3 and len(entries) == 3 and all(
                    j.get("state", {}).get("task_id") for j in entries)

            wait_for(journalled, "the first render's tasks were journalled", first)
            first_tasks = {t.input["prompt"]: t.id for t in fake.submissions}
            second = Render(boards[1], fake, cache)
            wait_for(lambda: second is not None and second.waiting() == {"a", "b"},
                     "the second render waited on both shared shots", first, second)
            first.kill()
            fake.latency = 0.5
            for task in fake.tasks.values():
                task.latency = min(task.latency, 0.5)
            second.finish()
        finally:
            first.stop()
            if second is not None:
                second.stop()
        paid = [t.input["prompt"] for t in fake.submissions]
    assert len(paid) == 4, paid  # nothing extra: the second render paid only for its own c
    assert paid.count("a harbor at dusk") == 1 and paid.count("the keeper looks up") == 1
    report = json.loads((boards[1].parent / "out" / "film.mp4.render.json").read_text())
    shots = {s["id"]: s for s in report["shots"]}
    for shot, prompt in (("a", "a harbor at dusk"), ("b", "the keeper looks up")):
        assert shots[shot]["task_id"] == first_tasks[prompt]  # re-attached to the dead owner's task
        assert shots[shot]["facts"].get("reattached") is True
        assert shots[shot]["status"] == "generated"
    assert not (boards[0].parent / "out" / "film.mp4").exists()
    assert (boards[1].parent / "out" / "film.mp4").is_file()


# ---------------------------------------------------------------- the claim store itself

_HOLD = """
import sys, time
from pathlib import Path
from storyboard.cache import LocalClaims
claim = LocalClaims(Path(sys.argv[1])).try_claim("k" * 64)
print("held" if claim else "busy", flush=True)
time.sleep(120)
"""


def test_a_claim_is_exclusive_until_released(tmp_path: Path) -> None:
    claims = LocalClaims(tmp_path / "claims")
    first = claims.try_claim("k" * 64)
    assert first is not None
    assert claims.try_claim("k" * 64) is None  # the same process, another attempt: still exclusive
    assert claims.try_claim("j" * 64) is not None  # other keys are free
    holder = claims.holder("k" * 64)
    assert holder is not None and f"pid {os.getpid()}" in holder
    first.release()
    first.release()  # idempotent
    assert claims.holder("k" * 64) is None
    again = claims.try_claim("k" * 64)
    assert again is not None
    again.release()


def test_a_dead_owners_claim_is_free_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "claims"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        claims = LocalClaims(folder)
        assert claims.try_claim("k" * 64) is None
        assert f"pid {proc.pid}" in (claims.holder("k" * 64) or "")
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    taken = LocalClaims(folder).try_claim("k" * 64)  # the kernel released the flock
    assert taken is not None
    taken.release()


def test_claim_in_an_unwritable_cache_is_a_cache_error(tmp_path: Path) -> None:
    from storyboard.errors import CacheError

    cache = Cache(tmp_path / "c")
    (cache.root / "claims").rmdir()
    (cache.root / "claims").write_text("a file where the claims folder should be")
    with pytest.raises(CacheError):
        cache.try_claim("k" * 64)


def test_the_progress_display_shows_a_shot_waiting_for_another_render() -> None:
    import io

    from storyboard.events import ShotProgress
    from storyboard.progress import PlainLines

    out = io.StringIO()
    display = PlainLines(stream=out)
    display(ShotProgress(shot="a", status=WAITING_FOR_ANOTHER_RENDER))
    assert "a: waiting for another render" in out.getvalue()
