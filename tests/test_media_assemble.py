"""assemble: stream copy when possible, else one filtergraph or bounded segments joined by
stream copy; durations, audio, loudness."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import av
import pytest

from storyboard.errors import MediaError
from storyboard.media import CutClip, MixTrack, assemble, probe
from storyboard.media._assemble import can_copy
from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._graphs import (
    LOUDNESS_RANGE,
    TRUE_PEAK,
    concat_list,
    copy_args,
    loudness_filter,
    parse_ebur128,
    plan_filter,
    render_args,
)
from storyboard.media._timeline import WINDOW, plan_timeline, split_segments
from tests.media_helpers import (
    decode_all,
    integrated_loudness,
    make_audio,
    make_clip,
    psnr,
    stream_durations,
)

FPS = 10
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("assemble")
    return {
        "a": make_clip(d / "a.mp4", duration=2.0, fps=FPS, freq=440),
        "b": make_clip(d / "b.mp4", duration=1.5, fps=FPS, freq=550),
        "c": make_clip(d / "c.mp4", duration=2.0, fps=FPS, freq=660),
        "mute": make_clip(d / "mute.mp4", duration=1.0, fps=FPS, audio=False),
        "big": make_clip(d / "big.mp4", duration=1.0, fps=FPS, size=(320, 240), source="testsrc"),
        "music": make_audio(d / "music.m4a", duration=1.7),
    }


def _stream_seconds(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        return {
            s.type: float(s.duration * s.time_base)
            for s in container.streams
            if s.duration is not None and s.type in ("video", "audio")
        }


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


async def test_copy_path(clips: dict[str, Path], tmp_path: Path) -> None:
    cut = [CutClip(clips["a"]), CutClip(clips["b"]), CutClip(clips["c"])]
    result = await assemble(cut, tmp_path / "film.mp4")
    assert result.method == "copy"
    assert result.duration == pytest.approx(5.5, abs=FRAME)
    out, ins = _packets(result.path), [p for c in cut for p in _packets(c.path)]
    assert len(out) == len(ins)
    # stream copy: identical packets, except that the demuxer puts each file's SPS/PPS
    # in front of its first keyframe (a few dozen bytes)
    changed = [i for i, (x, y) in enumerate(zip(out, ins, strict=True)) if x != y]
    assert changed == [0, 20, 35]
    assert all(len(out[i]) - len(ins[i]) < 100 and out[i].endswith(ins[i][-200:]) for i in changed)
    seconds = _stream_seconds(result.path)
    assert seconds["audio"] == pytest.approx(seconds["video"], abs=0.05)
    assert "-c" in result.command and "copy" in result.command


async def test_dissolve_duration(clips: dict[str, Path], tmp_path: Path) -> None:
    cut = [
        CutClip(clips["a"]),
        CutClip(clips["b"], transition="dissolve", transition_duration=0.5),
        CutClip(clips["c"], transition="wipeleft", transition_duration=0.3),
    ]
    result = await assemble(cut, tmp_path / "film.mp4", loudness=None)
    assert result.method == "filter"
    assert result.duration == pytest.approx(2.0 + 1.5 + 2.0 - 0.5 - 0.3, abs=FRAME)
    seconds = _stream_seconds(result.path)
    assert seconds["audio"] == pytest.approx(seconds["video"], abs=0.05)
    assert "xfade=transition=dissolve" in " ".join(result.command)
    assert result.commands[-1] == result.command


async def test_silent_clips_get_silence(clips: dict[str, Path], tmp_path: Path) -> None:
    cut = [
        CutClip(clips["mute"]),
        CutClip(clips["a"], transition="fade", transition_duration=0.4),
        CutClip(clips["mute"]),
        CutClip(clips["big"]),  # another size: scaled and padded
    ]
    result = await assemble(cut, tmp_path / "film.mp4")
    assert result.method == "filter"
    info = probe(result.path)
    assert (info.width, info.height) == (160, 90) and info.has_audio
    assert info.duration == pytest.approx(1.0 + 2.0 + 1.0 + 1.0 - 0.4, abs=FRAME)
    seconds = _stream_seconds(result.path)
    assert seconds["audio"] == pytest.approx(seconds["video"], abs=0.05)


async def test_seam_trim(clips: dict[str, Path], tmp_path: Path) -> None:
    keep = await assemble(
        [CutClip(clips["a"]), CutClip(clips["c"])], tmp_path / "keep.mp4", loudness=None,
        audio=[MixTrack(clips["music"], volume=0.2)],
    )  # fmt: skip
    trim = await assemble(
        [CutClip(clips["a"]), CutClip(clips["c"], trim_first_frame=True)], tmp_path / "trim.mp4",
        loudness=None, audio=[MixTrack(clips["music"], volume=0.2)],
    )  # fmt: skip
    assert keep.duration == pytest.approx(4.0, abs=FRAME / 2)
    assert trim.duration == pytest.approx(4.0 - FRAME, abs=FRAME / 2)
    assert probe(keep.path).frames == 40 and probe(trim.path).frames == 39


def _second_pass(command: str) -> bool:
    """The measured gain (or loudnorm, where a gain would clip) is in the film's command."""
    return re.search(r"volume=-?\d+\.\d{4}dB|loudnorm=I=", command) is not None


