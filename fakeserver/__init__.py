"""A fake inference.sh for tests and benchmarks: a real HTTP server on loopback.

:mod:`fakeserver.clips` makes the media, :mod:`fakeserver.rules` knows the apps and
judges their inputs by schema, :mod:`fakeserver.apprules` by each app's own profile (so an
app added as data is played by its own rules), :mod:`fakeserver.meta` writes the pricing
metadata (``output_meta``) every output carries; the HTTP side is :mod:`fakeserver.server`
(``FakeInference``: state, tasks), :mod:`fakeserver.knobs` (its fault knobs),
:mod:`fakeserver.routes` (the endpoints, the NDJSON stream) and :mod:`fakeserver.records`
(what it keeps).
``python -m fakeserver`` runs one in a process of its own.
"""

from __future__ import annotations

from fakeserver.clips import ASPECT_RATIOS, clip_size, gradient_image, make_clip, make_png, make_wav
from fakeserver.records import STATUS_NAMES, Call, FakeTask
from fakeserver.rules import AppVersion, Catalog, drift_schema, input_problem
from fakeserver.server import FakeInference

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
