"""Files a storyboard names: kept inside its folder, and image files checked the way the
render will check them (the limits come from ``storyboard.facts``).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from storyboard.facts import (
    IMAGE_SUFFIXES,
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIDE,
)
from storyboard.spec.messages import near

__all__ = ["ImageChecks", "ImageFile", "check_image_file", "inside"]

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_MAX_LOOKED_AT = 2000  # files looked at for a did-you-mean (a folder may be huge)


@dataclass(frozen=True)
class ImageFile:
    """An image file inside the storyboard's folder, already checked."""

    path: Path
    rel: str
    sha256: str
    width: int
    height: int

    def __str__(self) -> str:
        return self.rel


# Image files already checked during one resolution, by the value written (each read once).
ImageChecks = dict[str, tuple[ImageFile | None, str | None]]


def inside(folder: Path, rel: str) -> tuple[Path | None, str | None]:
    """Resolve a path relative to folder; (path, None) or (None, why not)."""
    if "://" in rel or rel.startswith("file:"):
        return None, f"'{rel}' is a URL; name a file inside the storyboard's folder"
    p = Path(rel)
    if p.is_absolute() or rel.startswith("~"):
        return None, f"'{rel}' is an absolute path; name a file relative to the storyboard's folder"
    if ".." in p.parts:
        return None, f"'{rel}' leaves the storyboard's folder ('..'); keep assets inside it"
    base = folder.resolve()
    full = (folder / p).resolve()
    if full != base and base not in full.parents:
        return None, f"'{rel}' points outside the storyboard's folder (a symlink?); keep assets inside it"
    return folder / p, None


def _image_names(folder: Path, depth: int = 2) -> list[str]:
    """Image files under ``folder`` (a few levels, no hidden folders), as relative names."""
    names: list[str] = []
    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if len(here.parts) - base_depth < depth else []
        for f in sorted(files):
            if f.lower().endswith(IMAGE_SUFFIXES):
                names.append((here / f).relative_to(folder).as_posix())
                if len(names) >= _MAX_LOOKED_AT:
                    return names
    return names


def near_file(folder: Path, rel: str) -> str | None:
    """The image file in the storyboard's folder whose name is nearest to ``rel``."""
    try:
        return near(Path(rel).as_posix(), _image_names(folder))
    except OSError:
        return None


def check_image_file(folder: Path, rel: str) -> tuple[ImageFile | None, str | None]:
    """Check an image file named in the storyboard: inside the folder, a real PNG/JPEG."""
    path, why = inside(folder, rel)
    if path is None:
        return None, why
    if not path.exists():
        guess = near_file(folder, rel)
        hint = f"; did you mean '{guess}'?" if guess else ""
        return None, f"image file '{rel}' does not exist{hint}"
    if not path.is_file():
        return None, f"'{rel}' is not a file"
    size = path.stat().st_size
    if size > MAX_IMAGE_FILE_BYTES:
        return None, (f"'{rel}' is {size / 1e6:.0f} MB; images may be at most "
                      f"{MAX_IMAGE_FILE_BYTES // (1024 * 1024)} MB; each app's own cap is met by re-encoding")
    data = path.read_bytes()
    if not (data.startswith(_PNG) or data.startswith(_JPEG)):
        return None, f"'{rel}' is not a PNG or JPEG image (its content says otherwise)"
    from PIL import Image  # deferred: only needed when a storyboard names images

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > MAX_IMAGE_PIXELS:
                    return None, (f"'{rel}' declares {width}×{height} pixels; images may have at most "
                                  f"{MAX_IMAGE_PIXELS:,} pixels ({MAX_IMAGE_PIXELS / 1e6:.1f} megapixels)")
                im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, f"'{rel}' declares an enormous size (a decompression bomb?); refusing to open it"
    except Exception as e:  # Pillow raises many kinds for broken files
        return None, f"'{rel}' does not decode as an image ({type(e).__name__}: {e})"
    if min(width, height) < MIN_IMAGE_SIDE:
        return None, (
            f"'{rel}' is {width}×{height} px; images must be at least {MIN_IMAGE_SIDE} px on the short side "
            "(up to an app's own minimum they are upscaled)"
        )
    return ImageFile(path, rel, hashlib.sha256(data).hexdigest(), width, height), None
