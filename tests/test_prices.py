"""Prices from the apps' published price files, each with its source (issue 24, item 1).

The figures are those of the files in ../shared/apps: Seedance 2.0 by BytePlus' token formula,
Kolors V3.0 per image × n, ElevenLabs per 1K characters by model, MiniMax music per track,
and Wan, whose file gives no figure, unknown (never a guess)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from storyboard import apps
from storyboard.cli import main

SEEDANCE = """
storyboard: 1
defaults: {{app: bytedance/seedance-2-0, resolution: {resolution}, aspect_ratio: "16:9", duration: 5}}
shots:
  - id: sea
    prompt: the sea at dawn{image}
"""


def plan_json(path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict = json.loads(result.output)  # type: ignore[type-arg]
    return data


@pytest.mark.parametrize(("resolution", "image", "usd", "tokens", "per_million"), [
    ("720p", False, "0.762", 108900, "7.0"),
    ("720p", True, "0.468", 108900, "4.3"),
    ("1080p", False, "1.887", 245025, "7.7"),
])
def test_seedance_is_priced_by_its_token_formula(write_board: Callable[..., Path], make_image: Callable[..., Path],
                                                resolution: str, image: bool, usd: str, tokens: int,
                                                per_million: str) -> None:
    make_image("start.png", size=(1280, 720))
    path = write_board(SEEDANCE.format(resolution=resolution, image="\n    image: start.png" if image else ""))
    shot = plan_json(path)["shots"][0]
    assert Decimal(shot["price"]).quantize(Decimal("0.001")) == Decimal(usd)
    assert shot["reference_price"] == shot["price"]
    assert shot["price_source"] == "bytedance/seedance-2-0/PRICING.md"
    assert shot["price_detail"].startswith(f"{tokens} tokens ") and f"at ${per_million}/M" in shot["price_detail"]
    text = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"]).output
    assert f"${usd}" in text


def test_seedance_tokens_follow_the_published_verified_rows() -> None:
    seedance = apps.profile("bytedance/seedance-2-0")
    assert seedance is not None
    for resolution, ratio, seconds, tokens in [("480p", "16:9", 5, 50638), ("480p", "16:9", 10, 100858),
                                               ("480p", "1:1", 5, 48400), ("720p", "16:9", 5, 108900)]:
        got = apps.quote(seedance, {"resolution": resolution, "ratio": ratio, "duration": seconds})
        assert got.detail.startswith(f"{tokens} tokens "), got.detail
        assert got.usd == Decimal(tokens) * Decimal("7.0") / 1_000_000
    # any visual input takes the lower rate; a reference image counts like a start frame
    refs = apps.quote(seedance, {"resolution": "720p", "ratio": "16:9", "duration": 5}, {"reference_images": 3})
    assert refs.usd == Decimal(108900) * Decimal("4.3") / 1_000_000


def test_image_v3_is_per_image_times_n() -> None:
    kolors = apps.profile("klingai/image-v3")
    assert kolors is not None
    assert apps.price(kolors, {"prompt": "p", "resolution": "1k"}) == Decimal("0.028")
    assert apps.price(kolors, {"prompt": "p", "resolution": "2k", "n": 4}) == Decimal("0.112")


@pytest.mark.parametrize(("model", "usd"), [(None, "0.60"), ("eleven_v3", "0.60"), ("eleven_multilingual_v2", "0.60"),
                                            ("eleven_flash_v2_5", "0.30"), ("eleven_turbo_v2_5", "0.30")])
def test_elevenlabs_is_per_character_by_model(model: str | None, usd: str) -> None:
    tts = apps.profile("elevenlabs/tts")
    assert tts is not None
    inputs = {"text": "x" * 2000, **({"model": model} if model else {})}
    got = apps.quote(tts, inputs, version=tts.version())  # unset: the schema's default model, eleven_v3
    assert got.usd == Decimal(usd) and got.source == "elevenlabs/PRICING.md"


def test_minimax_music_is_per_track() -> None:
    music = apps.profile("minimax/music-3-0")
    assert music is not None
    assert apps.price(music, {"prompt": "a calm sea"}) == Decimal("0.15")


def test_wan_is_unknown_never_guessed() -> None:
    wan = apps.profile("alibaba/wan-2-7-i2v")
    assert wan is not None
    got = apps.quote(wan, {"prompt": "p", "resolution": "720P", "duration": 5})
    assert got.usd is None and got.source == "alibaba/wan-2-7-i2v/PRICING.md" and "no figures" in got.detail
    assert apps.price_source(wan) == "alibaba/wan-2-7-i2v/PRICING.md"


UNPRICED = """
storyboard: 1
shots:
  - {id: a, app: bytedance/seedance-2-5, prompt: the keeper looks up, duration: 5, resolution: 720p}
  - {id: b, prompt: the sea, duration: 3, resolution: 720p}
