"""The storyboard file, format version 1: pydantic models and YAML loading that keeps
every node's line and column, so each error can say where it is.

Pure: reads the storyboard file (and checks the image files it names), nothing else.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storyboard.errors import Problem, SpecError
from storyboard.request import FrameRef, parse_frame_ref

FORMAT_VERSION = 1
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024  # Kling takes ≤ 10 MB; bigger files are recompressed, huge ones refused
MAX_NESTING = 64  # YAML nesting depth (deeper input crashes recursive parsers)
MAX_PROMPT_CHARS = 2500
MIN_IMAGE_SIDE = 64  # below this an image is refused outright; below 300 it is upscaled
MODEL_MIN_IMAGE_SIDE = 300
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
MODES = ("std", "pro")
ID_PATTERN = re.compile(r"^[a-z0-9_-]+$")
# ffmpeg's xfade transitions (ffmpeg 6+); "cut" means none.
TRANSITIONS = frozenset(
    ["cut", "fade", "fadeblack", "fadewhite", "fadegrays", "dissolve", "pixelize", "distance", "radial", "hblur", "wipeleft", "wiperight", "wipeup", "wipedown", "wipetl", "wipetr", "wipebl", "wipebr", "slideleft", "slideright", "slideup", "slidedown", "smoothleft", "smoothright", "smoothup", "smoothdown", "circlecrop", "rectcrop", "circleclose", "circleopen", "horzclose", "horzopen", "vertclose", "vertopen", "diagbl", "diagbr", "diagtl", "diagtr", "hlslice", "hrslice", "vuslice", "vdslice", "squeezeh", "squeezev", "zoomin", "hlwind", "hrwind", "vuwind", "vdwind", "coverleft", "coverright", "coverup", "coverdown", "revealleft", "revealright", "revealup", "revealdown"]
)

Path_ = tuple[str | int, ...]

# --------------------------------------------------------------------------- models

AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9"]
Mode = Literal["std", "pro"]
Duration = Annotated[int, Field(strict=True, ge=3, le=15)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Model):
    """Model inputs for every shot (the Kling V3.0 schema). Every key may be set on a shot."""

    app: str = Field("klingai/video-v3", description="inference.sh app reference")
    mode: Mode = Field("pro", description="std or pro (Kling's default: pro)")
    aspect_ratio: AspectRatio = Field("16:9", description="one of " + " ".join(ASPECT_RATIOS))
    duration: Duration = Field(5, description="integer seconds, 3..15, billed per second")
    sound: bool = Field(True, description="synchronized audio")
    negative_prompt: str | None = Field(None, description="what to avoid (≤ 2500 chars)")


class Transition(_Model):
    """How the film moves into this shot from the one before it in the cut."""

    type: str = Field("dissolve", description="cut, or an ffmpeg xfade name: dissolve, fade, fadeblack, wipeleft, slideleft…")
    duration: float = Field(0.5, gt=0, description="seconds; shorter than both neighbouring clips")


class Shot(_Model):
    """One shot: a prompt (inline Jinja2) or a template file, plus model inputs."""

    id: str = Field(description="unique id, [a-z0-9_-]+")
    prompt: str | None = Field(None, description="Jinja2 template of the prompt")
    template: str | None = Field(None, description="template file (in a `templates:` folder or the library)")
    image: str | None = Field(
        None,
        description='start frame: "@ID", "@ID:last", "@ID:first", "@ID:<seconds>" or an image '
        "file; absent = previous shot's last frame; null = none",
    )
    end_image: str | None = Field(None, description="end frame (needs a start image): a frame reference or an image file")
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables for this shot")
    transition: Transition | str | None = Field(None, description="transition into this shot (default: cut)")
    seam: Literal["trim", "keep"] | None = Field(None, description="drop the repeated boundary frame of a chained cut")
    app: str | None = None
    mode: Mode | None = None
    aspect_ratio: AspectRatio | None = None
    duration: Duration | None = None
    sound: bool | None = None
    negative_prompt: str | None = None


class AudioTrack(_Model):
    """A music or ambience track mixed over the shots' own sound."""

    file: str = Field(description="audio file, relative to the storyboard")
    volume: float = Field(1.0, ge=0, le=4)
    duck: bool = Field(False, description="lower this track while the shots' own sound plays")
    loop: bool = Field(True, description="loop the track to the film's length (else it just ends)")


