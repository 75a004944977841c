"""The new app profiles, as data (issue 24, item 8): bytedance/seedance-2-5, klingai/video-o1,
minimax/h3, alibaba/wan-2-7-r2v and bfl/flux-3-video, each with its published schema and
price, references from `characters:` within each app's limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from storyboard import apps
from storyboard.board import render_prompts
from storyboard.cli import main
from storyboard.spec import load_spec

NEW = ("bytedance/seedance-2-5", "klingai/video-o1", "minimax/h3", "alibaba/wan-2-7-r2v", "bfl/flux-3-video")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "apps"


@pytest.mark.parametrize("name", NEW)
def test_each_new_profile_maps_concepts_to_its_published_schema(name: str) -> None:
    profile = apps.profile(name)
    assert profile is not None and profile.kind == "video"
    version = profile.version()
    assert version is not None
    if SHARED.is_dir():  # the snapshot is the published schema, copied as is
        published = json.loads((SHARED / name / "input_schema.json").read_text())
        assert version.input_schema == published
    for concept, input_name in profile.concepts.items():
        assert concept in apps.CONCEPTS, concept
        assert input_name in version.properties, f"{name}: {concept} → {input_name} is not an input"
    assert profile.price.get("source"), f"{name}: its price names no source"
    got = apps.app_inputs(profile, version, {"prompt": "p", "duration": 5, "resolution": "720p"})
    assert not got.problems, got.problems
    assert "references" in got.files or name == "bfl/flux-3-video"


@pytest.mark.parametrize(("name", "inputs", "files", "usd", "source"), [
    ("klingai/video-o1", {"resolution": "720p", "duration": 5}, {}, "0.42", "klingai/PRICING.md"),
    ("klingai/video-o1", {"resolution": "1080p", "duration": 10}, {}, "1.12", "klingai/PRICING.md"),
    ("minimax/h3", {"resolution": "768P", "duration": 5}, {}, "0.40", "minimax/PRICING.md"),
    ("minimax/h3", {"resolution": "2K", "duration": 10}, {"reference_images": 7}, "1.38", "minimax/PRICING.md"),
    ("bfl/flux-3-video", {"resolution": "hd", "duration": 5}, {}, "0.85", "bfl/PRICING.md"),
    ("bfl/flux-3-video", {"resolution": "fhd", "duration": 10}, {}, "2.90", "bfl/PRICING.md"),
    ("bfl/flux-3-video", {"resolution": "hd", "duration": 10, "draft": True}, {}, "0.60", "bfl/PRICING.md"),
    ("alibaba/wan-2-7-r2v", {"resolution": "720P", "duration": 5}, {}, None, "alibaba/wan-2-7-r2v/PRICING.md"),
    ("bytedance/seedance-2-5", {"resolution": "720p", "duration": 5}, {}, None, "none"),
])
def test_new_apps_are_priced_from_their_files(name: str, inputs: dict, files: dict,  # type: ignore[type-arg]
                                              usd: str | None, source: str) -> None:
    profile = apps.profile(name)
    assert profile is not None
    got = apps.quote(profile, inputs, files, profile.version())
    assert got.usd == (None if usd is None else Decimal(usd)) and got.source == source, got


def _faces(make_image: Callable[..., Path], count: int) -> list[str]:
    return [make_image(f"faces/f{i}.png", size=(320, 320), color=(i * 8 % 255, 90, 140)).name for i in range(count)]


SEEDANCE_25 = """
storyboard: 1
characters:
  crowd: {{description: many faces, references: [{refs}]}}
shots:
  - {{id: a, app: bytedance/seedance-2-5, prompt: a crowd at the harbor, duration: 6, resolution: 720p,
     image: null, characters: [crowd]}}
