"""Issue 24 (items 4, 6): storyboard-wide defaults follow the app, and each node kind
(title card, still, shot) is checked, priced and keyed by its own rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard import apps
from storyboard.cli import main
from storyboard.errors import SpecError

KEY = "sk-test-kinds-51ab"

# examples/keeper.yaml's shape: storyboard-wide resolution, aspect ratio and duration
# (and the format's own `sound: true`), a still, a character with a reference image. The
# duration is 5 s, one every bundled video app takes (flux-3-video and h3 start at 5).
KEEPER = """
storyboard: 1
defaults:
  app: {app}
  resolution: 720p
  aspect_ratio: "16:9"
  sound: true
  duration: 5
stills:
  - id: opening
    prompt: a small fishing harbor at dusk
characters:
  keeper:
    description: an old lighthouse keeper in a yellow raincoat
    references: [keeper.png]
shots:
  - id: harbor
    image: "@opening"
    prompt: the harbor at dusk, boats rocking
  - id: lamp
    image: null                 # seedance takes references or a start frame, not both
    characters: [keeper]
    prompt: the keeper climbs to the lamp
"""

VIDEO_APPS = [a for a in apps.known_apps() if (p := apps.profile(a)) is not None and p.kind == "video"]


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.05) as server:
        yield server


def _env(fake: FakeInference) -> dict[str, str]:
    return {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}


@pytest.mark.parametrize("app", VIDEO_APPS)
def test_every_bundled_video_app_takes_a_keeper_style_board(app: str, write_board: Callable[..., Path],
                                                            make_image: Callable[..., Path]) -> None:
    make_image("keeper.png", size=(400, 400))
    board = storyboard.load(write_board(KEEPER.format(app=app)))
    plan = board.plan(backend="inference")
    sent = plan["harbor"].request.inputs or {}
    profile = apps.profile(app)
    assert profile is not None
    for concept in ("aspect_ratio", "sound", "resolution"):
        name = profile.concepts.get(concept)
        if name is None:  # not an input of this app: the default is not sent, and said once
            assert any(concept in n and app in n for n in plan.notes), plan.notes
        else:
            assert name in sent
    assert len([n for n in plan.notes if n.startswith(app)]) <= 1


IMAGE_APPS = [a for a in apps.known_apps() if (p := apps.profile(a)) is not None and p.kind == "image"]


@pytest.mark.parametrize("app", IMAGE_APPS)
def test_every_bundled_image_app_makes_a_keeper_style_still(app: str, write_board: Callable[..., Path],
                                                            make_image: Callable[..., Path]) -> None:
    make_image("keeper.png", size=(400, 400))
    text = KEEPER.format(app="klingai/video-v3").replace("  - id: opening\n", f"  - id: opening\n    app: {app}\n")
    plan = storyboard.load(write_board(text)).plan(backend="inference")
    assert plan["opening"].request.app == app and plan["opening"].price is not None
    profile = apps.profile(app)
    assert profile is not None
    if "aspect_ratio" not in profile.concepts:
        assert f"{app} has no input for aspect_ratio: the storyboard-wide value is not sent for still opening" \
            in plan.notes


def test_a_wan_shot_renders_with_storyboard_wide_aspect_and_sound(fake: FakeInference, write_board: Callable[..., Path],
                                                                 make_image: Callable[..., Path]) -> None:
    make_image("keeper.png", size=(400, 400))
    path = write_board(KEEPER.format(app="alibaba/wan-2-7-i2v").replace(
        "    prompt: the keeper climbs to the lamp",
        "    prompt: the keeper climbs to the lamp\n    app: falai/kling-video-o3-r2v"))
    planned = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"])
    assert planned.exit_code == 0, planned.output
    notes = [line for line in planned.output.splitlines() if line.startswith("note: alibaba/wan-2-7-i2v")]
    assert notes == ["note: alibaba/wan-2-7-i2v has no input for aspect_ratio, sound: the storyboard-wide "
                     "values are not sent for shot harbor"]
    refused = CliRunner().invoke(main, ["render", str(path), "--backend", "inference", "--budget", "5"],
                                 env=_env(fake))
    assert refused.exit_code != 0 and "unknown" in refused.output and not fake.submissions  # Wan's price is
    prices = path.parent / "prices.json"  # unpublished: a rule of one's own lets --budget count it
    prices.write_text('{"alibaba/wan-2-7-i2v": {"by": [], "rates": {"": "0.1"}}}')
    result = CliRunner().invoke(main, ["render", str(path), "--backend", "inference", "--budget", "5"],
                                env={**_env(fake), "STORYBOARD_PRICES": str(prices)})
    assert result.exit_code == 0, result.output
    assert result.output.count("note: alibaba/wan-2-7-i2v has no input for aspect_ratio, sound") == 1
    sent = {s.app.split("@", 1)[0]: s.input for s in fake.submissions}
    assert "aspect_ratio" not in sent["alibaba/wan-2-7-i2v"] and "sound" not in sent["alibaba/wan-2-7-i2v"]
    assert sent["alibaba/wan-2-7-i2v"]["first_frame"]  # started on the still
    assert sent["falai/kling-video-o3-r2v"]["aspect_ratio"] == "16:9"  # o3 takes it: sent
    assert (path.parent / "out" / "film.mp4").exists()


def test_a_value_written_on_the_shot_stays_an_error(write_board: Callable[..., Path],
                                                    make_image: Callable[..., Path]) -> None:
    make_image("keeper.png", size=(400, 400))
    text = KEEPER.format(app="alibaba/wan-2-7-i2v").replace(
        "    prompt: the harbor at dusk, boats rocking", "    prompt: the harbor at dusk, boats rocking\n    sound: false")
    with pytest.raises(SpecError) as e:
        storyboard.load(write_board(text))
    assert [str(p) for p in e.value.problems] == [
        f"{e.value.problems[0].file}:19:12: shot 'harbor': alibaba/wan-2-7-i2v (version snapshot-2026-08-05) has "
        "no sound"]


TITLE = """
storyboard: 1
defaults: {duration: 4, resolution: 720p}
shots:
  - id: card
    kind: title
    duration: 2
    prompt: The Keeper
  - id: harbor
    image: null
    prompt: the harbor at dusk
  - id: end
    kind: title
    duration: 2
    prompt: The End
