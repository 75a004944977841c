"""The parts and what each may import (docs/architecture.md): a forbidden import fails here.

Every import counts, also one inside a function (a lazy import is still a dependency);
only imports under ``if TYPE_CHECKING:`` are skipped, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]

PURE = ("storyboard.spec", "storyboard.graph", "storyboard.prompts", "storyboard.readnames", "storyboard.plan",
        "storyboard.request",
        "storyboard.apps", "storyboard.shotinputs", "storyboard.stills", "storyboard.variants",
        "storyboard.narration", "storyboard.music", "storyboard.takes", "storyboard.planned", "storyboard.titles",
        "storyboard.shotcontext", "storyboard.textnodes", "storyboard.judging",
        "storyboard.facts", "storyboard.errors")
EFFECTS = ("storyboard.backends", "storyboard.media", "storyboard.runner", "storyboard.cache")
RULES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (PURE, EFFECTS),
    (("storyboard.media",), ("storyboard.runner", "storyboard.backends", "storyboard.cache")),
    (("storyboard.backends",), ("storyboard.runner",)),
    (("storyboard.cache",), ("storyboard.backends", "storyboard.media", "storyboard.runner")),
    (("storyboard.events",), ("storyboard.runner", "storyboard.backends", "storyboard.media", "storyboard.cache")),
    (("pipelines",), ("storyboard.cli",)),
    (("benchmarks",), ("tests",)),
]


def _module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import that runs, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        stack.extend(ast.iter_child_nodes(node))


def _sources(root: Path = ROOT) -> list[Path]:
    out: list[Path] = []
    for folder in ("storyboard", "pipelines", "benchmarks"):
        out.extend(sorted((root / folder).rglob("*.py")))
    return out


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations() -> list[str]:
    """Every forbidden import in the tree, as 'file:line: part imports what'."""
    found = []
    for path in _sources():
        module = _module_name(path)
        for sources, forbidden in RULES:
            if not _under(module, sources):
                continue
            for line, target in imports(path):
                if _under(target, forbidden):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
    return found


def test_no_forbidden_imports() -> None:
    assert violations() == []


def test_pipelines_use_only_the_public_api() -> None:
    bad = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        for line, target in imports(path):
            if (target.startswith("storyboard.") and target.count(".") > 1) or (
                    target.startswith("storyboard.") and not _is_public(target)):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert bad == []


def _is_public(target: str) -> bool:
    import storyboard

    name = target.split(".", 1)[1]
    return name in storyboard.__all__


@pytest.mark.parametrize(("code", "expected"), [
    ("from storyboard.media import probe\n", ["storyboard.media.probe"]),
    ("def f():\n    import storyboard.runner\n", ["storyboard.runner"]),
    ("from .media import probe\nfrom . import errors\n", ["storyboard.media.probe", "storyboard.errors"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from storyboard.cache import Cache\n",
     ["typing.TYPE_CHECKING"]),
])
def test_the_checker_sees_lazy_imports_and_skips_type_checking(tmp_path: Path, code: str,
                                                               expected: list[str]) -> None:
    package = tmp_path / "storyboard"  # a temporary package: nothing is written into the tree
    package.mkdir()
    path = package / "_probe_for_test.py"
    path.write_text(code)
    assert sorted(t for _, t in imports(path, tmp_path)) == sorted(expected)


# ---------------------------------------------------------------- import circles

# Circles allowed for now, each with why (none today: issue 26, item 8 removed the last).
# Any other circle fails, and so does an entry here that is no longer a circle.
KNOWN_CIRCLES: dict[frozenset[str], str] = {}


def import_graph(root: Path = ROOT) -> nx.DiGraph:
    """Module -> module for every import that runs (lazy ones included; TYPE_CHECKING not),
    over storyboard/, pipelines/ and benchmarks/; a name imported from a module is an edge
    to that module."""
    modules = {_module_name(path, root): path for path in _sources(root)}
    graph = nx.DiGraph()
    for module, path in modules.items():
        graph.add_node(module)
        for _, target in imports(path, root):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                graph.add_edge(module, target)
    return graph


def circles(graph: nx.DiGraph) -> list[list[str]]:
    """Every import circle: the strongly connected components of more than one module,
    and a module that imports itself."""
    found = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    found += [[m] for m in nx.nodes_with_selfloops(graph)]
    return sorted(found)


def test_no_import_circles() -> None:
    found = circles(import_graph())
    unknown = [c for c in found if frozenset(c) not in KNOWN_CIRCLES]
    assert unknown == [], "import circles: " + "; ".join(" <-> ".join(c) for c in unknown)
    gone = [sorted(k) for k in KNOWN_CIRCLES if list(sorted(k)) not in found]
    assert gone == [], f"no longer circles: take them out of KNOWN_CIRCLES: {gone}"


def test_the_circle_check_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "storyboard"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from storyboard.b import B\n")
    (package / "b.py").write_text("def f():\n    from storyboard import a  # lazy: still a circle\n")
    (package / "c.py").write_text("from storyboard.d import D\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n")
    assert circles(import_graph(tmp_path)) == [["storyboard.a", "storyboard.b"]]
