"""The shot graph: shots are nodes, frame references are edges (parent → child).

Knows nodes, edges, order and cycles; nothing about video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import networkx as nx

from storyboard.errors import GraphError, Problem

# Locates an edge (parent, child) for a message: a Problem pointing at where the edge is
# written, or None when it is not written anywhere (an implicit edge).
EdgeLocator = Callable[[str, str, str], Problem | None]


class ShotGraph:
    """A DAG of shot ids. ``weights`` are node durations (for the critical path)."""

    def __init__(
        self, nodes: Iterable[str], edges: Iterable[tuple[str, str, str]], weights: Mapping[str, float]
    ) -> None:
        g: nx.DiGraph = nx.DiGraph()
        g.add_nodes_from(nodes)
        for u, v, label in edges:
            if g.has_edge(u, v):
                g.edges[u, v]["label"] += ", " + label
            else:
                g.add_edge(u, v, label=label)
        self.g = g
        self.weights = dict(weights)
        self._order: list[str] | None = None

    def check(self, file: str | None = None, locate: EdgeLocator | None = None) -> None:
        """Raise GraphError naming the shots of a cycle, if there is one. ``locate`` points
        the error at the edge that closes the cycle (the first such edge it can place)."""
        try:
            cycle = nx.find_cycle(self.g)
        except nx.NetworkXNoCycle:
            return
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
            index = {n: i for i, n in enumerate(self.g.nodes)}
            self._order = list(nx.lexicographical_topological_sort(self.g, key=index.__getitem__))
        return self._order

    def parents(self, node: str) -> list[str]:
        """The shots this one takes frames from."""
        return list(self.g.predecessors(node))

    def children(self, node: str) -> list[str]:
        """The shots that take frames from this one."""
        return list(self.g.successors(node))

    def ancestors(self, node: str) -> set[str]:
        """Every shot this one needs, directly or not."""
        return set(nx.ancestors(self.g, node))

    def descendants(self, node: str) -> set[str]:
        """Every shot that needs this one, directly or not."""
        return set(nx.descendants(self.g, node))

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
                ((best[p][0], p) for p in self.g.predecessors(n)),
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
        return len(nx.dag_longest_path(self.g)) if self.g.number_of_nodes() else 0

    def to_mermaid(self, labels: Mapping[str, str] | None = None) -> str:
        """The graph as a Mermaid flowchart."""
        lines = ["graph LR"]
        for n in self.g.nodes:
            label = (labels or {}).get(n, n).replace('"', "'")
            lines.append(f'  {_mid(n)}["{label}"]')
        for u, v, data in self.g.edges(data=True):
            sel = data.get("label")
            lines.append(f"  {_mid(u)} -->|{sel}| {_mid(v)}" if sel else f"  {_mid(u)} --> {_mid(v)}")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        lines = ["digraph storyboard {", "  rankdir=LR;"]
        for n in self.g.nodes:
            lines.append(f'  "{n}";')
        for u, v, data in self.g.edges(data=True):
            sel = data.get("label")
            lines.append(f'  "{u}" -> "{v}"' + (f' [label="{sel}"];' if sel else ";"))
        lines.append("}")
        return "\n".join(lines) + "\n"


def _mid(node: str) -> str:
    # mermaid ids: keep them simple and unambiguous
    return "s_" + node.replace("-", "__")
