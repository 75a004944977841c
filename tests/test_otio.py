"""OpenTimelineIO export: the timeline written beside a render reads back as the cut,
with its transitions, its music and media references to files that exist."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pytest

import storyboard
from storyboard.backends.animatic import AnimaticBackend
from storyboard.media import probe, probe_audio

ROOT = Path(__file__).resolve().parent.parent

# Module-scoped fixtures run before conftest's (function-scoped) small-size settings:
# say the size here.
SMALL = AnimaticBackend(short_side=90, fps=8)


@pytest.fixture(scope="module")
def branches(tmp_path_factory: pytest.TempPathFactory) -> tuple[storyboard.Board, Any, Any]:
    tmp = tmp_path_factory.mktemp("otio")
    board = storyboard.load(ROOT / "examples" / "branches.yaml")
    result = storyboard.render(board, backend=SMALL, output=tmp / "branches.mp4", cache_dir=tmp / "cache",
                               otio=tmp / "branches.otio")
    assert result.otio is not None and result.otio.is_file()
    return board, result, otio.adapters.read_from_file(str(result.otio))


def local_path(ref: Any) -> Path:
    url = urlparse(ref.target_url)
    assert url.scheme == "file", ref.target_url
    return Path(unquote(url.path))


def test_clips_are_the_cut(branches: tuple[storyboard.Board, Any, Any]) -> None:
    board, _result, timeline = branches
    video = timeline.video_tracks()
    assert len(video) == 1
    clips = list(video[0].find_clips())
    assert len(clips) == len(board.cut)
    assert [c.name for c in clips] == list(board.cut)
    for c in clips:
        assert c.metadata["storyboard"]["prompt"] == board.prompts[c.name]


def test_transitions_where_the_storyboard_has_them(branches: tuple[storyboard.Board, Any, Any]) -> None:
    board, _result, timeline = branches
    track = timeline.video_tracks()[0]
    items = list(track)
    found = {}
    for i, item in enumerate(items):
        if isinstance(item, otio.schema.Transition):
            after = items[i + 1]
            assert isinstance(after, otio.schema.Clip)
            found[after.name] = item
    expected = {s.id: s for s in board.shots if s.id in board.cut and s.transition != "cut"}
    assert set(found) == set(expected) == {"gulls", "memory"}
    assert found["gulls"].transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
    for sid, tr in found.items():
        length = (tr.in_offset + tr.out_offset).to_seconds()
        assert length == pytest.approx(expected[sid].transition_duration, abs=0.13)
        assert tr.metadata["storyboard"]["xfade"] == expected[sid].transition


def test_track_lasts_as_long_as_the_film(branches: tuple[storyboard.Board, Any, Any]) -> None:
    _board, result, timeline = branches
    info = probe(result.film)
    frame = 1 / info.fps
    assert timeline.video_tracks()[0].duration().to_seconds() == pytest.approx(info.duration, abs=frame + 1e-6)
    assert timeline.duration().to_seconds() == pytest.approx(info.duration, abs=frame + 1e-6)


def test_audio_tracks(branches: tuple[storyboard.Board, Any, Any]) -> None:
    board, _result, timeline = branches
    audio = timeline.audio_tracks()
    assert len(audio) == len(board.spec.audio) == 1
    clip = next(iter(audio[0].find_clips()))
    assert clip.name == "score.m4a"
    assert clip.metadata["storyboard"]["duck"] is True
    assert local_path(clip.media_reference) == (ROOT / "examples" / "assets" / "score.m4a").resolve()


def test_media_references_exist(branches: tuple[storyboard.Board, Any, Any]) -> None:
    _board, result, timeline = branches
    for clip in timeline.find_clips():
        path = local_path(clip.media_reference)
        assert path.is_file(), path
    for clip in timeline.video_tracks()[0].find_clips():
        assert local_path(clip.media_reference) == result.shots[clip.name].clip.resolve()
        # the used range lies inside the clip
        avail = clip.media_reference.available_range
        used = clip.source_range
        assert used.start_time >= avail.start_time
        assert used.end_time_exclusive() <= avail.end_time_exclusive()


def test_timeline_round_trips(branches: tuple[storyboard.Board, Any, Any], tmp_path: Path) -> None:
    _board, _result, timeline = branches
    again = tmp_path / "again.otio"
    otio.adapters.write_to_file(timeline, str(again))
    assert otio.adapters.read_from_file(str(again)).duration() == timeline.duration()


# Editors' formats need a timecode rate (8 fps is none): render at 24 fps, small.
EDITOR = AnimaticBackend(short_side=90, fps=24)
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def editor_renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    tmp = tmp_path_factory.mktemp("editors")
    out = {}
    for name in EXAMPLES:
        board = storyboard.load(ROOT / "examples" / f"{name}.yaml")
        result = storyboard.render(board, backend=EDITOR, output=tmp / f"{name}.mp4", cache_dir=tmp / "cache",
                                   otio=tmp / f"{name}.otio")
        assert result.otio is not None and result.film is not None
        out[name] = (otio.adapters.read_from_file(str(result.otio)), result.film)
    return out


@pytest.mark.parametrize("suffix", ["xml", "fcpxml", "edl"])  # FCP 7 XML, FCP X XML, CMX 3600 EDL
@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_converts_to_editor_formats(editor_renders: dict[str, tuple[Any, Path]], name: str,
                                                  suffix: str, tmp_path: Path) -> None:
    timeline, _film = editor_renders[name]
    path = tmp_path / f"{name}.{suffix}"
    otio.adapters.write_to_file(timeline, str(path))
    back = otio.adapters.read_from_file(str(path))
    names = [c.name for c in back.video_tracks()[0].find_clips()]
    assert names == [c.name for c in timeline.video_tracks()[0].find_clips()] or suffix == "edl"
    assert len(names) == len(list(timeline.video_tracks()[0].find_clips()))


def test_a_looped_track_is_whole_plays_of_its_media(editor_renders: dict[str, tuple[Any, Path]]) -> None:
    timeline, film = editor_renders["montage"]
    media = probe_audio(ROOT / "examples" / "assets" / "score.m4a").duration
    film_seconds = probe(film).duration
    assert film_seconds > media, "the montage must outlast its score for this test to mean anything"
    clips = list(timeline.audio_tracks()[0].find_clips())
    assert len(clips) == math.ceil(film_seconds / media - 1e-3)
    for clip in clips:
        avail, used = clip.media_reference.available_range, clip.source_range
        assert avail is not None and avail.duration.to_seconds() == pytest.approx(media, abs=0.05)
        assert used.start_time >= avail.start_time
        assert used.end_time_exclusive() <= avail.end_time_exclusive()
    assert all(c.source_range.duration == clips[0].media_reference.available_range.duration for c in clips[:-1])
    total = sum(c.source_range.duration.to_seconds() for c in clips)
    assert total == pytest.approx(timeline.video_tracks()[0].duration().to_seconds(), abs=1e-6)


def test_a_track_that_does_not_loop_ends_with_its_media(tmp_path: Path) -> None:
    board = storyboard.load(ROOT / "examples" / "montage.yaml")
    spec = board.spec
    path, track = spec.audio[0]
    once = dataclasses.replace(spec, audio=((path, track.model_copy(update={"loop": False})),))
    board = dataclasses.replace(board, spec=once)
    result = storyboard.render(board, backend=EDITOR, output=tmp_path / "m.mp4", cache_dir=tmp_path / "cache",
                               otio=tmp_path / "m.otio")
    assert result.otio is not None
    timeline = otio.adapters.read_from_file(str(result.otio))
    clips = list(timeline.audio_tracks()[0].find_clips())
    assert len(clips) == 1
    assert clips[0].source_range.duration.to_seconds() == pytest.approx(probe_audio(path).duration, abs=0.05)


def test_a_held_shot_is_a_freeze_frame_and_the_track_lasts_as_long_as_the_film(tmp_path: Path) -> None:
    words = " ".join(["word"] * 12)
    path = tmp_path / "held.yaml"
    path.write_text(f"""storyboard: 1
defaults: {{duration: 3}}
shots:
  - id: a
    prompt: x
    fit: extend
    say: "{words}"
  - id: b
    prompt: y
    transition: {{type: dissolve, duration: 0.5}}
""")
    result = storyboard.render(path, backend=SMALL, otio=tmp_path / "held.otio")
    assert result.otio is not None and result.film is not None
    hold = result.shots["a"].facts["hold"]
    assert hold > 0.5
    timeline = otio.adapters.read_from_file(str(result.otio))
    clips = list(timeline.video_tracks()[0].find_clips())
    assert [c.name for c in clips] == ["a", "a (hold)", "b"]
    held = clips[1]
    assert isinstance(held.effects[0], otio.schema.FreezeFrame)
    # the hold less the half of the dissolve that eats into it
    assert held.source_range.duration.to_seconds() == pytest.approx(hold - 0.25, abs=1 / 8 + 1e-6)
    film = probe(result.film).duration
    assert timeline.video_tracks()[0].duration().to_seconds() == pytest.approx(film, abs=1 / 8 + 1e-6)
