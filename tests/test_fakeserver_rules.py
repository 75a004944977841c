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
