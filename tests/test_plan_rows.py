"""Issue 25 (item 5): a plan's rows add up to its total, in the table and in --json, a
shot of `takes: 3` counting its three takes on its own row."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from storyboard.cli import main

BOARD = """
storyboard: 1
defaults: {duration: 5, resolution: 720p}
shots:
  - id: a
    prompt: a harbor at dusk
    takes: 3
  - id: b
    prompt: the keeper looks up
  - id: card
    kind: title
    duration: 2
    prompt: The End
"""


def test_the_tables_rows_add_up_to_its_total(write_board: Callable[..., Path]) -> None:
    out = CliRunner().invoke(main, ["plan", str(write_board(BOARD)), "--backend", "inference"])
    assert out.exit_code == 0, out.output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.output.splitlines()
             if re.match(r"│\s+\d+ │", line)]
    rows = {c[1]: Decimal(c[7].split()[0].removeprefix("$")) for c in cells}  # the cost column
    total = Decimal(re.search(r"cost \$([\d.]+)\n", out.output).group(1))  # type: ignore[union-attr]
    assert set(rows) == {"a", "b", "card"}
    assert rows["a"] == 3 * rows["b"] and rows["card"] == 0  # Kling 720p with sound, 5 s, three takes
    assert sum(rows.values()) == total == Decimal("2.52")
    assert "(3 takes)" in out.output


def test_the_json_rows_add_up_to_its_total(write_board: Callable[..., Path]) -> None:
    out = CliRunner().invoke(main, ["plan", str(write_board(BOARD)), "--backend", "inference", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    rows = {s["id"]: Decimal(s["cost"]) for s in data["shots"]}
    assert rows["a"] == 3 * Decimal(next(s["price"] for s in data["shots"] if s["id"] == "a"))
    assert sum(rows.values()) + sum(Decimal(a["cost"]) for a in data["audio"]) == Decimal(data["totals"]["cost"])
