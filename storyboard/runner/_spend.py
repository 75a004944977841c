"""What a render has spent: the estimate of each paid call, and what the task says it cost.

``--budget`` is checked on the plan before anything is paid (``Pipeline.check_budget``);
it is checked again here before each paid call, against what was *actually* spent so
far (a finished task's reported cost where it reports one, else its estimate) plus what
the calls in flight and this call are estimated at. A call that would go over is not made
(its shot fails with the reason; nothing paid is lost: every finished clip is cached).

A task re-attached from the journal was paid by an earlier render: it is counted, never
refused. A call whose actual cost exceeds its estimate by more than ``OVER`` (10 %) says
so once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from storyboard.errors import BudgetError
from storyboard.facts import usd

OVER = Decimal("0.10")  # actual above the estimate by more than this share: one warning


@dataclass
class Spend:
    """The render's spending ledger (one per render; asyncio: one thread)."""

    budget: Decimal | None
    spent: Decimal = Decimal(0)  # finished calls: actual where reported, else the estimate
    in_flight: dict[str, Decimal] = field(default_factory=dict)  # node → its estimate, while it runs

    def reserve(self, node: str, estimate: Decimal | None, *, paid_already: bool = False) -> None:
        """Before a paid call: count its estimate, or raise BudgetError (nothing is paid)."""
        if paid_already or self.budget is None:
            self.in_flight[node] = estimate or Decimal(0)
            return
        if estimate is None:
            raise BudgetError(f"'{node}' not made: its price is unknown, and an unknown price counts as over "
                              "any --budget; nothing was paid for it")
        committed = self.spent + sum(self.in_flight.values(), Decimal(0))
        if committed + estimate > self.budget:
            raise BudgetError(
                f"'{node}' not made: {usd(self.spent)} spent so far (as the tasks reported) and "
                f"{usd(committed - self.spent)} running, so its {usd(estimate)} would pass --budget "
                f"{usd(self.budget)}; nothing was paid for it, and every clip made is cached")
        self.in_flight[node] = estimate

    def release(self, node: str) -> None:
        """A call that failed: nothing to count (failed tasks are not charged)."""
        self.in_flight.pop(node, None)

    def settle(self, node: str, estimate: Decimal | None, actual: Decimal | None) -> str | None:
        """A finished call: count what it cost; a warning when it cost 10 % more than estimated."""
        self.in_flight.pop(node, None)
        cost = actual if actual is not None else estimate
        self.spent += cost or Decimal(0)
        if actual is None or estimate is None or actual <= estimate * (1 + OVER):
            return None
        share = (actual / estimate - 1) * 100 if estimate else Decimal(100)
        return (f"'{node}' cost {usd(actual)} as the task reported, {share:.0f} % over its estimate of "
                f"{usd(estimate)}; later calls count the actual cost against --budget")
