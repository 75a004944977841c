"""``--set KEY=VALUE`` with a key no template reads is warned of, with a did-you-mean:
the names are recorded while the prompts render, so a name read only inside an imported
macro, or from ``vars`` handed whole to a macro, or only by a ``say:`` line, counts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import storyboard

ROOT = Path(__file__).resolve().parents[1]

MACROS = """
{% macro hero_in(v) -%}
{{ v.hero }} in {{ v['place'] }}
{%- endmacro %}
{% macro everything(v) -%}
{% for k, x in v.items() %}{{ k }}={{ x }} {% endfor %}
{%- endmacro %}
"""


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storyboard.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=cwd, timeout=240)


@pytest.fixture
def macro_board(write_board: Callable[..., Path], tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "mine.j2").write_text(MACROS)
    return write_board("""
        storyboard: 1
        templates: [templates]
        vars: {hero: a keeper, place: a harbor, mood: calm}
        shots:
          - id: a
            image: null
            prompt: "{% from 'mine.j2' import hero_in %}{{ hero_in(vars) }} at dusk"
            say: "The {{ mood }} sea."
    """)


def test_names_read_through_a_macro_given_vars_whole_count_and_the_rest_are_warned(macro_board: Path) -> None:
    board = storyboard.load(macro_board, vars={"hero": "x", "plase": "y", "mood": "z"})
    assert board.names_read is not None and {"hero", "place", "mood"} <= board.names_read
    assert board.unused_vars(["hero", "place", "mood", "plase"]) == [("plase", "place")]


def test_a_template_reading_every_var_warns_of_none(write_board: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "mine.j2").write_text(MACROS)
    path = write_board("""
        storyboard: 1
        templates: [templates]
        vars: {hero: a keeper}
        shots:
          - id: a
            image: null
            prompt: "{% from 'mine.j2' import everything %}{{ everything(vars) }}"
    """)
    assert storyboard.load(path, vars={"anything": 1}).unused_vars(["anything"]) == []


@pytest.mark.parametrize("command", ["validate", "plan", "render"])
def test_every_command_warns_of_an_unused_set_on_harbor(command: str, tmp_path: Path) -> None:
    board = ROOT / "examples" / "harbor.yaml"
    extra = ["--dry-run"] if command == "render" else []
    out = _cli(command, str(board), "--set", "plce=a quay", "--set", "hero=a gull", *extra, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("warning: --set")]
    assert warnings == ["warning: --set plce: no prompt uses 'plce'; did you mean 'place'?"], out.stderr


def test_the_render_command_warns_through_macros(macro_board: Path) -> None:
    out = _cli("render", str(macro_board), "--dry-run", "--set", "moood=grey", "--set", "place=a quay")
    assert out.returncode == 0, out.stderr
    assert "warning: --set moood: no prompt uses 'moood'; did you mean 'mood'?" in out.stderr
    assert "--set place" not in out.stderr  # read inside the macro, from vars handed to it whole