"""


def test_seedance_2_5_takes_up_to_30_references_from_characters(write_board: Callable[..., Path],
                                                                make_image: Callable[..., Path]) -> None:
    refs = ", ".join(f"faces/{n}" for n in _faces(make_image, 31))
    many = write_board(SEEDANCE_25.format(refs=refs))
    result = CliRunner().invoke(main, ["plan", str(many), "--backend", "inference"])
    assert result.exit_code != 0
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines == [f"{many}:6:31: shot 'a': its characters bring 31 reference images; "
                     "bytedance/seedance-2-5 takes at most 30 (reference_images)"], lines
    fits = write_board(SEEDANCE_25.format(refs=", ".join(refs.split(", ")[:30])))
    plan = json.loads(CliRunner().invoke(main, ["plan", str(fits), "--backend", "inference", "--json"]).output)
    assert len(plan["shots"][0]["references"]) == 30 and plan["shots"][0]["price"] is None


def test_wan_r2v_takes_at_most_5_references(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    refs = ", ".join(f"faces/{n}" for n in _faces(make_image, 6))
    path = write_board(SEEDANCE_25.format(refs=refs).replace("bytedance/seedance-2-5", "alibaba/wan-2-7-r2v"))
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"]).output
    assert (f"{path}:6:31: shot 'a': its characters bring 6 reference images; alibaba/wan-2-7-r2v takes at most 5 "
            "(reference_images)") in out


def test_video_o1_names_each_characters_references_in_the_prompt(write_board: Callable[..., Path],
                                                                  make_image: Callable[..., Path]) -> None:
    make_image("keeper1.png", size=(320, 320))
    make_image("keeper2.png", size=(320, 320))
    path = write_board("""
    storyboard: 1
    stills:
      - {id: gullpic, prompt: a gull, app: klingai/image-v3}
    characters:
      keeper: {description: an old keeper., references: [keeper1.png, keeper2.png]}
      gull: {description: a grey gull, references: ["@gullpic"]}
    shots:
      - {id: a, app: klingai/video-o1, prompt: the keeper feeds the gull, characters: [keeper, gull], image: null}
      - {id: b, prompt: the keeper alone, characters: [keeper, gull], image: null}
    """)
    prompts, _ = render_prompts(load_spec(path))
    assert prompts["a"] == ("the keeper feeds the gull Keeper (@image_1, @image_2): an old keeper. "
                            "Gull (@image_3): a grey gull.")
    assert prompts["b"] == "the keeper alone Keeper: an old keeper. Gull: a grey gull."  # Kling v3 names none
    placed = path.read_text().replace("prompt: the keeper feeds the gull",
                                      'prompt: "{{ references.gull }} lands by {{ characters.keeper }}"')
    path.write_text(placed)
    assert render_prompts(load_spec(path))[0]["a"] == "@image_3 lands by an old keeper."


FLUX = """
storyboard: 1
stills:
  - {{id: harbor, prompt: a harbor at dawn, app: klingai/image-v3}}
shots:
  - id: a
    app: bfl/flux-3-video
    prompt: the harbor wakes
    duration: {duration}
    resolution: 720p
    image: null
    keyframes:
      - {{at: 0, image: "@harbor"}}
      - {{at: {late}, image: end.png}}
"""


def test_flux_keyframes_from_stills_and_files_are_sent_at_their_seconds(
        write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    from fakeserver import FakeInference

    make_image("end.png", size=(640, 360))
    path = write_board(FLUX.format(duration=6, late=5.5))
    plan = json.loads(CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"]).output)
    shot = next(s for s in plan["shots"] if s["id"] == "a")
    assert shot["after"] == ["harbor"] and shot["price"] == "1.02"  # 6 s at $0.17/s (hd)
    with FakeInference(api_key="sk-flux", latency=0.05) as fake:
        env = {"INFERENCE_API_KEY": "sk-flux", "INFERENCE_BASE_URL": fake.url}
        result = CliRunner().invoke(main, ["render", str(path), "--backend", "inference"], env=env)
        assert result.exit_code == 0, result.output
        runs = [c.json for c in fake.calls_to("POST", "/apps/run")]
    video = next(r for r in runs if str(r["app"]).startswith("bfl/flux-3-video"))  # type: ignore[index]
    frames = video["input"]["keyframes"]  # type: ignore[index]
    assert [at for at, _ in frames] == [0, 5.5] and all(str(url).startswith("http") for _, url in frames)
    assert "image" not in video["input"]  # type: ignore[operator]
    moved = write_board(FLUX.format(duration=6, late=5), name="moved.yaml")  # another time: another clip
    again = json.loads(CliRunner().invoke(main, ["plan", str(moved), "--backend", "inference", "--json"]).output)
    assert next(s for s in again["shots"] if s["id"] == "a")["recipe"] != shot["recipe"]


@pytest.mark.parametrize(("board", "where", "fragment"), [
    (FLUX.format(duration=6, late=7), "13:14", "keyframe at 7 s is outside the shot's 6 s; 'at' is seconds"),
    (FLUX.format(duration=6, late=0), "13:14", "two keyframes at 0 s"),
    (FLUX.format(duration=6, late=3).replace("end.png", '"@nowhere"'), "13:24", "unknown still 'nowhere'"),
    (FLUX.format(duration=6, late=3).replace("image: null", "image: end.png"), "10:12",
     "takes keyframes (keyframes) or a start image, not both"),
    (FLUX.format(duration=6, late=3).replace("bfl/flux-3-video", "klingai/video-v3"), "12:7",
     "klingai/video-v3 takes no keyframes"),
])
def test_bad_keyframes_are_one_located_line(write_board: Callable[..., Path], make_image: Callable[..., Path],
                                            board: str, where: str, fragment: str) -> None:
    make_image("end.png", size=(640, 360))
    path = write_board(board)
    result = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert lines[0].startswith(f"{path}:{where}: shot 'a': ") and fragment in lines[0], lines[0]
