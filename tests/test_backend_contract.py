"""One suite every backend must pass: animatic (offline) and inference (fake server).

A plugin backend can join by adding a parameter to ``backend``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from fakeserver import ASPECT_RATIOS, FakeInference, gradient_image
from storyboard.backends.animatic import AnimaticBackend
from storyboard.backends.base import Backend, MemoryContext
from storyboard.backends.inference import InferenceBackend
from storyboard.media import probe
from storyboard.request import ShotRequest


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeInference]:
    with FakeInference(files_host="127.0.0.2", latency=0.2) as server:
        yield server


@pytest.fixture(params=["animatic", "inference"])
async def backend(request: pytest.FixtureRequest, fake_server: FakeInference) -> AsyncIterator[Any]:
    made: Any
    if request.param == "animatic":
        made = AnimaticBackend(short_side=90, fps=8)
    else:
        made = InferenceBackend(
            api_key=fake_server.api_key,
            base_url=fake_server.url,
            backoff_base=0.02,
            poll_interval=0.05,
        )
    yield made
    await made.aclose()


def first_frame(clip: Path) -> np.ndarray[Any, Any]:
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.float64)
    raise AssertionError(f"{clip}: no video frame")


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def shot(tmp_path: Path, shot_id: str, **fields: Any) -> tuple[ShotRequest, MemoryContext]:
    request = ShotRequest(
        shot_id=shot_id, prompt=f"{shot_id}: waves roll onto a pebble beach", **fields
    )
    return request, MemoryContext(shot_id=shot_id, work_dir=tmp_path / shot_id)


def test_is_a_backend(backend: Any) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend.name, str) and isinstance(backend.paid, bool)


def test_price_is_decimal_or_none(backend: Any) -> None:
    request = ShotRequest(shot_id="p", prompt="x", duration=5)
    price = backend.price(request)
    assert price is None or (isinstance(price, Decimal) and price >= 0)


@pytest.mark.parametrize(
    ("aspect_ratio", "duration", "sound"),
    [("16:9", 3, True), ("9:16", 4, False), ("1:1", 3, False)],
)
async def test_clip_has_requested_duration_and_shape(
    backend: Any, tmp_path: Path, aspect_ratio: str, duration: int, sound: bool
) -> None:
    request, ctx = shot(
        tmp_path, "shape", aspect_ratio=aspect_ratio, duration=duration, sound=sound
    )
    clip = await backend.generate(request, ctx)
    assert clip.is_file() and ctx.work_dir in clip.parents
    info = probe(clip)
    assert abs(info.duration - duration) <= 0.15, info
    w, h = ASPECT_RATIOS[aspect_ratio]
    assert (info.width > info.height) == (w > h) and (info.width < info.height) == (w < h)
    assert abs(info.width / info.height - w / h) <= 0.03 * (w / h)
    assert info.has_audio == sound


@pytest.mark.parametrize(("aspect_ratio", "size"), [("16:9", (640, 360)), ("9:16", (360, 640))])
async def test_first_frame_is_the_start_image(
    backend: Any, tmp_path: Path, aspect_ratio: str, size: tuple[int, int]
) -> None:
    image = tmp_path / "start.png"
    gradient_image(image, *size, seed=2)
    request, ctx = shot(tmp_path, "still", aspect_ratio=aspect_ratio, duration=3, image=image)
    clip = await backend.generate(request, ctx)
    frame = first_frame(clip)
    height, width = frame.shape[:2]
    with Image.open(image) as im:
        expected = np.asarray(
            im.convert("RGB").resize((width, height), Image.Resampling.BICUBIC), dtype=np.float64
        )
    assert psnr(frame, expected) >= 30.0