"""


def test_budget_refuses_an_unknown_price_unless_storyboard_prices_gives_a_rule(
        write_board: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_board(UNPRICED)
    shot = plan_json(path)["shots"][0]
    assert shot["id"] == "a" and shot["price"] is None and shot["price_source"] == "none"
    env = {"INFERENCE_API_KEY": "sk-never-used", "INFERENCE_BASE_URL": "http://127.0.0.1:9"}
    refused = CliRunner().invoke(main, ["render", str(path), "--backend", "inference", "--budget", "100"], env=env)
    assert refused.exit_code == 3 and "unknown" in refused.output and "nothing was paid" in refused.output
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"bytedance/seedance-2-5": {"by": ["resolution"], "rates": {"720p": "0.20"}}}))
    monkeypatch.setenv(apps.PRICES_ENV, str(prices))
    shot = plan_json(path)["shots"][0]
    assert shot["price"] == "1.00" and shot["price_source"] == f"$STORYBOARD_PRICES ({prices}:1:2)"
    assert plan_json(path)["totals"]["cost"] == str(Decimal("1.00") + Decimal("0.126") * 3)


@pytest.mark.parametrize(("rule", "fragment"), [
    ({"by": [], "rates": {"": "ten cents"}}, "rate '' is 'ten cents', not a price in USD"),
    ({"by": []}, "a price rule needs 'rates'"),
    ({"per": "minute", "by": [], "rates": {"": "1"}}, "'per: minute' is not a price kind"),
    ({"cel": "double(outputs[0].seconds) * ", "prices": {"variables": {}}}, "does not compile"),
    ({"cel": "double(outputs[0].seconds) * double(prices.missing)", "prices": {"variables": {}}},
     "price expression failed"),
])
def test_a_price_rule_that_does_not_evaluate_is_one_located_line(
        write_board: Callable[..., Path], make_image: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, rule: dict, fragment: str) -> None:  # type: ignore[type-arg]
    path = write_board(UNPRICED)
    prices = tmp_path / "prices.json"
    prices.write_text('{\n  "klingai/video-v3": {"by": [], "rates": {"": "1"}},\n'
                      f'  "bytedance/seedance-2-5": {json.dumps(rule)}\n}}\n')
    monkeypatch.setenv(apps.PRICES_ENV, str(prices))
    result = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert f"{prices}:3:3: bytedance/seedance-2-5" in lines[0] and fragment in lines[0], lines[0]


def test_apps_show_names_the_price_source() -> None:
    out = CliRunner().invoke(main, ["apps", "show", "bytedance/seedance-2-0"]).output
    assert "price source: bytedance/seedance-2-0/PRICING.md" in out and "$7.0/M tokens" in out
    data = json.loads(CliRunner().invoke(main, ["apps", "show", "alibaba/wan-2-7-i2v", "--json"]).output)
    assert data["price_source"] == "alibaba/wan-2-7-i2v/PRICING.md" and not data["price"]["rules"]


def test_every_bundled_price_names_a_published_file_that_exists() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "apps"
    for name in apps.known_apps():
        profile = apps.profile(name)
        assert profile is not None
        source = str(profile.price.get("source", ""))
        assert source, f"{name}: its price names no source"
        if source.startswith("inference-sh/grid "):  # upstream's own words where no price file is published
            continue
        if source != "none" and shared.is_dir():
            assert (shared / source).is_file(), f"{name}: {source} is not a published price file"
        if source == "none" or (not profile.price.get("rules") and "cel" not in profile.price):
            assert "unknown" in str(profile.price.get("note", "")), f"{name}: an app with no figure says unknown"


def test_apps_show_prices_a_text_app_per_input_and_output_token_from_its_file() -> None:
    out = CliRunner().invoke(main, ["apps", "show", "anthropic/claude-haiku-4-5"]).output
    assert "$1.00/M input tokens, $5.00/M output tokens" in out, out
    assert "price source: anthropic/PRICING.md" in out, out
