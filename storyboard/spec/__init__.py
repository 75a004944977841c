"""The storyboard file, format version 1: what a file may say, how it is read (YAML with
positions, so each error can say where it is), the messages its mistakes get, and its
resolved form.

Pure: reads the storyboard file (and checks the image files it names), nothing else.
Imports only the leaf modules ``storyboard.errors``, ``storyboard.facts`` and
``storyboard.request``.

- ``models``: pydantic models of the file and its JSON Schema
- ``yamlpos``: reading the file, YAML composed with positions (``SourceMap``)
- ``yamlwords``: PyYAML's syntax errors in plain words
- ``messages``: validation errors as located problems, did-you-mean
- ``images``: files kept inside the folder, image files checked
- ``resolved``: ``Spec``, ``ResolvedShot``
- ``resolve``: ``load_spec``, one function per question of resolution
"""

from __future__ import annotations

from storyboard.facts import MAX_IMAGE_FILE_BYTES, MIN_IMAGE_SIDE, MODEL_MIN_IMAGE_SIDE, TRANSITIONS
from storyboard.spec.images import ImageFile, check_image_file, inside
from storyboard.spec.messages import did_you_mean, near
from storyboard.spec.models import (
    ASPECT_RATIOS,
    FORMAT_VERSION,
    ID_PATTERN,
    MODES,
    OVERRIDABLE,
    AspectRatio,
    AudioTrack,
    Defaults,
    Mode,
    Shot,
    StoryboardModel,
    Transition,
    json_schema,
)
from storyboard.spec.resolve import check_overrides, load_spec
from storyboard.spec.resolved import ImageSource, ResolvedShot, Spec
from storyboard.spec.yamlpos import (
    MAX_FILE_BYTES,
    MAX_NESTING,
    Position,
    SourceMap,
    parse_yaml,
    read_text,
)

__all__ = [
    "ASPECT_RATIOS",
    "FORMAT_VERSION",
    "ID_PATTERN",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_FILE_BYTES",
    "MAX_NESTING",
    "MIN_IMAGE_SIDE",
    "MODEL_MIN_IMAGE_SIDE",
    "MODES",
    "OVERRIDABLE",
    "TRANSITIONS",
    "AspectRatio",
    "AudioTrack",
    "Defaults",
    "ImageFile",
    "ImageSource",
    "Mode",
    "Position",
    "ResolvedShot",
    "Shot",
    "SourceMap",
    "Spec",
    "StoryboardModel",
    "Transition",
    "check_image_file",
    "check_overrides",
    "did_you_mean",
    "inside",
    "json_schema",
    "load_spec",
    "near",
    "parse_yaml",
    "read_text",
]