class StoryboardModel(_Model):
    """A storyboard file, format version 1."""

    storyboard: Literal[1] = Field(description="format version (required): 1")
    title: str | None = None
    backend: str = Field("animatic", description="animatic (offline) | inference | a plugin's name")
    defaults: Defaults = Field(default_factory=Defaults)  # type: ignore[arg-type]
    vars: dict[str, Any] = Field(default_factory=dict)
    templates: list[str] = Field(default_factory=list, description="extra template folders")
    chain: bool = Field(True, description="shots without `image` start on the previous shot's last frame")
    seam: Literal["trim", "keep"] = "trim"
    shots: list[Shot] = Field(min_length=1)
    cut: list[str] | None = Field(None, description="film order; default: every shot in file order")
    audio: list[AudioTrack] = Field(default_factory=list)
    loudness: float = Field(-14.0, ge=-70, le=-5, description="integrated LUFS of the final mix")
    output: str | None = Field(None, description="default: out/<file stem>.mp4 beside the file")


# --------------------------------------------------------------------------- resolved form


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


ImageSource = FrameRef | ImageFile


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class SourceMap:
    """Line and column of each value (and each mapping key) by its path in the file."""

    file: str
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def locate(self, path: Path_, *, key: bool = False) -> Position | None:
        p = tuple(path)
        while True:
            if key and p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            if not p:
                return None
            p = p[:-1]

    def problem(self, message: str, path: Path_ = (), *, key: bool = False) -> Problem:
        pos = self.locate(path, key=key)
        return Problem(message, self.file, pos.line if pos else None, pos.column if pos else None)


@dataclass(frozen=True)
class ResolvedShot:
    """A shot with defaults applied and references resolved."""

    index: int
    id: str
    prompt: str | None
    template: str | None
    image: ImageSource | None
    end_image: ImageSource | None
    vars: dict[str, Any]
    transition: str
    transition_duration: float
    seam: str
    app: str
    mode: str
    aspect_ratio: str
    duration: int
    sound: bool
    negative_prompt: str | None

    def parents(self) -> Iterator[tuple[str, FrameRef]]:
        for role, src in (("image", self.image), ("end_image", self.end_image)):
            if isinstance(src, FrameRef):
                yield role, src


@dataclass(frozen=True)
class Spec:
    """A validated storyboard file (before prompts are rendered)."""

    path: Path
    model: StoryboardModel
    shots: tuple[ResolvedShot, ...]
    cut: tuple[str, ...]
    audio: tuple[tuple[Path, AudioTrack], ...]
    template_dirs: tuple[Path, ...]
    output: Path
    source: SourceMap

    @property
    def folder(self) -> Path:
        return self.path.parent

    def shot(self, shot_id: str) -> ResolvedShot:
        return self._by_id[shot_id]

    @property
    def _by_id(self) -> dict[str, ResolvedShot]:
        cached: dict[str, ResolvedShot] | None = self.__dict__.get("_by_id_cache")
        if cached is None:
            cached = {s.id: s for s in self.shots}
            object.__setattr__(self, "_by_id_cache", cached)
        return cached

    def shot_path(self, shot_id: str, *rest: str | int) -> Path_:
        """The path of a shot's field in the file, for error locations."""
        return ("shots", self.shot(shot_id).index, *rest)


# --------------------------------------------------------------------------- YAML with positions


