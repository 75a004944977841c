"""The fake server's app rules: the bundled snapshots judged with jsonschema, as the
real service judges input (unknown names ignored, or refused in strict mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakeserver import Catalog, drift_schema, gradient_image, input_problem

APP = "klingai/video-v3"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def test_catalog_holds_both_kling_versions_newest_last(catalog: Catalog) -> None:
    assert [v.version_id for v in catalog.versions[APP]] == [
        "snapshot-2025-original",
        "snapshot-2026-08-07",
    ]
    newest = catalog.find(APP)
    assert newest is not None and newest.version_id == "snapshot-2026-08-07"
    assert catalog.find(APP, "nope") is None and catalog.find("nobody/nothing") is None
    kinds = {app: versions[-1].kind for app, versions in catalog.versions.items()}
    assert kinds[APP] == "video" and kinds["klingai/image-v3"] == "image"
    assert kinds["elevenlabs/tts"] == "audio"


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"prompt": "x", "duration": 2}, "input.duration"),
        ({"prompt": "x", "duration": 16}, "input.duration"),
        ({"prompt": "x", "duration": "5"}, "input.duration"),
        ({"prompt": "x", "aspect_ratio": "4:3"}, "input.aspect_ratio"),
        ({"prompt": "x", "resolution": "8k"}, "input.resolution"),
        ({"prompt": "x", "sound": "yes"}, "input.sound"),
        ({"duration": 5}, "'prompt' is a required property"),
        ({"prompt": "x", "end_image": "http://x/e.png"}, "requires input.image"),
    ],
)
def test_today_schema_refuses(catalog: Catalog, inputs: dict[str, object], fragment: str) -> None:
    version = catalog.find(APP)
    assert version is not None
    problem = input_problem(version, inputs)
    assert problem is not None and fragment in problem


def test_unknown_inputs_ignored_or_refused_by_mode(catalog: Catalog) -> None:
    version = catalog.find(APP)
    assert version is not None
    stale = {"prompt": "x", "mode": "pro", "negative_prompt": "blur"}
    assert input_problem(version, stale) is None  # as the real app: dropped silently
    problem = input_problem(version, stale, unknown="strict")
    assert problem is not None and "mode, negative_prompt" in problem
    old = catalog.find(APP, "snapshot-2025-original")
    assert old is not None and input_problem(old, stale, unknown="strict") is None


def test_drift_changes_and_removes_properties(catalog: Catalog) -> None:
    version = catalog.find(APP)
    assert version is not None
    schema = drift_schema(version.input_schema, {"duration": {"maximum": 10}, "sound": None})
    assert schema["properties"]["duration"]["maximum"] == 10
    assert "sound" not in schema["properties"]
    assert version.input_schema["properties"]["duration"]["maximum"] == 15  # a copy


def test_image_limits_come_from_the_schema(catalog: Catalog, tmp_path: Path) -> None:
    version = catalog.find(APP)
    assert version is not None
    small, ok = tmp_path / "small.png", tmp_path / "ok.png"
    gradient_image(small, 320, 200)
    gradient_image(ok, 640, 360)
    files = {"u:small": small.read_bytes(), "u:ok": ok.read_bytes(), "u:text": b"not an image"}
    problem = input_problem(version, {"prompt": "x", "image": "u:small"}, file_bytes=files.get)
    assert problem is not None and "at least 300 px" in problem
    assert input_problem(version, {"prompt": "x", "image": "u:ok"}, file_bytes=files.get) is None
    problem = input_problem(version, {"prompt": "x", "image": "u:text"}, file_bytes=files.get)
    assert problem is not None and "not an image" in problem
    problem = input_problem(version, {"prompt": "x", "image": "u:gone"}, file_bytes=files.get)
    assert problem is not None and "not an uploaded file" in problem


# ---------------------------------------------------------------- each app by its own profile


def _png(tmp_path: Path, w: int, h: int, fmt: str = "PNG") -> bytes:
    from PIL import Image

    path = tmp_path / f"{w}x{h}.{fmt.lower()}"
    Image.new("RGB", (w, h), (40, 90, 160)).save(path, fmt)
    return path.read_bytes()


def _wav() -> bytes:
    from fakeserver import make_wav

    return make_wav(0.2)


def _judge(catalog: Catalog, app: str, inputs: dict[str, object], files: dict[str, bytes] | None = None) -> str | None:
    version = catalog.find(app)
    assert version is not None
    return input_problem(version, inputs, file_bytes=(files or {}).get)


def test_the_end_frame_rule_is_each_apps_own(catalog: Catalog, tmp_path: Path) -> None:
    img = {"u:a": _png(tmp_path, 640, 360), "u:b": _png(tmp_path, 641, 360)}
    o3 = "falai/kling-video-o3-r2v"
    assert _judge(catalog, o3, {"prompt": "x", "start_image": "u:a", "end_image": "u:b"}, img) is None
    assert "requires input.start_image" in str(_judge(catalog, o3, {"prompt": "x", "end_image": "u:b"}, img))
    wan = "alibaba/wan-2-7-i2v"
    assert "requires input.first_frame" in str(_judge(catalog, wan, {"prompt": "x", "last_frame": "u:b"}, img))
    assert _judge(catalog, wan, {"prompt": "x", "first_frame": "u:a", "last_frame": "u:b"}, img) is None


def test_wan_takes_240_to_8000_px_up_to_20_mb_in_the_formats_it_names(catalog: Catalog, tmp_path: Path) -> None:
    wan = "alibaba/wan-2-7-i2v"
    files = {"u:small": _png(tmp_path, 320, 230), "u:wide": _png(tmp_path, 8001, 240),
             "u:webp": _png(tmp_path, 640, 360, "WEBP"), "u:bmp": _png(tmp_path, 240, 8000, "BMP"),
             "u:big": b"\x89PNG" + bytes(20 * 1024 * 1024), "u:wav": _wav()}
    refusals = {"u:small": "at least 240 px", "u:wide": "at most 8000 px", "u:big": "larger than 20 MB",
                "u:wav": "not an image"}
    for uri, words in refusals.items():
        assert words in str(_judge(catalog, wan, {"prompt": "x", "first_frame": uri}, files)), uri
    for uri in ("u:webp", "u:bmp"):  # the formats Wan names, which Kling refuses
        assert _judge(catalog, wan, {"prompt": "x", "first_frame": uri}, files) is None
    assert "must be jpeg, png" in str(_judge(catalog, APP, {"prompt": "x", "image": "u:webp"}, files))


def test_wan_audio_and_video_inputs_are_checked_by_kind(catalog: Catalog, tmp_path: Path) -> None:
    from fakeserver import make_clip

    wan = "alibaba/wan-2-7-i2v"
    clip = make_clip(width=64, height=36, duration=1, fps=8, sound=False)
    files = {"u:wav": _wav(), "u:mp4": clip, "u:png": _png(tmp_path, 640, 360)}
    assert _judge(catalog, wan, {"prompt": "x", "driving_audio": "u:wav"}, files) is None
    assert "not an audio file" in str(_judge(catalog, wan, {"prompt": "x", "driving_audio": "u:mp4"}, files))
    assert _judge(catalog, wan, {"prompt": "x", "first_clip": "u:mp4"}, files) is None
    assert "not a video file" in str(_judge(catalog, wan, {"prompt": "x", "first_clip": "u:png"}, files))


def test_seedance_duration_and_reference_lists(catalog: Catalog, tmp_path: Path) -> None:
    sd = "bytedance/seedance-2-0"
    for duration, ok in ((3, False), (4, True), (15, True), (16, False), (-1, True), (0, False)):
        problem = _judge(catalog, sd, {"prompt": "x", "duration": duration})
        assert (problem is None) == ok, (duration, problem)
        assert ok or "4..15 or -1" in str(problem)
    files = {"u:a": _png(tmp_path, 640, 360), "u:txt": b"hello"}
    assert _judge(catalog, sd, {"prompt": "x", "reference_images": ["u:a", "u:a"]}, files) is None
    assert "not an image" in str(_judge(catalog, sd, {"prompt": "x", "reference_images": ["u:a", "u:txt"]}, files))
    assert "not an uploaded file" in str(_judge(catalog, sd, {"prompt": "x", "reference_images": ["u:gone"]}, files))
    assert "cannot be combined with input.image" in str(
        _judge(catalog, sd, {"prompt": "x", "reference_images": ["u:a"], "image": "u:a"}, files))


def test_elevenlabs_text_limit_follows_the_model(catalog: Catalog) -> None:
    tts = "elevenlabs/tts"
    assert "at most 5,000 characters" in str(_judge(catalog, tts, {"text": "a" * 5001}))
    assert _judge(catalog, tts, {"text": "a" * 5001, "model": "eleven_multilingual_v2"}) is None
    assert "at most 40,000" in str(_judge(catalog, tts, {"text": "a" * 40001, "model": "eleven_flash_v2_5"}))


def test_an_app_added_as_data_is_judged_by_its_own_profile(tmp_path: Path) -> None:
    import json
    import shutil

    from fakeserver.rules import DATA_DIR

    folder = tmp_path / "acme" / "clip-1"
    shutil.copytree(DATA_DIR / "falai" / "kling-video-o3-r2v", folder)
    profile = json.loads((folder / "profile.json").read_text())
    profile["requires"] = {"start_image": "end_image"}  # this app's own (made-up) rule
    (folder / "profile.json").write_text(json.dumps(profile))
    for snap in (folder / "versions").glob("*.json"):
        raw = json.loads(snap.read_text())
        snap.write_text(json.dumps({**raw, "app": "acme/clip-1"}))
    version = Catalog(tmp_path).find("acme/clip-1")
    assert version is not None
    files = {"u:a": _png(tmp_path, 640, 360)}
    assert "requires input.end_image" in str(input_problem(version, {"prompt": "x", "start_image": "u:a"},
                                                           file_bytes=files.get))
    assert input_problem(version, {"prompt": "x", "end_image": "u:a"}, file_bytes=files.get) is None


def _run(fake: object, app: str, inputs: dict[str, object]) -> dict[str, object]:
    import time

    import httpx

    from fakeserver import FakeInference

    assert isinstance(fake, FakeInference)
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.url, headers=headers, timeout=30) as client:
        answer = client.post("/apps/run", json={"app": app, "input": inputs})
        assert answer.status_code == 200, answer.text
        task_id = answer.json()["data"]["id"]
        for _ in range(400):
            task = client.get(f"/tasks/{task_id}").json()["data"]
            if task["status"] == 10:
                output: dict[str, object] = task["output"]
                return output
            time.sleep(0.02)
    raise AssertionError("the task never completed")


def test_every_output_carries_pricing_metadata_with_its_real_length() -> None:
    from fakeserver import FakeInference
    from fakeserver.meta import mp4_video_seconds

    with FakeInference(latency=0.05) as fake:
        auto = _run(fake, "bytedance/seedance-2-0", {"prompt": "tide", "duration": -1})
        meta = auto["output_meta"]
        assert isinstance(meta, dict)
        video = meta["outputs"][0]
        assert video["type"] == "video" and video["seconds"] == 5.0  # "auto": what was made, not -1
        assert {"width", "height", "resolution_mp", "resolution", "fps", "extra"} <= set(video)
        assert meta["inputs"] == [{"type": "text", "text": "tide"}]
        clip = fake.submissions[0].clip
        assert clip is not None and mp4_video_seconds(clip.result()) == 5.0
        three = _run(fake, "falai/kling-video-o3-r2v", {"prompt": "tide", "duration": "3"})
        assert three["output_meta"]["outputs"][0]["seconds"] == 3.0  # type: ignore[index]
        image = _run(fake, "klingai/image-v3", {"prompt": "harbor", "n": 2})
        assert image["image"] and image["output_meta"]["outputs"][0]["count"] == 2  # type: ignore[index]
        speech = _run(fake, "elevenlabs/tts", {"text": "a" * 30})
        item = speech["output_meta"]["outputs"][0]  # type: ignore[index]
        assert item["type"] == "audio" and item["seconds"] == 2.0
        assert item["extra"] == {"model": "eleven_v3", "characters": 30}
