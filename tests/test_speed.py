"""Speed, as behaviour (issue 16, items 7-9): what a command does not load, which steps
overlap. Timings live in benchmarks/; these tests pin the reasons they are fast."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storyboard.graph import ShotGraph
from tests.media_helpers import (
    decode_all,
    harbor_chain,
    make_audio,
    make_image,
    psnr,
    stream_durations,
)

SHORT = 90
FPS = 8

_MODULES_AFTER = """
import json, sys
from storyboard.cli import main
try:
    main({argv!r}, standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``storyboard ARGV``."""
    proc = subprocess.run([sys.executable, "-c", _MODULES_AFTER.format(argv=argv)], capture_output=True,
                          text=True, check=True, timeout=120)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def _chain_board(write_board: Callable[..., Path], shots: int = 30) -> Path:
    lines = ["storyboard: 1", "vars: {hero: a keeper}", "shots:"]
    for i in range(shots):
        lines += [f"  - id: s{i}", f'    prompt: "Shot {i}: {{{{ hero }}}} walks"']
        if i % 5 == 0:
            lines.append("    image: null" if i % 10 == 0 else f"    image: '@s{i - 5}:first'")
    return write_board("\n".join(lines) + "\n")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_plan_loads_no_graph_library_no_media_and_rich_only_for_the_table(
        write_board: Callable[..., Path], as_json: bool) -> None:
    path = _chain_board(write_board)
    loaded = _modules_after(["plan", str(path), *(["--json"] if as_json else [])])
    assert "storyboard.plan" in loaded  # it did plan
    heavy = {"networkx", "httpx", "av", "PIL", "numpy", "storyboard.media"}
    assert not heavy & loaded, f"plan loaded {sorted(heavy & loaded)}"
    assert ("rich" in loaded) is not as_json  # the table needs rich; --json does not


def test_graph_answers_as_networkx_would() -> None:
    edges = [("a", "b", "last"), ("a", "b", "first"), ("b", "c", "last"), ("a", "d", "first"),
             ("e", "d", "2.5")]
    g = ShotGraph("edcba", edges, {"a": 6, "b": 4, "c": 4, "d": 10, "e": 1})
    import networkx as nx

    ref = g.g
    index = {n: i for i, n in enumerate("edcba")}
    assert g.order() == list(nx.lexicographical_topological_sort(ref, key=index.__getitem__))
    assert g.depth() == len(nx.dag_longest_path(ref)) == 3
    for n in "abcde":
        assert g.parents(n) == list(ref.predecessors(n))
        assert g.children(n) == list(ref.successors(n))
        assert g.ancestors(n) == nx.ancestors(ref, n)
        assert g.descendants(n) == nx.descendants(ref, n)
    assert ref.edges["a", "b"]["label"] == "last, first"
    assert ShotGraph([], [], {}).depth() == 0


# ---- item 8: a film of preview clips copies what sits whole between plain cuts ----------


async def _preview_cut(tmp_path: Path) -> list[Any]:
    from storyboard.media import CutClip, animatic_clip

    start = make_image(tmp_path / "start.png", (320, 180), seed=3)
    end = make_image(tmp_path / "end.png", (320, 180), seed=4)
    common = dict(aspect_ratio="16:9", title="t", sound=True, short_side=SHORT, fps=FPS)
    a = await animatic_clip(tmp_path / "a.mp4", duration=1, start_image=start, end_image=None, text="a",
                            **common)  # type: ignore[arg-type]
    b = await animatic_clip(tmp_path / "b.mp4", duration=1, start_image=None, end_image=None, text="b",
                            **common)  # type: ignore[arg-type]
    c = await animatic_clip(tmp_path / "c.mp4", duration=1, start_image=None, end_image=None, text="c",
                            **common)  # type: ignore[arg-type]
    d = await animatic_clip(tmp_path / "d.mp4", duration=2, start_image=start, end_image=end, text="d",
                            **common)  # type: ignore[arg-type]
    return [CutClip(a), CutClip(b, trim_first_frame=True), CutClip(c),
            CutClip(d, transition="dissolve", transition_duration=0.25)]


async def test_a_film_of_previews_copies_whole_clips_and_encodes_only_transitions(tmp_path: Path) -> None:
    from storyboard.media import MixTrack, assemble, probe
    from storyboard.media._graphs import X264

    cut = await _preview_cut(tmp_path)
    music = make_audio(tmp_path / "music.m4a", duration=1.5)
    seen: list[float] = []
    result = await assemble(cut, tmp_path / "film.mp4", audio=[MixTrack(music, volume=0.5, duck=True)],
                            progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0
    encodes = [c for c in result.commands if "libx264" in c]
    assert len(encodes) == 1  # the dissolve's segment only: a and b go in as they are
    assert X264[3] not in encodes[0]  # the clips' own preset, not the paid film's
    film, a, b, c = (decode_all(clip.path) for clip in [result, *cut[:3]])
    assert film[:FPS] == a  # bit for bit: copied, not re-encoded
    assert film[FPS:2 * FPS - 1] == b[1:]  # from b's second frame: the chained seam dropped
    assert film[2 * FPS - 1:2 * FPS + 4] == c[:5]  # c up to the frame before the dissolve begins
    assert film[2 * FPS + 4] != c[5]
    info = probe(result.path)
    assert info.frames == len(film) == 3 * FPS - 1 + 2 * FPS - round(0.25 * FPS)
    assert info.has_audio and stream_durations(result.path)["audio"] == pytest.approx(info.duration, abs=0.03)


async def test_a_film_of_previews_looks_like_the_encoded_film(tmp_path: Path) -> None:
    from storyboard.media import _assemble as module
    from storyboard.media import assemble

    cut = await _preview_cut(tmp_path)
    copied = await assemble(cut, tmp_path / "copied.mp4", loudness=None)
    saved = module._preview

    async def no_preview(*args: Any) -> Any:
        return module.X264, {}

    module._preview = no_preview  # type: ignore[assignment]
    try:
        encoded = await assemble(cut, tmp_path / "encoded.mp4", loudness=None)
    finally:
        module._preview = saved  # type: ignore[assignment]
    assert copied.method == "segments" and encoded.method == "filter"
    ours, theirs = decode_all(copied.path), decode_all(encoded.path)
    assert len(ours) == len(theirs)
    scores = sorted(psnr(x, y) for x, y in zip(ours, theirs, strict=True))
    assert scores[0] > 30 and scores[len(scores) // 2] > 40  # the same frames, in the same places


# ---- item 9: a downloaded clip is hashed and decoded as it arrives ---------------------------

KEY = "sk-test-speed-4b2e"


def test_a_chained_child_needs_no_second_read_or_decode_of_its_parent(
        write_board: Callable[..., Path], make_image: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import storyboard
    import storyboard.media
    from fakeserver import FakeInference
    from storyboard.backends.inference import InferenceBackend
    from storyboard.cache import _local, open_cache
    from storyboard.media._frames import _extract

    path = harbor_chain(write_board, make_image, 2)  # b starts on a's last frame

    def no_second_look(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"read again after the download: {args}")

    monkeypatch.setattr(storyboard.media, "extract_frame", no_second_look)
    monkeypatch.setattr(_local, "file_sha256", no_second_look)
    with FakeInference(api_key=KEY, latency=0.05) as fake:
        backend = InferenceBackend(api_key=KEY, base_url=fake.url, poll_interval=0.05)
        result = asyncio.run(storyboard.Pipeline(storyboard.load(path), backend=backend).run())
    assert {s.status for s in result.shots.values()} == {"generated"}, result.shots
    monkeypatch.undo()
    clip = result.shots["a"].clip
    assert clip is not None and clip.name == f"{_local.file_sha256(clip)}.mp4"  # the streamed hash is right
    last = open_cache(path).frame_path(clip.stem, "last")
    assert last.read_bytes() == _extract(clip, "last", path.parent / "again.png").read_bytes()


def test_a_streamed_clip_gives_its_hash_and_last_frame_only_when_whole(tmp_path: Path) -> None:
    import hashlib

    from storyboard.media import StreamedClip
    from storyboard.media._frames import _extract
    from tests.media_helpers import make_clip

    clip = make_clip(tmp_path / "c.mp4", duration=1.0, gop=4)  # faststart: its index comes first
    data = clip.read_bytes()
    streamed = StreamedClip()
    for at in range(0, len(data), 4096):  # as a download delivers it
        streamed.feed(data[at:at + 4096])
    digest, last = streamed.finish()
    assert digest == hashlib.sha256(data).hexdigest()
    assert last is not None and last.tobytes() == decode_all(_extract(clip, "last", tmp_path / "l.png"))[0].tobytes()
    cut = StreamedClip()
    cut.feed(data[: len(data) * 3 // 4])  # a download that broke: no frame, the caller checks the file
    assert cut.finish()[1] is None
