"""The parts and what each may import (docs/architecture.md): a forbidden import fails here.

Every import counts, also one inside a function (a lazy import is still a dependency);
only imports under ``if TYPE_CHECKING:`` are skipped, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PURE = ("storyboard.spec", "storyboard.graph", "storyboard.prompts", "storyboard.plan", "storyboard.request",
        "storyboard.apps", "storyboard.shotinputs", "storyboard.stills", "storyboard.variants",
        "storyboard.narration", "storyboard.music", "storyboard.takes", "storyboard.textnodes", "storyboard.judging",
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


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import that runs, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
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


def _sources() -> list[Path]:
    out: list[Path] = []
    for folder in ("storyboard", "pipelines", "benchmarks"):
        out.extend(sorted((ROOT / folder).rglob("*.py")))
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
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from storyboard.cache import Cache\n",
     ["typing.TYPE_CHECKING"]),
])
def test_the_checker_sees_lazy_imports_and_skips_type_checking(tmp_path: Path, code: str,
                                                               expected: list[str]) -> None:
    path = ROOT / "storyboard" / "_probe_for_test.py"
    try:
        path.write_text(code)
        assert [t for _, t in imports(path)] == expected
    finally:
        path.unlink()
