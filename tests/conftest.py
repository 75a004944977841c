"""Shared fixtures. Tests use real parts at small sizes: real ffmpeg on tiny clips,
a real HTTP server on 127.0.0.1, real files in tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _small_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Animatic clips at 90 px / 8 fps keep every render test fast.
    monkeypatch.setenv("STORYBOARD_ANIMATIC_SIZE", "90")
    monkeypatch.setenv("STORYBOARD_ANIMATIC_FPS", "8")
    monkeypatch.delenv("STORYBOARD_CACHE", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Write a real PNG/JPEG image into tmp_path."""

    def make(
        name: str = "start.png",
        size: tuple[int, int] = (640, 360),
        color: tuple[int, int, int] = (200, 120, 40),
    ) -> Path:
        from PIL import Image, ImageDraw

        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        im = Image.new("RGB", size, color)
        draw = ImageDraw.Draw(im)
        w, h = size
        draw.rectangle([w // 4, h // 4, w // 2, h // 2], fill=(30, 60, 200))
        draw.ellipse([w // 2, h // 3, w * 3 // 4, h * 2 // 3], fill=(240, 240, 240))
        im.save(path, format="JPEG" if name.endswith((".jpg", ".jpeg")) else "PNG")
        return path

    return make


@pytest.fixture
def write_board(tmp_path: Path) -> Callable[..., Path]:
    """Write a storyboard (dedented YAML) into tmp_path and return its path."""

    def write(text: str, name: str = "film.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
