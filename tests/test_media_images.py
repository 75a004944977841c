"""Aspect ratios, frame sizes and prepare_image."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from storyboard.errors import MediaError
from storyboard.facts import ASPECT_FRAME_SIZES, MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from storyboard.media import frame_size, prepare_image
from tests.media_helpers import make_image


def test_aspect_ratios_are_kling_720p() -> None:
    assert set(ASPECT_FRAME_SIZES) == {"16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9"}
    assert ASPECT_FRAME_SIZES["16:9"] == (1280, 720)
    assert ASPECT_FRAME_SIZES["9:16"] == (720, 1280)
    assert ASPECT_FRAME_SIZES["21:9"] == (1680, 720)
    for w, h in ASPECT_FRAME_SIZES.values():
        assert min(w, h) == 720 and w % 2 == 0 and h % 2 == 0


@pytest.mark.parametrize("ratio", list(ASPECT_FRAME_SIZES))
@pytest.mark.parametrize("short", [90, 360, 720, 1080])
def test_frame_size_even_and_close(ratio: str, short: int) -> None:
    w, h = frame_size(ratio, short)
    assert w % 2 == 0 and h % 2 == 0
    assert min(w, h) == short
    a, b = (int(x) for x in ratio.split(":"))
    assert abs(w / h - a / b) < 0.03


def test_frame_size_unknown_ratio() -> None:
    with pytest.raises(MediaError, match=r"16:9"):
        frame_size("5:4")


def test_prepare_crops_to_ratio(tmp_path: Path) -> None:
    src = make_image(tmp_path / "square.png", (800, 800))
    out = prepare_image(src, "16:9", tmp_path / "out.png")
    assert (out.width, out.height) == (800, 450)
    assert Image.open(out.path).size == (800, 450)
    assert any("cropped" in n for n in out.notes)


def test_prepare_keeps_matching_ratio(tmp_path: Path) -> None:
    src = make_image(tmp_path / "wide.png", (1280, 720))
    out = prepare_image(src, "16:9", tmp_path / "out.png")
    assert (out.width, out.height) == (1280, 720) and out.notes == []


def test_prepare_upscales_small(tmp_path: Path) -> None:
    src = make_image(tmp_path / "small.png", (200, 100))
    out = prepare_image(src, "1:1", tmp_path / "out.png")
    assert min(out.width, out.height) == 300 and out.width == out.height
    assert any("upscaled" in n for n in out.notes)


def test_prepare_refuses_tiny(tmp_path: Path) -> None:
    src = make_image(tmp_path / "tiny.png", (40, 40))
    with pytest.raises(MediaError, match=r"tiny\.png.*too small.*300"):
        prepare_image(src, "1:1", tmp_path / "out.png")


def test_prepare_refuses_renamed_text(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_text("this is not really a photo\n")
    with pytest.raises(MediaError, match=r"photo\.jpg"):
        prepare_image(src, "16:9", tmp_path / "out.png")


def test_prepare_trusts_bytes_not_extension(tmp_path: Path) -> None:
    png = make_image(tmp_path / "a.png", (640, 360))
    renamed = tmp_path / "a.jpg"
    renamed.write_bytes(png.read_bytes())
    out = prepare_image(renamed, "16:9", tmp_path / "out.png")
    assert out.path.suffix == ".png" and Image.open(out.path).format == "PNG"


def test_prepare_jpeg_fallback(tmp_path: Path) -> None:
    rng = random.Random(1)
    noise = Image.frombytes(
        "RGB", (600, 600), bytes(rng.getrandbits(8) for _ in range(600 * 600 * 3))
    )
    src = tmp_path / "noise.png"
    noise.save(src)
    out = prepare_image(src, "1:1", tmp_path / "out.png", max_bytes=600 * 1024)
    assert out.path.suffix == ".jpg"
    assert Image.open(out.path).format == "JPEG"
    assert out.path.stat().st_size <= 600 * 1024
    assert any("JPEG" in n for n in out.notes)


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    src = make_image(tmp_path / "a.png", (1000, 700))
    a = prepare_image(src, "9:16", tmp_path / "a_out.png")
    b = prepare_image(src, "9:16", tmp_path / "b_out.png")
    assert a.path.read_bytes() == b.path.read_bytes()


def test_prepare_rgba_and_bomb(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (400, 400), (10, 200, 30, 128))
    rgba.save(tmp_path / "alpha.png")
    out = prepare_image(tmp_path / "alpha.png", "1:1", tmp_path / "o.png")
    assert Image.open(out.path).mode == "RGB"
    huge = Image.new("1", (20000, 20000))  # 400 Mpx, tiny on disk
    huge.save(tmp_path / "bomb.png")
    with pytest.raises(MediaError, match=r"bomb\.png"):
        prepare_image(tmp_path / "bomb.png", "1:1", tmp_path / "b.png")


def test_prepare_takes_the_apps_minimum(tmp_path: Path) -> None:
    src = make_image(tmp_path / "small.png", (200, 100))
    out = prepare_image(src, "1:1", tmp_path / "out.png", min_short_side=80)
    assert (out.width, out.height) == (100, 100) and not any("upscaled" in n for n in out.notes)
    tiny = make_image(tmp_path / "tiny.png", (MIN_IMAGE_SIDE - 1, MIN_IMAGE_SIDE - 1))
    with pytest.raises(MediaError, match=rf"too small.*80 px.*{MIN_IMAGE_SIDE} px"):
        prepare_image(tiny, "1:1", tmp_path / "t.png", min_short_side=80)
    edge = make_image(tmp_path / "edge.png", (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE))
    assert prepare_image(edge, "1:1", tmp_path / "e.png", min_short_side=80).width == 80


def test_prepare_refuses_over_the_pixel_limit(tmp_path: Path) -> None:
    side = int(MAX_IMAGE_PIXELS**0.5)
    Image.new("L", (side + 1, side)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match="too large"):
        prepare_image(tmp_path / "big.png", "1:1", tmp_path / "b.png")
