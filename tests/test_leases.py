"""Leases of claims on a shared store (issue 29): a holder's lease is renewed by one
thread per process that nothing else blocks; a failed renewal is counted and tried again
within a second; a holder whose lease lapsed and whose key was taken over stops renewing
and leaves the taker's claim alone. Claims here live on a ``file://`` store, which takes
the same conditional-create-plus-lease path as S3 (``_remoteclaims``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storyboard.cache import lease_stats, open_cache
from tests.test_scale import moto_endpoint, s3_url  # noqa: F401  (fixtures: a moto server, a bucket)

KEY = "h" * 64


def _until(check: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _claims(folder: Path, lease: float) -> object:
    import fsspec

    from storyboard.cache._remoteclaims import RemoteClaims

    return RemoteClaims(fsspec.filesystem("file"), str(folder), lease=lease)


@pytest.mark.parametrize("store", ["file", "s3"])
def test_a_held_claim_stays_live_while_its_render_loop_is_blocked(store: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  request: pytest.FixtureRequest) -> None:
    """At 1,000 films on 100 workers a live holder's lease ran out and another worker took
    its shot over: the renewals ran on the render's event loop, which the cache's blocking
    calls (and 100 threads on one GIL) held up. Here the loop is blocked for more than two
    leases; the claim must stay held throughout. On S3 the renewals go through the lease
    keeper's own I/O loop."""
    from storyboard.runner._context import holding

    monkeypatch.setenv("STORYBOARD_CLAIM_LEASE", "1.5")
    url = str(request.getfixturevalue("s3_url")) if store == "s3" else f"file://{tmp_path / 'shared'}"
    boards = [tmp_path / name / "film.yaml" for name in ("a", "b")]
    for board in boards:
        board.parent.mkdir()
    owner, other = (open_cache(board, url) for board in boards)
    taken: list[object] = []

    async def hold() -> None:
        async with holding(owner, KEY):
            end = time.monotonic() + 4.0
            while time.monotonic() < end:  # nothing here awaits: the loop is blocked
                taken.append(other.try_claim(KEY))
                time.sleep(0.1)

    before = lease_stats()
    asyncio.run(hold())
    assert len(taken) > 20 and not any(taken), "another render took over a live holder's claim"
    assert lease_stats()["renewed"] >= before["renewed"] + 3
    again = other.try_claim(KEY)  # released at the end
    assert again is not None
    again.release()


def test_a_failed_renewal_is_counted_and_tried_again_within_a_second(tmp_path: Path) -> None:
    claims = _claims(tmp_path / "claims", lease=12.0)  # renewed every 4 s
    before = lease_stats()
    claim = claims.try_claim(KEY)  # type: ignore[attr-defined]
    assert claim is not None
    held, aside = tmp_path / "claims" / KEY, tmp_path / "aside"
    started = time.monotonic()
    held.rename(aside)  # the store refuses the writes for a while
    try:
        assert _until(lambda: lease_stats()["failed"] > before["failed"], 8.0), "no renewal was tried"
    finally:
        aside.rename(held)
    assert _until(lambda: lease_stats()["renewed"] > before["renewed"], 3.0)
    assert time.monotonic() - started < 4.0 + 3.0  # not a whole renewal period after the failure
    body = json.loads((held / "0.json").read_text())
    assert body["expires"] > time.time() + 10.0  # a fresh lease
    assert not claim.lost
    claim.release()
    assert not held.joinpath("0.json").exists()


def test_a_holder_whose_lapsed_key_was_taken_over_stops_renewing_and_leaves_the_taker_alone(
        tmp_path: Path) -> None:
    claims = _claims(tmp_path / "claims", lease=1.0)
    before = lease_stats()
    claim = claims.try_claim(KEY)  # type: ignore[attr-defined]
    assert claim is not None
    held, aside, ready = tmp_path / "claims" / KEY, tmp_path / "aside", tmp_path / "ready"
    held.rename(aside)  # the holder cannot renew: its lease lapses
    time.sleep(1.3)
    taker = {"owner": "another render", "expires": time.time() + 60}
    ready.mkdir()
    (ready / "1.json").write_text(json.dumps(taker))
    ready.rename(held)  # another render took the key over (generation 1)
    assert _until(lambda: claim.lost, 3.0), "the holder did not notice it lost the key"
    stats = lease_stats()
    assert stats["lost"] == before["lost"] + 1 and stats["lapsed"] > before["lapsed"]
    time.sleep(0.5)
    claim.release()
    assert sorted(p.name for p in held.iterdir()) == ["1.json"]  # no generation 0 brought back
    assert json.loads((held / "1.json").read_text()) == taker


def test_a_holder_whose_key_was_taken_over_does_not_submit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The money point: before a submission the holder checks that it still holds the
    key. Its lease lapsed (renewals failed) and another render created a higher
    generation: the submission mark is refused, so the shot is not paid by both."""
    from storyboard.errors import CacheError

    monkeypatch.setenv("STORYBOARD_CLAIM_LEASE", "1.0")
    board = tmp_path / "a" / "film.yaml"
    board.parent.mkdir()
    cache = open_cache(board, f"file://{tmp_path / 'shared'}")
    claim = cache.try_claim(KEY)
    assert claim is not None
    cache.remember(KEY, "submitting", "2026-12-03T08:00:00", shot="a")  # held: fine
    held = tmp_path / "shared" / "claims" / KEY
    (held / "0.json").unlink()
    (held / "0.json").mkdir()  # the holder's renewals fail from now on: its lease lapses
    time.sleep(1.2)
    (held / "1.json").write_text(json.dumps({"owner": "another render", "expires": time.time() + 60}))
    with pytest.raises(CacheError, match="took the shot over; it was not submitted here"):
        cache.remember(KEY, "submitting", "2026-12-03T08:00:02", shot="a")
    assert cache.recall(KEY, "submitting") == "2026-12-03T08:00:00"  # the journal was not written
    claim.release()
    assert (held / "1.json").exists()  # the taker's claim is left alone


def test_the_keeper_outlives_a_store_that_fails_in_every_way(tmp_path: Path) -> None:
    """Found by CI: a lapsed claim's store went away (its moto server stopped), the look
    for a taker raised, and the keeper thread died, so no claim of the process was
    renewed again. Now every failure is counted and tried again within a second."""
    import threading

    claims = _claims(tmp_path / "claims", lease=1.0)
    claim = claims.try_claim(KEY)  # type: ignore[attr-defined]
    assert claim is not None
    before = lease_stats()
    folder, aside = tmp_path / "claims", tmp_path / "aside"
    folder.rename(aside)
    folder.write_text("not a folder: every write and every listing under it fails")
    try:
        assert _until(lambda: lease_stats()["lapsed"] > before["lapsed"], 3.0)
        assert _until(lambda: lease_stats()["failed"] >= before["failed"] + 3, 3.0)
        assert any(t.name == "storyboard-claim-leases" and t.is_alive() for t in threading.enumerate())
    finally:
        folder.unlink()
        aside.rename(folder)
    renewed = lease_stats()["renewed"]
    assert _until(lambda: lease_stats()["renewed"] > renewed, 3.0), "renewals did not resume"
    assert not claim.lost
    claim.release()