async def test_music_duck_and_loudness(clips: dict[str, Path], tmp_path: Path) -> None:
    cut = [CutClip(clips["a"]), CutClip(clips["mute"]), CutClip(clips["b"])]
    seen: list[float] = []
    result = await assemble(
        cut, tmp_path / "film.mp4", audio=[MixTrack(clips["music"], volume=0.5, duck=True)],
        loudness=-16.0, progress=seen.append,
    )  # fmt: skip
    assert result.method == "filter"
    graph = " ".join(result.command)
    assert "sidechaincompress" in graph and "amix" in graph and _second_pass(graph)
    assert "-stream_loop" in result.command  # the 1.7 s track loops under a 4.5 s film
    seconds = _stream_seconds(result.path)
    assert seconds["video"] == pytest.approx(4.5, abs=FRAME)
    assert seconds["audio"] == pytest.approx(seconds["video"], abs=0.05)
    assert integrated_loudness(result.path) == pytest.approx(-16.0, abs=1.0)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


async def test_bad_inputs_name_the_file(clips: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_text("nope")
    with pytest.raises(MediaError, match=r"broken\.mp4"):
        await assemble([CutClip(clips["a"]), CutClip(bad)], tmp_path / "f.mp4")
    with pytest.raises(MediaError, match=r"gone\.m4a"):
        await assemble(
            [CutClip(clips["a"])], tmp_path / "f.mp4", audio=[MixTrack(tmp_path / "gone.m4a")]
        )
    with pytest.raises(MediaError, match=r"mute\.mp4"):
        await assemble([CutClip(clips["a"])], tmp_path / "f.mp4", audio=[MixTrack(clips["mute"])])
    with pytest.raises(MediaError, match=r"swirl"):
        await assemble([CutClip(clips["a"]), CutClip(clips["b"], "swirl", 0.5)], tmp_path / "f.mp4")
    assert not (tmp_path / "f.mp4").exists()
    assert not list(tmp_path.glob(".f.*"))


async def test_segments_cuts_transitions_silence_music(clips: dict[str, Path], tmp_path: Path) -> None:
    # more clips than one window holds: rendered in segments, joined by stream copy
    cut = [
        CutClip(clips["a"]),
        CutClip(clips["b"], "dissolve", 0.5),
        CutClip(clips["mute"]),  # plain cut, no sound of its own
        CutClip(clips["c"]),
        CutClip(clips["a"], trim_first_frame=True),
        CutClip(clips["b"], "fade", 0.3),
        CutClip(clips["mute"]),
        CutClip(clips["c"], "wipeleft", 0.4),
    ]
    assert len(cut) > WINDOW
    seen: list[float] = []
    result = await assemble(
        cut, tmp_path / "film.mp4", audio=[MixTrack(clips["music"], volume=0.5, duck=True)],
        loudness=-16.0, progress=seen.append,
    )  # fmt: skip
    assert result.method == "segments"
    assert len(result.commands) >= 4  # two segments or more, a measure, the join
    expected = 2.0 + 1.5 + 1.0 + 2.0 + 2.0 + 1.5 + 1.0 + 2.0 - 0.5 - FRAME - 0.3 - 0.4
    assert result.duration == pytest.approx(expected, abs=FRAME / 2)
    decoded = stream_durations(result.path)
    assert decoded["video_frames"] == round(expected * FPS)
    assert decoded["audio"] == pytest.approx(decoded["video"], abs=0.05)
    assert integrated_loudness(result.path) == pytest.approx(-16.0, abs=1.0)
    joined = " ".join(result.command)
    assert "-c:v copy" in joined and _second_pass(joined) and "sidechaincompress" in joined
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert not list(tmp_path.glob(".assemble-*")) and not list(tmp_path.glob(".film.*"))


async def test_windows_match_one_pass(clips: dict[str, Path], tmp_path: Path) -> None:
    # a long run of dissolves is split inside clips; the film must equal a one-pass render
    cut = [CutClip(clips["a"])] + [CutClip(clips[k], "dissolve", 0.3) for k in "bcabcab"]
    result = await assemble(cut, tmp_path / "film.mp4", loudness=None)
    assert result.method == "segments"
    infos = [probe(c.path) for c in cut]
    reference = tmp_path / "reference.mp4"
    await run_ffmpeg(render_args(plan_filter(cut, infos), reference))
    ours, theirs = decode_all(result.path), decode_all(reference)
    assert len(ours) == len(theirs) == plan_timeline(cut, infos).total
    # two encodes of the same frames (~35-50 dB here; a frame out of step gives ~16 dB)
    assert min(psnr(x, y) for x, y in zip(ours, theirs, strict=True)) > 30
    seconds = _stream_seconds(result.path)
    assert seconds["audio"] == pytest.approx(seconds["video"], abs=0.05)


async def test_one_segment_with_loudness(clips: dict[str, Path], tmp_path: Path) -> None:
    cut = [CutClip(clips["a"]), CutClip(clips["b"], "dissolve", 0.5)]
    result = await assemble(cut, tmp_path / "film.mp4", loudness=-20.0)
    assert result.method == "filter" and len(result.commands) == 2  # measure, render
    assert result.loudness is not None and "input_i" in result.loudness
    assert integrated_loudness(result.path) == pytest.approx(-20.0, abs=1.0)


# ---- pure builders ----------------------------------------------------------------------


def test_can_copy_rules(clips: dict[str, Path]) -> None:
    a, b, mute, big = (probe(clips[k]) for k in ("a", "b", "mute", "big"))
    cut2 = [CutClip(a.path), CutClip(b.path)]
    assert can_copy(cut2, [a, b], [])
    assert not can_copy(cut2, [a, b], [MixTrack(clips["music"])])
    assert not can_copy([CutClip(a.path), CutClip(b.path, "fade", 0.5)], [a, b], [])
    assert not can_copy([CutClip(a.path), CutClip(b.path, trim_first_frame=True)], [a, b], [])
    assert not can_copy([CutClip(a.path), CutClip(mute.path)], [a, mute], [])
    assert not can_copy([CutClip(a.path), CutClip(big.path)], [a, big], [])


def test_concat_list_quotes_paths(tmp_path: Path, clips: dict[str, Path]) -> None:
    info = probe(clips["a"])
    odd = tmp_path / "it's here.mp4"
    odd.write_bytes(clips["a"].read_bytes())
    text = concat_list([probe(odd), info])
    assert "file '" + str(tmp_path) + "/it'\\''s here.mp4'" in text
    assert text.count("duration 2.000000") == 2
    assert copy_args(Path("l.txt"), Path("o.mp4"))[-1] == "o.mp4"


def test_plan_filter_offsets(clips: dict[str, Path]) -> None:
    infos = [probe(clips[k]) for k in ("a", "b", "c")]
    cut = [CutClip(infos[0].path), CutClip(infos[1].path, "dissolve", 0.5), CutClip(infos[2].path)]
    plan = plan_filter(cut, infos)
    # only the 5 overlapping frames go through xfade: 15 frames of "a" come before them
    assert "trim=start_frame=15,setpts=PTS-STARTPTS" in plan.graph
    assert "trim=end_frame=15[" in plan.graph and "trim=end_frame=5[" in plan.graph
    assert plan.graph.count("xfade=transition=dissolve:duration=0.500000:offset=0[") == 1
    assert "acrossfade=ns=24000" in plan.graph
    assert plan.frames == 50 and plan.samples == 5 * 48000
    args = render_args(plan, Path("out.mp4"))
    assert args[-1] == "out.mp4" and "+faststart" in args
    silent = plan_filter(cut, infos, video=False)
    assert "xfade" not in silent.graph and "acrossfade" in silent.graph


def test_split_segments(clips: dict[str, Path]) -> None:
    infos = [probe(clips[k]) for k in ("a", "b", "c", "a", "b", "c")]
    cut = [
        CutClip(infos[0].path), CutClip(infos[1].path, "dissolve", 0.5), CutClip(infos[2].path),
        CutClip(infos[3].path, "fade", 0.3), CutClip(infos[4].path, "fade", 0.3), CutClip(infos[5].path),
    ]  # fmt: skip
    timeline = plan_timeline(cut, infos)
    assert timeline.total == 20 + 15 + 20 + 20 + 15 + 20 - 5 - 3 - 3
    assert split_segments(timeline, 6) == split_segments(timeline, 10)  # all fits: one piece
    assert len(split_segments(timeline, 6)) == 1
    for window in (1, 2, 3):
        segments = split_segments(timeline, window)
        assert segments[0].start == 0 and segments[-1].end == timeline.total
        assert all(x.end == y.start for x, y in itertools.pairwise(segments))
        assert all(len(s.pieces) <= max(window, 2) for s in segments)
        for s in segments:  # no segment starts or ends inside a transition
            assert timeline.clean(s.start) or s.start == 0
        # every clip frame is used exactly once
        used = [0] * len(cut)
        for s in segments:
            for piece in s.pieces:
                used[piece.clip] += piece.end - piece.start
        assert used == list(timeline.frames)
    # the plain cuts (before clips 2 and 5) are where a window of 3 splits
    assert [s.start for s in split_segments(timeline, 3)][:2] == [0, timeline.starts[2]]


def test_plan_segment_trims_pieces(clips: dict[str, Path]) -> None:
    infos = [probe(clips[k]) for k in ("a", "b", "c")]
    cut = [CutClip(infos[0].path), CutClip(infos[1].path, "dissolve", 0.5), CutClip(infos[2].path, "fade", 0.5)]
    timeline = plan_timeline(cut, infos)
    second = split_segments(timeline, 2)[1]
    plan = plan_filter(cut, infos, second)
    assert plan.frames == second.end - second.start
    assert plan.samples == timeline.samples(second.end) - timeline.samples(second.start)
    assert "trim=start_frame=" in plan.graph and "atrim=start_sample=" in plan.graph
    args = render_args(plan, Path("seg.mp4"), sound=Path("seg.wav"))
    assert args[-1] == "seg.wav" and "pcm_f32le" in args and "+faststart" not in args


def test_parse_ebur128() -> None:
    stderr = """[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -20.6 LUFS
    Threshold: -30.6 LUFS

  Loudness range:
    LRA:         1.8 LU
    Threshold: -40.4 LUFS
    LRA low:   -21.5 LUFS
    LRA high:  -19.8 LUFS

  True peak:
    Peak:      -13.7 dBFS
"""
    values = parse_ebur128(stderr)
    assert values == {
        "input_i": -20.6, "input_thresh": -30.6, "input_lra": 1.8, "input_tp": -13.7, "target_offset": 0.0
    }  # fmt: skip
    silent = stderr.replace("-20.6 LUFS", "-70.0 LUFS").replace("-13.7 dBFS", "-inf dBFS")
    assert parse_ebur128(silent) is None
    with pytest.raises(MediaError):
        parse_ebur128("no summary")


def test_loudness_filter_is_a_gain_where_loudnorm_would_be_linear() -> None:
    measured = {"input_i": -20.6, "input_thresh": -30.6, "input_lra": 1.8, "input_tp": -13.7, "target_offset": 0.0}
    assert loudness_filter(-14.0, measured) == "volume=6.6000dB"
    # the gain would lift the true peak over TRUE_PEAK: loudnorm's dynamic mode, as before
    loud_peak = {**measured, "input_tp": TRUE_PEAK - 6.6 + 0.1}
    assert loudness_filter(-14.0, loud_peak).startswith("loudnorm=I=-14.0:")
    assert loudness_filter(-14.0, {**measured, "input_tp": TRUE_PEAK - 6.6 - 0.01}).startswith("volume=")
    wide = {**measured, "input_lra": LOUDNESS_RANGE + 0.1}
    assert loudness_filter(-14.0, wide).startswith("loudnorm=")


async def test_frames_outside_transitions_are_untouched(clips: dict[str, Path], tmp_path: Path) -> None:
    # xfade works in 4:4:4; frames that only pass it by must not make that round trip
    infos = [probe(clips[k]) for k in ("a", "b")]
    cut = [CutClip(infos[0].path), CutClip(infos[1].path, "dissolve", 0.5)]
    plan = plan_filter(cut, infos, audio=False)
    film, first, second = tmp_path / "film.md5", tmp_path / "a.md5", tmp_path / "b.md5"
    await run_ffmpeg([*plan.inputs, "-filter_complex", plan.graph, "-map", f"[{plan.video}]",
                      "-f", "framemd5", str(film)])  # fmt: skip
    await run_ffmpeg(["-i", str(infos[0].path), "-map", "0:v", "-f", "framemd5", str(first)])
    await run_ffmpeg(["-i", str(infos[1].path), "-map", "0:v", "-f", "framemd5", str(second)])

    def hashes(path: Path) -> list[str]:
        lines = path.read_text().splitlines()
        return [line.rsplit(",", 1)[-1].strip() for line in lines if not line.startswith("#")]

    ours, a, b = hashes(film), hashes(first), hashes(second)
    assert len(ours) == plan.frames == 20 + 15 - 5
    assert ours[:15] == a[:15]  # "a" before the dissolve, bit for bit
    assert all(o not in (x, y) for o, x, y in zip(ours[15:20], a[15:], b[:5], strict=True))
    assert ours[20:] == b[5:]  # "b" after it
