"""Stills as graph nodes and characters with reference images (issue 14): against the
loopback fake inference.sh, offline with the animatic, and every bad input refused
before anything is paid."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import storyboard
from fakeserver import FakeInference
from storyboard.backends.inference import InferenceBackend
from storyboard.cli import main
from storyboard.errors import SpecError
from storyboard.report import write_report_html

KEY = "sk-test-stills-41aa"

BOARD = """
storyboard: 1
defaults: {duration: 4, mode: std}
stills:
  - id: opening
    prompt: "{{ place }} at dusk, wide"
vars: {place: a lighthouse}
characters:
  keeper:
    description: an old keeper with a red scarf
    references: [keeper.png]
shots:
  - id: arrive
    image: "@opening"
    prompt: the camera drifts toward {{ place }}
  - id: meet
    app: bytedance/seedance-2-0
    image: null
    characters: [keeper]
    prompt: the keeper opens the door
  - id: leave
    characters: [keeper]
    prompt: the keeper waves
    duration: 3
"""


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.05) as server:
        yield server


@pytest.fixture
def board_path(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("keeper.png", size=(400, 600))
    return write_board(BOARD)


def _by_app(fake: FakeInference) -> dict[str, dict[str, object]]:
    return {t.app.split("@")[0]: t.input for t in fake.submissions}


def _file(fake: FakeInference, uri: object) -> bytes:
    found = [f for f in fake.files.values() if f.uri == uri]
    assert found and found[0].data is not None, uri
    return found[0].data


def test_render_mixes_apps_each_with_its_own_input_names(fake: FakeInference, board_path: Path) -> None:
    backend = InferenceBackend(api_key=KEY, base_url=fake.url)
    result = storyboard.render(board_path, backend=backend)
    assert result.film is not None and result.film.exists()
    sent = _by_app(fake)
    assert set(sent) == {"klingai/image-v3", "klingai/video-v3", "bytedance/seedance-2-0"}
    assert len(fake.submissions) == 4  # the still, two Kling shots, one seedance shot
    # the still: an image app's own inputs, no frame
    assert sent["klingai/image-v3"]["prompt"] == "a lighthouse at dusk, wide"
    assert "image" not in sent["klingai/image-v3"] and "duration" not in sent["klingai/image-v3"]
    # seedance: its own names (ratio, generate_audio…), the character's reference, no frame
    seed = sent["bytedance/seedance-2-0"]
    assert {"ratio", "generate_audio", "resolution", "reference_images"} <= set(seed)
    assert "image" not in seed and "aspect_ratio" not in seed and "sound" not in seed
    refs = seed["reference_images"]
    assert isinstance(refs, list) and len(refs) == 1
    with Image.open(io.BytesIO(_file(fake, refs[0]))) as im:
        assert im.format == "PNG"
    assert "red scarf" in str(seed["prompt"])
    # the Kling shot that starts on the still uploads the still's image as its start frame
    arrive = next(t.input for t in fake.submissions if t.input.get("prompt") == "the camera drifts toward a lighthouse")
    assert "aspect_ratio" in arrive and "sound" in arrive and "reference_images" not in arrive
    with Image.open(io.BytesIO(_file(fake, arrive["image"]))) as im:
        assert im.width > im.height  # the still, prepared to 16:9
    # Kling takes no references: the description reaches the prompt; plan notes the unused images
    leave = next(t.input for t in fake.submissions if "waves" in str(t.input.get("prompt")))
    assert "red scarf" in str(leave["prompt"])
    assert "references are not" not in str(leave)
    plan = storyboard.load(board_path).plan(backend="inference")
    assert plan["leave"].note is not None and "takes no reference images" in plan["leave"].note
    assert plan["meet"].note is None
    assert result.shots["opening"].clip is not None and result.shots["opening"].clip.suffix == ".png"
    # a second render pays nothing
    storyboard.render(board_path, backend=InferenceBackend(api_key=KEY, base_url=fake.url))
    assert len(fake.submissions) == 4


def test_editing_a_still_regenerates_it_and_its_dependants_only(board_path: Path) -> None:
    first = storyboard.render(board_path, backend="animatic")
    assert {k: r.status for k, r in first.shots.items()} == {
        "opening": "generated", "arrive": "generated", "meet": "generated", "leave": "generated"}
    text = board_path.read_text().replace("at dusk, wide", "at dawn, wide")
    board_path.write_text(text)
    second = storyboard.render(board_path, backend="animatic")
    # `leave` chains from `meet`, not from the still: only the still and `arrive` change
    assert {k: r.status for k, r in second.shots.items()} == {
        "opening": "generated", "arrive": "generated", "meet": "cached", "leave": "cached"}


def test_animatic_draws_a_still_as_a_titled_card(board_path: Path) -> None:
    result = storyboard.render(board_path, backend="animatic")
    clip = result.shots["opening"].clip
    assert clip is not None
    with Image.open(clip) as im:
        assert im.format == "PNG" and im.width > im.height
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20  # a gradient with text, not a flat fill
    data = json.loads((board_path.parent / "out" / "film.mp4.render.json").read_text())
    opening = next(s for s in data["shots"] if s["id"] == "opening")
    assert opening["kind"] == "still" and opening["status"] == "generated" and not opening["in_cut"]
    # the HTML report and its contact sheet show the still beside the shots
    page = write_report_html(storyboard.load(board_path), board_path.parent / "out" / "film.mp4.render.json")
    assert "still · klingai/image-v3" in page.read_text()
    with Image.open(page.with_name("film.report") / "contact-sheet.png") as sheet:
        assert sheet.height > 0
    assert (page.with_name("film.report") / "opening-first.png").exists()


def test_reference_images_are_part_of_the_key(board_path: Path, make_image: Callable[..., Path]) -> None:
    before = storyboard.load(board_path).plan(backend="inference")
    make_image("keeper.png", size=(400, 600), color=(10, 200, 10))
    after = storyboard.load(board_path).plan(backend="inference")
    assert before["meet"].key != after["meet"].key  # seedance takes the reference: a new key
    assert before["arrive"].recipe == after["arrive"].recipe
    # Kling takes no references: none are sent, so none are in its key (the prompt has the text)
    assert before["leave"].request.references_input is None and before["leave"].references == ()
    assert before["meet"].request.reference_sources == ("keeper.png",)


def test_a_still_reference_reaches_the_app_and_orders_the_graph(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        defaults: {duration: 4}
        stills:
          - {id: face, prompt: a portrait of the keeper, app: bytedance/seedream-4-5}
        characters:
          keeper: {description: the keeper, references: ["@face"]}
        shots:
          - {id: one, app: falai/kling-video-o3-r2v, characters: [keeper], prompt: hello}
        """)
    plan = storyboard.load(path).plan(backend="animatic")
    assert plan["one"].after == ("face",)
    assert plan["one"].request.references_input == "image_urls"
    assert plan["one"].request.reference_sources == ("@face:last",)
    result = storyboard.render(path, backend="animatic")
    assert result.shots["one"].status == "generated"