def read_text(path: Path) -> str:
    """Read a storyboard file as UTF-8, refusing huge or undecodable files clearly."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError("no such file", file=name) from None
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}", file=name) from None
    if path.is_dir():
        raise SpecError("is a folder, not a storyboard file", file=name)
    if size > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {size / 1e6:.1f} MB; a storyboard may be at most {MAX_FILE_BYTES // (1024 * 1024)} MB",
            file=name,
        )
    try:
        with path.open("rb") as f:  # bounded: a device or pipe (/dev/zero) has no size to stat
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}", file=name) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; a storyboard may be at most "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB",
            file=name,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the storyboard as UTF-8",
            file=name,
            line=line,
            column=col,
        ) from None


def _check_nesting(text: str, name: str, loader_cls: Any) -> None:
    """Refuse very deep nesting before composing: the composers recurse (libyaml's
    crashes the process on a deep enough "[[[[…" file), and so does the builder below."""
    depth = 0
    for event in yaml.parse(text, Loader=loader_cls):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                raise SpecError(
                    f"the file nests lists/mappings more than {MAX_NESTING} levels deep; refusing to read it",
                    file=name, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _compose(text: str, name: str) -> yaml.Node | None:
    loader_cls: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_nesting(text, name, loader_cls)
        node: yaml.Node | None = yaml.compose(text, Loader=loader_cls)
        return node
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if e.context_mark is not None and "end of stream" in (e.problem or ""):
            mark = e.context_mark  # where the unterminated thing starts, not the end of the file
        msg = f"YAML syntax: {e.problem or e.context}"
        if e.context and e.problem:
            msg = f"YAML syntax: {e.problem} ({e.context})"
        if "nesting depth" in (e.problem or ""):  # PyYAML >= 6.0.4 stops deep nesting itself
            msg = f"the file nests lists/mappings more than {MAX_NESTING} levels deep; refusing to read it"
        raise SpecError(
            msg, file=name, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None
        ) from None
    except yaml.reader.ReaderError as e:  # e.g. a NUL byte: locate it
        pos = e.position if isinstance(e.position, int) else 0
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        ch = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        raise SpecError(f"YAML: the character U+{ch:04X} is not allowed ({e.reason})", file=name, line=line,
                        column=column) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML: {e}", file=name) from None


def _count_unique(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
    return len(seen)


class _Builder:
    """Turn composed YAML nodes into plain Python, recording positions, with a budget
    on alias expansion (a "billion laughs" file is refused, not expanded)."""

    def __init__(self, source: SourceMap, budget: int) -> None:
        self.source = source
        self.budget = budget
        self.problems: list[Problem] = []
        self._scalars = yaml.constructor.SafeConstructor()

    def _spend(self, node: yaml.Node) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise SpecError(
                "the file expands to too many values (YAML aliases nested too deep?); refusing to expand it",
                file=self.source.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self._spend(node)
        self.source.values.setdefault(path, Position(node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._scalars.construct_object(node)
            except yaml.YAMLError as e:
                self.problems.append(self._at(node, f"unsupported YAML value: {getattr(e, 'problem', e)}"))
                return None
            except (ValueError, OverflowError) as e:  # e.g. an integer of thousands of digits
                self.problems.append(self._at(node, f"unsupported YAML value: {str(e).split(';')[0]}"))
                return None
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.problems.append(self._at(node, f"unsupported YAML tag {node.tag}"))
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag not in ("tag:yaml.org,2002:map",):
                self.problems.append(self._at(node, f"unsupported YAML tag {node.tag}"))
            try:
                self._scalars.flatten_mapping(node)
            except yaml.YAMLError as e:
                self.problems.append(self._at(node, f"YAML merge: {getattr(e, 'problem', e)}"))
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                self._spend(key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(self._at(key_node, "mapping keys must be plain names"))
                    continue
                try:
                    key = self._scalars.construct_object(key_node)
                except (yaml.YAMLError, ValueError, OverflowError):
                    self.problems.append(self._at(key_node, "mapping keys must be plain names"))
                    continue
                if not isinstance(key, str):
                    key = str(key)
                if key in out:
                    self.problems.append(self._at(key_node, f"duplicate key '{key}'"))
                    continue
                self.source.keys[(*path, key)] = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, (*path, key))
            return out
        raise SpecError("unexpected YAML node", file=self.source.file)  # pragma: no cover

    def _at(self, node: yaml.Node, message: str) -> Problem:
        return Problem(message, self.source.file, node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(text: str, name: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python plus a SourceMap of positions."""
    source = SourceMap(name)
    root = _compose(text, name)
    if root is None:
        raise SpecError("the file is empty; a storyboard starts with 'storyboard: 1' and lists 'shots:'", file=name, line=1, column=1)
    builder = _Builder(source, budget=4 * _count_unique(root) + 100_000)
    data = builder.build(root, ())
    if builder.problems:
        raise SpecError(builder.problems)
    return data, source


