"""Frame sizes and preparing still images (Pillow)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageOps

from storyboard.errors import MediaError
from storyboard.facts import (
    ASPECT_FRAME_SIZES,
    MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIDE,
    MODEL_MIN_IMAGE_SIDE,
)

# The default minimum short side of start/end images (facts.MODEL_MIN_IMAGE_SIDE). It is
# an app's rule, so callers that know the app pass their own ``min_short_side``.
MIN_SHORT_SIDE = MODEL_MIN_IMAGE_SIDE
_ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"}


def _ratio(aspect_ratio: str) -> Fraction:
    if aspect_ratio not in ASPECT_FRAME_SIZES:
        allowed = ", ".join(ASPECT_FRAME_SIZES)
        raise MediaError(f"unknown aspect ratio {aspect_ratio!r}; allowed: {allowed}")
    w, h = aspect_ratio.split(":")
    return Fraction(int(w), int(h))


def _even(value: float | Fraction) -> int:
    return max(2, 2 * round(value / 2))


def frame_size(aspect_ratio: str, short_side: int = 720) -> tuple[int, int]:
    """(width, height) in even pixels for ``aspect_ratio`` with the given short side."""
    ratio = _ratio(aspect_ratio)
    if short_side == 720:
        return ASPECT_FRAME_SIZES[aspect_ratio]
    if ratio >= 1:
        height = _even(short_side)
        return _even(height * ratio), height
    width = _even(short_side)
    return width, _even(width / ratio)


@dataclass
class PreparedImage:
    """An image made ready for a model: its path, size and what was done to it."""

    path: Path
    width: int
    height: int
    notes: list[str] = field(default_factory=list)


def load_image(src: Path) -> Image.Image:
    """Open and fully decode ``src`` as RGB, trusting its bytes, not its extension.
    Raises MediaError naming the file when it is not an image or is a decompression bomb."""
    src = Path(src)
    if not src.is_file():
        raise MediaError(f"image not found: {src}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(src) as probe_img:
                fmt = probe_img.format
                if fmt not in _ACCEPTED_FORMATS:
                    raise MediaError(f"{src}: unsupported image format {fmt}; use PNG or JPEG")
                if probe_img.width * probe_img.height > MAX_IMAGE_PIXELS:
                    raise MediaError(
                        f"{src}: image too large ({probe_img.width}x{probe_img.height}); "
                        f"at most {MAX_IMAGE_PIXELS} pixels"
                    )
                probe_img.verify()
            with Image.open(src) as opened:
                opened.load()
                img: Image.Image = ImageOps.exif_transpose(opened)
                if img.mode in ("RGBA", "LA", "P", "PA"):
                    img = img.convert("RGBA")
                    background = Image.new("RGBA", img.size, (0, 0, 0, 255))
                    img = Image.alpha_composite(background, img)
                return img.convert("RGB")
    except MediaError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise MediaError(f"{src}: refused, possible decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{src}: not a readable image ({exc})") from exc


def crop_to_aspect(img: Image.Image, aspect_ratio: str) -> tuple[Image.Image, str | None]:
    """Centre-crop ``img`` to ``aspect_ratio``. Returns the image and a note (None when
    nothing was cropped)."""
    ratio = _ratio(aspect_ratio)
    w, h = img.size
    if abs(Fraction(w, h) - ratio) <= Fraction(1, 100) * ratio:
        return img, None
    if Fraction(w, h) > ratio:
        new_w, new_h = max(1, round(h * ratio)), h
    else:
        new_w, new_h = w, max(1, round(w / ratio))
    left, top = (w - new_w) // 2, (h - new_h) // 2
    cropped = img.crop((left, top, left + new_w, top + new_h))
    return cropped, f"cropped {w}x{h} to {new_w}x{new_h} (centre) for {aspect_ratio}"


def fit_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop ``img`` to exactly ``size`` (cover)."""
    return ImageOps.fit(img, size, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def _encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def prepare_image(
    src: Path,
    aspect_ratio: str,
    dest: Path,
    *,
    min_short_side: int = MIN_SHORT_SIDE,
    max_bytes: int = 10 * 1024 * 1024,
    trusted: bool = False,
) -> PreparedImage:
    """Make ``src`` fit a model's rules: a real image, centre-cropped to ``aspect_ratio``,
    at least ``min_short_side`` px on its short side, at most ``max_bytes``.

    Writes PNG to ``dest`` (or a high-quality JPEG beside it, ``dest`` with ``.jpg``, when
    the PNG would be too big). Same input, same bytes. ``trusted``: ``src`` is a PNG the
    render wrote itself (a frame it decoded); when its header says it already fits, its
    bytes are kept without decoding it again.
    """
    src, dest = Path(src), Path(dest)
    if trusted:
        fits = _fitting_png(src, aspect_ratio, min_short_side, max_bytes)
        if fits is not None:
            return _write(dest, fits[0], fits[1], fits[2])
    img = load_image(src)
    notes: list[str] = []
    if min(img.size) < MIN_IMAGE_SIDE:
        raise MediaError(
            f"{src}: image too small ({img.width}x{img.height}); minimum short side is "
            f"{min_short_side} px (smaller ones down to {MIN_IMAGE_SIDE} px are upscaled)"
        )
    img, note = crop_to_aspect(img, aspect_ratio)
    if note:
        notes.append(note)
    short = min(img.size)
    if short < min_short_side:
        scale = min_short_side / short
        size = (max(min_short_side, round(img.width * scale)), max(min_short_side, round(img.height * scale)))
        notes.append(
            f"upscaled {img.width}x{img.height} to {size[0]}x{size[1]} "
            f"(short side below {min_short_side} px; expect softness)"
        )
        img = img.resize(size, Image.Resampling.LANCZOS)
    raw = src.read_bytes()
    plain_rgb_png = _plain_rgb_png(raw)
    # an image that already fits every rule (e.g. a frame of a model's clip) is not re-encoded
    data = raw if not notes and plain_rgb_png and len(raw) <= max_bytes else _encode_png(img)
    out = dest
    if len(data) > max_bytes:
        for quality in (95, 90, 85, 75, 60):
            data = _encode_jpeg(img, quality)
            if len(data) <= max_bytes:
                break
        else:
            raise MediaError(f"{src}: cannot fit the image under {max_bytes} bytes")
        out = dest.with_suffix(".jpg")
        notes.append(f"saved as JPEG (quality {quality}): PNG over {max_bytes} bytes")
    return _write(out, data, img.size, notes)


def _write(out: Path, data: bytes, size: tuple[int, int], notes: list[str]) -> PreparedImage:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return PreparedImage(path=out, width=size[0], height=size[1], notes=notes)


def _plain_rgb_png(raw: bytes) -> bool:
    """8-bit RGB PNG without EXIF (nothing to transpose or flatten)."""
    return raw.startswith(b"\x89PNG\r\n\x1a\n") and raw[24:26] == b"\x08\x02" and b"eXIf" not in raw[:4096]


def _fitting_png(src: Path, aspect_ratio: str, min_short_side: int,
                 max_bytes: int) -> tuple[bytes, tuple[int, int], list[str]] | None:
    """(bytes, size, no notes) of a plain RGB PNG whose header shows it already fits the
    rules (aspect, short side, bytes); None when it must be decoded and prepared."""
    try:
        raw = src.read_bytes()
    except OSError:
        return None
    if not _plain_rgb_png(raw) or len(raw) > max_bytes:
        return None
    w, h = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    ratio = _ratio(aspect_ratio)
    if not w or not h or min(w, h) < min_short_side or abs(Fraction(w, h) - ratio) > Fraction(1, 100) * ratio:
        return None
    return raw, (w, h), []