# ------------------------------------------------------------------ bad input


BAD = [
    ("unknown character", """
        characters: {keeper: {description: k}}
        shots:
          - {id: a, prompt: p, characters: [kepper]}
     """, "shot 'a': unknown character 'kepper'; did you mean 'keeper'?", 8),
    ("still in the cut", """
        stills: [{id: s, prompt: p}]
        shots:
          - {id: a, prompt: p}
        cut: [a, s]
     """, "cut names 's', a still (an image)", 9),
    ("a time in a still", """
        stills: [{id: s, prompt: p}]
        shots:
          - {id: a, prompt: p, image: "@s:2"}
     """, "'s' is a still (one image); write '@s'", 8),
    ("a still on a video app", """
        stills: [{id: s, prompt: p, app: klingai/video-v3}]
        shots:
          - {id: a, prompt: p}
     """, "still 's': klingai/video-v3 is an video app; a still needs an image app", 6),
    ("a still on an unknown app", """
        stills: [{id: s, prompt: p, app: nobody/paints}]
        shots:
          - {id: a, prompt: p}
     """, "still 's': unknown app 'nobody/paints'", 6),
    ("a concept the image app lacks", """
        stills: [{id: s, prompt: p, app: bytedance/seedream-4-5, aspect_ratio: "1:1"}]
        shots:
          - {id: a, prompt: p}
     """, "bytedance/seedream-4-5 (version snapshot-2026-08-05) has no aspect ratio", 6),
    ("a shot as a reference", """
        characters: {keeper: {description: k, references: ["@a"]}}
        shots:
          - {id: a, prompt: p}
     """, "character 'keeper': reference '@a' names a shot, not a still", 6),
    ("references and a chained frame on seedance", """
        characters: {keeper: {description: k, references: [ref.png]}}
        shots:
          - {id: a, prompt: p}
          - {id: b, prompt: p, app: bytedance/seedance-2-0, characters: [keeper]}
     """, "takes reference images (reference_images) or a start/end frame, not both", 9),
    ("a still id shared with a shot", """
        stills: [{id: a, prompt: p}]
        shots:
          - {id: a, prompt: p}
     """, "still id 'a' is also a shot's id", 6),
]


