"""Issue 29: two Dask worker threads in one process rendering against an s3:// cache (a
moto server) froze the whole process. The cause was CPython 3.11.0-3.11.8 (gh-106883): the
worker's profiler calls ``sys._current_frames()`` every few milliseconds, and a garbage
collection inside it that frees a ``threading.local`` deadlocks on the runtime's
thread-list lock while holding the GIL (docs/scale.md, "Threads per worker"). Renders in
worker threads make exactly that garbage, so more threads met it sooner.
``storyboard.films.guard_current_frames`` (called by every film task) turns the collector
off for that one call, which is CPython's own fix.

The scenario runs in a child process: a frozen process cannot even run a Python timeout,
so the test kills it after ``LIMIT`` seconds and fails. It makes the freeze likely without
the guard: the moto server and the fake inference.sh live in that process (a thread per
request: many fresh frames for the profiler to make), the profiler samples every
millisecond and the collector runs often. Heavier runs, outside CI (``--unguarded``
reproduces the freeze on an affected Python)::

    python -m tests.test_dask_threads --films 24 --threads 4 --runs 10 [--unguarded]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.helpers import KEY, free_port

LIMIT = 90.0  # seconds one scenario may take (about 15 s here); unguarded ones froze for good
BOARD = """storyboard: 1
defaults: {duration: 3}
vars: {product: a bottle}
shots:
  - id: opening
    prompt: a sunrise over the sea
    image: null
  - id: hero
    prompt: "{{ product }} on a table"
    image: null
  - id: close
    prompt: "{{ product }} seen up close"
    image: null
cut: [opening, hero, close]
"""


def scenario(folder: Path, url: str | None, *, films: int, threads: int, guard: bool = True) -> str:
    """Render ``films`` one-row films on a LocalCluster whose one worker has ``threads``
    threads in this process, against the cache at ``url`` (None: a moto server and a bucket
    of this process, as in the test that first froze); one summary line."""
    import gc

    import dask
    import distributed

    from fakeserver import FakeInference
    from pipelines.matrix import run_matrix

    if not guard:  # what every Python before 3.11.9 did: the reproduction, never in CI
        import storyboard.films

        storyboard.films.guard_current_frames = lambda: None  # type: ignore[assignment]
    if url is None:
        url = _moto_bucket()
    board = folder / "spot" / "film.yaml"
    board.parent.mkdir(parents=True, exist_ok=True)
    board.write_text(BOARD)
    gc.set_threshold(int(os.environ.get("GC_THRESHOLD", "50")))  # collections every few dozen allocations, the profiler's calls among them
    with FakeInference(api_key=KEY, latency=0.2) as fake, dask.config.set(
            {"distributed.worker.profile.interval": "1ms"}), distributed.LocalCluster(
            n_workers=1, threads_per_worker=threads, processes=False, protocol="tcp", host="127.0.0.1",
            dashboard_address=None) as cluster:
        os.environ.update(INFERENCE_API_KEY=KEY, INFERENCE_BASE_URL=fake.url)
        result = run_matrix(board, [{"product": f"product {i}"} for i in range(films)], backend="inference",
                            cache_dir=url, dask=cluster.scheduler_address, output_dir=folder / "films")
        paid = len(fake.submissions)
    made = [f for f in result.films if f.film is not None and f.film.is_file()]
    return (f"{len(made)} of {films} films, {paid} paid, {sum(f.generated for f in result.films)} made, "
            f"{sum(f.cached for f in result.films)} cached, errors: {[f.error for f in result.films if f.error]}")


def _moto_bucket() -> str:
    """A moto server on loopback in this process, AWS_* pointed at it, and a fresh bucket."""
    import logging

    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="threads-test",
                      AWS_SECRET_ACCESS_KEY="threads-test", AWS_DEFAULT_REGION="us-east-1")
    bucket = f"sb-{uuid.uuid4().hex[:10]}"
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir(bucket)
    return f"s3://{bucket}/cache"


def _child(folder: Path, url: str | None, films: int, threads: int, *, guard: bool = True,
           limit: float = LIMIT) -> tuple[str, float]:
    """Run the scenario in a child process: (its last line, or "froze"; seconds)."""
    code = ("import sys; from pathlib import Path; from tests.test_dask_threads import scenario; "
            f"print(scenario(Path({str(folder)!r}), {url!r}, films={films}, threads={threads}, guard={guard}))")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    start = time.monotonic()
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=limit, env=env,
                             cwd=root)
    except subprocess.TimeoutExpired:
        return "froze", time.monotonic() - start
    lines = (out.stdout.strip() or out.stderr.strip() or "(no output)").splitlines()
    return lines[-1], time.monotonic() - start


def test_two_worker_threads_in_one_process_render_films_on_s3_without_freezing(tmp_path: Path) -> None:
    line, took = _child(tmp_path, None, films=6, threads=2)
    assert line != "froze", f"the worker process froze for {took:.0f} s (gh-106883 unguarded?)"
    numbers = [int(n) for n in re.findall(r"\d+", line.partition("errors")[0])]
    assert numbers == [6, 6, 13, 13, 5] and line.endswith("errors: []"), line  # "opening" paid once for 6


# docs/scale.md's minimal reproduction: no Dask, no S3. The collection starts at the
# second allocation from the call: the frame object made under HEAD_LOCK.
FREEZE = """
import gc, sys, threading, time
threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
class Node: pass
gc.disable()
node = Node(); node.local = threading.local(); node.local.node = node; del node
if GUARD:
    from storyboard.films import guard_current_frames
    guard_current_frames()
gc.set_threshold(gc.get_count()[0] + 1)
gc.enable()
print(len(sys._current_frames()), "frames")
"""


def _freeze(guard: bool) -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run([sys.executable, "-c", f"GUARD = {guard}\n{FREEZE}"], capture_output=True, text=True,
                             timeout=8, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    except subprocess.TimeoutExpired:
        return "froze"
    return out.stdout.strip() or out.stderr.strip()


def test_the_minimal_reproduction_freezes_without_the_guard_and_returns_with_it() -> None:
    import storyboard.films as films

    assert _freeze(guard=True) == "2 frames"
    if films._FRAMES_LOCK_BUG:  # 3.11.0-3.11.8: the interpreter's own deadlock, shown once
        assert _freeze(guard=False) == "froze"


def test_the_guard_turns_the_collector_off_only_inside_the_call_and_only_where_needed() -> None:
    import gc

    import storyboard.films as films

    seen: list[bool] = []
    original = sys._current_frames
    try:
        sys._current_frames = lambda: seen.append(gc.isenabled()) or {}  # type: ignore[assignment,func-returns-value]
        films.guard_current_frames()
        films.guard_current_frames()  # once only
        assert sys._current_frames() == {}
        assert gc.isenabled()
    finally:
        sys._current_frames = original
    assert seen == ([False] if films._FRAMES_LOCK_BUG else [True])


def _main() -> None:  # pragma: no cover - the heavier stress, by hand
    import tempfile

    ap = argparse.ArgumentParser(description="Dask worker threads on an s3:// cache (moto): freeze or not")
    ap.add_argument("--films", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--unguarded", action="store_true", help="without the gh-106883 guard (expect freezes)")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds before a run counts as frozen")
    args = ap.parse_args()
    frozen = 0
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            line, took = _child(Path(folder), None, args.films, args.threads, guard=not args.unguarded,
                                limit=args.limit)
        frozen += line == "froze"
        print(f"run {run}: {line} ({took:.1f} s)", flush=True)
    print(f"{frozen} of {args.runs} runs froze")


if __name__ == "__main__":  # pragma: no cover
    _main()
