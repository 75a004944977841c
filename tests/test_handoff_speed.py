"""Issue 16, item 9: the hand-off from a finished clip to its chained child.

- the last frame is decoded exactly while skipping the frames nothing refers to;
- a frame the render decoded itself is prepared from its header, without decoding it again;
- the child's start frame is uploaded while its parent's clip is still being stored;
- the fake server's update stream says a task ended when it ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from tests.media_helpers import decode_all, harbor_chain, make_clip

KEY = "sk-test-handoff-91c3"

# x264 settings that make frames nothing refers to: B-frames (with and without a
# pyramid, where some B-frames are references), short GOPs, and none at all.
ENCODINGS = {
    "b-frames": ("-bf", "3", "-b_strategy", "0", "-b-pyramid", "none"),
    "b-pyramid": ("-bf", "3", "-b_strategy", "0", "-b-pyramid", "normal"),
    "short-gop": ("-bf", "2", "-b_strategy", "0", "-g", "7"),
    "no-b-frames": (),
}


def _nonref_frames(clip: Path) -> int:
    """How many frames a decoder skipping non-reference frames leaves out."""
    with av.open(str(clip)) as c:
        total = c.streams.video[0].frames
        c.streams.video[0].codec_context.skip_frame = "NONREF"
        kept = sum(1 for _ in c.decode(video=0))
    return int(total) - kept


@pytest.mark.parametrize("frames", [12, 40])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_the_streamed_last_frame_is_exact_when_unreferenced_frames_are_skipped(
        tmp_path: Path, encoding: str, frames: int) -> None:
    from storyboard.media import StreamedClip

    clip = make_clip(tmp_path / "c.mp4", duration=frames / 10, size=(320, 180), x264=ENCODINGS[encoding])
    if encoding != "no-b-frames":
        assert _nonref_frames(clip) > 0  # the skipping is exercised, not bypassed
    data = clip.read_bytes()
    streamed = StreamedClip(tmp_path / "last.png")
    for at in range(0, len(data), 8192):
        streamed.feed(data[at:at + 8192])
    _, last = streamed.finish()
    shown = decode_all(clip)[-1]  # every frame decoded, in display order
    assert last is not None and last.tobytes() == shown.tobytes()
    with Image.open(tmp_path / "last.png") as png:  # written by the decoding thread
        assert png.convert("RGB").tobytes() == shown.tobytes()


def test_a_frame_the_render_decoded_is_prepared_from_its_header(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storyboard.media import _images, prepare_image

    frame = tmp_path / "frame.png"
    Image.new("RGB", (640, 360), (20, 90, 160)).save(frame, compress_level=1)
    slow = prepare_image(frame, "16:9", tmp_path / "slow.png")

    def no_decode(src: Path) -> Image.Image:
        raise AssertionError(f"decoded again: {src}")

    monkeypatch.setattr(_images, "load_image", no_decode)
    fast = prepare_image(frame, "16:9", tmp_path / "fast.png", trusted=True)
    assert fast.path.read_bytes() == slow.path.read_bytes() == frame.read_bytes()
    assert (fast.width, fast.height, fast.notes) == (slow.width, slow.height, slow.notes)
    monkeypatch.undo()
    # a trusted frame that does not fit (another aspect) is still cropped, as any image
    cropped = prepare_image(frame, "1:1", tmp_path / "square.png", trusted=True)
    with Image.open(cropped.path) as img:
        assert img.size == (360, 360)
    assert cropped.notes


def test_a_childs_start_frame_is_uploaded_while_its_parent_is_stored(
        write_board: Callable[..., Path], make_image: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import storyboard
    from fakeserver import FakeInference
    from storyboard.backends.inference import InferenceBackend
    from storyboard.cache import _local
    from storyboard.events import ShotDone

    path = harbor_chain(write_board, make_image, 3)  # b starts on a's last frame, c on b's
    stored: dict[str, tuple[float, float]] = {}
    real_store = _local.Cache.store

    def slow_disk(self: Any, key: str, clip: Path, *, shot: str, facts: dict[str, Any] | None = None) -> Any:
        began = time.monotonic()
        time.sleep(0.4)  # a slow disk: storing a clip takes a while
        entry = real_store(self, key, clip, shot=shot, facts=facts)
        stored[shot] = (began, time.monotonic())
        return entry

    monkeypatch.setattr(_local.Cache, "store", slow_disk)
    done: dict[str, float] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, ShotDone):
            done[event.shot] = time.monotonic()

    with FakeInference(api_key=KEY, latency=0.05) as fake:
        backend = InferenceBackend(api_key=KEY, base_url=fake.url, poll_interval=0.05)
        result = asyncio.run(storyboard.Pipeline(storyboard.load(path), backend=backend, on_event=on_event).run())
        puts = fake.calls_to("PUT", "/upload/")
        runs = fake.calls_to("POST", "/apps/run")
        inputs = fake.inputs_sent
    assert {s.status for s in result.shots.values()} == {"generated"}, result.shots
    assert len(puts) == 3 and len(runs) == 3  # start.png, a's last frame, b's: each once
    assert backend.stats.uploads == 3 and backend.stats.dedupe_hits == 0  # staged is not "saved"
    assert len({i["image"] for i in inputs}) == 3
    for parent, child in (("a", "b"), ("b", "c")):
        began, ended = stored[parent]
        upload = puts[("a", "b", "c").index(child)].at
        assert began < upload < ended, (parent, began, upload, ended)  # during the parent's store
        child_run = runs[("a", "b", "c").index(child)].at
        assert child_run > ended and done[parent] <= child_run  # submitted only once it is stored


def test_the_fake_stream_tells_the_end_of_a_task_when_it_happens() -> None:
    import httpx

    from fakeserver import FakeInference
    from fakeserver.records import COMPLETED

    late = []
    with FakeInference(api_key=KEY, latency=0.3, heartbeat_interval=5.0) as fake, \
            httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        for n in range(3):  # a 10 ms polling step would be late on most of them
            task = client.post("/apps/run", json={"app": "klingai/video-v3", "input": {
                "prompt": f"a lighthouse, take {n}", "duration": 3}}).json()["data"]
            created = fake.tasks[task["id"]].created
            with client.stream("GET", f"/tasks/{task['id']}/stream") as r:
                for line in r.iter_lines():
                    event = json.loads(line) if line.strip() else {}
                    if (event.get("data") or event).get("status") == COMPLETED:
                        late.append(time.monotonic() - (created + 0.3))
                        break
    assert len(late) == 3 and all(0 <= x < 0.004 for x in late), late


def test_a_frame_that_cannot_be_written_never_costs_the_paid_clip(
        write_board: Callable[..., Path], make_image: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import storyboard
    from fakeserver import FakeInference
    from storyboard.backends.inference import InferenceBackend
    from storyboard.cache import _local
    from storyboard.errors import CacheError, RenderFailed

    path = harbor_chain(write_board, make_image, 2)
    real_publish = _local.Cache.publish

    def frames_unwritable(self: Any, tmp: Path, dest: Path) -> Path:
        if dest.parent.name == "frames":
            raise CacheError(f"cannot write {dest}: the disk is full")
        return real_publish(self, tmp, dest)

    with FakeInference(api_key=KEY, latency=0.05) as fake:
        monkeypatch.setattr(_local.Cache, "publish", frames_unwritable)
        backend = InferenceBackend(api_key=KEY, base_url=fake.url, poll_interval=0.05)
        with pytest.raises(RenderFailed):
            asyncio.run(storyboard.Pipeline(storyboard.load(path), backend=backend).run())
        assert len(fake.submissions) == 1  # a was paid; b could not get its start frame
        monkeypatch.undo()
        backend = InferenceBackend(api_key=KEY, base_url=fake.url, poll_interval=0.05)
        result = asyncio.run(storyboard.Pipeline(storyboard.load(path), backend=backend).run())
        assert len(fake.submissions) == 2  # a was kept: only b is paid now
    assert result.shots["a"].status == "cached" and result.shots["b"].status == "generated"


def test_the_fake_paces_output_files_and_says_when_their_last_byte_went() -> None:
    import httpx

    from fakeserver import FakeInference

    with FakeInference(api_key=KEY, latency=0.05) as fake, \
            httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        task = client.post("/apps/run", json={"app": "klingai/video-v3", "input": {
            "prompt": "a lighthouse", "duration": 3}}).json()["data"]
        time.sleep(0.3)
        url = client.get(f"/tasks/{task['id']}").json()["data"]["output"]["video"]
        size = len(client.get(url).content)
        deadline = time.monotonic() + 2  # the server's thread notes the time just after its last write
        while task["id"] not in fake.downloaded and time.monotonic() < deadline:
            time.sleep(0.01)
        fake.download_rate = size / 0.4  # bytes a second: this file takes 0.4 s
        began = time.monotonic()
        paced = client.get(url).content
        took = time.monotonic() - began
        deadline = time.monotonic() + 2
        while fake.downloaded[task["id"]] < began and time.monotonic() < deadline:
            time.sleep(0.01)
        last_byte = fake.downloaded[task["id"]]
    assert len(paced) == size and 0.35 <= took < 2.0, took
    assert began + 0.35 <= last_byte <= began + took + 0.1, (began, last_byte, took)