@pytest.mark.parametrize(("body", "message", "line"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_located_line(write_board: Callable[..., Path], make_image: Callable[..., Path],
                                       body: str, message: str, line: int) -> None:
    make_image("ref.png", size=(400, 400))
    import textwrap

    path = write_board("storyboard: 1\ndefaults: {duration: 4}\n\n\n\n" + textwrap.dedent(body).lstrip("\n"))
    with pytest.raises(SpecError) as err:
        storyboard.load(path)
    text = str(err.value)
    assert message in text, text
    assert f"film.yaml:{line}:" in text, text


def test_reference_rules_of_the_app(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    for i in range(10):
        make_image(f"r{i}.png", size=(320, 320), color=(i * 20, 40, 40))
    make_image("tiny.png", size=(200, 200))
    refs = ", ".join(f"r{i}.png" for i in range(10))
    path = write_board(f"""
        storyboard: 1
        defaults: {{duration: 4}}
        characters:
          crowd: {{description: many, references: [{refs}]}}
          small: {{description: small, references: [tiny.png]}}
        shots:
          - {{id: a, prompt: p, image: null, app: bytedance/seedance-2-0, characters: [crowd]}}
          - {{id: b, prompt: p, image: null, app: bytedance/seedance-2-0, characters: [small]}}
        """)
    with pytest.raises(SpecError) as err:
        storyboard.load(path)
    text = str(err.value)
    assert "shot 'a': its characters bring 10 reference images; bytedance/seedance-2-0 takes at most 9" in text
    assert "shot 'b': reference 'tiny.png' is 200×200 px; bytedance/seedance-2-0 needs at least 300 px" in text


def test_bad_input_pays_nothing_and_unused_character_warns(fake: FakeInference, write_board: Callable[..., Path],
                                                           make_image: Callable[..., Path]) -> None:
    make_image("ref.png", size=(400, 400))
    path = write_board("""
        storyboard: 1
        characters:
          keeper: {description: k, references: [ref.png]}
          ghost: {description: nobody}
        stills: [{id: s, prompt: p}]
        shots:
          - {id: a, prompt: p, image: "@s"}
          - {id: b, prompt: p, app: bytedance/seedance-2-0, characters: [keeper]}
        """)
    env = {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    out = CliRunner().invoke(main, ["render", str(path), "--backend", "inference"], env=env)
    assert out.exit_code != 0
    assert "film.yaml:8:" in out.output and "not both" in out.output
    assert "Traceback" not in out.output
    assert fake.submissions == [] and fake.files == {}
    path.write_text(path.read_text().replace("characters: [keeper]}", "characters: [keeper], image: null}"))
    ok = CliRunner().invoke(main, ["validate", str(path)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "warning: character 'ghost' is in no shot" in ok.output


def test_a_still_as_a_reference_reaches_o3_on_the_fake(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        defaults: {duration: 5}
        stills:
          - {id: face, prompt: a portrait of the keeper, app: bytedance/seedream-4-5}
        characters:
          keeper: {description: the keeper, references: ["@face"]}
        shots:
          - {id: one, app: falai/kling-video-o3-r2v, image: null, characters: [keeper], prompt: hello}
        """)
    storyboard.render(path, backend=InferenceBackend(api_key=KEY, base_url=fake.url))
    sent = _by_app(fake)
    assert set(sent) == {"bytedance/seedream-4-5", "falai/kling-video-o3-r2v"}
    o3 = sent["falai/kling-video-o3-r2v"]
    assert o3["duration"] == "5" and "start_image" not in o3  # o3's own names and words
    urls = o3["image_urls"]
    assert isinstance(urls, list) and len(urls) == 1
    with Image.open(io.BytesIO(_file(fake, urls[0]))) as im:
        assert im.format == "PNG" and min(im.size) >= 300  # the generated still, prepared
