"""The plan's types: each node's request, cache key, status and cost, and the whole
plan's totals and JSON form. Pure data; :mod:`storyboard.plan` makes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from storyboard.facts import usd
from storyboard.request import ShotRequest, price_facts

__all__ = ["PAID_STATUSES", "CacheView", "Plan", "PlannedAudio", "PlannedShot", "PlannedTake", "Status",
           "sum_costs"]


class CacheView(Protocol):
    """What the plan may ask of the cache (read-only)."""

    def clip_hash(self, key: str) -> str | None:
        """Content hash of the clip cached under shot key ``key``, or None."""


Status = Literal["cached", "generate", "after", "forced", "unused"]
# The statuses that cost money: the node is generated (now, after its parents, or forced).
PAID_STATUSES: frozenset[str] = frozenset({"generate", "after", "forced"})


@dataclass(frozen=True)
class PlannedShot:
    """One shot of the plan."""

    id: str
    order: int
    request: ShotRequest
    recipe: str  # hash of the shot's inputs, with parents' recipes (known without a cache)
    key: str | None  # cache key: known when every parent clip is known
    status: Status
    after: tuple[str, ...]  # parents still to be generated
    cost: Decimal | None  # what generating it costs on this backend (0 when cached)
    price: Decimal | None  # what it costs on this backend when generated
    reference_price: Decimal | None  # what it would cost on the paid model
    rate: Decimal | None  # the paid model's USD per second for this shot's inputs (an estimate)
    tier: str  # the inputs that set that rate ("resolution 1080p, sound true")
    in_cut: bool
    image: Any = None  # ImageSource | None
    end_image: Any = None
    references: tuple[Any, ...] = ()  # ImageSource of each reference image sent (none if the app takes none)
    note: str | None = None  # e.g. the app takes no reference images, so they are unused

    @property
    def is_still(self) -> bool:
        """Whether this node makes a still (an image), not a clip."""
        return self.request.kind == "still"

    take: int = 1  # the picked take: the one its descendants chain from
    takes: tuple[PlannedTake, ...] = ()  # the shot's other takes

    @property
    def to_generate(self) -> bool:
        """Whether the picked take will be generated."""
        return self.status in PAID_STATUSES

    @property
    def all_costs(self) -> list[Decimal | None]:
        """What generating this shot costs, take by take."""
        return [self.cost, *(t.cost for t in self.takes)]

    @property
    def total_cost(self) -> Decimal | None:
        """What generating this shot costs, every take counted: its row in the plan (the
        plan's total is the sum of its rows)."""
        return sum_costs(self.all_costs)


@dataclass(frozen=True)
class PlannedTake:
    """One more take of a shot: its own request (take number, seed) and cache key."""

    take: int
    request: ShotRequest
    key: str | None
    status: Status
    cost: Decimal | None

    @property
    def to_generate(self) -> bool:
        """Whether this shot will be generated."""
        return self.status in PAID_STATUSES


@dataclass(frozen=True)
class PlannedAudio:
    """A narration line or a generated music track: a node voiced or made before the shots."""

    id: str  # "say:SHOT", "audio[N]", "text:NAME" or "judge:SHOT"
    kind: Literal["line", "music", "text", "judge"]
    app: str  # the app that makes it, or the offline maker ("espeak-ng", "placeholder"…)
    text: str  # the line, or the music's prompt
    request: ShotRequest
    key: str
    status: Literal["cached", "generate"]
    cost: Decimal | None  # what making it costs on this backend (0 when cached)
    price: Decimal | None  # what it costs on this backend when made
    reference_price: Decimal | None  # what it would cost on the app (inference.sh)

    @property
    def to_generate(self) -> bool:
        """Whether it will be voiced or made."""
        return self.status == "generate"


@dataclass(frozen=True)
class Plan:
    """What a render would do: each shot's status and cost."""

    backend: str
    shots: tuple[PlannedShot, ...]
    critical_path: tuple[str, ...]
    critical_seconds: float
    board_hash: str
    audio: tuple[PlannedAudio, ...] = ()  # narration lines and generated music (made first)
    notes: tuple[str, ...] = ()  # said once for the whole plan (e.g. defaults an app has no input for)

    def __getitem__(self, shot_id: str) -> PlannedShot:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise KeyError(shot_id)

    @property
    def by_id(self) -> dict[str, PlannedShot]:
        """The planned shots by id."""
        return {s.id: s for s in self.shots}

    @property
    def pending(self) -> list[PlannedShot]:
        """The shots still to generate."""
        return [s for s in self.shots if s.to_generate]

    @property
    def pending_takes(self) -> list[PlannedTake]:
        """The other takes still to generate (of used shots)."""
        return [t for s in self.shots if s.status != "unused" for t in s.takes if t.to_generate]

    @property
    def seconds_to_generate(self) -> int:
        """Seconds of video still to generate, every take counted."""
        return (sum(s.request.duration for s in self.pending)
                + sum(t.request.duration for t in self.pending_takes))

    @property
    def pending_audio(self) -> list[PlannedAudio]:
        """The narration lines and music tracks still to make."""
        return [a for a in self.audio if a.to_generate]

    @property
    def cost(self) -> Decimal | None:
        """What the shots (every take) still to generate, the lines still to voice and the music
        still to make will cost; None if any price is unknown. The sum of the rows (an
        unused shot's row costs $0)."""
        return sum_costs([*(s.total_cost for s in self.shots), *(a.cost for a in self.audio)])

    @property
    def reference_cost(self) -> Decimal | None:
        """What the shots (every take) still to generate would cost on the paid model."""
        return sum_costs([*(s.reference_price for s in self.pending),
                     *(s.reference_price for s in self.shots if s.status != "unused"
                       for t in s.takes if t.to_generate),
                     *(a.reference_price for a in self.pending_audio)])

    @property
    def full_cost(self) -> Decimal | None:
        """What every used shot (every take) costs when nothing is cached."""
        return sum_costs([*(s.price for s in self.shots if s.status != "unused" for _ in range(1 + len(s.takes))),
                     *(a.price for a in self.audio)])

    def audio_summary(self) -> list[str]:
        """The narration (one line for all) and each generated music track, with costs."""
        lines = [a for a in self.audio if a.kind == "line"]
        out = []
        if lines:
            todo = sum(1 for a in lines if a.to_generate)
            out.append(f"narration: {len(lines)} line{'s' if len(lines) != 1 else ''} ({todo} to voice) with "
                       f"{lines[0].app}, {usd(sum_costs(a.cost for a in lines))}")
        out += [f"music: {a.id} {a.app}, {'to make' if a.to_generate else 'cached'}, {usd(a.cost)}"
                for a in self.audio if a.kind == "music"]
        out += [f"{a.kind}: {a.id} {a.app}, {'to make' if a.to_generate else 'cached'}, "
                f"{'<$0.001' if a.cost and a.cost < Decimal('0.001') else usd(a.cost)}"  # a few tokens: never "$0"
                for a in self.audio if a.kind in ("text", "judge")]
        return out

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data."""
        def money(d: Decimal | None) -> str | None:
            return None if d is None else str(d)

        return {
            "backend": self.backend,
            "board_hash": self.board_hash,
            "shots": [
                {
                    "order": s.order,
                    "id": s.id,
                    "status": s.status,
                    "after": list(s.after),
                    "key": s.key,
                    "recipe": s.recipe,
                    "image": s.request.image_source,
                    "end_image": s.request.end_image_source,
                    "duration": s.request.duration,
                    "mode": s.request.mode,
                    "aspect_ratio": s.request.aspect_ratio,
                    "sound": s.request.sound,
                    "prompt": s.request.prompt,
                    "in_cut": s.in_cut,
                    "take": s.take,
                    "takes": 1 + len(s.takes),
                    "kind": s.request.kind,
                    "references": list(s.request.reference_sources),
                    "note": s.note,
                    "cost": money(s.total_cost),
                    "price": money(s.price),
                    **price_facts(s.request, free=s.reference_price == 0),
                }
                for s in self.shots
            ],
            "audio": [
                {"id": a.id, "kind": a.kind, "app": a.app, "text": a.text, "key": a.key, "status": a.status,
                 "cost": money(a.cost), "price": money(a.price),
                 **price_facts(a.request, free=a.reference_price == 0)}
                for a in self.audio
            ],
            "notes": list(self.notes),
            "totals": {
                "shots": len(self.shots),
                "audio_to_make": len(self.pending_audio),
                "to_generate": len(self.pending),
                "takes_to_generate": len(self.pending) + len(self.pending_takes),
                "seconds_to_generate": self.seconds_to_generate,
                "cost": money(self.cost),
                "full_cost": money(self.full_cost),
                "reference_cost": money(self.reference_cost),
                "critical_path": list(self.critical_path),
                "critical_seconds": self.critical_seconds,
            },
        }


def sum_costs(values: Iterable[Decimal | None]) -> Decimal | None:
    """The sum, or None when any value is unknown (never a guess)."""
    total = Decimal(0)
    for v in values:
        if v is None:
            return None
        total += v
    return total
