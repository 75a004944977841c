"""Faults between storyboard and inference.sh, played by the fake server on 127.0.0.1:
refused and busy submissions, a closed port, broken and silent streams, failed and
rejected tasks, missing, truncated and corrupt downloads, a server slower than every
timeout. Whatever happens, a render either finishes the film or stops with a clear
error, keeps what was paid for, and the next render pays only for what is missing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fakeserver import FakeInference
from storyboard.cache import open_cache
from storyboard.cli import main
from storyboard.errors import BackendError, RenderFailed
from storyboard.events import Event, RenderResult, Warning_
from tests.helpers import BOARD, KEY, SHOTS, backend_for, render


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.3) as server:
        yield server


@pytest.fixture
def board_path(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("start.png")
    return write_board(BOARD)


def prompts_paid(fake: FakeInference) -> list[str]:
    return sorted(t.input["prompt"] for t in fake.submissions)


def cli_render(board_path: Path, fake_url: str, *args: str) -> Any:
    env = {"INFERENCE_BASE_URL": fake_url, "INFERENCE_API_KEY": KEY}
    return CliRunner().invoke(main, ["render", str(board_path), "--backend", "inference", *args], env=env)


def film_of(board_path: Path) -> Path:
    return board_path.parent / "out" / f"{board_path.stem}.mp4"


def assert_finished(result: RenderResult, fake: FakeInference, paid: int = SHOTS) -> None:
    assert result.film is not None and result.film.exists()
    assert len(fake.submissions) == paid, prompts_paid(fake)


# ---------------------------------------------------------------- submission refused


@pytest.mark.parametrize("status", [503, 429])
def test_busy_submission_is_retried_after_retry_after(fake: FakeInference, board_path: Path, status: int) -> None:
    fake.refuse_runs, fake.refuse_status, fake.retry_after = 2, status, "0"
    result = render(board_path, backend_for(fake))
    assert_finished(result, fake)
    assert len(fake.calls_to("POST", "/apps/run")) == SHOTS + 2


def test_always_busy_stops_clearly_and_pays_nothing(fake: FakeInference, board_path: Path) -> None:
    fake.refuse_runs, fake.refuse_status, fake.retry_after = 1000, 429, "0"
    with pytest.raises(RenderFailed) as err:
        render(board_path, backend_for(fake))
    assert "busy" in str(err.value) and "no film was written" in str(err.value)
    assert fake.submissions == [] and not film_of(board_path).exists()
    fake.refuse_runs = 0
    assert_finished(render(board_path, backend_for(fake)), fake)


def test_connection_refused_is_clear_and_pays_nothing(board_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("INFERENCE_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(BackendError) as err:  # the live app check, before anything is paid, cannot connect
        render(board_path, backend_for(None))
    assert "cannot connect to 127.0.0.1" in str(err.value) and "nothing was paid" in str(err.value)
    assert "Traceback" not in str(err.value) and not film_of(board_path).exists()
    assert not [d for _, d in open_cache(board_path).journal_entries() if d.get("state", {}).get("task_id")]


def test_payment_required_is_clear_and_pays_nothing(fake: FakeInference, board_path: Path) -> None:
    fake.payment_required = True
    with pytest.raises(RenderFailed) as err:
        render(board_path, backend_for(fake))
    assert "HTTP 402" in str(err.value) and "top up" in str(err.value)
    assert fake.submissions == [] and not film_of(board_path).exists()


# ---------------------------------------------------------------- waiting


def test_stream_cut_midway_reconciles(fake: FakeInference, board_path: Path) -> None:
    fake.latency, fake.drop_streams = 0.6, 3
    assert_finished(render(board_path, backend_for(fake)), fake)
    assert fake.streams_opened > SHOTS


def test_stream_that_only_sends_heartbeats(fake: FakeInference, board_path: Path) -> None:
    fake.heartbeat_streams = 2
    assert_finished(render(board_path, backend_for(fake, stall_timeout=0.5)), fake)


def test_quiet_task_beyond_task_timeout_is_resumed_not_repaid(fake: FakeInference, board_path: Path) -> None:
    fake.latency = 2.5
    with pytest.raises(RenderFailed) as err:
        render(board_path, backend_for(fake, task_timeout=0.3, stall_timeout=0.3))
    assert "has not finished" in str(err.value) and "re-attach" in str(err.value)
    paid = len(fake.submissions)
    assert paid >= 1
    journalled = {d["state"]["task_id"] for _, d in open_cache(board_path).journal_entries()}
    assert journalled == {t.id for t in fake.submissions}
    result = render(board_path, backend_for(fake))
    assert_finished(result, fake)  # the journalled tasks were re-attached, not paid again


# ---------------------------------------------------------------- failed tasks


def test_failed_task_keeps_siblings_and_rerun_pays_only_what_failed(fake: FakeInference, board_path: Path) -> None:
    fake.fail_prompt = "harbor"  # shot a fails; b needs a; c is independent
    result = cli_render(board_path, fake.url)
    assert result.exit_code == 1, result.output
    assert "a: " in result.output and "content policy" in result.output and "Traceback" not in result.output
    assert "skipped (they need a failed shot): b" in result.output
    assert not film_of(board_path).exists()
    assert prompts_paid(fake) == ["a harbor at dusk", "a storm gathers"]  # a (failed) and c; never b
    fake.fail_prompt = None
    again = cli_render(board_path, fake.url)
    assert again.exit_code == 0, again.output
    assert len(fake.submissions) == 4 and film_of(board_path).exists()
    # the re-run paid for the failed shot and its descendant only
    assert sorted(t.input["prompt"] for t in fake.submissions[2:]) == ["a harbor at dusk", "the keeper looks up"]


def test_rejected_task_is_clear_and_rerun_pays_once(fake: FakeInference, board_path: Path) -> None:
    fake.reject = True
    result = cli_render(board_path, fake.url)
    assert result.exit_code == 1, result.output
    assert "rejected: insufficient balance" in result.output and "Traceback" not in result.output
    assert fake.submissions == [] and not film_of(board_path).exists()
    fake.reject = False
    assert cli_render(board_path, fake.url).exit_code == 0
    assert len(fake.submissions) == SHOTS


# ---------------------------------------------------------------- downloads


def test_output_404_then_ok_is_downloaded_again_not_repaid(fake: FakeInference, board_path: Path) -> None:
    fake.output_404 = 2
    assert_finished(render(board_path, backend_for(fake)), fake)
    assert len(fake.calls_to("GET", "/outputs/")) == SHOTS + 2


@pytest.mark.parametrize("knob", ["truncate_downloads", "corrupt_downloads"])
def test_broken_download_is_fetched_again_not_repaid(fake: FakeInference, board_path: Path, knob: str) -> None:
    setattr(fake, knob, 2)
    assert_finished(render(board_path, backend_for(fake)), fake)
    assert len(fake.calls_to("GET", "/outputs/")) == SHOTS + 2


def test_download_that_never_works_keeps_the_task_for_the_next_render(fake: FakeInference, board_path: Path) -> None:
    fake.output_404 = 1000
    with pytest.raises(RenderFailed) as err:
        render(board_path, backend_for(fake, max_attempts=2))
    assert "without paying again" in str(err.value)
    fake.output_404 = 0
    assert_finished(render(board_path, backend_for(fake)), fake)


def test_download_slower_than_the_timeout_is_retried(fake: FakeInference, board_path: Path) -> None:
    fake.slow("download", 2.0, times=1)
    assert_finished(render(board_path, backend_for(fake, timeout=0.5)), fake)


# ------------------------------------------------------------ the submission that may have happened


@pytest.mark.parametrize("fault", ["slow_run_response", "dropped_run_response"])
def test_submission_whose_answer_is_lost_is_not_silently_repaid(fake: FakeInference, board_path: Path,
                                                               fault: str) -> None:
    """The server created (and would bill) the task but its answer never arrived.

    storyboard cannot learn the task id (the API has no idempotency key and no lookup),
    so it does not resubmit in that render and says why; the next render warns that
    it is submitting again, and that task is then paid twice (documented in
    docs/reliability.md)."""
    fake.fail_prompt = None
    if fault == "slow_run_response":
        fake.slow("run", 2.0, times=1)
        backend = backend_for(fake, timeout=0.5)
    else:
        fake.drop_run_responses = 1
        backend = backend_for(fake)
    with pytest.raises(RenderFailed) as err:
        render(board_path, backend, concurrency=1)
    assert "may have accepted it" in str(err.value) or "it may have been accepted" in str(err.value)
    assert "check your tasks on inference.sh" in str(err.value)
    lost = list(fake.submissions)
    runs_first = len(fake.calls_to("POST", "/apps/run"))
    assert runs_first == len(fake.submissions)  # nothing was resubmitted in that render
    assert not film_of(board_path).exists()

    events: list[Event] = []
    result = render(board_path, backend_for(fake), events, concurrency=1)
    warnings = [e for e in events if isinstance(e, Warning_) and "while submitting" in e.message]
    assert len(warnings) == 1, [e.to_dict() for e in events if isinstance(e, Warning_)]
    assert "check your tasks on inference.sh" in warnings[0].message
    assert result.film is not None and result.film.exists()
    assert len(fake.submissions) == SHOTS + 1  # the lost task, paid once more — said out loud
    assert lost[0].input["prompt"] in {t.input["prompt"] for t in fake.submissions[1:]}
    report = result.report.read_text() if result.report else ""
    assert "uncertain_submission" in report


def test_clearly_refused_submission_leaves_no_warning(fake: FakeInference, board_path: Path) -> None:
    fake.refuse_runs, fake.refuse_status = 1000, 503
    with pytest.raises(RenderFailed):
        render(board_path, backend_for(fake, max_attempts=2))
    fake.refuse_runs = 0
    events: list[Event] = []
    assert_finished(render(board_path, backend_for(fake), events), fake)
    assert not [e for e in events if isinstance(e, Warning_) and "while submitting" in e.message]
