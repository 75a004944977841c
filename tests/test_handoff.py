"""Best-frame handoff: real clips whose last frames are blurred, the sharp frame chosen,
the next shot starting on it, and a film with no duplicated or skipped frame at the seam."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import storyboard
from storyboard.backends.base import ShotContext
from storyboard.errors import MediaError, SpecError
from storyboard.media import handoff_frame, probe, run_ffmpeg, seam_score
from storyboard.media._handoff import pick_sharpest
from storyboard.request import ShotRequest
from storyboard.runner import Pipeline
from tests.media_helpers import decode_all, ffmpeg, psnr
from tests.recording import RecordingBackend

FPS = 10
BLUR_FROM = 2.7  # the last three frames of a 3 s clip at 10 fps are blurred


def blurred_tail_clip(path: Path, *, duration: float = 1.0, blur_from: float = 0.75, size: str = "160x90") -> Path:
    """A testsrc2 clip at 10 fps whose frames from ``blur_from`` on are box-blurred."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={duration}",
           "-vf", f"boxblur=8:1:enable='gte(t,{blur_from})'", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


class BlurredTailBackend(RecordingBackend):
    """The animatic, whose clips' last 0.3 s are motion-blurred (as generated clips often are)."""

    def __init__(self) -> None:
        super().__init__()
        self.short_side, self.fps = 90, FPS
        self.requests: dict[str, ShotRequest] = {}

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        self.requests[request.shot_id] = request
        clean = await super().generate(request, ctx)
        out = clean.with_name("blurred.mp4")
        await run_ffmpeg(["-hide_banner", "-nostdin", "-y", "-i", str(clean), "-vf",
                          f"boxblur=10:2:enable='gte(t,{BLUR_FROM})'", "-c:v", "libx264", "-preset", "ultrafast",
                          "-qp", "0", "-pix_fmt", "yuv420p", "-c:a", "copy", str(out)])  # fmt: skip
        return out


BOARD = """
storyboard: 1
defaults: {{duration: 3, mode: std, sound: false{extra}}}
shots:
  - id: a
    prompt: a harbor at dusk
    image: start.png
  - id: b
    prompt: the keeper looks up
"""


def test_pick_sharpest_prefers_the_later_frame_when_close() -> None:
    assert pick_sharpest([10.0, 100.0, 95.0, 20.0]) == 2
    assert pick_sharpest([10.0, 100.0, 80.0]) == 1


async def test_handoff_skips_the_blurred_last_frames(tmp_path: Path) -> None:
    clip = blurred_tail_clip(tmp_path / "c.mp4")
    found = await handoff_frame(clip, tmp_path / "h.png", 0.5)
    assert found.time == pytest.approx(0.7)  # 0.8 and 0.9 are blurred
    assert found.candidates == 5
    frames = decode_all(clip)
    with Image.open(found.path) as chosen:
        assert psnr(chosen.convert("RGB"), frames[7]) > 40
        assert psnr(chosen.convert("RGB"), frames[9]) < 30


async def test_handoff_skips_blurred_frames_at_1080p(tmp_path: Path) -> None:
    # at 1080p the luma is sampled down to 270 lines straight from the decoded plane
    clip = blurred_tail_clip(tmp_path / "c.mp4", size="1920x1080")
    found = await handoff_frame(clip, tmp_path / "h.png", 0.5)
    assert found.time == pytest.approx(0.7) and found.candidates == 5
    with Image.open(found.path) as chosen:
        assert chosen.size == (1920, 1080)


async def test_handoff_window_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="window"):
        await handoff_frame(blurred_tail_clip(tmp_path / "c.mp4"), tmp_path / "h.png", 0)


def test_seam_score_same_and_different(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (64, 36), (200, 30, 30)).save(a)
    Image.new("RGB", (32, 18), (30, 30, 200)).save(b)
    same = seam_score(a, a)
    assert same.psnr == 100 and same.histogram == 0 and not same.drifted(30, 0.3)
    other = seam_score(a, b)
    assert other.psnr < 20 and other.histogram == 1 and other.drifted(30, 0.3)


def _render(path: Path, backend: RecordingBackend, **options: object) -> storyboard.RenderResult:
    board = storyboard.load(path)
    pipeline = Pipeline(board, backend=backend, cache_dir=path.parent / "cache", **options)  # type: ignore[arg-type]
    return asyncio.run(pipeline.run())


