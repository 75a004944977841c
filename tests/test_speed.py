"""Speed, as behaviour (issue 16, items 7-9): what a command does not load, which steps
overlap. Timings live in benchmarks/; these tests pin the reasons they are fast."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from storyboard.graph import ShotGraph

_MODULES_AFTER = """
import json, sys
from storyboard.cli import main
try:
    main({argv!r}, standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``storyboard ARGV``."""
    proc = subprocess.run([sys.executable, "-c", _MODULES_AFTER.format(argv=argv)], capture_output=True,
                          text=True, check=True, timeout=120)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def _chain_board(write_board: Callable[..., Path], shots: int = 30) -> Path:
    lines = ["storyboard: 1", "vars: {hero: a keeper}", "shots:"]
    for i in range(shots):
        lines += [f"  - id: s{i}", f'    prompt: "Shot {i}: {{{{ hero }}}} walks"']
        if i % 5 == 0:
            lines.append("    image: null" if i % 10 == 0 else f"    image: '@s{i - 5}:first'")
    return write_board("\n".join(lines) + "\n")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_plan_loads_no_graph_library_no_media_and_rich_only_for_the_table(
        write_board: Callable[..., Path], as_json: bool) -> None:
    path = _chain_board(write_board)
    loaded = _modules_after(["plan", str(path), *(["--json"] if as_json else [])])
    assert "storyboard.plan" in loaded  # it did plan
    heavy = {"networkx", "httpx", "av", "PIL", "numpy", "storyboard.media", "storyboard.runner"}
    assert not heavy & loaded, f"plan loaded {sorted(heavy & loaded)}"
    assert ("rich" in loaded) is not as_json  # the table needs rich; --json does not


def test_graph_answers_as_networkx_would() -> None:
    edges = [("a", "b", "last"), ("a", "b", "first"), ("b", "c", "last"), ("a", "d", "first"),
             ("e", "d", "2.5")]
    g = ShotGraph("edcba", edges, {"a": 6, "b": 4, "c": 4, "d": 10, "e": 1})
    import networkx as nx

    ref = g.g
    index = {n: i for i, n in enumerate("edcba")}
    assert g.order() == list(nx.lexicographical_topological_sort(ref, key=index.__getitem__))
    assert g.depth() == len(nx.dag_longest_path(ref)) == 3
    for n in "abcde":
        assert g.parents(n) == list(ref.predecessors(n))
        assert g.children(n) == list(ref.successors(n))
        assert g.ancestors(n) == nx.ancestors(ref, n)
        assert g.descendants(n) == nx.descendants(ref, n)
    assert ref.edges["a", "b"]["label"] == "last, first"
    assert ShotGraph([], [], {}).depth() == 0
