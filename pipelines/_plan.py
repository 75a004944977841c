"""Planning a whole batch without generating anything: distinct shots, the shots that
rows share, and what the batch costs (each shared shot counted once)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines._batch import Job, estimate
from storyboard import Backend, usd


@dataclass(frozen=True)
class BatchPlan:
    """The plan of a batch: films, shots used, distinct, shared, cached, and the cost."""

    films: int
    shots_used: int  # counting each film on its own
    distinct: int  # distinct shots (same recipe → same shot)
    shared: int  # distinct shots used by more than one film
    to_generate: int  # distinct shots not cached yet
    cost: Decimal | None  # of the shots to generate, each once
    cost_without_sharing: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"films": self.films, "shots": self.shots_used, "distinct_shots": self.distinct,
                "shared_shots": self.shared, "to_generate": self.to_generate,
                "cost": None if self.cost is None else str(self.cost),
                "cost_without_sharing": None if self.cost_without_sharing is None else str(self.cost_without_sharing)}

    def lines(self) -> list[str]:
        """The plan as a few lines of text."""
        return [f"{self.films} film(s), {self.shots_used} shot(s) in all",
                f"{self.distinct} distinct shot(s), {self.shared} shared by more than one film",
                f"{self.to_generate} to generate, costing {usd(self.cost)} "
                f"(without sharing: {usd(self.cost_without_sharing)}); nothing was generated"]


PARALLEL_ROWS = 200  # from this many rows, a matrix is planned on every core


@dataclass(frozen=True)
class FilmShots:
    """What one film's plan contributes: the recipes it uses, and those still to generate
    with their cost (small and picklable, so chunks can be planned in other processes)."""

    used: tuple[str, ...]
    pending: tuple[tuple[str, Decimal | None], ...]


def film_shots(jobs: Sequence[Job], *, backend: str | Backend | None = None,
               cache_dir: str | Path | None = None) -> list[FilmShots]:
    """Plan every film of ``jobs`` against the cache (pure: nothing generated)."""
    est = estimate(jobs, backend=backend, cache_dir=cache_dir)
    return [FilmShots(tuple(dict.fromkeys(s.recipe for s in plan.shots if s.status != "unused")),
                      tuple((s.recipe, s.cost) for s in plan.pending)) for plan in est.plans.values()]


def _total(values: Sequence[Decimal | None]) -> Decimal | None:
    return None if any(v is None for v in values) else sum((v for v in values if v is not None), Decimal(0))


def summarize(films: Sequence[FilmShots]) -> BatchPlan:
    """The batch plan from every film's shots (a shared shot counted once)."""
    films_per_recipe: Counter[str] = Counter()
    distinct: dict[str, Decimal | None] = {}
    naive: list[Decimal | None] = []
    for f in films:
        films_per_recipe.update(f.used)
        for recipe, cost in f.pending:
            naive.append(cost)
            distinct.setdefault(recipe, cost)
    return BatchPlan(films=len(films), shots_used=sum(len(f.used) for f in films), distinct=len(films_per_recipe),
                     shared=sum(1 for n in films_per_recipe.values() if n > 1), to_generate=len(distinct),
                     cost=_total(list(distinct.values())), cost_without_sharing=_total(naive))


def plan_batch(jobs: Sequence[Job], *, backend: str | Backend | None = None,
               cache_dir: str | Path | None = None) -> BatchPlan:
    """Plan every film of the batch against the cache (pure: nothing generated)."""
    return summarize(film_shots(jobs, backend=backend, cache_dir=cache_dir))
