"""The file format, version 1: pydantic models of a storyboard file and its JSON Schema.

Pure data: no file access, no positions (those live in ``yamlpos``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from storyboard.facts import (
    ASPECT_FRAME_SIZES,
    DEFAULT_HANDOFF_WINDOW,
    DEFAULT_TRANSITION_SECONDS,
    TAKES_MAX,
)

FORMAT_VERSION = 1
# The aspect ratios storyboard can frame: facts.ASPECT_FRAME_SIZES is their one home.
# Which of them an app takes is the app's rule (its profile and schema, storyboard.apps).
ASPECT_RATIOS: tuple[str, ...] = tuple(ASPECT_FRAME_SIZES)
MODES = ("std", "pro")
ID_PATTERN = re.compile(r"^[a-z0-9_-]+$")
OVERRIDABLE = ("app", "mode", "resolution", "aspect_ratio", "duration", "sound", "multi_shot", "negative_prompt")
DEFAULT_APP = "klingai/video-v3"
DEFAULT_IMAGE_APP = "klingai/image-v3"


def _aspect_ratio(value: Any) -> Any:
    """An aspect ratio storyboard can frame. YAML 1.1 reads ``16:9`` unquoted as the
    base-60 number 969: that is said in words, with the text to write instead."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 60:
        text = f"{value // 60}:{value % 60}"
        raise PydanticCustomError("aspect_unquoted", "YAML reads {text} unquoted as the number {number}",
                                  {"text": text, "number": value})
    if isinstance(value, str) and value not in ASPECT_FRAME_SIZES:
        raise PydanticCustomError("aspect_ratio", "not an aspect ratio storyboard frames",
                                  {"expected": ", ".join(ASPECT_RATIOS)})
    return value


AspectRatio = Annotated[str, BeforeValidator(_aspect_ratio),
                        WithJsonSchema({"enum": list(ASPECT_RATIOS), "type": "string"})]
Mode = Literal["std", "pro"]
# Whole seconds; the range is the app's, checked against its schema.
Duration = Annotated[int, Field(strict=True, ge=1, le=3600)]
Handoff = Literal["last", "best"]
# Seconds at the end of a clip searched for the sharpest handoff frame.
HANDOFF_WINDOW_MAX = 5.0
HandoffWindow = Annotated[float, Field(gt=0, le=HANDOFF_WINDOW_MAX)]
Takes = Annotated[int, Field(strict=True, ge=1, le=TAKES_MAX)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Model):
    """Inputs for every shot, in storyboard's words; each app maps them to its own inputs.
    Every key may be set on a shot. What an app allows comes from its schema."""

    app: str = Field(DEFAULT_APP, description="inference.sh app: namespace/name, optionally @VERSION")
    mode: Mode | None = Field(None, description="std or pro; on an app without mode: std = 720p, pro = 1080p")
    resolution: str | None = Field(None, description="e.g. 720p or 1080p: the values the app allows "
                                   "(storyboard apps show APP)")
    aspect_ratio: AspectRatio = Field("16:9", description="width:height, quoted (\"16:9\"); an app without an "
                                      "aspect ratio input is not sent it")
    duration: Duration = Field(5, description="integer seconds, in the app's range; billed per second")
    sound: bool = Field(True, description="synchronized audio")
    multi_shot: bool | None = Field(None, description="let the model cut inside one clip (storyboard sends false)")
    negative_prompt: str | None = Field(None, description="what to avoid (only apps that have it)")
    inputs: dict[str, Any] = Field(default_factory=dict, description="extra app-specific inputs, by the app's names")
    handoff: Handoff = Field(
        "last", description="frame a chained shot starts on: last (exact) or best (sharpest near the end)"
    )
    handoff_window: HandoffWindow = Field(DEFAULT_HANDOFF_WINDOW, description="seconds at the clip's end searched by handoff: best")
    takes: Takes = Field(1, description=f"clips generated per shot (1..{TAKES_MAX}); pick one with storyboard pick")
    pick: Literal["auto"] | None = Field(None, description="auto: the `judge:` app picks among the takes")


class Transition(_Model):
    """How the film moves into this shot from the one before it in the cut."""

    type: str = Field(
        "dissolve",
        description="cut, or an ffmpeg xfade name: dissolve, fade, fadeblack, wipeleft, slideleft…",
    )
    duration: float = Field(DEFAULT_TRANSITION_SECONDS, gt=0, description="seconds; shorter than both neighbouring clips")


