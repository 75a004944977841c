"""A fake inference.sh for tests and benchmarks: a real HTTP server on loopback.

:mod:`fakeserver.clips` makes the media, :mod:`fakeserver.rules` knows the apps and
judges their inputs, :mod:`fakeserver.server` is the HTTP side (routes, faults, records).
``python -m fakeserver`` runs one in a process of its own.
"""

from __future__ import annotations

from fakeserver.clips import ASPECT_RATIOS, clip_size, gradient_image, make_clip, make_png, make_wav
from fakeserver.rules import AppVersion, Catalog, drift_schema, input_problem
from fakeserver.server import STATUS_NAMES, Call, FakeInference, FakeTask

__all__ = [
    "ASPECT_RATIOS",
    "STATUS_NAMES",
    "AppVersion",
    "Call",
    "Catalog",
    "FakeInference",
    "FakeTask",
    "clip_size",
    "drift_schema",
    "gradient_image",
    "input_problem",
    "make_clip",
    "make_png",
    "make_wav",
]
