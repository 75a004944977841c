"""App profiles: data files, concept mapping, schema checks, prices."""

from __future__ import annotations

import itertools
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from storyboard import apps
from storyboard.errors import AppError

DATA = Path(apps.__file__).parent / "data"
SAMPLES: list[Any] = [None, True, False, 0, 3, 15, 16, -1, 2.5, "", "x", "16:9", "4:3", "720p", "4k", "1080P",
                      "x" * 3000, [], ["a"], ["a"] * 12, {}]


def _snapshots() -> list[Path]:
    return sorted(DATA.glob("*/*/versions/*.json"))


@pytest.mark.parametrize("path", _snapshots(), ids=lambda p: f"{p.parts[-4]}/{p.parts[-3]}@{p.stem}")
def test_checker_agrees_with_jsonschema_on_every_bundled_schema(path: Path) -> None:
    snap = json.loads(path.read_text())
    version = apps.AppVersion(snap["app"], snap["version_id"], snap["input_schema"])
    schema = snap["input_schema"]
    validator = jsonschema.Draft202012Validator(schema)
    checked = 0
    for name, value in itertools.product(list(version.properties), SAMPLES):
        ours = [p for p in apps.check_inputs(None, version, {name: value}) if p.name == name]
        theirs = [e for e in validator.iter_errors({name: value}) if list(e.path)[:1] == [name]]
        assert bool(ours) == bool(theirs), (name, value, ours, [e.message for e in theirs])
        checked += 1
    assert checked > 50


def _version_with(prop: dict[str, Any], **root: Any) -> apps.AppVersion:
    schema = {"type": "object", "properties": {"prompt": {"type": "string"}, "x": prop}, **root}
    return apps.AppVersion("acme/new", "v1", schema)


def test_every_bundled_schema_is_checked_without_jsonschema() -> None:
    for path in _snapshots():
        snap = json.loads(path.read_text())
        version = apps.AppVersion(snap["app"], snap["version_id"], snap["input_schema"])
        assert apps.unchecked_keywords(version) == frozenset(), path


@pytest.mark.parametrize(("prop", "root", "bad", "good"), [
    ({"type": "string", "pattern": "^[a-z]+$"}, {}, "A1", "ab"),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, {}, 2.5, 3),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, {}, [1, 1], [1, 2]),
    ({"type": "integer"}, {"dependentRequired": {"x": ["prompt"]}}, 3, None),
])
def test_a_keyword_the_checker_lacks_is_checked_with_jsonschema(prop: dict[str, Any], root: dict[str, Any],
                                                                bad: Any, good: Any) -> None:
    version = _version_with(prop, **root)
    assert apps.unchecked_keywords(version)
    assert apps.check_inputs(None, version, {"x": bad})  # never silently accepted
    if good is not None:
        assert not apps.check_inputs(None, version, {"x": good})


def test_without_jsonschema_such_a_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema raises ImportError
    problems = apps.check_inputs(None, _version_with({"type": "string", "pattern": "^a"}), {"x": "a"})
    assert [p.name for p in problems] == ["app"] and "(pattern)" in problems[0].message
    assert "pip install 'storyboard-film[schemas]'" in problems[0].message


KEYFRAMES = {"type": "array", "minItems": 1, "maxItems": 3, "items": {
    "type": "object", "required": ["seconds", "image"], "additionalProperties": False,
    "properties": {"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 20},
                   "image": {"type": "string", "format": "file", "minLength": 1}}}}


@pytest.mark.parametrize("value", [
    [], [{"seconds": 1, "image": "a"}], [{"seconds": 0, "image": "a"}], [{"seconds": 21, "image": "a"}],
    [{"seconds": 1}], [{"seconds": 1, "image": ""}], [{"seconds": 1, "image": "a", "extra": 1}],
    [{"seconds": 1, "image": "a"}] * 4, [{"seconds": "1", "image": "a"}], {"seconds": 1}, "x",
])
def test_nested_objects_agree_with_jsonschema(value: Any) -> None:
    version = _version_with(KEYFRAMES)
    assert apps.unchecked_keywords(version) == frozenset()
    theirs = list(jsonschema.Draft202012Validator(version.input_schema).iter_errors({"x": value}))
    assert bool(apps.check_inputs(None, version, {"x": value})) == bool(theirs)


def test_every_snapshot_and_profile_loads() -> None:
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    assert set(kling.versions) == {"snapshot-2026-08-07", "snapshot-2025-original"}
    assert kling.current == "snapshot-2026-08-07"
    today = kling.version()
    assert today is not None and "mode" not in today.properties and "multi_shot" in today.properties
    assert apps.profile("nobody/nothing") is None


