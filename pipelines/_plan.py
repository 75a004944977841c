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


def plan_batch(jobs: Sequence[Job], *, backend: str | Backend | None = None,
               cache_dir: str | Path | None = None) -> BatchPlan:
    """Plan every film of the batch against the cache (pure: nothing generated)."""
    est = estimate(jobs, backend=backend, cache_dir=cache_dir)
    films_per_recipe: Counter[str] = Counter()
    used = 0
    for plan in est.plans.values():
        recipes = {s.recipe for s in plan.shots if s.status != "unused"}
        used += len(recipes)
        films_per_recipe.update(recipes)
    shared = sum(1 for n in films_per_recipe.values() if n > 1)
    return BatchPlan(films=len(est.plans), shots_used=used, distinct=len(films_per_recipe), shared=shared,
                     to_generate=est.shots, cost=est.cost if est.shots else Decimal(0),
                     cost_without_sharing=est.cost_naive if est.shots_naive else Decimal(0))
