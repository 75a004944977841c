"""The offline preview's own text (the animatic's caption band and its title card's shot
id) keeps clear of the text the film draws over a shot: burned captions and a `corner`
overlay. Measured on real frames at 16:9, 9:16 and 1:1."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import srt
from PIL import Image

import storyboard
from storyboard.backends.animatic import caption_place, card_text
from storyboard.media import ffmpeg_path
from storyboard.request import ShotRequest


def _luma(video: Path, at: float, dest: Path) -> np.ndarray:
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1",
                    str(dest)], check=True)
    return np.asarray(Image.open(dest).convert("L"), dtype=np.float64)


def _grow(mask: np.ndarray, px: int = 2) -> np.ndarray:
    out = mask.copy()
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


BOARD = """
storyboard: 1
captions: {captions}
defaults: {{duration: 3, sound: false, aspect_ratio: "{ratio}"}}
shots:
  - id: harbor
    prompt: the harbor at dawn, a slow wide shot over the water and the boats
    image: {image}
{extra}"""


@pytest.mark.parametrize("ratio", ["16:9", "9:16", "1:1"])
@pytest.mark.parametrize("case", ["burn", "corner", "both"])
def test_preview_text_keeps_clear_of_the_films_text(write_board: Callable[..., Path],
                                                    make_image: Callable[..., Path],
                                                    monkeypatch: pytest.MonkeyPatch, ratio: str, case: str) -> None:
    monkeypatch.setenv("STORYBOARD_ANIMATIC_SIZE", "180")
    burn, corner = case in ("burn", "both"), case in ("corner", "both")
    if case == "burn":  # a flat, dark start image: only the band is bright in the clip
        make_image("start.png", size=(320, 320), color=(50, 50, 50))
    extra = "    say: \"Every morning the harbor wakes.\"\n" if burn else ""
    if corner:
        extra += "    overlay: {text: \"HARBOR 6:04\", start: 0.2, end: 2.8, position: corner, size: 0.1}\n"
    path = write_board(BOARD.format(ratio=ratio, captions="burn" if burn else "file",
                                    image="start.png" if case == "burn" else "null", extra=extra))
    result = storyboard.render(path, backend="animatic")
    assert result.film is not None
    clip = result.shots["harbor"].clip
    assert clip is not None
    at = 1.2
    if burn:
        cue = next(srt.parse(result.film.with_suffix(".srt").read_text()))
        at = (cue.start.total_seconds() + cue.end.total_seconds()) / 2
    film = _luma(result.film, at, path.parent / "film.png")
    own = _luma(clip, at, path.parent / "clip.png")
    drawn = np.abs(film - own) > 40  # what the film draws over the shot
    preview_text = own > 150  # the preview's own light text: band and card title (the card is dark)
    assert drawn.sum() > 30, "the film's text is not there"
    clash = _grow(drawn) & _grow(preview_text)
    assert clash.sum() == 0, f"{ratio} {case}: the film's text covers the preview's own in {clash.sum()} px"


def test_where_the_caption_band_goes() -> None:
    def req(*drawn: str) -> ShotRequest:
        return ShotRequest(shot_id="a", prompt="x", extra={"text_over": list(drawn)} if drawn else {})

    assert caption_place(req()) == "bottom" and caption_place(req("corner")) == "bottom"
    assert caption_place(req("captions")) == "top" and caption_place(req("lower-third")) == "top"
    assert caption_place(req("captions", "corner")) is None
    assert card_text(req()) == ("a", "x") and card_text(req("corner")) == ("", "")


def test_the_band_moves_with_a_new_key_for_the_animatic_only(write_board: Callable[..., Path]) -> None:
    plain = storyboard.load(write_board(BOARD.format(ratio="16:9", captions="file", image="null", extra="")))
    corner = storyboard.load(write_board(BOARD.format(
        ratio="16:9", captions="file", image="null",
        extra="    overlay: {text: \"6:04\", position: corner}\n"), name="corner.yaml"))

    def key(board: storyboard.Board, backend: str, variant: str) -> str | None:
        return next(s.key for s in board.plan(backend=backend, variant=variant).shots if s.id == "harbor")

    assert key(plain, "animatic", "90p8") != key(corner, "animatic", "90p8")  # a preview re-drawn clear of it
    assert key(plain, "inference", "") == key(corner, "inference", "")  # a paid clip never remade for text
