"""The resolved form of a storyboard: shots with defaults applied and references
resolved, and the whole validated file (before prompts are rendered).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.facts import DEFAULT_HANDOFF_WINDOW
from storyboard.request import FrameRef
from storyboard.spec.images import ImageFile
from storyboard.spec.models import AudioTrack, StoryboardModel
from storyboard.spec.yamlpos import Path_, SourceMap

__all__ = ["ImageSource", "ResolvedShot", "Spec"]

ImageSource = FrameRef | ImageFile


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
    mode: str | None
    resolution: str | None
    aspect_ratio: str
    duration: int
    sound: bool
    multi_shot: bool | None
    negative_prompt: str | None
    inputs: dict[str, Any]
    handoff: str = "last"  # how a child's "@ID:last" picks this clip's frame: last or best
    handoff_window: float = DEFAULT_HANDOFF_WINDOW
    takes: int = 1

    kind: str = "shot"  # "shot" (a clip), "title" (a text card, drawn here) or "still" (an image, `stills:`)
    characters: tuple[str, ...] = ()
    references: tuple[ImageSource, ...] = ()  # the characters' reference images, in order
    keyframes: tuple[tuple[float, ImageSource], ...] = ()  # (seconds, image) the clip passes through

    @property
    def handoff_rule(self) -> str | None:
        """The handoff rule's one text form (``best:0.5``), or None for the exact last frame."""
        return f"best:{self.handoff_window:g}" if self.handoff == "best" else None

    @property
    def is_still(self) -> bool:
        """Whether this node is a generated still (an image), not a shot."""
        return self.kind == "still"

    def parents(self) -> Iterator[tuple[str, FrameRef]]:
        """(role, reference) for each frame or still this shot takes from another node."""
        for role, src in (("image", self.image), ("end_image", self.end_image)):
            if isinstance(src, FrameRef):
                yield role, src
        for ref in self.references:
            if isinstance(ref, FrameRef):
                yield "references", ref
        for _, ref in self.keyframes:
            if isinstance(ref, FrameRef):
                yield "keyframes", ref


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
        """The storyboard's folder (assets are relative to it)."""
        return self.path.parent

    def shot(self, shot_id: str) -> ResolvedShot:
        """The resolved shot with this id."""
        return self._by_id[shot_id]

    @property
    def _by_id(self) -> dict[str, ResolvedShot]:
        cached: dict[str, ResolvedShot] | None = self.__dict__.get("_by_id_cache")
        if cached is None:
            cached = {s.id: s for s in self.shots}
            object.__setattr__(self, "_by_id_cache", cached)
        return cached

    def shot_path(self, shot_id: str, *rest: str | int) -> Path_:
        """The path of a shot's (or still's) field in the file, for error locations."""
        shot = self.shot(shot_id)
        if shot.is_still:
            return ("stills", shot.index, *rest)
        return ("shots", shot.index, *rest)

    @property
    def stills(self) -> tuple[ResolvedShot, ...]:
        """The generated stills (nodes of kind "still")."""
        return tuple(s for s in self.shots if s.is_still)
