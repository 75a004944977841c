"""The finished film's loudness: measured with ffmpeg's ebur128, corrected to within
±1 LU of the target where the true-peak limit allows, reported in render.json, and one
warning with both figures where it does not."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

import storyboard
from storyboard.events import Warning_
from storyboard.media import Loudness, finish_loudness
from storyboard.media._graphs import TRUE_PEAK
from tests.media_helpers import ffmpeg, make_clip

ROOT = Path(__file__).resolve().parent.parent


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP), measured here, independently of the code under test."""
    stderr = ffmpeg("-i", str(path), "-map", "0:a", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-")
    summary = stderr[stderr.rindex("Summary:"):]
    integrated = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", summary)[-1])
    peak = float(re.findall(r"Peak:\s+(-?[\d.]+) dBFS", summary)[-1])
    return integrated, peak


def test_warning_has_both_figures_only_when_the_target_is_missed() -> None:
    assert Loudness(target=-14.0, integrated=-14.9, true_peak=-2.0).warning() is None
    missed = Loudness(target=-5.0, integrated=-7.04, true_peak=-1.66)
    text = missed.warning()
    assert text is not None and "-7.0 LUFS" in text and "-1.7 dBTP" in text and "-5 LUFS" in text
    assert missed.to_dict()["reached"] is False


def _film(tmp_path: Path, sound: str) -> Path:
    film = make_clip(tmp_path / "quiet.mp4", duration=4.0, audio=False)
    out = tmp_path / "film.mp4"
    ffmpeg("-i", str(film), "-f", "lavfi", "-i", f"{sound}:d=4", "-map", "0:v", "-map", "1:a",
           "-c:v", "copy", "-c:a", "aac", "-ac", "2", str(out))
    return out


def _peaky_film(tmp_path: Path) -> Path:
    """A quiet tone with loud clicks: a gain up to -14 LUFS would clip, so only a
    true-peak limiter can bring it there."""
    return _film(tmp_path, "aevalsrc='0.9*sin(2*PI*300*t)*lt(mod(t,0.5),0.005)+0.08*sin(2*PI*440*t)':s=48000")


def test_a_film_off_its_target_is_corrected_under_the_peak_limit(tmp_path: Path) -> None:
    film = _peaky_film(tmp_path)
    before, _ = ebur128(film)
    assert abs(before - -14.0) > 3  # far off: a plain gain would clip
    result = asyncio.run(finish_loudness(film, -14.0))
    assert result is not None and result.corrections >= 1
    integrated, peak = ebur128(film)
    assert integrated == pytest.approx(-14.0, abs=1.0)
    assert peak <= TRUE_PEAK + 0.5  # limited (the AAC encoder may overshoot a little)
    assert (result.integrated, result.true_peak) == pytest.approx((integrated, peak), abs=0.11)
    assert result.reached


def test_an_unreachable_target_is_reported_not_forced(tmp_path: Path) -> None:
    film = _film(tmp_path, "anoisesrc=color=pink:amplitude=0.1:r=48000:seed=7")  # a wide crest, like music
    result = asyncio.run(finish_loudness(film, -5.0))
    assert result is not None and not result.reached
    integrated, peak = ebur128(film)
    assert integrated < -6.0 and peak < 0  # limited hard, never clipped (AAC overshoots dense noise)
    assert (result.integrated, result.true_peak) == pytest.approx((integrated, peak), abs=0.11)
    assert result.warning() is not None


def test_a_film_without_sound_has_no_loudness(tmp_path: Path) -> None:
    film = make_clip(tmp_path / "silent.mp4", duration=1.0, audio=False)
    assert asyncio.run(finish_loudness(film, -14.0)) is None


def _example(tmp_path: Path, name: str, loudness: float | None = None) -> Path:
    folder = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", folder)
    path = folder / name
    if loudness is not None:
        text = re.sub(r"(?m)^loudness: .*$", f"loudness: {loudness:g}", path.read_text(encoding="utf-8"))
        path.write_text(text if "loudness:" in text else text + f"loudness: {loudness:g}\n", encoding="utf-8")
    return path


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the narrated example is measured with espeak-ng")
def test_the_narrated_example_is_within_one_lu_and_says_so(tmp_path: Path) -> None:
    warnings: list[str] = []
    result = storyboard.render(_example(tmp_path, "narrated.yaml"), backend="animatic",
                               output=tmp_path / "narrated.mp4", cache_dir=tmp_path / "cache",
                               on_event=lambda e: warnings.append(e.message) if isinstance(e, Warning_) else None)
    assert result.film is not None and result.report is not None
    integrated, peak = ebur128(result.film)
    assert integrated == pytest.approx(-14.0, abs=1.0)
    recorded = json.loads(result.report.read_text())["loudness"]
    assert recorded["target"] == -14.0 and recorded["reached"] is True
    assert (recorded["integrated"], recorded["true_peak"]) == pytest.approx((integrated, peak), abs=0.11)
    assert not [w for w in warnings if w.startswith("loudness")]


def test_montage_at_minus_five_warns_once_with_both_figures(tmp_path: Path) -> None:
    warnings: list[str] = []
    result = storyboard.render(_example(tmp_path, "montage.yaml", loudness=-5), backend="animatic",
                               output=tmp_path / "montage.mp4", cache_dir=tmp_path / "cache",
                               on_event=lambda e: warnings.append(e.message) if isinstance(e, Warning_) else None)
    assert result.film is not None and result.report is not None
    integrated, peak = ebur128(result.film)
    recorded = json.loads(result.report.read_text())["loudness"]
    loud = [w for w in warnings if w.startswith("loudness")]
    if abs(integrated - -5.0) <= 1.0:  # reached: no warning
        assert recorded["reached"] and not loud
    else:
        assert len(loud) == 1 and f"{integrated:.1f} LUFS" in loud[0] and f"{peak:.1f} dBTP" in loud[0]
        assert recorded["reached"] is False
