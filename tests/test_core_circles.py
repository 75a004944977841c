"""Issue 26 (item 8): no import circles in the pure core, lazy imports included: the
board → narration → board (`_shot_context`) and board → plan → narration circles, and
`spec/stills` ↔ `spec/resolve` (a lazily imported `Flaw`), are gone."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from tests.test_architecture import ROOT, _module_name, imports

CORE = ("storyboard.board", "storyboard.narration", "storyboard.plan", "storyboard.planned", "storyboard.music",
        "storyboard.stills", "storyboard.shotinputs", "storyboard.variants", "storyboard.titles",
        "storyboard.shotcontext", "storyboard.spec")


def import_graph(folder: Path) -> nx.DiGraph:
    """Module → module for every import that runs (lazy ones too), by the module it names."""
    modules = {_module_name(p): p for p in sorted(folder.rglob("*.py"))}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for name, path in modules.items():
        for _, target in imports(path):
            while target and target not in modules:  # "pkg.mod.Name" → "pkg.mod"
                target = target.rpartition(".")[0]
            if target and target != name:
                g.add_edge(name, target)
    return g


def _core(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CORE)


def test_the_core_has_no_import_circle() -> None:
    circles = [sorted(c) for c in nx.strongly_connected_components(import_graph(ROOT / "storyboard"))
               if len(c) > 1 and any(_core(m) for m in c)]
    assert circles == []


def test_the_check_sees_a_lazy_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import y\n")
    import tests.test_architecture as arch

    monkeypatch.setattr(arch, "ROOT", tmp_path)  # _module_name names modules relative to ROOT
    g = import_graph(pkg)
    assert [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1] == [["pkg.a", "pkg.b"]]
