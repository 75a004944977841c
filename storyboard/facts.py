"""Facts that more than one part checks, each defined once.

Validation (``spec``) and the render (``media``, the backends) import these, so what
``storyboard validate`` accepts is exactly what the render accepts. A leaf: imports
nothing from storyboard. What one *app* accepts (its enums, ranges, file rules) is not
here: that is the app's profile (``storyboard.apps``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

__all__ = [
    "ASPECT_FRAME_SIZES",
    "DEFAULT_HANDOFF_WINDOW",
    "DEFAULT_TRANSITION_SECONDS",
    "MAX_IMAGE_FILE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MIN_IMAGE_SIDE",
    "MODEL_MIN_IMAGE_SIDE",
    "TAKES_MAX",
    "TRANSITIONS",
    "is_cache_url",
    "usd",
]

# The most takes of one shot (`takes: N`): each is a paid generation.
TAKES_MAX = 8

# ffmpeg's xfade transitions (ffmpeg 6-7), plus "cut" (none).
TRANSITIONS: frozenset[str] = frozenset(
    ["cut", "fade", "fadeblack", "fadewhite", "fadegrays", "fadefast", "fadeslow", "dissolve", "pixelize", "distance", "radial", "hblur", "wipeleft", "wiperight", "wipeup", "wipedown", "wipetl", "wipetr", "wipebl", "wipebr", "slideleft", "slideright", "slideup", "slidedown", "smoothleft", "smoothright", "smoothup", "smoothdown", "circlecrop", "rectcrop", "circleclose", "circleopen", "horzclose", "horzopen", "vertclose", "vertopen", "diagbl", "diagbr", "diagtl", "diagtr", "hlslice", "hrslice", "vuslice", "vdslice", "squeezeh", "squeezev", "zoomin", "hlwind", "hrwind", "vuwind", "vdwind", "coverleft", "coverright", "coverup", "coverdown", "revealleft", "revealright", "revealup", "revealdown"]
)

# The length of a transition written without one (`transition: dissolve`), in seconds.
DEFAULT_TRANSITION_SECONDS = 0.5

# The seconds at a clip's end searched by `handoff: best` when no window is written.
DEFAULT_HANDOFF_WINDOW = 0.5

# Aspect ratios storyboard can frame, with their 720p-class frame size (even pixels).
# Which of them an app accepts is the app's own rule.
ASPECT_FRAME_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "1:1": (720, 720),
    "4:3": (960, 720),
    "3:4": (720, 960),
    "3:2": (1080, 720),
    "2:3": (720, 1080),
    "21:9": (1680, 720),
}

# Image files named by a storyboard (start/end frames, references).
MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024  # larger files are refused; apps' own caps are met by re-encoding
MAX_IMAGE_PIXELS = 8192 * 8192  # decompression-bomb guard, for validation and preparation alike
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # image files read and kept (a still is stored as one)
AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus")  # voiced lines, music
MIN_IMAGE_SIDE = 64  # below this an image is refused; between this and an app's minimum it is upscaled
# The short side video apps require of a start/end image (Kling, Seedance: their profiles'
# `min_side`; a test keeps them equal); smaller images down to MIN_IMAGE_SIDE are upscaled.
MODEL_MIN_IMAGE_SIDE = 300


def is_cache_url(location: str | Path) -> bool:
    """Whether a cache location is a URL (``s3://…``, ``memory://…``) rather than a folder."""
    return "://" in str(location)


def usd(amount: Decimal | None) -> str:
    """Money as the user reads it: ``$0.84``, ``$0``, or ``unknown`` (never a guess)."""
    if amount is None:
        return "unknown"
    if not amount:
        return "$0"
    return f"${amount.quantize(Decimal('0.001')).normalize():f}"