class Overlay(_Model):
    """A text drawn over a shot for a time range (seconds from the shot's start)."""

    text: str = Field(description="Jinja2 template of the text, rendered with the shot's context")
    start: float = Field(0.0, ge=0, description="seconds after the shot starts")
    end: float | None = Field(None, gt=0, description="seconds after the shot starts (default: its end)")
    position: Literal["lower-third", "centre", "corner"] = Field("lower-third", description="where the text sits")
    size: float = Field(0.07, ge=0.02, le=0.3, description="text height as a fraction of the frame's height")
    font: str | None = Field(None, description="a .ttf/.otf file (default: the font that ships with Pillow)")


class Keyframe(_Model):
    """An image the clip passes through at a given second (bfl/flux-3-video takes keyframes)."""

    at: float = Field(ge=0, description="seconds from the shot's start, 0..its duration")
    image: str = Field(description='a still ("@ID") or an image file')


class Shot(_Model):
    """One shot: a prompt (inline Jinja2) or a template file, plus model inputs."""

    id: str = Field(description="unique id, [a-z0-9_-]+")
    prompt: str | None = Field(None, description="Jinja2 template of the prompt")
    template: str | None = Field(
        None, description="template file (in a `templates:` folder or the library)"
    )
    image: str | None = Field(
        None,
        description='start frame: "@ID", "@ID:last", "@ID:first", "@ID:<seconds>" or an image '
        "file; absent = previous shot's last frame; null = none",
    )
    end_image: str | None = Field(
        None, description="end frame (needs a start image): a frame reference or an image file"
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables for this shot")
    transition: Transition | str | None = Field(
        None, description="transition into this shot (default: cut)"
    )
    seam: Literal["trim", "keep"] | None = Field(
        None, description="drop the repeated boundary frame of a chained cut"
    )
    app: str | None = None
    mode: Mode | None = None
    resolution: str | None = None
    aspect_ratio: AspectRatio | None = None
    duration: Duration | None = None
    sound: bool | None = None
    multi_shot: bool | None = None
    negative_prompt: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict, description="extra app-specific inputs, by the app's names")
    say: str | None = Field(None, description="narration over this shot: a Jinja2 template, spoken by `voice:`")
    fit: Literal["error", "extend", "overlap"] | None = Field(
        None, description="a line longer than its shot: error (default), extend (hold the shot's last frame) "
        "or overlap (run into the next shot)"
    )
    overlay: Overlay | None = Field(None, description="a text drawn over this shot for a time range")
    kind: Literal["video", "title"] = Field(
        "video", description="title: a text card (its prompt is the text) made locally, free, never sent to a model"
    )
    handoff: Handoff | None = Field(None, description="last or best (see defaults.handoff)")
    handoff_window: HandoffWindow | None = None
    takes: Takes | None = Field(None, description=f"clips generated of this shot (1..{TAKES_MAX})")
    pick: Literal["auto"] | None = Field(None, description="auto: the `judge:` app picks among the takes")
    characters: list[str] = Field(
        default_factory=list, description="characters in this shot (names from the top-level `characters:`)"
    )
    keyframes: list[Keyframe] = Field(
        default_factory=list, description="images the clip passes through, at seconds (apps with keyframes only)"
    )


class Voice(_Model):
    """Who speaks the `say:` lines: a TTS app and one of its voices; the mix around them."""

    app: str = Field("falai/kokoro-tts", description="TTS app (offline: espeak-ng or a quiet placeholder)")
    voice: str | None = Field(None, description="the app's voice name (default: the app's own)")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="extra TTS app inputs, by the app's names (kokoro: speed, language; "
        "elevenlabs/tts: model, stability…)")
    volume: float = Field(1.0, ge=0, le=4, description="narration level before the loudness pass")
    duck_music: float = Field(-12.0, ge=-60, le=0, description="dB applied to `audio:` tracks while a line plays")
    duck_shots: float = Field(-9.0, ge=-60, le=0, description="dB applied to the shots' own sound while a line plays")


