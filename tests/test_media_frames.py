"""extract_frame: exact frames, by seeking."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops

from storyboard.errors import MediaError
from storyboard.media import extract_frame
from storyboard.media._frames import parse_selector
from tests.media_helpers import decode_all, frame_times, make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a short GOP and B-frames: the last frame is not a keyframe
    return make_clip(tmp_path_factory.mktemp("frames") / "c.mp4", duration=3, fps=10, gop=7)


def _same(a: Path, b: Image.Image) -> bool:
    return ImageChops.difference(Image.open(a).convert("RGB"), b.convert("RGB")).getbbox() is None


async def test_last_frame_is_exact(clip: Path, tmp_path: Path) -> None:
    out = await extract_frame(clip, "last", tmp_path / "last.png")
    frames = decode_all(clip)
    assert _same(out, frames[-1])
    assert not _same(out, frames[-2])


async def test_last_frame_long_gop(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mp4", duration=4, fps=10, gop=250, audio=False)
    out = await extract_frame(clip, "last", tmp_path / "last.png")
    assert _same(out, decode_all(clip)[-1])


async def test_first_frame(clip: Path, tmp_path: Path) -> None:
    out = await extract_frame(clip, "first", tmp_path / "first.png")
    assert _same(out, decode_all(clip)[0])


@pytest.mark.parametrize("t", [0.0, 0.05, 1.0, 1.25, 2.34, 2.95, 10.0])
async def test_frame_at_time(clip: Path, tmp_path: Path, t: float) -> None:
    out = await extract_frame(clip, t, tmp_path / "t.png")
    times = frame_times(clip)
    index = max(i for i, pts in enumerate(times) if pts <= t + 1e-9)
    assert _same(out, decode_all(clip)[index])


async def test_time_as_string(clip: Path, tmp_path: Path) -> None:
    out = await extract_frame(clip, "1.0", tmp_path / "t.png")
    assert _same(out, decode_all(clip)[10])


async def test_non_video_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "poster.mp4"
    bad.write_text("definitely not a video")
    with pytest.raises(MediaError, match=r"poster\.mp4"):
        await extract_frame(bad, "last", tmp_path / "x.png")
    with pytest.raises(MediaError, match=r"absent\.mp4"):
        await extract_frame(tmp_path / "absent.mp4", "first", tmp_path / "x.png")


def test_parse_selector() -> None:
    assert parse_selector("first") == "first"
    assert parse_selector("LAST") == "last"
    assert parse_selector(2) == 2.0
    assert parse_selector("2.5") == 2.5
    with pytest.raises(MediaError):
        parse_selector("middle")
    with pytest.raises(MediaError):
        parse_selector(-1.0)
