"""The animatic clip and backend, at small sizes."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from storyboard.backends.animatic import AnimaticBackend, caption
from storyboard.backends.base import Backend, MemoryContext
from storyboard.facts import ASPECT_FRAME_SIZES
from storyboard.media import animatic_clip, frame_size, probe
from storyboard.media._animatic import CAPTION_CLEAR, animatic_args, caption_band, prepare_still
from storyboard.request import ShotRequest
from tests.media_helpers import decode_all, make_image, psnr

SHORT = 90
FPS = 8


@pytest.mark.parametrize("ratio", list(ASPECT_FRAME_SIZES))
async def test_every_ratio(tmp_path: Path, ratio: str) -> None:
    out = await animatic_clip(
        tmp_path / "a.mp4", duration=1, aspect_ratio=ratio, start_image=None, end_image=None,
        title="shot", text="a title card", sound=False, short_side=SHORT, fps=FPS,
    )  # fmt: skip
    info = probe(out)
    assert (info.width, info.height) == frame_size(ratio, SHORT)
    assert info.frames == FPS and info.duration == pytest.approx(1.0, abs=1 / FPS)
    assert info.pix_fmt == "yuv420p" and info.vcodec == "h264"
    assert not info.has_audio


async def test_first_and_last_frames(tmp_path: Path) -> None:
    start = make_image(tmp_path / "start.png", (300, 300), seed=1)
    end = make_image(tmp_path / "end.png", (400, 200), seed=2)
    out = await animatic_clip(
        tmp_path / "a.mp4", duration=2, aspect_ratio="16:9", start_image=start, end_image=end,
        title="s", text="t", sound=True, short_side=180, fps=12,
    )  # fmt: skip
    size = frame_size("16:9", 180)
    frames = decode_all(out)
    assert len(frames) == 24
    assert psnr(frames[0], prepare_still(start, size)) >= 40
    assert psnr(frames[-1], prepare_still(end, size)) >= 40
    assert psnr(frames[12], prepare_still(start, size)) < 40  # it moved
    info = probe(out)
    assert info.has_audio and info.sample_rate == 48000 and info.channels == 2


async def test_title_card_moves_and_sound_off(tmp_path: Path) -> None:
    out = await animatic_clip(
        tmp_path / "a.mp4", duration=1.5, aspect_ratio="9:16", start_image=None, end_image=None,
        title="keeper", text="A lighthouse keeper " * 20, sound=False, short_side=SHORT, fps=FPS,
    )  # fmt: skip
    frames = decode_all(out)
    assert psnr(frames[0], frames[-1]) < 45
    assert not probe(out).has_audio


async def test_same_request_same_bytes(tmp_path: Path) -> None:
    start = make_image(tmp_path / "s.png", (320, 180))
    kwargs = dict(duration=1.0, aspect_ratio="16:9", start_image=start, end_image=None,
                  title="a", text="b", sound=True, short_side=SHORT, fps=FPS)  # fmt: skip
    a = await animatic_clip(tmp_path / "a.mp4", **kwargs)  # type: ignore[arg-type]
    b = await animatic_clip(tmp_path / "b.mp4", **kwargs)  # type: ignore[arg-type]
    assert a.read_bytes() == b.read_bytes()


def test_args_are_pure_and_safe() -> None:
    args = animatic_args(
        Path("o.mp4"), start_png=Path("s.png"), end_png=Path("e.png"), size=(160, 90),
        duration=2, fps=10, sound=False,
    )  # fmt: skip
    assert args[-1] == "o.mp4" and "-an" in args
    for flag in ("-fflags", "-flags:v", "-map_metadata", "-threads", "-movflags"):
        assert flag in args
    graph = args[args.index("-filter_complex") + 1]
    assert "xfade" in graph and "zoompan" in graph
    assert args == animatic_args(
        Path("o.mp4"), start_png=Path("s.png"), end_png=Path("e.png"), size=(160, 90),
        duration=2, fps=10, sound=False,
    )  # fmt: skip


async def test_backend_generates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYBOARD_ANIMATIC_SIZE", str(SHORT))
    monkeypatch.setenv("STORYBOARD_ANIMATIC_FPS", str(FPS))
    backend = AnimaticBackend()
    assert isinstance(backend, Backend)
    assert (backend.short_side, backend.fps, backend.name, backend.paid) == (
        SHORT,
        FPS,
        "animatic",
        False,
    )
    image = make_image(tmp_path / "h.png", (320, 180))
    request = ShotRequest(
        shot_id="harbor", prompt="Drone shot", duration=3, image=image, sound=False
    )
    assert backend.price(request) == Decimal("0")
    ctx = MemoryContext(shot_id="harbor", work_dir=tmp_path / "work")
    ctx.work_dir.mkdir()
    clip = await backend.generate(request, ctx)
    assert clip == ctx.work_dir / "harbor.mp4"
    info = probe(clip)
    assert info.duration == pytest.approx(3, abs=1 / FPS) and info.height == SHORT
    fractions = [f for f, _ in ctx.events if f is not None]
    assert len(fractions) >= 2 and fractions[-1] == 1.0
    await backend.aclose()


def test_variant_is_size_and_rate() -> None:
    # part of every cache key: the same text as before the backend stated it itself
    from storyboard.backends import backend_variant

    backend = AnimaticBackend(short_side=360, fps=12)
    assert backend.variant == "360p12" == backend_variant(backend)
    assert AnimaticBackend(short_side=90, fps=8).variant != backend.variant


def _luma_rows(image: Image.Image, top: int, bottom: int) -> np.ndarray[Any, Any]:
    return np.asarray(image.convert("L"), dtype=np.int16)[top:bottom]


@pytest.mark.parametrize("ratio", ["16:9", "9:16", "1:1"])
async def test_caption_from_the_second_frame_inside_the_frame(tmp_path: Path, ratio: str) -> None:
    start = make_image(tmp_path / "s.png", (320, 320), seed=3)
    kwargs = dict(duration=2.0, aspect_ratio=ratio, start_image=start, end_image=None, title="a", text="b",
                  sound=False, short_side=180, fps=FPS)  # fmt: skip
    plain = decode_all(await animatic_clip(tmp_path / "plain.mp4", **kwargs))  # type: ignore[arg-type]
    text = ("harbor · take 2/3", "Boats at their moorings in a quiet harbor at dusk, " * 4)
    captioned = decode_all(await animatic_clip(tmp_path / "cap.mp4", caption=text, **kwargs))  # type: ignore[arg-type]
    size = frame_size(ratio, 180)
    band, top = caption_band(size, *text)
    assert band.width == size[0] and top > 0 and top + band.height <= size[1]  # inside the frame
    assert top >= size[1] * 2 / 3 - band.height  # in the lower third
    # the first frame is exactly the uncaptioned one: the seam is untouched
    assert np.array_equal(np.asarray(captioned[0]), np.asarray(plain[0]))
    assert psnr(captioned[0], prepare_still(start, size)) >= 40
    clear = math.ceil(CAPTION_CLEAR * FPS) + 1  # the last frames: what a chained shot starts from
    assert len(plain) == 16 and clear == 5
    for k in (1, len(plain) - clear - 1):
        with_band = _luma_rows(captioned[k], top, top + band.height)
        without = _luma_rows(plain[k], top, top + band.height)
        assert with_band.mean() < without.mean() - 10  # the dark band
        assert (with_band > 200).sum() > (without > 200).sum() + 20  # bright text on it
        above = max(1, top - 4)
        assert psnr(captioned[k].crop((0, 0, size[0], above)), plain[k].crop((0, 0, size[0], above))) > 40
    for k in range(len(plain) - clear, len(plain)):  # clean again: no caption is baked into a child
        with_band = _luma_rows(captioned[k], top, top + band.height)
        without = _luma_rows(plain[k], top, top + band.height)
        assert abs(with_band.mean() - without.mean()) < 2
        assert psnr(captioned[k], plain[k]) > 40


def test_caption_text_names_the_shot_take_and_prompt() -> None:
    request = ShotRequest(shot_id="harbor", prompt="Boats at dusk", take=2, takes=3)
    assert caption(request) == ("harbor · take 2/3", "Boats at dusk")
    assert caption(ShotRequest(shot_id="b", prompt="p"))[0] == "b · take 1/1"
    assert caption(ShotRequest(shot_id="b", prompt="p", take=3))[0] == "b · take 3 (reroll)"


def test_a_long_prompt_is_ellipsised_to_the_band() -> None:
    band, _ = caption_band((160, 284), "harbor · take 1/1", "word " * 200)
    assert band.size[0] == 160
    from PIL import ImageDraw

    from storyboard.media._animatic import _fit, _font

    draw = ImageDraw.Draw(band)
    line = _fit(draw, "word " * 200, _font(12), 100)
    assert line.endswith("…") and draw.textlength(line, font=_font(12)) <= 100 and "wor…" not in line


async def test_backend_captions_its_clips(tmp_path: Path) -> None:
    backend = AnimaticBackend(short_side=SHORT, fps=FPS)
    image = make_image(tmp_path / "h.png", (320, 180), seed=5)
    ctx = MemoryContext(shot_id="harbor", work_dir=tmp_path / "work")
    ctx.work_dir.mkdir()
    request = ShotRequest(shot_id="harbor", prompt="Drone shot", duration=1, image=image, sound=False)
    frames = decode_all(await backend.generate(request, ctx))
    size = frame_size("16:9", SHORT)
    band, top = caption_band(size, *caption(request))
    first, second = (_luma_rows(f, top, top + band.height) for f in frames[:2])
    assert second.mean() < first.mean() - 10
