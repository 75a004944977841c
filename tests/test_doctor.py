"""``storyboard doctor`` against real parts: this machine's ffmpeg, the loopback fake
inference.sh, a moto S3 server, and a Dask scheduler and worker started from the command
line. Each check says ok or what to do; a blocking problem exits 1; the key never shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeInference
from tests.helpers import free_port, wait_for_worker

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-doctor-3f9d0c"


def _doctor(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "storyboard.cli", "doctor", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=120)


def _checks(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    data = json.loads(out.stdout)
    return {c["name"]: c for c in data["checks"]}


def test_doctor_reports_every_part_each_ok_or_what_to_do(tmp_path: Path) -> None:
    with FakeInference(api_key=KEY, latency=0.05) as fake:
        out = _doctor("--json", "--cache-dir", str(tmp_path / "cache"),
                      env={"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url})
    assert out.returncode == 0, out.stderr
    checks = _checks(out)
    assert {"ffmpeg", "libass", "espeak-ng", "fonts: cards", "fonts: captions", "API key", "service",
            "cache"} <= set(checks)
    assert all(c["status"] == "ok" or c["fix"] for c in checks.values()), checks  # ok, or what to do
    assert checks["service"]["status"] == "ok" and "takes the key" in checks["service"]["detail"]
    assert checks["API key"]["detail"] == f"INFERENCE_API_KEY is set ({len(KEY)} characters)"
    assert str(tmp_path / "cache") in checks["cache"]["detail"] and "GB free" in checks["cache"]["detail"]
    assert KEY not in out.stdout + out.stderr
    text = _doctor("--offline", "--cache-dir", str(tmp_path / "cache"))
    assert text.returncode == 0 and all(line.split()[0] in ("ok", "warn") for line in text.stdout.splitlines())


def test_doctor_says_what_to_do_about_a_refused_key_and_no_key(tmp_path: Path) -> None:
    with FakeInference(api_key=KEY, latency=0.05) as fake:
        wrong = _checks(_doctor("--json", env={"INFERENCE_API_KEY": "sk-wrong-0000", "INFERENCE_BASE_URL": fake.url},
                                cwd=tmp_path))
        none = _checks(_doctor("--json", env={"INFERENCE_API_KEY": "", "INFERENCE_BASE_URL": fake.url},
                               cwd=tmp_path))
    assert wrong["service"]["status"] == "warn" and "refuses the key" in wrong["service"]["detail"]
    assert "sk-wrong-0000" not in json.dumps(wrong)
    assert none["API key"]["status"] == "warn" and "export INFERENCE_API_KEY" in none["API key"]["fix"]


def test_a_broken_ffmpeg_fails_the_doctor_with_what_to_do(tmp_path: Path) -> None:
    out = _doctor("--offline", env={"STORYBOARD_FFMPEG": "/bin/false"}, cwd=tmp_path)
    assert out.returncode == 1
    line = next(ln for ln in out.stdout.splitlines() if " ffmpeg " in f" {ln} ")
    assert line.startswith("fail") and "STORYBOARD_FFMPEG" in line


def test_an_unwritable_cache_fails(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")  # no one, root included, makes a folder inside a file
    out = _doctor("--offline", "--json", "--cache-dir", str(tmp_path / "a-file" / "cache"))
    assert out.returncode == 1 and _checks(out)["cache"]["status"] == "fail"


def test_an_s3_cache_round_trips_and_a_missing_bucket_fails(tmp_path: Path) -> None:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "doctorid",
               "AWS_SECRET_ACCESS_KEY": "doctorsecret", "AWS_DEFAULT_REGION": "us-east-1"}
        import boto3

        bucket = f"doc-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="doctorid",
                     aws_secret_access_key="doctorsecret", region_name="us-east-1").create_bucket(Bucket=bucket)
        good = _doctor("--offline", "--json", "--cache-dir", f"s3://{bucket}/cache", env=env)
        bad = _doctor("--offline", "--json", "--cache-dir", f"s3://no-such-{bucket}/cache", env=env)
    finally:
        server.stop()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "round trip" in _checks(good)["cache"]["detail"]
    assert bad.returncode == 1 and _checks(bad)["cache"]["status"] == "fail"
    assert "doctorsecret" not in bad.stdout + bad.stderr


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A scheduler and a worker from the command line; the environment they share."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    site = tmp_path / "site"
    site.mkdir()
    (site / "storyboard").symlink_to(ROOT / "storyboard")
    env = {**os.environ, "PYTHONPATH": str(site), "INFERENCE_API_KEY": KEY}
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
                               ":0", "--no-show"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=tmp_path)]
    try:
        procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "2", "--no-dashboard", "--host",
                                       "127.0.0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      cwd=tmp_path))
        wait_for_worker(address)
        yield address, env
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def test_doctor_checks_a_dask_cluster_can_load_the_tasks(scheduler: tuple[str, dict[str, str]],
                                                         tmp_path: Path) -> None:
    address, _ = scheduler
    out = _doctor("--offline", "--json", "--dask", address, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    checks = _checks(out)
    assert checks["dask scheduler"]["status"] == "ok"
    workers = [c for name, c in checks.items() if name.startswith("dask worker ")]
    assert len(workers) == 1 and workers[0]["status"] == "ok", workers


def test_doctor_says_to_install_storyboard_where_the_cluster_lacks_it(tmp_path: Path) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    without = tmp_path / "without" / "storyboard"
    without.mkdir(parents=True)
    (without / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'storyboard'\")\n")
    env = {**os.environ, "PYTHONPATH": str(without.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                             "--dashboard-address", ":0", "--no-show"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)  # not this checkout: -m puts cwd first
    try:
        import time

        import distributed

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                distributed.Client(address, timeout=5).close()
                break
            except OSError:
                time.sleep(0.5)
        out = _doctor("--offline", "--json", "--dask", address, cwd=tmp_path)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    failed = [c for c in json.loads(out.stdout)["checks"] if c["status"] == "fail"]
    assert failed and "storyboard-film[dask]" in failed[0]["fix"], failed


def test_ci_runs_the_doctor() -> None:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert any(ln.startswith("storyboard doctor") for ln in lines)


def test_the_cache_check_leaves_no_folder_behind(tmp_path: Path) -> None:
    out = _doctor("--offline", "--json", cwd=tmp_path)
    assert out.returncode == 0 and _checks(out)["cache"]["status"] in ("ok", "warn")
    assert str(tmp_path / ".storyboard") in _checks(out)["cache"]["detail"]
    assert list(tmp_path.iterdir()) == []
