"""Protocol details read from the official SDKs, and the live app read (``get_app``),
against the loopback fake inference.sh."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeInference
from storyboard.backends.base import MemoryContext
from storyboard.backends.inference import InferenceBackend, may_resubmit, parse_app_ref
from storyboard.errors import BackendError, RateLimited, TaskFailed
from storyboard.request import ShotRequest

FAST = {
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "poll_interval": 0.05,
    "stall_timeout": 1.0,
    "timeout": 5.0,
    "max_attempts": 3,
}
APP = "klingai/video-v3"


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(latency=0.2) as server:
        yield server


@pytest.fixture
async def make(fake: FakeInference) -> AsyncIterator[Callable[..., InferenceBackend]]:
    made: list[InferenceBackend] = []

    def factory(**kwargs: Any) -> InferenceBackend:
        backend = InferenceBackend(api_key=fake.api_key, base_url=fake.url, **{**FAST, **kwargs})
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


@dataclass
class WarningContext(MemoryContext):
    """A context that, like the runner's, takes warnings."""

    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def req(shot: str = "pier", **kwargs: Any) -> ShotRequest:
    fields: dict[str, Any] = {"prompt": "a pier in fog", "duration": 3}
    fields.update(kwargs)
    return ShotRequest(shot_id=shot, **fields)


def app_reads(fake: FakeInference) -> list[Any]:
    return fake.calls_to("GET", "/apps/")


# ---------------------------------------------------------------- protocol fixes


async def test_failed_task_error_carried_by_a_partial_update_is_kept(
    fake: FakeInference, make: Callable[..., InferenceBackend], tmp_path: Path
) -> None:
    # The final event is {"data": {id, status, error}, "fields": ["status"]}: merging only
    # the listed fields lost the error ("no error message").
    fake.fail_prompt, fake.terminal_partial = "storm", True
    with pytest.raises(TaskFailed) as info:
        await make().generate(req(prompt="a storm"), MemoryContext("pier", tmp_path / "w"))
    assert fake.fail_error in str(info.value)
    assert "no error message" not in str(info.value)
    task_id = fake.submissions[0].id
    assert [c.path for c in fake.calls_to("GET", "/tasks/")] == [f"/tasks/{task_id}/stream"]


async def test_503_without_retry_after_is_not_resubmitted(
    fake: FakeInference, make: Callable[..., InferenceBackend], tmp_path: Path
) -> None:
    fake.refuse_runs, fake.refuse_status, fake.retry_after = 1, 503, None
    ctx = MemoryContext("pier", tmp_path / "w")
    with pytest.raises(BackendError, match="may have been accepted") as info:
        await make().generate(req(), ctx)
    assert info.value.status == 503 and not info.value.retryable
    assert len(fake.calls_to("POST", "/apps/run")) == 1
    assert ctx.journal.get("submitting")  # left for the next render to warn about


@pytest.mark.parametrize(("status", "retry_after"), [(429, None), (429, "0"), (503, "0")])
async def test_clearly_refused_submission_is_resubmitted(
    status: int,
    retry_after: str | None,
    fake: FakeInference,
    make: Callable[..., InferenceBackend],
    tmp_path: Path,
) -> None:
    fake.refuse_runs, fake.refuse_status, fake.retry_after = 1, status, retry_after
    await make().generate(req(), MemoryContext("pier", tmp_path / "w"))
    assert len(fake.calls_to("POST", "/apps/run")) == 2 and len(fake.submissions) == 1


def test_may_resubmit_rule() -> None:
    import httpx

    def answer(code: int, **headers: str) -> httpx.Response:
        return httpx.Response(code, headers=headers)

    assert may_resubmit(answer(429))
    assert may_resubmit(answer(503, **{"Retry-After": "2"}))
    assert not may_resubmit(answer(503))
    assert not may_resubmit(answer(500, **{"Retry-After": "2"}))
    assert not may_resubmit(answer(502))


