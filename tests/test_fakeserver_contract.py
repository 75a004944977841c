"""The official inferencesh SDK against the fake server: if they disagree, the fake is wrong.

The SDK's synchronous client (``requests``) is used; its async client needs aiohttp,
which is not a dependency here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from inferencesh import Inference, TaskStatus
from inferencesh.client import parse_status
from inferencesh.models.errors import APIError

from fakeserver import FakeInference, gradient_image
from storyboard.media import probe

APP = "klingai/video-v3"


@pytest.fixture(params=["int", "string"], ids=["int-statuses", "string-statuses"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeInference]:
    with FakeInference(files_host="127.0.0.2", latency=0.3, statuses=request.param) as server:
        yield server


@pytest.fixture(scope="module")
def start_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sdk") / "start.png"
    gradient_image(path, 640, 360)
    return path


def client_for(fake: FakeInference, key: str | None = None) -> Inference:
    return Inference(api_key=key or fake.api_key, base_url=fake.url)


def test_sdk_uploads_runs_waits_and_gets_the_video(
    fake: FakeInference, start_image: Path, tmp_path: Path
) -> None:
    client = client_for(fake)
    file = client.files.upload(str(start_image))
    assert file["uri"] and file["upload_url"]
    assert fake.files[file["id"]].data == start_image.read_bytes()

    result = client.run(
        {"app": APP, "input": {"prompt": "a harbour at dawn", "image": file["uri"], "duration": 3}}
    )
    assert isinstance(result, dict)
    assert parse_status(result["status"]) == TaskStatus.COMPLETED
    url = result["output"]["video"]
    assert isinstance(url, str) and url.startswith(fake.files_url)

    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(response.content)
    info = probe(clip)
    assert abs(info.duration - 3) <= 0.15 and (info.width, info.height) == (160, 90)

    task = client.tasks.get(result["id"]).data
    assert task["id"] == result["id"]
    assert parse_status(task["status"]) == TaskStatus.COMPLETED
    assert len(fake.submissions) == 1


def test_sdk_stream_sees_partial_updates_and_the_result(fake: FakeInference) -> None:
    client = client_for(fake)
    stream = client.run(
        {"app": APP, "input": {"prompt": "gulls", "duration": 3, "sound": False}}, stream=True
    )
    statuses = [parse_status(update.get("status")) for update in stream]
    assert statuses[-1] == TaskStatus.COMPLETED
    assert TaskStatus.RUNNING in statuses  # a partial update carried it
    assert stream.result is not None and stream.result["output"]["video"]


def test_sdk_reconciles_a_stream_that_ends_early(fake: FakeInference) -> None:
    fake.end_streams = 1
    client = client_for(fake)
    result = client.run({"app": APP, "input": {"prompt": "tide", "duration": 3}})
    assert isinstance(result, dict)
    assert parse_status(result["status"]) == TaskStatus.COMPLETED
    # The SDK reconnects, or (when the task has ended by then, on a loaded machine)
    # reconciles with GET /tasks/{id}: either way the ended stream was not the last word.
    reconciled = [
        c for c in fake.calls_to("GET", f"/tasks/{result['id']}") if c.path.endswith(result["id"])
    ]
    assert fake.streams_opened == 2 or (fake.streams_opened == 1 and reconciled)


def test_sdk_sees_failures_refusals_and_cancel(fake: FakeInference) -> None:
    client = client_for(fake)
    fake.fail_prompt = "storm"
    with pytest.raises(RuntimeError, match=fake.fail_error):
        client.run({"app": APP, "input": {"prompt": "a storm", "duration": 3}})

    with pytest.raises(APIError) as info:
        client.run({"app": APP, "input": {"prompt": "x", "duration": 20}})
    assert info.value.status_code == 422 and "duration" in str(info.value)

    with pytest.raises(APIError) as info:
        client_for(fake, key="sk-wrong").run({"app": APP, "input": {"prompt": "x"}})
    assert info.value.status_code == 401

    fake.latency = 5
    task = client.run({"app": APP, "input": {"prompt": "calm sea"}}, wait=False)
    assert isinstance(task, dict)
    client.tasks.cancel(task["id"])
    assert parse_status(client.tasks.get(task["id"]).data["status"]) == TaskStatus.CANCELLED

    fake.reject = True
    with pytest.raises(RuntimeError, match="rejected"):
        client.run({"app": APP, "input": {"prompt": "no money"}})


def test_rate_limit_per_key_answers_429_with_retry_after_and_latencies_are_drawn(fake: FakeInference) -> None:
    fake.rate_limit = (2, 1.0)  # two runs per second per API key
    fake.extra_keys = {"sk-second-account"}
    fake.latency_range, fake.latency_seed = (2.0, 5.0), 7
    first, second = client_for(fake), client_for(fake, key="sk-second-account")
    job = {"app": APP, "input": {"prompt": "calm sea", "duration": 3}}
    for _ in range(2):
        assert isinstance(first.run(job, wait=False), dict)
    with pytest.raises(APIError) as info:
        first.run(job, wait=False)
    assert info.value.status_code == 429
    assert fake.calls_to("POST", "/apps/run")[-1].status == 429
    assert fake.rate_limited == 1
    assert isinstance(second.run(job, wait=False), dict)  # another key: its own window
    latencies = [t.latency for t in fake.submissions]
    assert len(latencies) == 3 and all(2.0 <= x <= 5.0 for x in latencies) and len(set(latencies)) == 3
    again = FakeInference(latency=0.3)
    again.latency_range, again.latency_seed = (2.0, 5.0), 7
    assert [again._task_latency(0.3) for _ in range(3)] == latencies  # the seed replays them


def test_rate_limit_retry_after_names_the_wait(fake: FakeInference) -> None:
    import httpx

    fake.rate_limit = (1, 3.0)
    body = {"app": APP, "input": {"prompt": "calm sea", "duration": 3}}
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    assert httpx.post(f"{fake.url}/apps/run", json=body, headers=headers).status_code == 200
    refused = httpx.post(f"{fake.url}/apps/run", json=body, headers=headers)
    assert refused.status_code == 429 and refused.headers["Retry-After"] in ("2", "3")
    fake.rate_limit = None
    assert httpx.post(f"{fake.url}/apps/run", json=body, headers=headers).status_code == 200


def test_fail_tasks_fails_the_next_n_whatever_the_prompt_and_upload_errors_keep_the_bytes(
    fake: FakeInference, start_image: Path
) -> None:
    client = client_for(fake)
    fake.fail_tasks = 1
    with pytest.raises(RuntimeError, match=fake.fail_error):
        client.run({"app": APP, "input": {"prompt": "calm sea", "duration": 3}})
    done = client.run({"app": APP, "input": {"prompt": "calm sea", "duration": 3}})
    assert isinstance(done, dict) and parse_status(done["status"]) == TaskStatus.COMPLETED
    assert fake.fail_tasks == 0 and len(fake.submissions) == 2  # the failed one was accepted too

    fake.upload_errors = 1
    with pytest.raises(Exception, match=r"500|upload"):
        client.files.upload(str(start_image))
    (put,) = fake.calls_to("PUT", "/upload/")
    assert put.status == 500 and put.body == start_image.read_bytes()  # the bytes arrived all the same
    assert any(f.data == start_image.read_bytes() for f in fake.files.values())


# ---------------------------------------------------------------- the app endpoint


def test_sdk_reads_the_app_and_a_pinned_version(fake: FakeInference) -> None:
    # The Python SDK (0.36.0) has no apps API; its request layer (the envelope, errors)
    # reads the paths of sdk-js's apps.getByName and apps.getByVersionId.
    client = client_for(fake)
    app = client._request("get", f"/apps/{APP}").data
    assert (app["namespace"], app["name"]) == ("klingai", "video-v3")
    assert app["version_id"] == "snapshot-2026-08-07" == app["version"]["id"]
    props = app["version"]["input_schema"]["properties"]
    assert "resolution" in props and "mode" not in props
    assert "video" in app["version"]["output_schema"]["properties"]

    old = client._request("get", f"/apps/{app['id']}/versions/snapshot-2025-original").data
    assert old["version_id"] == "snapshot-2025-original"
    assert "mode" in old["version"]["input_schema"]["properties"]
    at = client._request("get", f"/apps/{APP}@snapshot-2025-original").data
    assert at["version"] == old["version"]

    with pytest.raises(APIError) as info:
        client._request("get", "/apps/nobody/nothing")
    assert info.value.status_code == 404


def test_sdk_runs_a_pinned_version_and_unknown_inputs_are_ignored(fake: FakeInference) -> None:
    client = client_for(fake)
    sent = {"prompt": "a pier", "duration": 3, "mode": "std", "negative_prompt": "blur"}
    result = client.run({"app": f"{APP}@snapshot-2025-original", "input": sent})
    meta = result["output"]["output_meta"]["outputs"][0]
    assert meta["resolution"] == "720p"  # the earlier version knows mode: std is 720p
    latest = client.run({"app": APP, "input": sent})  # today's version ignores mode silently
    assert latest["output"]["output_meta"]["outputs"][0]["resolution"] == "1080p"
    assert fake.inputs_sent == [sent, sent]
    assert [t.version_id for t in fake.submissions] == [
        "snapshot-2025-original",
        "snapshot-2026-08-07",
    ]


def test_strict_mode_and_schema_rules_refuse_with_422(fake: FakeInference) -> None:
    client = client_for(fake)
    with pytest.raises(APIError) as info:
        client.run({"app": APP, "input": {"prompt": "x", "aspect_ratio": "4:3"}})
    assert info.value.status_code == 422 and "aspect_ratio" in str(info.value)
    with pytest.raises(APIError) as info:
        client.run({"app": APP, "input": {"prompt": "x", "duration": 16}})
    assert info.value.status_code == 422 and "duration" in str(info.value)
    with pytest.raises(APIError) as info:
        client.run({"app": APP, "input": {"duration": 5}})
    assert info.value.status_code == 422 and "prompt" in str(info.value)
    fake.unknown = "strict"
    with pytest.raises(APIError) as info:
        client.run({"app": APP, "input": {"prompt": "x", "negative_prompt": "blur"}})
    assert info.value.status_code == 422 and "negative_prompt" in str(info.value)
    assert fake.submissions == []


def test_drift_changes_the_live_schema(fake: FakeInference) -> None:
    fake.drift = {"duration": {"maximum": 10}}
    client = client_for(fake)
    app = client._request("get", f"/apps/{APP}").data
    assert app["version_id"] == fake.drift_version_id
    assert app["version"]["input_schema"]["properties"]["duration"]["maximum"] == 10
    with pytest.raises(APIError) as info:
        client.run({"app": APP, "input": {"prompt": "x", "duration": 12}})
    assert info.value.status_code == 422
    # the bundled version itself is unchanged when pinned
    client.run({"app": f"{APP}@snapshot-2026-08-07", "input": {"prompt": "x", "duration": 12}})
    assert len(fake.submissions) == 1


def test_image_and_audio_apps_answer_their_output_kind(fake: FakeInference) -> None:
    client = client_for(fake)
    image = client.run({"app": "klingai/image-v3", "input": {"prompt": "a gull"}})
    response = requests.get(image["output"]["image"], timeout=30)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    audio = client.run({"app": "elevenlabs/tts", "input": {"text": "hello"}})
    response = requests.get(audio["output"]["audio"], timeout=30)
    assert response.status_code == 200 and response.content[:4] == b"RIFF"