def test_todays_kling_gets_resolution_multi_shot_false_and_only_known_inputs() -> None:
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    version = kling.version()
    assert version is not None
    got = apps.app_inputs(kling, version, {"prompt": "harbor at dawn", "mode": "std", "duration": 5})
    assert not got.problems
    assert got.inputs == {"prompt": "harbor at dawn", "duration": 5, "resolution": "720p", "multi_shot": False,
                          "aspect_ratio": "16:9", "sound": True}
    assert set(got.inputs) <= set(version.properties)
    assert got.files == {"start_frame": "image", "end_frame": "end_image"}


def test_concepts_the_app_lacks_and_conflicts_are_named() -> None:
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    version = kling.version()
    assert version is not None
    got = apps.app_inputs(kling, version, {"prompt": "p", "negative_prompt": "blur", "aspect_ratio": "4:3",
                                           "mode": "pro", "resolution": "4k"}, {"watermark": True})
    by = {p.concept: p.message for p in got.problems}
    assert "has no negative prompt" in by["negative_prompt"]
    assert "16:9, 9:16, 1:1" in by["aspect_ratio"] and "'4:3'" in by["aspect_ratio"]
    assert "mode pro and resolution 4k disagree" in by["mode"]
    assert "has no input 'watermark'" in by["inputs.watermark"]


def test_earlier_version_keeps_mode_and_negative_prompt() -> None:
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    old = kling.version("snapshot-2025-original")
    assert old is not None
    got = apps.app_inputs(kling, old, {"prompt": "p", "mode": "std", "aspect_ratio": "21:9", "negative_prompt": "x"})
    assert not got.problems
    assert got.inputs["mode"] == "std" and "resolution" not in got.inputs and "multi_shot" not in got.inputs
    assert apps.price(kling, got.inputs) == Decimal("0.126") * 5


@pytest.mark.parametrize(("resolution", "sound", "per_second"), [
    ("720p", False, "0.084"), ("720p", True, "0.126"), ("1080p", False, "0.112"), ("1080p", True, "0.168"),
    ("4k", True, "0.42"), ("4k", False, "0.42"),
])
def test_kling_prices_by_resolution_and_sound(resolution: str, sound: bool, per_second: str) -> None:
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    inputs = {"prompt": "p", "resolution": resolution, "sound": sound, "duration": 4}
    rate, tier = apps.rate(kling, inputs)
    assert rate == Decimal(per_second)
    assert tier == f"resolution {resolution}, sound {'true' if sound else 'false'}"
    assert apps.price(kling, inputs) == Decimal(per_second) * 4


def test_price_override_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"klingai/video-v3": {"by": ["resolution"], "rates": {"4k": "0.5"},
                                                         "per_second_of": "duration"}}))
    monkeypatch.setenv(apps.PRICES_ENV, str(override))
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    assert apps.price(kling, {"resolution": "4k", "sound": True, "duration": 2}) == Decimal("1.0")
    assert apps.price(kling, {"resolution": "720p", "sound": True, "duration": 2}) == Decimal("0.252")


@pytest.mark.parametrize(("text", "ok"), [
    ("klingai/video-v3", True), ("klingai/video-v3@v1.2_3-x", True), ("klingai/video-v3@", False),
    ("klingai/video-v3@a b", False), ("Kling", False), ("a/b/c", False), ("klingai/video-v3@@x", False),
])
def test_app_references(text: str, ok: bool) -> None:
    if ok:
        ref = apps.parse_app_ref(text)
        assert ref.text == text
    else:
        with pytest.raises(AppError, match="app '"):
            apps.parse_app_ref(text)


@pytest.mark.parametrize(("text", "name", "version", "function", "sent"), [
    ("app/klingai/video-v3", "klingai/video-v3", None, None, "klingai/video-v3"),
    ("klingai/video-v3@latest", "klingai/video-v3", None, None, "klingai/video-v3"),
    ("app/klingai/video-v3@abc1:run", "klingai/video-v3", "abc1", "run", "klingai/video-v3@abc1:run"),
    ("klingai/video-v3:upscale", "klingai/video-v3", None, "upscale", "klingai/video-v3:upscale"),
])
def test_the_sdk_reference_syntax(text: str, name: str, version: str | None, function: str | None,
                                  sent: str) -> None:
    ref = apps.parse_app_ref(text)
    assert (ref.name, ref.version, ref.function, ref.text) == (name, version, function, sent)
    assert ref.latest == text.endswith("@latest")
    assert ref.pinned_to("v9") == sent.replace(f"@{version}", "").replace(name, f"{name}@v9")


@pytest.mark.parametrize(("text", "says"), [
    ("agent/acme/helper", "an agent reference"), ("klingai/video-v3:", "not a function name"),
    ("klingai/video-v3@a:b:c", "not a version id"), ("app/a/b/c", "not an app reference"),
])
def test_bad_references_say_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(AppError, match=says) as info:
        apps.parse_app_ref(text)
    assert "[app/]namespace/name[@version][:function]" in str(info.value) or "version id" in says


