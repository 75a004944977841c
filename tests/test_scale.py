"""Issue 17: the cache on S3 (a real moto server on loopback), claims across machines
(renders with different local folders sharing one s3:// cache), and a matrix on a real
Dask LocalCluster (a scheduler and 2 workers talking TCP on loopback; the workers are
threads of the test process, which froze on CPython before 3.11.9 until the film task
guarded the profiler's ``sys._current_frames``: tests/test_dask_threads.py). The fake
inference.sh counts paid submissions."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fakeserver import FakeInference
from storyboard.cache import open_cache
from storyboard.errors import CacheError
from tests.helpers import KEY, Render, free_port, wait_for

ACCESS_ID = "AKIASCALETESTID0001"
SECRET = "scale-secret-do-not-leak-9f8e7d"

# The same three shots in every copy; no chaining, so all are submitted at once.
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
    prompt: a storm gathers
    image: null
cut: [a, b, c]
"""


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; the AWS_* variables point every process at it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket = f"sb-{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    return f"s3://{bucket}/cache"


@pytest.fixture
def copies(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> list[Path]:
    out = []
    for name in ("one", "two", "three"):
        make_image(f"{name}/start.png")
        out.append(write_board(BOARD, name=f"{name}/film.yaml"))
    return out


def _no_secret_in(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            assert SECRET.encode() not in data and ACCESS_ID.encode() not in data, path


def test_two_machines_at_once_pay_once_a_third_pays_nothing(copies: list[Path], s3_url: str,
                                                             tmp_path: Path) -> None:
    with FakeInference(api_key=KEY, latency=1.0) as fake:
        renders = [Render(b, fake, s3_url) for b in copies[:2]]  # type: ignore[arg-type]
        try:
            errs = [r.finish() for r in renders]
        finally:
            for r in renders:
                r.stop()
        assert sorted(t.input["prompt"] for t in fake.submissions) == sorted(
            ["a harbor at dusk", "the keeper looks up", "a storm gathers"])
        assert any(r.waiting() for r in renders), "neither render waited on the other's claim"
        third = Render(copies[2], fake, s3_url)  # type: ignore[arg-type]
        try:
            errs.append(third.finish())
        finally:
            third.stop()
        assert len(fake.submissions) == 3  # the third machine took every clip from S3
    for b in copies:
        assert (b.parent / "out" / "film.mp4").is_file()
        assert (b.parent / ".storyboard" / "clips").is_dir()  # the local read-through copy
    report = json.loads((copies[2].parent / "out" / "film.mp4.render.json").read_text())
    assert {s["status"] for s in report["shots"]} == {"cached"}
    # Credentials come from AWS_* only: never in a report, a log line, or a cache file.
    for text in errs + [json.dumps(e) for r in [*renders, third] for e in r.events]:
        assert SECRET not in text and ACCESS_ID not in text
    _no_secret_in(tmp_path)
    shared = open_cache(copies[0], s3_url, create=False)
    assert list(shared.journal_entries()) == []  # every journal dropped once stored
    shared.fs.invalidate_cache()  # type: ignore[attr-defined]
    assert shared.fs.find(f"{shared.base}/claims") == []  # type: ignore[attr-defined]  # released claims are gone


def test_owner_sigkilled_holding_s3_claims_the_next_runner_reattaches(copies: list[Path], s3_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYBOARD_CLAIM_LEASE", "2")
    with FakeInference(api_key=KEY, latency=60.0) as fake:
        first = Render(copies[0], fake, s3_url)  # type: ignore[arg-type]
        second: Render | None = None
        try:
            view = open_cache(copies[0], s3_url, create=False)

            def journalled() -> bool:
                entries = [j for _, j in view.journal_entries()]
                return len(fake.submissions) == 3 and len(entries) == 3 and all(
                    j.get("state", {}).get("task_id") for j in entries)

            wait_for(journalled, "the first render journalled its task ids on S3", first)
            tasks = {t.input["prompt"]: t.id for t in fake.submissions}
            first.kill()
            fake.latency = 0.5
            for task in fake.tasks.values():
                task.latency = min(task.latency, 0.5)
            second = Render(copies[1], fake, s3_url)  # type: ignore[arg-type]
            second.finish()
        finally:
            first.stop()
            if second is not None:
                second.stop()
        assert len(fake.submissions) == 3  # nothing extra paid
    report = json.loads((copies[1].parent / "out" / "film.mp4.render.json").read_text())
    for shot in report["shots"]:
        assert shot["status"] == "generated"
        assert shot["task_id"] in tasks.values()
        assert shot["facts"].get("reattached") is True


def test_s3_claims_are_exclusive_and_an_expired_lease_is_taken_over(s3_url: str) -> None:
    import fsspec

    from storyboard.cache._remoteclaims import RemoteClaims

    fs, base = fsspec.core.url_to_fs(s3_url)
    claims = RemoteClaims(fs, f"{base}/claims", lease=60.0)
    first = claims.try_claim("k" * 64)
    assert first is not None
    assert claims.try_claim("k" * 64) is None
    assert f"pid {os.getpid()}" in (claims.holder("k" * 64) or "")
    other = claims.try_claim("j" * 64)
    assert other is not None  # other keys are free
    other.release()  # (a claim never released is renewed for as long as the process lives)
    first.release()
    first.release()  # idempotent
    assert claims.holder("k" * 64) is None
    # A claim whose lease ran out (its owner died, so it was never renewed) is taken over.
    import time

    fs.pipe_file(f"{base}/claims/{'d' * 64}/0.json", json.dumps({"owner": "a dead render",
                                                                 "expires": time.time() - 0.1}).encode())
    taken = claims.try_claim("d" * 64)
    assert taken is not None
    assert claims.try_claim("d" * 64) is None  # the new generation is live
    assert fs.find(f"{base}/claims/{'d' * 64}") == [f"{base}/claims/{'d' * 64}/1.json"]  # the dead one removed
    taken.release()


def test_a_waiter_on_an_s3_claim_backs_off_to_one_look_a_second(s3_url: str, tmp_path: Path) -> None:
    """Found by the 100-worker matrix (benchmarks/workers.py): every waiter looked at a
    held S3 claim every 0.2 s (a listing and a read each time), so a hot shot's waiters
    made most of the store's requests. Now the looks back off to one a second."""
    import asyncio
    import itertools
    import time

    from storyboard.runner._context import holding

    board = tmp_path / "b" / "film.yaml"
    board.parent.mkdir()
    owner, waiter = open_cache(tmp_path / "a" / "film.yaml", s3_url), open_cache(board, s3_url)
    key = "w" * 64
    held = owner.try_claim(key)
    assert held is not None
    looks = []
    real = waiter.try_claim

    def counted(k: str) -> object:
        looks.append(time.monotonic())
        return real(k)

    waiter.try_claim = counted  # type: ignore[method-assign,assignment]

    async def wait() -> float:
        asyncio.get_running_loop().call_later(4.0, held.release)
        async with holding(waiter, key):
            return time.monotonic()

    got = asyncio.run(wait())
    assert got - looks[0] >= 3.9  # it waited for the release
    assert len(looks) <= 10, len(looks)  # at 0.2 s it was 20 looks, 40 requests
    assert max(b - a for a, b in itertools.pairwise(looks)) <= 1.5  # about one a second at the slowest


def test_a_local_fsspec_url_claims_with_exclusive_create_and_unsafe_stores_are_refused(
        tmp_path: Path, write_board: Callable[..., Path]) -> None:
    board = write_board(BOARD)
    cache = open_cache(board, f"file://{tmp_path / 'remote'}")
    claim = cache.try_claim("k" * 64)
    assert claim is not None and cache.try_claim("k" * 64) is None
    # a folder store makes the parents of what it writes (the journal and index folders
    # did not exist, so a paid render on file:// failed at its first journal write)
    cache.remember("k" * 64, "task_id", "t-1", shot="a")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not a real clip, but bytes")
    cache.store("k" * 64, clip, shot="a")
    claim.release()
    elsewhere = tmp_path / "b" / "film.yaml"
    elsewhere.parent.mkdir()
    other = open_cache(elsewhere, f"file://{tmp_path / 'remote'}")
    assert other.clip_hash("k" * 64) == cache.clip_hash("k" * 64) is not None
    assert other.recall("k" * 64, "task_id") == "t-1"
    memory = open_cache(board, "memory://cache")
    with pytest.raises(CacheError, match="claims would not be safe"):
        memory.try_claim("k" * 64)


def test_an_unreachable_store_is_one_cache_error_without_secrets(write_board: Callable[..., Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    board = write_board(BOARD)
    cache = open_cache(board, "s3://nowhere/prefix")
    with pytest.raises(CacheError) as info:
        cache.lookup("k" * 64)
    text = str(info.value)
    assert "s3://nowhere/prefix" in text and "\n" not in text
    assert SECRET not in text and ACCESS_ID not in text


MATRIX_BOARD = """
storyboard: 1
defaults: {duration: 3, mode: std}
vars: {product: a bottle}
shots:
  - id: opening
    prompt: a sunrise over the sea
    image: null
  - id: hero
    prompt: "{{ product }} on a table"
    image: null
cut: [opening, hero]
"""


def test_a_six_row_matrix_on_a_dask_cluster_renders_six_films_paying_shared_shots_once(
        write_board: Callable[..., Path], s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed

    from pipelines.matrix import plan_matrix, run_matrix

    board = write_board(MATRIX_BOARD, name="spot/film.yaml")
    rows = [{"product": f"product {i}"} for i in range(6)]
    with FakeInference(api_key=KEY, latency=0.3) as fake:
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        monkeypatch.setenv("INFERENCE_BASE_URL", fake.url)
        plan = plan_matrix(board, rows, backend="inference", cache_dir=s3_url)
        assert (plan.films, plan.shots_used, plan.distinct, plan.shared, plan.to_generate) == (6, 12, 7, 1, 7)
        assert len(fake.submissions) == 0  # planning generates nothing
        lines: list[str] = []
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                      host="127.0.0.1", dashboard_address=None) as cluster:
            result = run_matrix(board, rows, backend="inference", cache_dir=s3_url, dask=cluster.scheduler_address,
                                budget=plan.cost, on_progress=lines.append, output_dir=tmp_path / "films")
        prompts = [t.input["prompt"] for t in fake.submissions]
    assert result.ok, [f.error for f in result.films]
    assert len(result.films) == 6 and all(f.film is not None and f.film.is_file() for f in result.films)
    assert prompts.count("a sunrise over the sea") == 1  # shared by six rows, paid once
    assert len(prompts) == 7 and len(set(prompts)) == 7
    assert sum(f.generated for f in result.films) == 7 and sum(f.cached for f in result.films) == 5
    assert result.cost <= (plan.cost or 0)  # the budget held across workers
    assert lines[-1].startswith("films 6/6 done (0 failed)") and "7 paid, 5 cached" in lines[-1]


def test_matrix_plan_command_counts_distinct_and_shared_shots_and_generates_nothing(
        write_board: Callable[..., Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    board = write_board(MATRIX_BOARD, name="spot/film.yaml")
    table = tmp_path / "rows.csv"
    table.write_text("name,product\n" + "".join(f"r{i},product {i}\n" for i in range(4)))
    out = subprocess.run([sys.executable, "-m", "pipelines.matrix", str(board), str(table), "--plan", "--json",
                          "--backend", "inference", "--name-column", "name"],
                         capture_output=True, text=True, timeout=120, check=True)
    plan = json.loads(out.stdout)
    assert (plan["films"], plan["shots"], plan["distinct_shots"], plan["shared_shots"]) == (4, 8, 5, 1)
    assert plan["to_generate"] == 5 and plan["cost"] is not None
    assert float(plan["cost_without_sharing"]) > float(plan["cost"])
    assert not (board.parent / ".storyboard").exists() and not (board.parent / "out").exists()


def test_a_local_cache_does_not_import_fsspec(write_board: Callable[..., Path]) -> None:
    import subprocess
    import sys

    board = write_board(BOARD)
    code = ("import sys; from pathlib import Path; from storyboard.cache import open_cache; "
            f"open_cache(Path({str(board)!r})); print('fsspec' in sys.modules, 's3fs' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_big_matrix_planned_on_every_core_plans_the_same(
        write_board: Callable[..., Path]) -> None:
    from pipelines._plan import plan_batch
    from pipelines.matrix import jobs_for, plan_rows_parallel

    board = write_board(MATRIX_BOARD, name="spot/film.yaml")
    rows = [{"product": f"product {i % 7}"} for i in range(30)]
    parallel = plan_rows_parallel(board, rows, name_column=None, backend="inference", cache_dir=None)
    assert parallel == plan_batch(jobs_for(board, rows), backend="inference")
    assert (parallel.films, parallel.distinct, parallel.shared) == (30, 8, 8)


def test_voiced_lines_and_generated_music_are_shared_through_s3_like_clips(
        write_board: Callable[..., Path], s3_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import storyboard

    prices = tmp_path / "prices.json"  # minimax/music-3-0 publishes no price
    prices.write_text(json.dumps({"minimax/music-3-0": {"by": [], "rates": {"": "0.05"}, "per": "request"}}))
    monkeypatch.setenv("STORYBOARD_PRICES", str(prices))
    narrated = """
    storyboard: 1
    defaults: {duration: 3, sound: false}
    voice: {app: falai/kokoro-tts, voice: af_bella}
    shots:
      - id: a
        prompt: a harbor at dawn
        say: "The harbor wakes."
    audio:
      - app: minimax/music-3-0
        prompt: calm strings
        instrumental: true
    """
    one, two = write_board(narrated, name="one/film.yaml"), write_board(narrated, name="two/film.yaml")
    with FakeInference(api_key=KEY, latency=0.05) as fake:
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        monkeypatch.setenv("INFERENCE_BASE_URL", fake.url)
        first = storyboard.render(one, backend="inference", cache_dir=s3_url, budget="10")
        apps = sorted(t.app.partition("@")[0] for t in fake.submissions)
        assert apps == ["falai/kokoro-tts", "klingai/video-v3", "minimax/music-3-0"]
        second = storyboard.render(two, backend="inference", cache_dir=s3_url, budget="10")
        assert len(fake.submissions) == 3  # the second machine took the line and the music from S3
    assert first.film is not None and second.film is not None
    kept = sorted(p.suffix for p in (two.parent / ".storyboard" / "clips").rglob("*.*"))
    assert kept == [".mp4", ".wav", ".wav"]  # each kept as what it is, read back through the S3 index