# --------------------------------------------------------------------------- pydantic errors → problems

_FIELDS_BY_LOC: dict[str, type[BaseModel]] = {}


def _model_at(loc: Path_) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc`` (for 'did you mean')."""
    if not loc:
        return StoryboardModel
    if loc == ("defaults",):
        return Defaults
    if len(loc) == 2 and loc[0] == "shots":
        return Shot
    if len(loc) == 3 and loc[0] == "shots" and loc[2] == "transition":
        return Transition
    if len(loc) == 2 and loc[0] == "audio":
        return AudioTrack
    return None


def _where(loc: Path_, data: Any) -> str:
    if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int):
        try:
            sid = data["shots"][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            sid = None
        return f"shot '{sid}'" if isinstance(sid, str) else f"shots[{loc[1]}]"
    if loc and loc[0] == "defaults":
        return "defaults"
    if len(loc) >= 2 and loc[0] == "audio":
        return f"audio[{loc[1]}]"
    return "the top level"


def _dotted(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # pydantic adds union member tags (e.g. 'Transition', 'str') to loc; drop them.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part[:1].isupper() or part in ("str", "int", "float", "bool", "literal[1]")):
            continue
        if isinstance(part, str) and part.startswith(("function-", "constrained-")):
            continue
        out.append(part)
    return tuple(out)


def _problems_from_validation(err: ValidationError, data: Any, source: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[Path_, str]] = set()
    for e in err.errors():
        loc = _clean_loc(e["loc"])
        kind = e["type"]
        if (loc, kind) in seen:
            continue
        seen.add((loc, kind))
        field_name = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            parent = loc[:-1]
            model = _model_at(parent)
            msg = f"unknown field '{field_name}' in {_where(parent, data)}"
            if model is not None:
                match = difflib.get_close_matches(str(field_name), list(model.model_fields), n=1, cutoff=0.6)
                if match:
                    msg += f"; did you mean '{match[0]}'?"
                else:
                    msg += "; allowed: " + ", ".join(model.model_fields)
            problems.append(source.problem(msg, loc, key=True))
            continue
        if kind == "missing":
            parent = loc[:-1]
            if loc == ("storyboard",):
                msg = "missing 'storyboard: 1' (the format version) at the top of the file"
            else:
                msg = f"missing required field '{field_name}' in {_where(parent, data)}"
            problems.append(source.problem(msg, parent))
            continue
        value = e.get("input")
        what = f"{_where(loc, data)}: {field_name}" if loc and loc[0] in ("shots", "audio") else _dotted(loc)
        if kind == "literal_error":
            if loc == ("storyboard",):
                msg = f"unsupported format version {value!r}; this version of storyboard reads format 1 ('storyboard: 1')"
            else:
                expected = e.get("ctx", {}).get("expected", "")
                msg = f"{what} is {value!r}; allowed: {expected}"
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            msg = f"{what} is {value!r}; {e['msg'].lower().replace('input should be', 'it must be')}"
            if field_name == "duration" and "transition" not in loc:
                msg = f"{what} is {value!r}; Kling takes whole seconds from 3 to 15"
        elif kind.startswith("int") and field_name == "duration":
            msg = f"{what} is {value!r}; Kling takes whole seconds from 3 to 15 (an integer)"
        elif kind == "too_short" and loc == ("shots",):
            msg = "'shots' is empty; list at least one shot"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            msg = f"{what or 'the top level'} must be a mapping (key: value), not {type(value).__name__}"
            if not loc:
                msg = "the top level must be a mapping with 'storyboard: 1' and 'shots:', not a " + type(value).__name__
        elif kind == "list_type":
            msg = f"{what} must be a list, not {type(value).__name__}"
        else:
            msg = f"{what}: {e['msg']} (got {value!r})" if what else e["msg"]
        problems.append(source.problem(msg, loc))
    return problems


# --------------------------------------------------------------------------- references and files

def _inside(folder: Path, rel: str) -> tuple[Path | None, str | None]:
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


_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def check_image_file(folder: Path, rel: str) -> tuple[ImageFile | None, str | None]:
    """Check an image file named in the storyboard: inside the folder, a real PNG/JPEG."""
    path, why = _inside(folder, rel)
    if path is None:
        return None, why
    if not path.exists():
        return None, f"image file '{rel}' does not exist"
    if not path.is_file():
        return None, f"'{rel}' is not a file"
    size = path.stat().st_size
    if size > MAX_IMAGE_FILE_BYTES:
        return None, (f"'{rel}' is {size / 1e6:.0f} MB; images may be at most "
                      f"{MAX_IMAGE_FILE_BYTES // (1024 * 1024)} MB (Kling takes up to 10 MB)")
    data = path.read_bytes()
    if not (data.startswith(_PNG) or data.startswith(_JPEG)):
        return None, f"'{rel}' is not a PNG or JPEG image (its content says otherwise); Kling takes jpg/jpeg/png"
    import io

    from PIL import Image  # deferred: only needed when a storyboard names images

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > 80_000_000:
                    return None, f"'{rel}' declares {width}×{height} pixels; images may have at most 80 megapixels"
                im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, f"'{rel}' declares an enormous size (a decompression bomb?); refusing to open it"
    except Exception as e:  # Pillow raises many kinds for broken files
        return None, f"'{rel}' does not decode as an image ({type(e).__name__}: {e})"
    if min(width, height) < MIN_IMAGE_SIDE:
        return None, (
            f"'{rel}' is {width}×{height} px; images must be at least {MODEL_MIN_IMAGE_SIDE} px on the short side "
            f"(smaller ones down to {MIN_IMAGE_SIDE} px are upscaled)"
        )
    return ImageFile(path, rel, hashlib.sha256(data).hexdigest(), width, height), None


# --------------------------------------------------------------------------- loading


def _transition(shot: Shot) -> tuple[str, float]:
    t = shot.transition
    if t is None:
        return "cut", 0.0
    if isinstance(t, str):
        return t, (0.0 if t == "cut" else 0.5)
    return t.type, (0.0 if t.type == "cut" else t.duration)


OVERRIDABLE = ("app", "mode", "aspect_ratio", "duration", "sound", "negative_prompt")


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate model-input overrides that apply to every shot (e.g. an aspect-ratio variant)."""
    unknown = [k for k in overrides if k not in OVERRIDABLE]
    if unknown:
        raise SpecError(f"cannot override '{unknown[0]}'; allowed: {', '.join(OVERRIDABLE)}")
    try:
        checked = Defaults.model_validate(overrides)
    except ValidationError as err:
        e = err.errors()[0]
        raise SpecError(f"override {'.'.join(str(x) for x in e['loc'])}: {e['msg']} (got {e.get('input')!r})") from None
    return {k: getattr(checked, k) for k in overrides}


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read and validate a storyboard file (everything but prompts). Raises SpecError
    listing every problem found, each with file, line and column."""
    path = Path(path)
    name = str(path)
    text = read_text(path)
    data, source = parse_yaml(text, name)
    if not isinstance(data, dict):
        raise SpecError(
            f"the top level must be a mapping with 'storyboard: 1' and 'shots:', not a {type(data).__name__}",
            file=name,
            line=1,
            column=1,
        )
    if "storyboard" not in data:
        raise SpecError("missing 'storyboard: 1' (the format version) at the top of the file", file=name, line=1, column=1)
    if data["storyboard"] != FORMAT_VERSION or isinstance(data["storyboard"], bool):
        raise SpecError(
            [source.problem(
                f"unsupported format version {data['storyboard']!r}; this version of storyboard reads format 1 ('storyboard: 1')",
                ("storyboard",),
            )]
        )
    try:
        model = StoryboardModel.model_validate(data)
    except ValidationError as err:
        raise SpecError(_problems_from_validation(err, data, source)) from None
    return _resolve(path, model, source, check_overrides(dict(overrides)) if overrides else {})


def _resolve(path: Path, model: StoryboardModel, source: SourceMap, overrides: dict[str, Any]) -> Spec:
    folder = path.parent
    problems: list[Problem] = []

    def bad(message: str, *loc: str | int, key: bool = False) -> None:
        problems.append(source.problem(message, loc, key=key))

    # ids
    ids: dict[str, int] = {}
    for i, shot in enumerate(model.shots):
        if not ID_PATTERN.match(shot.id):
            bad(f"shot id '{shot.id}' may use only lower-case letters, digits, '_' and '-'", "shots", i, "id")
        if shot.id in ids:
            bad(f"duplicate shot id '{shot.id}' (first used by shots[{ids[shot.id]}])", "shots", i, "id")
        else:
            ids[shot.id] = i
    d = model.defaults

    # resolve each shot's inputs first (durations are needed to check frame times)
    durations = {s.id: (s.duration if s.duration is not None else d.duration) for s in model.shots}
    if "duration" in overrides:
        durations = dict.fromkeys(durations, overrides["duration"])
    image_cache: dict[str, tuple[ImageFile | None, str | None]] = {}

    def source_of(value: str, i: int, fld: str) -> ImageSource | None:
        shot_id = model.shots[i].id
        try:
            ref = parse_frame_ref(value)
        except ValueError as e:
            bad(f"shot '{shot_id}': {e}", "shots", i, fld)
            return None
        if ref is not None:
            if ref.shot not in ids:
                near = difflib.get_close_matches(ref.shot, list(ids), n=1)
                hint = f"; did you mean '@{near[0]}'?" if near else "; known shots: " + ", ".join(list(ids)[:12])
                bad(f"shot '{shot_id}': {fld} refers to unknown shot '{ref.shot}'{hint}", "shots", i, fld)
                return None
            if ref.shot == shot_id:
                bad(f"shot '{shot_id}': {fld} refers to the shot itself", "shots", i, fld)
                return None
            if isinstance(ref.selector, float) and ref.selector > durations[ref.shot]:
                bad(
                    f"shot '{shot_id}': {fld} asks for {ref.selector:g} s into '{ref.shot}', "
                    f"which lasts {durations[ref.shot]} s; allowed: 0..{durations[ref.shot]}",
                    "shots", i, fld,
                )
                return None
            return ref
        if value not in image_cache:
            image_cache[value] = check_image_file(folder, value)
        img, why = image_cache[value]
        if img is None:
            bad(f"shot '{shot_id}': {fld}: {why}", "shots", i, fld)
        return img

    resolved: list[ResolvedShot] = []
    for i, shot in enumerate(model.shots):
        if shot.prompt is not None and shot.template is not None:
            bad(f"shot '{shot.id}' has both 'prompt' and 'template'; keep one", "shots", i, "template", key=True)
        elif shot.prompt is None and shot.template is None:
            bad(f"shot '{shot.id}' has neither 'prompt' nor 'template'; give it one", "shots", i)
        image: ImageSource | None = None
        if "image" in shot.model_fields_set:
            if shot.image is not None:
                image = source_of(shot.image, i, "image")
        elif model.chain and i > 0:
            image = FrameRef(model.shots[i - 1].id, "last")
        end_image: ImageSource | None = None
        if shot.end_image is not None:
            end_image = source_of(shot.end_image, i, "end_image")
            image_failed = "image" in shot.model_fields_set and shot.image is not None
            if image is None and not image_failed:
                bad(
                    f"shot '{shot.id}': end_image needs a start image; give the shot an 'image' (Kling requires both)",
                    "shots", i, "end_image", key=True,
                )
        ttype, tdur = _transition(shot)
        if ttype not in TRANSITIONS:
            near = difflib.get_close_matches(ttype, sorted(TRANSITIONS), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            bad(f"shot '{shot.id}': unknown transition '{ttype}'{hint} (allowed: cut, dissolve, fade, fadeblack, wipeleft, slideleft… any ffmpeg xfade name)",
                "shots", i, "transition")
        for fld, text in (("negative_prompt", shot.negative_prompt), ):
            if text is not None and len(text) > MAX_PROMPT_CHARS:
                bad(f"shot '{shot.id}': {fld} is {len(text)} characters; Kling allows at most {MAX_PROMPT_CHARS}", "shots", i, fld)
        resolved_shot = ResolvedShot(
            index=i,
            id=shot.id,
            prompt=shot.prompt,
            template=shot.template,
            image=image,
            end_image=end_image,
            vars=dict(shot.vars),
            transition=ttype,
            transition_duration=tdur,
            seam=shot.seam or model.seam,
            app=shot.app or d.app,
            mode=shot.mode or d.mode,
            aspect_ratio=shot.aspect_ratio or d.aspect_ratio,
            duration=durations[shot.id],
            sound=d.sound if shot.sound is None else shot.sound,
            negative_prompt=shot.negative_prompt if shot.negative_prompt is not None else d.negative_prompt,
        )
        if overrides:
            resolved_shot = dataclasses.replace(resolved_shot, **overrides)
        resolved.append(resolved_shot)
    if d.negative_prompt is not None and len(d.negative_prompt) > MAX_PROMPT_CHARS:
        bad(f"defaults: negative_prompt is {len(d.negative_prompt)} characters; Kling allows at most {MAX_PROMPT_CHARS}",
            "defaults", "negative_prompt")

    # cut
    if model.cut is None:
        cut = tuple(s.id for s in model.shots)
    else:
        cut = tuple(model.cut)
        if not cut:
            bad("'cut' is empty; list the shots of the film in order (or leave 'cut' out)", "cut")
        for j, sid in enumerate(cut):
            if sid not in ids:
                near = difflib.get_close_matches(sid, list(ids), n=1)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                bad(f"cut names unknown shot '{sid}'{hint}", "cut", j)
    by_id = {s.id: s for s in resolved}
    # transitions against neighbours in the cut
    for j, sid in enumerate(cut):
        s = by_id.get(sid)
        if s is None or s.transition == "cut":
            continue
        loc = ("shots", s.index, "transition")
        if j == 0:
            problems.append(source.problem(
                f"shot '{sid}' opens the film, so it has no shot before it to {s.transition} from; remove its transition",
                loc))
            continue
        prev = by_id.get(cut[j - 1])
        if prev is None:
            continue
        limit = min(prev.duration, s.duration)
        if s.transition_duration >= limit:
            problems.append(source.problem(
                f"shot '{sid}': transition lasts {s.transition_duration:g} s; it must be shorter than both "
                f"neighbouring clips ('{prev.id}' {prev.duration} s, '{sid}' {s.duration} s)",
                loc))

    # audio tracks and template folders
    audio: list[tuple[Path, AudioTrack]] = []
    for j, track in enumerate(model.audio):
        p, why = _inside(folder, track.file)
        if p is None:
            bad(f"audio[{j}]: {why}", "audio", j, "file")
        elif not p.is_file():
            bad(f"audio[{j}]: audio file '{track.file}' does not exist", "audio", j, "file")
        else:
            audio.append((p, track))
    template_dirs: list[Path] = []
    for j, rel in enumerate(model.templates):
        p, why = _inside(folder, rel)
        if p is None:
            bad(f"templates[{j}]: {why}", "templates", j)
        elif not p.is_dir():
            bad(f"templates[{j}]: template folder '{rel}' does not exist", "templates", j)
        else:
            template_dirs.append(p)

    output = folder / "out" / f"{path.stem}.mp4"
    if model.output:
        # A storyboard must not write outside its folder (--output may, on purpose),
        # nor over itself.
        out_path, why = _inside(folder, model.output)
        if out_path is None:
            bad(f"output: {why} (use --output to write the film elsewhere)", "output")
        elif out_path.resolve() == path.resolve():
            bad("output: is the storyboard file itself; name a video file such as out/film.mp4", "output")
        else:
            output = out_path
    if problems:
        raise SpecError(problems)
    return Spec(
        path=path,
        model=model,
        shots=tuple(resolved),
        cut=cut,
        audio=tuple(audio),
        template_dirs=tuple(template_dirs),
        output=output,
        source=source,
    )


def json_schema() -> dict[str, Any]:
    """JSON Schema of the file format (for editors and yaml-language-server)."""
    schema = StoryboardModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "storyboard file (format 1)"
    return schema
