"""Issue 26 (item 10): `make_plan` and `plan_filter` under 80 lines, each part answering
one question; the modules they live in under docs/architecture.md's 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ["storyboard/plan.py", "storyboard/planned.py", "storyboard/media/_graphs.py",
         "storyboard/media/_filtergraph.py", "storyboard/shotinputs.py", "storyboard/variants.py",
         "storyboard/titles.py", "storyboard/board.py", "storyboard/spec/resolve.py", "storyboard/spec/messages.py"]
FUNCTION_LINES, MODULE_LINES = 80, 450


def long_functions(text: str, limit: int = FUNCTION_LINES) -> list[str]:
    """Every function (methods too) longer than ``limit`` lines, with its length."""
    return [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > limit]


@pytest.mark.parametrize("rel", FILES)
def test_functions_and_modules_are_small(rel: str) -> None:
    text = (ROOT / rel).read_text(encoding="utf-8")
    assert long_functions(text) == []
    assert len(text.splitlines()) <= MODULE_LINES


def test_make_plan_and_plan_filter_are_where_they_were_asked_for() -> None:
    from storyboard.media._graphs import plan_filter
    from storyboard.plan import make_plan

    assert callable(make_plan) and callable(plan_filter)


def test_the_check_sees_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [f"f: {FUNCTION_LINES + 1} lines"]