class Still(_Model):
    """A generated image (a node of the graph): shots start or end on it with ``image: "@ID"``."""

    id: str = Field(description="unique id among shots and stills, [a-z0-9_-]+")
    prompt: str | None = Field(None, description="Jinja2 template of the image prompt")
    template: str | None = Field(None, description="template file (in a `templates:` folder or the library)")
    app: str = Field(DEFAULT_IMAGE_APP, description="inference.sh image app: namespace/name, optionally @VERSION")
    aspect_ratio: AspectRatio | None = Field(None, description="default: the file's defaults.aspect_ratio")
    resolution: str | None = Field(None, description="e.g. 1k or 2k: the values the image app allows")
    negative_prompt: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables for this still")
    inputs: dict[str, Any] = Field(default_factory=dict, description="extra app-specific inputs, by the app's names")


class Character(_Model):
    """A character: a description for prompts and reference images for apps that take them."""

    description: str = Field(description="who this is; a Jinja2 variable ({{ characters.NAME }}) in prompts")
    references: list[str] = Field(
        default_factory=list, description='reference images: files, or "@STILL_ID" (a generated still)'
    )


class AudioTrack(_Model):
    """A music or ambience track mixed over the shots' own sound: a file, or music made by
    an app (``app:`` with ``prompt:`` and ``lyrics:`` or ``instrumental: true``)."""

    file: str | None = Field(None, description="audio file, relative to the storyboard (or `app:`)")
    app: str | None = Field(None, description="music app that makes the track instead of a file: "
                            "minimax/music-3-0 (offline: a soft placeholder chord)")
    prompt: str | None = Field(None, description="with `app:`: Jinja2 template of the style and mood")
    lyrics: str | None = Field(None, description="with `app:`: Jinja2 template of the lyrics ([Verse], [Chorus]…)")
    instrumental: bool = Field(False, description="with `app:`: music without vocals (instead of lyrics)")
    fade_out: float | None = Field(None, ge=0, le=30, description="seconds of fade at the film's end "
                                   "(default: 2 for generated music, 0 for a file)")
    volume: float = Field(1.0, ge=0, le=4)
    duck: bool = Field(False, description="lower this track while the shots' own sound plays")
    loop: bool = Field(True, description="loop the track to the film's length (else it just ends)")


class Drift(_Model):
    """When a chained seam counts as drifted: the child's first frame against the handoff frame."""

    psnr: float = Field(20.0, ge=0, le=100, description="drifted below this PSNR of the luma (dB)")
    histogram: float = Field(
        0.35, ge=0, le=1, description="drifted above this colour-histogram distance (0 same .. 1 disjoint)"
    )


class StoryboardModel(_Model):
    """A storyboard file, format version 1."""

    storyboard: Literal[1] = Field(description="format version (required): 1")
    title: str | None = None
    backend: str = Field("animatic", description="animatic (offline) | inference | a plugin's name")
    judge: str | None = Field(None, description="the vision app that picks takes of `pick: auto` shots")
    defaults: Defaults = Field(default_factory=Defaults)  # type: ignore[arg-type]
    vars: dict[str, Any] = Field(default_factory=dict)
    templates: list[str] = Field(default_factory=list, description="extra template folders")
    chain: bool = Field(
        True, description="shots without `image` start on the previous shot's last frame"
    )
    seam: Literal["trim", "keep"] = "trim"
    shots: list[Shot] = Field(min_length=1)
    stills: list[Still] = Field(
        default_factory=list, description='generated images; a shot starts or ends on one with image: "@ID"'
    )
    characters: dict[str, Character] = Field(
        default_factory=dict, description="name → description and reference images; shots list them"
    )
    cut: list[str] | None = Field(
        None, description="film order; default: every shot in file order"
    )
    audio: list[AudioTrack] = Field(default_factory=list)
    drift: Drift = Field(default_factory=Drift)  # type: ignore[arg-type]
    loudness: float = Field(-14.0, ge=-70, le=-5, description="integrated LUFS of the final mix")
    output: str | None = Field(None, description="default: out/<file stem>.mp4 beside the file")
    voice: Voice | None = Field(None, description="the narration voice for `say:` lines")
    captions: Literal["file", "burn"] = Field(
        "file", description="narration captions: file = .srt/.vtt beside the film; burn = also drawn into it"
    )


def json_schema() -> dict[str, Any]:
    """JSON Schema of the file format (for editors and yaml-language-server)."""
    schema = StoryboardModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "storyboard file (format 1)"
    return schema
