"""Every storyboard in examples/ renders offline as it is (animatic backend), and each
film is as long as its plan says, with a picture and a sound track."""

from __future__ import annotations

from pathlib import Path

import pytest

import storyboard
from storyboard.board import Board
from storyboard.media import probe
from storyboard.request import FrameRef

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../storyboard.schema.json"


def expected_duration(board: Board, fps: float) -> float:
    """Sum of the cut's shots, less each transition's overlap and each trimmed seam
    (a chained cut drops the repeated boundary frame)."""
    spec = board.spec
    total = 0.0
    for j, sid in enumerate(spec.cut):
        shot = spec.shot(sid)
        total += shot.duration
        if j == 0:
            continue
        if shot.transition != "cut":
            total -= shot.transition_duration
        elif (isinstance(shot.image, FrameRef) and shot.image.shot == spec.cut[j - 1]
              and shot.image.selector == "last" and shot.seam == "trim"):
            total -= 1 / fps
    return total


def test_the_examples_are_there() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"harbor", "branches", "product_spot", "montage", "library"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_starts_with_the_schema_line(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_renders(path: Path, tmp_path: Path) -> None:
    board = storyboard.load(path)
    result = storyboard.render(board, backend="animatic", output=tmp_path / f"{path.stem}.mp4",
                               cache_dir=tmp_path / "cache")
    assert result.film is not None and result.film.is_file()
    assert result.cost == 0
    assert all(result.shots[sid].status == "generated" for sid in board.cut)
    info = probe(result.film)
    assert info.width > 0 and info.height > 0, "no video stream"
    assert info.has_audio, "no audio stream"
    want = expected_duration(board, info.fps)
    assert info.duration == pytest.approx(want, abs=0.3), f"{path.name}: {info.duration:.2f} s, plan says {want:.2f} s"
    aspect = board.spec.model.defaults.aspect_ratio
    w, h = (int(x) for x in aspect.split(":"))
    assert (info.width > info.height) == (w > h)
    assert result.report is not None and result.report.is_file()


def test_harbor_is_a_linear_chain_from_the_picture() -> None:
    board = storyboard.load(ROOT / "examples" / "harbor.yaml")
    first = board.shots[0]
    assert str(first.image) == "assets/harbor.png"
    assert 3 <= len(board.shots) <= 4
    for prev, shot in zip(board.shots, board.shots[1:], strict=False):
        assert board.graph.parents(shot.id) == [prev.id]
    assert all(s.resolution == "720p" and 3 <= s.duration <= 5 for s in board.shots)
    assert all(board.inputs[s.id].inputs["multi_shot"] is False for s in board.shots)


def test_branches_shows_every_graph_feature() -> None:
    board = storyboard.load(ROOT / "examples" / "branches.yaml")
    children_of_harbor = [s.id for s in board.shots
                          if isinstance(s.image, FrameRef) and s.image.shot == "harbor" and s.image.selector == "last"]
    assert len(children_of_harbor) >= 2, "a branch: two shots start from the same parent"
    assert any(isinstance(s.image, FrameRef) and s.image.selector == "first" for s in board.shots)
    bridges = [s for s in board.shots if isinstance(s.image, FrameRef) and isinstance(s.end_image, FrameRef)]
    assert bridges and bridges[0].image.selector == "last" and bridges[0].end_image.selector == "first"  # type: ignore[union-attr]
    assert any(s.transition == "dissolve" for s in board.shots)
    assert any(not s.sound for s in board.shots)
    assert any(t.duck and p.name == "score.m4a" for p, t in board.spec.audio)


def test_product_spot_is_vertical() -> None:
    board = storyboard.load(ROOT / "examples" / "product_spot.yaml")
    assert {s.aspect_ratio for s in board.shots} == {"9:16"}


def test_montage_is_music_driven() -> None:
    board = storyboard.load(ROOT / "examples" / "montage.yaml")
    assert any(t.duck for _, t in board.spec.audio)
    kinds = {s.transition for s in board.shots} - {"cut"}
    assert len(kinds) >= 3