def test_best_handoff_chains_from_the_sharp_frame_and_the_seam_is_exact(
    write_board: Callable[..., Path], make_image: Callable[..., Path]
) -> None:
    make_image("start.png")
    path = write_board(BOARD.format(extra=", handoff: best"))
    backend = BlurredTailBackend()
    result = _render(path, backend)
    handoff = result.shots["a"].facts["handoff"]
    assert handoff["rule"] == "best:0.5"
    assert 2.45 <= handoff["time"] < BLUR_FROM  # a sharp frame of the last 0.5 s
    index = round(handoff["time"] * FPS)

    clip_a = decode_all(result.shots["a"].clip)  # type: ignore[arg-type]
    clip_b = decode_all(result.shots["b"].clip)  # type: ignore[arg-type]
    start_b = backend.requests["b"].image
    assert start_b is not None
    with Image.open(start_b) as im:
        start = im.convert("RGB").resize(clip_a[0].size)
    # b starts on the chosen sharp frame, not on the blurred last one
    assert psnr(start, clip_a[index]) > psnr(start, clip_a[-1]) + 3
    assert psnr(start, clip_a[index]) > 30

    film = decode_all(result.film)  # type: ignore[arg-type]
    assert len(film) == (index + 1) + (len(clip_b) - 1)  # a ends on its handoff frame; b's repeat dropped
    assert psnr(film[index], clip_a[index]) > 35
    assert psnr(film[index + 1], clip_b[1]) > 35
    assert probe(result.film).duration == pytest.approx(len(film) / FPS, abs=0.06)  # type: ignore[arg-type]

    # the rule is part of the child's key: going back to the exact last frame remakes b only
    path.write_text(path.read_text().replace(", handoff: best", ""))
    again = BlurredTailBackend()
    second = _render(path, again)
    assert again.calls == ["b"]
    assert "handoff" not in second.shots["a"].facts
    assert len(decode_all(second.film)) == len(clip_a) + len(clip_b) - 1  # type: ignore[arg-type]


def test_last_handoff_keeps_the_exact_last_frame(
    write_board: Callable[..., Path], make_image: Callable[..., Path]
) -> None:
    make_image("start.png")
    path = write_board(BOARD.format(extra=""))
    backend = BlurredTailBackend()
    result = _render(path, backend)
    clip_a = decode_all(result.shots["a"].clip)  # type: ignore[arg-type]
    assert backend.requests["b"].image is not None
    with Image.open(backend.requests["b"].image) as im:
        start = im.convert("RGB").resize(clip_a[0].size)
    assert psnr(start, clip_a[-1]) > 30


@pytest.mark.parametrize("bad", ["handoff: sharp", "handoff_window: 0", "handoff_window: 6"])
def test_bad_handoff_is_a_located_error(write_board: Callable[..., Path], make_image: Callable[..., Path],
                                        bad: str) -> None:
    make_image("start.png")
    path = write_board(BOARD.format(extra=", " + bad))
    with pytest.raises(SpecError) as err:
        storyboard.load(path)
    assert "film.yaml:2:" in str(err.value)


class DriftingBackend(BlurredTailBackend):
    """Shot ``b`` ignores its start frame, as a model that drifts does."""

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        if request.shot_id == "b":
            request = dataclasses.replace(request, image=None)
        return await super().generate(request, ctx)


def test_seams_are_scored_and_a_drifted_one_is_marked(
    write_board: Callable[..., Path], make_image: Callable[..., Path]
) -> None:
    make_image("start.png")
    path = write_board(BOARD.format(extra=", handoff: best"))
    good = _render(path, BlurredTailBackend())
    seam = good.shots["b"].facts["seam"]
    assert seam["from"] == "a" and seam["psnr"] > 30 and not seam["drifted"]
    assert "seam" not in good.shots["a"].facts
    report = json.loads(good.report.read_text())  # type: ignore[union-attr]
    assert report["shots"][1]["seam"] == seam and report["shots"][0]["handoff"]["rule"] == "best:0.5"

    path.write_text(path.read_text().replace("shots:", "drift: {psnr: 25}\nshots:"))
    bad = _render(path, DriftingBackend(), force=["b"])
    assert bad.shots["b"].facts["seam"]["drifted"]


def test_the_frames_held_always_include_the_winner() -> None:
    # _select holds only the frames still_in_the_running says may win; never lose the winner
    import random

    from storyboard.media._handoff import still_in_the_running

    rng = random.Random(7)
    most = 0
    for _ in range(500):
        scores = [rng.choice([rng.uniform(0, 100), 50.0, 95.0]) for _ in range(rng.randint(1, 60))]
        held: list[tuple[int, float, object]] = []
        best = 0.0
        for j, s in enumerate(scores):
            best = max(best, s)
            held = still_in_the_running(held, best, (j, s, None))
            most = max(most, len(held))
        assert pick_sharpest(scores) in {j for j, _, _ in held}
    assert most < 15  # a handful held, not the whole window