def test_pulled_snapshot_becomes_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(apps.APPS_ENV, str(tmp_path))
    kling = apps.profile("klingai/video-v3")
    assert kling is not None
    today = kling.version()
    assert today is not None
    schema = json.loads(json.dumps(today.input_schema))
    schema["properties"]["duration"]["maximum"] = 10
    apps.save_snapshot(apps.AppVersion("klingai/video-v3", "live-42", schema, {}, "live"), tmp_path)
    pulled = apps.profile("klingai/video-v3")
    assert pulled is not None and pulled.current == "live-42"
    version = pulled.version()
    assert version is not None
    got = apps.app_inputs(pulled, version, {"prompt": "p", "duration": 12})
    assert [p.message for p in got.problems] == ["klingai/video-v3 allows duration 3..10; got 12"]


def test_apps_show_offline_lists_inputs_defaults_and_mapping() -> None:
    from click.testing import CliRunner

    from storyboard.cli import main

    out = CliRunner().invoke(main, ["apps", "show", "klingai/video-v3"])
    assert out.exit_code == 0, out.output
    assert "version snapshot-2026-08-07" in out.output
    assert "resolution    720p, 1080p, 4k; default \"1080p\"  ← resolution" in out.output
    assert "storyboard sends unless a shot says otherwise: multi_shot: false" in out.output
    assert "not in this version: negative_prompt, mode" in out.output
    old = CliRunner().invoke(main, ["apps", "show", "klingai/video-v3@snapshot-2025-original", "--json"])
    info = json.loads(old.output)
    assert {i["input"] for i in info["inputs"]} >= {"mode", "negative_prompt"}
    bad = CliRunner().invoke(main, ["apps", "show", "nobody/nothing"])
    assert bad.exit_code == 1 and "unknown app 'nobody/nothing'" in bad.output
    malformed = CliRunner().invoke(main, ["apps", "show", "klingai/video-v3@"])
    assert malformed.exit_code == 1 and "is not a version id" in malformed.output


def _resolve(app: str, concepts: dict[str, Any], raw: dict[str, Any] | None = None) -> apps.AppInputs:
    profile = apps.profile(app)
    assert profile is not None
    version = profile.version()
    assert version is not None
    return apps.app_inputs(profile, version, {"prompt": "p", **concepts}, raw)


def test_each_video_app_gets_its_own_input_names() -> None:
    seed = _resolve("bytedance/seedance-2-0", {"aspect_ratio": "9:16", "sound": False, "duration": 5})
    assert not seed.problems
    assert seed.inputs["ratio"] == "9:16" and seed.inputs["generate_audio"] is False
    assert seed.files == {"start_frame": "image", "end_frame": "end_image", "references": "reference_images"}
    wan = _resolve("alibaba/wan-2-7-i2v", {"resolution": "720p", "duration": 5})
    assert not wan.problems and wan.inputs["resolution"] == "720P"
    assert wan.files["start_frame"] == "first_frame" and wan.files["end_frame"] == "last_frame"
    o3 = _resolve("falai/kling-video-o3-r2v", {"duration": 6, "mode": "std"})
    assert not o3.problems and o3.inputs["duration"] == "6" and o3.inputs["tier"] == "standard"


def test_concepts_other_apps_lack_are_errors_naming_app_and_concept() -> None:
    wan = _resolve("alibaba/wan-2-7-i2v", {"aspect_ratio": "16:9", "sound": True})
    by = {p.concept: p.message for p in wan.problems}
    assert by["aspect_ratio"].startswith("alibaba/wan-2-7-i2v (version snapshot-2026-08-05) has no aspect ratio")
    assert "the clip takes the start frame's" in by["aspect_ratio"]
    assert "has no sound" in by["sound"]
    seed = _resolve("bytedance/seedance-2-0", {"duration": 3}, {"watermark": True})
    assert [p.message for p in seed.problems] == ["bytedance/seedance-2-0 allows duration 4..15; got 3"]
    assert seed.inputs["watermark"] is True
    clash = _resolve("bytedance/seedance-2-0", {}, {"reference_images": ["a"], "image": "b"})
    assert any("cannot go with image" in p.message or "sets what" in p.message for p in clash.problems)


def test_published_cel_price_is_evaluated() -> None:
    o3 = apps.profile("falai/kling-video-o3-r2v")
    assert o3 is not None
    got = _resolve("falai/kling-video-o3-r2v", {"duration": 5})
    assert apps.price(o3, got.inputs) == Decimal("0.7")


def test_cel_price_without_the_cel_extra_is_unknown_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    from storyboard.apps import _price

    o3 = apps.profile("falai/kling-video-o3-r2v")
    assert o3 is not None
    got = _resolve("falai/kling-video-o3-r2v", {"duration": 5})
    monkeypatch.setattr(_price, "cel_available", lambda: False)
    assert apps.price(o3, got.inputs) is None
    per, tier = _price.rate(o3, got.inputs)
    assert per is None and "storyboard-film[cel]" in tier
