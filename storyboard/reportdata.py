"""``<film>.render.json`` read back: a typed model of what the runner wrote.

The runner writes the file (``runner/_pipeline``); the report page, and anything else
that reads a render afterwards, reads it through :func:`read_render_report`. Fields the
model does not name are kept (``extra="allow"``), so an older reader never rejects a newer
file; a file that is not a render report at all is a UsageError.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storyboard.errors import UsageError

REPORT_SUFFIX = ".render.json"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Seam(_Entry):
    """The continuity score of the seam into a chained shot."""

    from_shot: str | None = Field(None, alias="from")
    psnr: float | None = None
    histogram: float | None = None
    drifted: bool = False


class Reroll(_Entry):
    """One take of a drifted shot, rerolled (--reroll-drifted)."""

    take: int | None = None
    psnr: float | None = None
    histogram: float | None = None
    drifted: bool = False
    kept: bool = False
    cached: bool = False
    clip: str | None = None


class Facts(_Entry):
    """What the cache recorded when the shot's clip was made."""

    cost: Decimal | None = None
    generation_seconds: float | None = None
    billed_seconds: float | None = None
    rerolls: list[Reroll] = Field(default_factory=list)
    reroll_stopped: str | None = None


class Take(_Entry):
    """One take of a shot with several."""

    take: int
    picked: bool = False
    status: str | None = None
    clip: str | None = None
    key: str | None = None


class ShotEntry(_Entry):
    """One shot of the render."""

    id: str
    key: str | None = None
    status: str | None = None
    cache_hit: bool = False
    clip: str | None = None
    task_id: str | None = None
    billed_seconds: float | None = None
    cost: Decimal | None = None
    seconds: float | None = None
    error: str | None = None
    facts: Facts = Field(default_factory=Facts)
    prompt: str | None = None
    duration: float | None = None
    image: str | None = None
    end_image: str | None = None
    mode: str | None = None
    sound: bool | None = None
    app: str | None = None
    kind: str | None = None
    takes: list[Take] = Field(default_factory=list)
    seam: Seam | None = None

    @property
    def made_cost(self) -> Decimal | None:
        """What making the clip cost: paid now, or (a cache hit) when it was generated."""
        return self.facts.cost if self.cache_hit else self.cost

    @property
    def made_seconds(self) -> float | None:
        """How long generating the clip took: now, or (a cache hit) when it was generated."""
        return self.facts.generation_seconds if self.cache_hit else self.seconds


class Line(_Entry):
    """A narration line as placed on the film."""

    shot: str
    text: str
    start: float
    seconds: float


class LoudnessFigures(_Entry):
    """The finished film's loudness (media.Loudness), as measured."""

    target: float
    integrated: float
    true_peak: float
    true_peak_limit: float | None = None
    corrections: int = 0
    reached: bool = True


class RenderReport(_Entry):
    """The whole ``<film>.render.json``."""

    storyboard: str | None = None
    title: str | None = None
    backend: str | None = None
    film: str | None = None
    duration: float | None = None
    assembly: str | None = None
    cost: Decimal | None = None
    estimate: Decimal | None = None
    seconds: float | None = None
    board_hash: str | None = None
    loudness: LoudnessFigures | None = None
    captions: list[str] = Field(default_factory=list)
    narration: list[Line] = Field(default_factory=list)
    cut: list[str] = Field(default_factory=list)
    shots: list[ShotEntry]

    def film_cost(self) -> Decimal | None:
        """What the clips of the film cost to make, cache hits included; None if any is unknown."""
        cut = set(self.cut)
        total = Decimal(0)
        for shot in self.shots:
            if shot.id in cut:
                if shot.made_cost is None:
                    return None
                total += shot.made_cost
        return total


def report_json_path(film: Path) -> Path:
    """Where the runner writes the render report of ``film``."""
    return film.with_name(film.name + REPORT_SUFFIX)


def film_of(result_json_path: Path) -> Path:
    """The film a render report belongs to (the report is ``<film>.render.json``)."""
    name = result_json_path.name
    if name.endswith(REPORT_SUFFIX):
        return result_json_path.with_name(name[: -len(REPORT_SUFFIX)])
    return result_json_path.with_suffix(".mp4")


def read_render_report(path: Path) -> RenderReport:
    """The ``<film>.render.json`` the runner wrote; a UsageError if there is none or it is
    not a render report."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no render report at {path}; render the storyboard first (storyboard render FILE)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the render report {path}: {e}") from None
    try:
        return RenderReport.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UsageError(f"{path} is not a storyboard render report: {where}: {first['msg']}") from None
