"""The shot graph: shots are nodes, frame references are edges (parent → child).

Knows nodes, edges, order and cycles; nothing about video. One graph: the edges are
stored once, as dicts, and ``g`` is the same edges as a networkx ``DiGraph`` (built on
first use; the graph never changes after it is made, so the two cannot disagree).

- The plan's questions (order, parents, ancestors, critical path, depth) are answered on
  the dicts, the order by the standard library's ``graphlib``: importing networkx costs
  ~0.2 s, a fifth of a 1,000-shot plan.
- The render's questions go to networkx, where its 0.2 s is nothing next to a render:
  what a forced shot invalidates (``descendants``: ``nx.descendants``), the levels that
  progress counts (``levels``: ``nx.topological_generations``), and how much work hangs
  on each shot (``remaining``: longest-path lengths over the DAG), by which the scheduler
  starts the ready shot with the longest remaining path first. Naming a cycle's shots
  uses ``nx.find_cycle``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from storyboard.errors import GraphError, Problem

if TYPE_CHECKING:
    import networkx as nx

# Locates an edge (parent, child) for a message: a Problem pointing at where the edge is
# written, or None when it is not written anywhere (an implicit edge).
EdgeLocator = Callable[[str, str, str], Problem | None]


class ShotGraph:
    """A DAG of shot ids. ``weights`` are node durations (for the critical path)."""

    def __init__(
        self, nodes: Iterable[str], edges: Iterable[tuple[str, str, str]], weights: Mapping[str, float]
    ) -> None:
        # Insertion-ordered like networkx's: parents/children come out in the order written.
        self._succ: dict[str, dict[str, str]] = {n: {} for n in nodes}
        self._pred: dict[str, dict[str, str]] = {n: {} for n in self._succ}
        self._added: list[tuple[str, str]] = []
        for u, v, label in edges:
            for n in (u, v):
                if n not in self._succ:
                    self._succ[n], self._pred[n] = {}, {}
            if v in self._succ[u]:
                self._succ[u][v] += ", " + label
            else:
                self._succ[u][v] = label
                self._added.append((u, v))
            self._pred[v][u] = self._succ[u][v]
        self.weights = dict(weights)
        self._order: list[str] | None = None
        self._nx: nx.DiGraph | None = None

    @property
    def nodes(self) -> list[str]:
        """Every shot id, in the order given."""
        return list(self._succ)

    def edges(self) -> list[tuple[str, str, str]]:
        """Every edge as (parent, child, label), by parent in node order, as networkx lists them."""
        return [(u, v, label) for u, out in self._succ.items() for v, label in out.items()]

    @property
    def g(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (edge attribute ``label``), built on first use."""
        if self._nx is None:
            import networkx as nx

            g: nx.DiGraph = nx.DiGraph()
            g.add_nodes_from(self._succ)
            g.add_edges_from((u, v, {"label": self._succ[u][v]}) for u, v in self._added)
            self._nx = g
        return self._nx

    def check(self, file: str | None = None, locate: EdgeLocator | None = None) -> None:
        """Raise GraphError naming the shots of a cycle, if there is one. ``locate`` points
        the error at the edge that closes the cycle (the first such edge it can place)."""
        if self._order is not None or (order := self._topological()) is not None:
            self._order = self._order or order
            return
        import networkx as nx

        cycle = nx.find_cycle(self.g)
        nodes = [u for u, _ in cycle]
        fallback: Problem | None = None
        # Try each edge as the one that closes the cycle, the one found last first.
        for k in range(len(nodes), 0, -1):
            order = nodes[k:] + nodes[:k]
            message = "shot cycle: " + " -> ".join([*order, order[0]]) + "; a shot cannot need its own frames"
            located = locate(order[-1], order[0], message) if locate is not None else None
            if located is not None:
                raise GraphError([located])
            fallback = fallback or Problem(message, file)
        assert fallback is not None
        raise GraphError([fallback])

    def order(self) -> list[str]:
        """Topological order, stable: among ready shots, the earliest in the file first."""
        if self._order is None:
            order = self._topological()
            if order is None:
                self.check()
            assert order is not None
            self._order = order
        return self._order

    def _topological(self) -> list[str] | None:
        """The stdlib's TopologicalSorter, ties to the earliest in the file; None on a cycle."""
        index = {n: i for i, n in enumerate(self._succ)}
        sorter: TopologicalSorter[str] = TopologicalSorter({n: self._pred[n] for n in self._succ})
        try:
            sorter.prepare()
        except CycleError:
            return None
        ready = [(index[n], n) for n in sorter.get_ready()]
        heapq.heapify(ready)
        out: list[str] = []
        while ready:
            _, n = heapq.heappop(ready)
            out.append(n)
            sorter.done(n)
            for c in sorter.get_ready():
                heapq.heappush(ready, (index[c], c))
        return out

    def parents(self, node: str) -> list[str]:
        """The shots this one takes frames from."""
        return list(self._pred[node])

    def children(self, node: str) -> list[str]:
        """The shots that take frames from this one."""
        return list(self._succ[node])

    def ancestors(self, node: str) -> set[str]:
        """Every shot this one needs, directly or not."""
        return _reach(self._pred, node)

    def descendants(self, node: str) -> set[str]:
        """Every shot that needs this one, directly or not (``nx.descendants``): what
        regenerating it invalidates."""
        import networkx as nx

        return set(nx.descendants(self.g, node))

    def levels(self, among: Iterable[str] | None = None) -> tuple[tuple[str, ...], ...]:
        """The shots by level (``nx.topological_generations``): level 0 needs no other
        shot, each later level needs only shots of the levels before it; file order
        within a level. ``among``: only these shots (a level left empty is dropped)."""
        import networkx as nx

        index = {n: i for i, n in enumerate(self._succ)}
        keep = set(self._succ) if among is None else set(among)
        levels = (sorted((n for n in level if n in keep), key=index.__getitem__)
                  for level in nx.topological_generations(self.g))
        return tuple(tuple(level) for level in levels if level)

    def remaining(self, weights: Mapping[str, float]) -> dict[str, float]:
        """For each shot, the longest path by summed ``weights`` from it (itself
        included) to the end of the graph: the work that still hangs on it. The largest
        value is the critical path's length (``nx.dag_longest_path_length`` with node
        weights)."""
        import networkx as nx

        out: dict[str, float] = {}
        for n in reversed(list(nx.topological_sort(self.g))):
            out[n] = weights.get(n, 0.0) + max((out[c] for c in self.g.successors(n)), default=0.0)
        return out

    def needed_for(self, targets: Iterable[str]) -> set[str]:
        """The targets and everything they need frames from."""
        out: set[str] = set()
        for t in targets:
            if t not in out:
                out.add(t)
                out |= self.ancestors(t)
        return out

    def critical_path(self) -> tuple[list[str], float]:
        """The longest chain by summed node weight, and its length."""
        best: dict[str, tuple[float, str | None]] = {}
        for n in self.order():
            w = self.weights.get(n, 0.0)
            prev = max(
                ((best[p][0], p) for p in self._pred[n]),
                default=(0.0, None),
            )
            best[n] = (prev[0] + w, prev[1])
        if not best:
            return [], 0.0
        end = max(best, key=lambda n: best[n][0])
        length = best[end][0]
        path: list[str] = []
        cur: str | None = end
        while cur is not None:
            path.append(cur)
            cur = best[cur][1]
        return path[::-1], length

    def depth(self) -> int:
        """The number of shots in the longest chain."""
        longest: dict[str, int] = {}
        for n in self.order():
            longest[n] = 1 + max((longest[p] for p in self._pred[n]), default=0)
        return max(longest.values(), default=0)

    def to_mermaid(self, labels: Mapping[str, str] | None = None) -> str:
        """The graph as a Mermaid flowchart."""
        lines = ["graph LR"]
        for n in self._succ:
            label = (labels or {}).get(n, n).replace('"', "'")
            lines.append(f'  {_mid(n)}["{label}"]')
        for u, v, sel in self.edges():
            lines.append(f"  {_mid(u)} -->|{sel}| {_mid(v)}" if sel else f"  {_mid(u)} --> {_mid(v)}")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        lines = ["digraph storyboard {", "  rankdir=LR;"]
        for n in self._succ:
            lines.append(f'  "{n}";')
        for u, v, sel in self.edges():
            lines.append(f'  "{u}" -> "{v}"' + (f' [label="{sel}"];' if sel else ";"))
        lines.append("}")
        return "\n".join(lines) + "\n"


def _reach(adjacent: Mapping[str, Mapping[str, str]], node: str) -> set[str]:
    """Every node reachable from ``node`` along ``adjacent`` (itself excluded)."""
    seen: set[str] = set()
    todo = list(adjacent[node])
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(adjacent[n])
    return seen


def _mid(node: str) -> str:
    # mermaid ids: keep them simple and unambiguous
    return "s_" + node.replace("-", "__")