async def test_server_messages_become_warnings(
    fake: FakeInference,
    make: Callable[..., InferenceBackend],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.messages = [{"level": "warning", "message": "klingai/video-v3 input 'mode' is ignored"}]
    ctx = WarningContext("pier", tmp_path / "w")
    await make().generate(req(), ctx)
    assert ctx.warnings and all("input 'mode' is ignored" in w for w in ctx.warnings)
    plain = MemoryContext("pier2", tmp_path / "w2")  # the runner's contexts and MemoryContext keep them
    await make().generate(req("pier2", prompt="another pier"), plain)
    assert any("input 'mode' is ignored" in w for w in plain.warnings)


async def test_pinned_app_ref_submitted_exactly_as_given(
    fake: FakeInference, make: Callable[..., InferenceBackend], tmp_path: Path
) -> None:
    ref = f"{APP}@snapshot-2025-original"
    await make().generate(req(app=ref), MemoryContext("pier", tmp_path / "w"))
    assert fake.calls_to("POST", "/apps/run")[0].json["app"] == ref
    assert fake.submissions[0].version_id == "snapshot-2025-original"


# ---------------------------------------------------------------- get_app


async def test_get_app_reads_the_live_app_in_one_request(
    fake: FakeInference, make: Callable[..., InferenceBackend]
) -> None:
    app = await make().get_app(APP)
    assert app["version_id"] == "snapshot-2026-08-07"
    assert "resolution" in app["version"]["input_schema"]["properties"]
    assert "video" in app["version"]["output_schema"]["properties"]
    assert [c.path for c in app_reads(fake)] == [f"/apps/{APP}"]
    assert app_reads(fake)[0].headers["authorization"] == f"Bearer {fake.api_key}"


async def test_get_app_pinned_version(
    fake: FakeInference, make: Callable[..., InferenceBackend]
) -> None:
    backend = make()
    old = await backend.get_app(f"{APP}@snapshot-2025-original")
    assert old["version_id"] == "snapshot-2025-original"
    assert "mode" in old["version"]["input_schema"]["properties"]
    assert len(app_reads(fake)) == 2  # by name, then the version (as sdk-js getByVersionId)
    current = await backend.get_app(f"{APP}@snapshot-2026-08-07")
    assert current["version_id"] == "snapshot-2026-08-07"
    assert len(app_reads(fake)) == 3  # the current version needs no second read
    with pytest.raises(BackendError, match="has no version 'nope'") as info:
        await backend.get_app(f"{APP}@nope")
    assert info.value.status == 404


async def test_get_app_sees_a_drifted_live_schema(
    fake: FakeInference, make: Callable[..., InferenceBackend]
) -> None:
    fake.drift = {"duration": {"maximum": 10}}
    app = await make().get_app(APP)
    assert app["version_id"] == fake.drift_version_id
    assert app["version"]["input_schema"]["properties"]["duration"]["maximum"] == 10


async def test_get_app_unknown_app_is_a_clear_404(
    fake: FakeInference, make: Callable[..., InferenceBackend]
) -> None:
    with pytest.raises(BackendError) as info:
        await make().get_app("nobody/nothing")
    assert info.value.status == 404 and not info.value.retryable
    assert str(info.value) == "unknown app 'nobody/nothing' on inference.sh"
    assert len(app_reads(fake)) == 1  # a 404 is final


async def test_get_app_retried_then_succeeds(
    fake: FakeInference, make: Callable[..., InferenceBackend]
) -> None:
    fake.app_failures, fake.retry_after = 2, None
    app = await make().get_app(APP)
    assert app["version_id"] == "snapshot-2026-08-07"
    assert len(app_reads(fake)) == 3


async def test_get_app_gives_up_with_a_clear_error(
    fake: FakeInference, make: Callable[..., InferenceBackend]
) -> None:
    fake.app_failures = 100
    with pytest.raises(RateLimited) as info:
        await make().get_app(APP)
    assert "read app klingai/video-v3" in str(info.value) and "3 attempts" in str(info.value)
    assert info.value.status == 503 and info.value.retryable
    assert len(app_reads(fake)) == 3
    assert fake.submissions == []


@pytest.mark.parametrize("ref", ["video-v3", "klingai/video-v3@", "a/b/c", "klingai/video v3", ""])
def test_malformed_app_refs_are_refused(ref: str) -> None:
    with pytest.raises(BackendError, match="malformed app reference"):
        parse_app_ref(ref)


def test_app_refs_parse() -> None:
    assert parse_app_ref(APP) == (APP, None)
    assert parse_app_ref(f"{APP}@snapshot-2025-original") == (APP, "snapshot-2025-original")
