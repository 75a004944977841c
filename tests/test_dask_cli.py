"""Dask as docs/scale.md documents it: a scheduler and a worker started from the command
line (``dask scheduler`` / ``dask worker``) on 127.0.0.1, with storyboard installed and
nothing else (no ``pipelines/`` on their path), a worker started in another folder, and
a matrix run with relative paths. A failed film shows its first shot's error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakeserver import FakeInference
from tests.helpers import free_port, wait_for_worker

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-dask-cli-5e2a"
BOARD = """
storyboard: 1
defaults: {mode: std, duration: 3}
shots:
  - id: opening
    prompt: a sunrise over the sea
    image: start.png
  - id: hero
    prompt: "{{ product }} on a table"
    image: null
"""


def _storyboard_only(tmp: Path) -> str:
    """A folder holding storyboard alone (a link to this checkout's package): the path of a
    machine where storyboard is installed and the repository's other folders are not."""
    site = tmp / "site"
    site.mkdir()
    (site / "storyboard").symlink_to(ROOT / "storyboard")
    return str(site)


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.1) as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path, fake: FakeInference) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": _storyboard_only(tmp_path), "INFERENCE_API_KEY": KEY,
           "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    elsewhere = tmp_path / "worker-home"
    elsewhere.mkdir()
    dask = [sys.executable, "-m", "dask"]  # the `dask` command, run by this interpreter
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0",
                               "--no-show"], env=env, cwd=elsewhere, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "scheduler.log", "w"))]  # noqa: SIM115
    address = f"tcp://127.0.0.1:{port}"
    try:
        procs.append(subprocess.Popen(
            [*dask, "worker", address, "--nthreads", "2", "--nworkers", "1",  # two threads: issue 29
             "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp_path / "dask-work")],
            env={**env, "INFERENCE_BASE_URL": fake.url}, cwd=elsewhere,
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "w")))  # noqa: SIM115
        wait_for_worker(address)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_a_matrix_on_a_cli_started_scheduler_with_relative_paths(fake: FakeInference, cluster: str,
                                                                 tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "spot").mkdir(parents=True)
    (project / "spot" / "film.yaml").write_text(BOARD)
    from PIL import Image

    Image.new("RGB", (640, 360), (200, 120, 40)).save(project / "spot" / "start.png")
    (project / "rows.csv").write_text("name,product\nmug,a red mug\nvase,a vase that refuses\n")
    fake.fail_prompt = "refuses"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url,
           "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "pipelines.matrix", "spot/film.yaml", "rows.csv", "--name-column",
                          "name", "--backend", "inference", "--dask", cluster, "--cache-dir", "cache",
                          "--output-dir", "films"], cwd=project, env=env, capture_output=True, text=True,
                         timeout=300)
    logs = (tmp_path / "scheduler.log").read_text() + (tmp_path / "worker.log").read_text()
    assert out.returncode == 1, (out.stdout, out.stderr, logs[-3000:])  # one film failed, on purpose
    assert "deserializ" not in out.stdout + out.stderr + logs, logs[-3000:]
    assert (project / "films" / "mug.mp4").is_file(), (out.stdout, out.stderr)
    assert (project / "cache" / "clips").is_dir()  # the relative cache is the client's folder
    vase = next(line for line in out.stdout.splitlines() if "vase" in line)
    assert re.search(r"hero: .*content policy", vase), out.stdout  # the first shot's error, not "1 shot(s)"
    assert "films 2/2 done (1 failed)" in out.stderr
