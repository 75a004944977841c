"""`storyboard render --backend inference` end to end against the loopback fake
inference.sh: the film, the report, re-attaching to journalled tasks, cancel,
concurrency as the server sees it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.backends.inference import InferenceBackend
from storyboard.cache import open_cache
from storyboard.cli import main
from storyboard.media import probe

KEY = "sk-test-render-7c1d"

BOARD = """
storyboard: 1
defaults: {mode: std, duration: 3}
shots:
  - id: harbor
    prompt: a harbor at dusk
    image: start.png
  - id: keeper
    prompt: the keeper looks up
  - id: gull
    prompt: a gull, silent
    image: "@harbor:first"
    sound: false
"""


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.2) as server:
        yield server


@pytest.fixture
def board_path(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("start.png")
    return write_board(BOARD)


def env(fake: FakeInference) -> dict[str, str]:
    return {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}


def test_cli_render_with_inference_backend(fake: FakeInference, board_path: Path) -> None:
    result = CliRunner().invoke(main, ["render", str(board_path), "--backend", "inference", "--budget", "5"],
                                env=env(fake))
    assert result.exit_code == 0, result.output
    film = board_path.parent / "out" / "film.mp4"
    info = probe(film)
    assert info.has_audio and info.duration == pytest.approx(9 - 1 / 8, abs=0.15)  # one chained seam trimmed
    assert len(fake.submissions) == 3
    report = json.loads((board_path.parent / "out" / "film.mp4.render.json").read_text())
    assert {s["id"]: bool(s["task_id"]) for s in report["shots"]} == {"harbor": True, "keeper": True, "gull": True}
    assert report["cost"] == str(sum(__import__("decimal").Decimal(x) for x in ("0.378", "0.378", "0.252")))
    assert KEY not in result.output
    # unchanged: nothing submitted again
    again = CliRunner().invoke(main, ["render", str(board_path), "--backend", "inference"], env=env(fake))
    assert again.exit_code == 0, again.output
    assert len(fake.submissions) == 3


def test_journalled_task_is_reattached_and_nothing_is_submitted(fake: FakeInference, board_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    board = storyboard.load(board_path)
    backend = InferenceBackend(api_key=KEY, base_url=fake.url)
    pipeline = storyboard.Pipeline(board, backend=backend)
    plan = pipeline.plan()
    key = plan["harbor"].key
    assert key is not None
    # A previous render submitted harbor and died before the clip arrived.
    upload = fake.create_task({"app": "klingai/video-v3", "input": {"prompt": "a harbor at dusk", "duration": 3}})
    open_cache(board_path).remember(key, "task_id", upload.id, shot="harbor", storyboard=str(board_path))
    result = asyncio.run(pipeline.run())
    assert result.shots["harbor"].task_id == upload.id
    runs = fake.calls_to("POST", "/apps/run")
    assert len(runs) == 2  # keeper and gull only: harbor re-attached
    assert all(json.loads(c.body)["input"]["prompt"] != "a harbor at dusk" for c in runs)
    assert list(open_cache(board_path).journal_entries()) == []  # cleared once cached


def test_cancel_command_cancels_journalled_tasks(fake: FakeInference, board_path: Path) -> None:
    board = storyboard.load(board_path)
    key = storyboard.Pipeline(board, backend="animatic").board.plan(backend="inference").by_id["harbor"].key
    assert key is not None
    task = fake.create_task({"app": "klingai/video-v3", "input": {"prompt": "a harbor at dusk", "duration": 3}})
    open_cache(board_path).remember(key, "task_id", task.id, shot="harbor", storyboard=str(board_path))
    result = CliRunner().invoke(main, ["cancel", str(board_path), "--yes"], env=env(fake))
    assert result.exit_code == 0, result.output
    assert "harbor: cancelled" in result.output
    assert [c.path for c in fake.calls_to("POST", f"/tasks/{task.id}/cancel")]
    assert list(open_cache(board_path).journal_entries()) == []


def test_concurrency_limit_as_the_server_sees_it(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    shots = "\n".join(f"  - {{id: s{i}, prompt: shot {i}, image: null}}" for i in range(6))
    path = write_board(f"storyboard: 1\ndefaults: {{duration: 3, mode: std}}\nshots:\n{shots}\n")
    result = CliRunner().invoke(main, ["render", str(path), "--backend", "inference", "-j", "2"], env=env(fake))
    assert result.exit_code == 0, result.output
    assert len(fake.submissions) == 6
    assert fake.max_in_flight == 2


def test_missing_key_is_refused_before_any_request(fake: FakeInference, board_path: Path) -> None:
    result = CliRunner().invoke(main, ["render", str(board_path), "--backend", "inference"],
                                env={"INFERENCE_BASE_URL": fake.url, "INFERENCE_API_KEY": ""})
    assert result.exit_code == 1
    assert "INFERENCE_API_KEY" in result.output
    assert fake.calls == []
