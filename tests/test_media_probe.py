"""probe / probe_audio on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyboard.errors import MediaError
from storyboard.media import probe, probe_audio
from tests.media_helpers import make_audio, make_clip


def test_probe_clip_with_audio(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", duration=1.5, fps=12)
    info = probe(clip)
    assert (info.width, info.height) == (160, 90)
    assert info.fps == 12
    assert info.duration == pytest.approx(1.5, abs=0.01)
    assert info.frames == 18
    assert (info.vcodec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.has_audio and info.acodec == "aac"
    assert (info.sample_rate, info.channels) == (48000, 2)


def test_probe_clip_without_audio(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "a.mp4", audio=False))
    assert not info.has_audio
    assert info.acodec is None and info.sample_rate is None


@pytest.mark.parametrize("faststart", [True, False])
def test_probe_truncated_clip_names_file(tmp_path: Path, faststart: bool) -> None:
    clip = make_clip(tmp_path / "full.mp4", duration=2, faststart=faststart)
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.mp4"):
        probe(cut)


def test_probe_missing_and_not_video(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"ghost\.mp4"):
        probe(tmp_path / "ghost.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video\n" * 20)
    with pytest.raises(MediaError, match=r"notes\.mp4"):
        probe(text)
    with pytest.raises(MediaError, match=r"song\.m4a.*not a video"):
        probe(make_audio(tmp_path / "song.m4a"))


def test_probe_audio(tmp_path: Path) -> None:
    info = probe_audio(make_audio(tmp_path / "s.m4a", duration=2.0))
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.sample_rate == 44100 and info.channels == 1 and info.codec == "aac"
    with pytest.raises(MediaError, match=r"mute\.mp4.*not an audio"):
        probe_audio(make_clip(tmp_path / "mute.mp4", audio=False))