"""


def test_a_two_second_title_card_is_valid_free_and_keyed_without_backend(write_board: Callable[..., Path]) -> None:
    path = write_board(TITLE)
    board = storyboard.load(path)  # Kling's 3..15 s is not a title card's rule
    offline, paid = board.plan(backend="animatic", variant="90p8"), board.plan(backend="inference")
    for kind in ("card", "end"):
        assert paid[kind].cost == paid[kind].price == paid[kind].reference_price == Decimal(0)
        assert paid[kind].key == offline[kind].key  # drawn here, whatever renders
        assert paid[kind].request.version is None and paid[kind].after == ()  # no app, no parent frame
    assert paid["harbor"].key != offline["harbor"].key
    assert paid.cost == paid["harbor"].cost
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"])
    assert out.exit_code == 0, out.output
    rows = {s["id"]: s for s in json.loads(out.output)["shots"]}
    assert rows["card"]["cost"] == "0" and rows["card"]["key"] == offline["card"].key
    assert board.apps_used() == ["klingai/video-v3"]  # the live check reads no app for a card


def test_a_title_card_refuses_what_only_an_app_would_use(write_board: Callable[..., Path]) -> None:
    text = TITLE.replace("    prompt: The End", "    prompt: The End\n    app: klingai/video-v3\n    sound: false")
    with pytest.raises(SpecError) as e:
        storyboard.load(write_board(text))
    messages = [p.message for p in e.value.problems]
    assert messages == [
        "shot 'end' is a title card (drawn from its text, never sent to an app): it has no app; remove it",
        "shot 'end' is a title card (drawn from its text, never sent to an app): it has no sound; remove it"]


def test_a_title_card_renders_on_the_inference_backend_for_free(fake: FakeInference,
                                                                 write_board: Callable[..., Path]) -> None:
    path = write_board(TITLE)
    result = CliRunner().invoke(main, ["render", str(path), "--backend", "inference", "--budget", "1"],
                                env=_env(fake))
    assert result.exit_code == 0, result.output
    assert [s.app.split("@", 1)[0] for s in fake.submissions] == ["klingai/video-v3"]  # one paid shot
    report = json.loads((path.parent / "out" / "film.mp4.render.json").read_text())
    costs = {s["id"]: s.get("cost") for s in report["shots"]}
    assert costs["card"] in ("0", None) and costs["end"] in ("0", None)


MIXED = """
storyboard: 1
defaults:
  inputs: {prompt_extend: false}
shots:
  - id: a
    prompt: a harbor
  - id: b
    app: alibaba/wan-2-7-i2v
    prompt: boats
"""


def test_a_default_raw_input_goes_to_the_apps_that_take_it(write_board: Callable[..., Path]) -> None:
    plan = storyboard.load(write_board(MIXED)).plan(backend="inference")
    assert (plan["b"].request.inputs or {})["prompt_extend"] is False
    assert "prompt_extend" not in (plan["a"].request.inputs or {})
    assert [n for n in plan.notes if n.startswith("klingai/video-v3")] == [
        "klingai/video-v3 has no input for inputs.prompt_extend: the storyboard-wide value is not sent for shot a"]


def test_a_default_raw_input_no_app_takes_is_an_error(write_board: Callable[..., Path]) -> None:
    with pytest.raises(SpecError) as e:
        storyboard.load(write_board(MIXED.replace("prompt_extend", "prompt_extnd")))
    assert all("prompt_extnd" in p.message for p in e.value.problems) and e.value.problems
