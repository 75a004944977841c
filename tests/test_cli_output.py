"""What the CLI prints: one line per finished shot, a long plan as a summary with a
legend, --json as one thing per command, and plain prompts rendered without Jinja."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

import storyboard
from storyboard.cli import main
from storyboard.clikit import errors as _errors
from storyboard.errors import MediaError, SpecError, TemplateError, UsageError
from storyboard.options import parse_sets
from storyboard.plancmd import PLAN_ROWS_SHOWN
from storyboard.progress import PlainLines
from storyboard.prompts import PromptRenderer


def _long_board(write_board: Callable[..., Path], shots: int) -> Path:
    lines = ["storyboard: 1", "title: long", "defaults: {duration: 3}", "vars: {hero: a keeper, style: noir}",
             "shots:"]
    for i in range(shots):
        lines.append(f"  - id: s{i}")
        lines.append(f'    prompt: "Shot {i}: {{{{ hero }}}} walks, {{{{ style }}}}, {{{{ shot.id }}}}"')
        if i % 5 == 0:
            lines.append("    image: null")
    return write_board("\n".join(lines) + "\n")


def test_a_finished_shot_is_printed_once(write_board: Callable[..., Path], tmp_path: Path) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - {id: harbor, prompt: a harbor at dusk, duration: 3}
          - {id: lamp, prompt: a lamp, duration: 3}
    """)
    buf = io.StringIO()
    storyboard.render(storyboard.load(path), backend="animatic", on_event=PlainLines(stream=buf),
                      cache_dir=tmp_path / "cache")
    for shot in ("harbor", "lamp"):
        lines = [ln for ln in buf.getvalue().splitlines() if f"] {shot}: " in ln and "done" in ln]
        assert len(lines) == 1, buf.getvalue()
        assert "done in " in lines[0] and "$0" in lines[0]


def test_a_long_plan_prints_a_summary_and_its_first_and_last_rows(write_board: Callable[..., Path]) -> None:
    path = _long_board(write_board, 30)
    out = CliRunner().invoke(main, ["plan", str(path)])
    assert out.exit_code == 0, out.output
    shown = [f"s{i}" for i in range(30) if f" s{i} " in out.output]
    assert shown == [f"s{i}" for i in range(PLAN_ROWS_SHOWN)] + [f"s{i}" for i in range(30 - PLAN_ROWS_SHOWN, 30)]
    assert f"{30 - 2 * PLAN_ROWS_SHOWN} more shots (--all shows every row)" in out.output
    assert "30 shots: " in out.output
    # keys ending in "…" are explained
    assert "…" in out.output and "provisional" in out.output
    every = CliRunner().invoke(main, ["plan", str(path), "--all"])
    assert all(f" s{i} " in every.output for i in range(30))
    data = json.loads(CliRunner().invoke(main, ["plan", str(path), "--json"]).output)
    assert len(data["shots"]) == 30


def test_a_short_plan_without_provisional_keys_has_no_legend(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - {id: a, prompt: one}
    """)
    out = CliRunner().invoke(main, ["plan", str(path)])
    assert out.exit_code == 0 and "more shots" not in out.output and "provisional" not in out.output


def test_render_json_is_json_lines_in_a_dry_run_too(write_board: Callable[..., Path], tmp_path: Path) -> None:
    path = _long_board(write_board, 3)
    out = CliRunner().invoke(main, ["render", str(path), "--dry-run", "--json", "--cache-dir", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert len(lines) == 2
    event = json.loads(lines[0])
    assert event["event"] == "plan" and [s["id"] for s in event["shots"]] == ["s0", "s1", "s2"]
    assert json.loads(lines[1]) == {"event": "render_finished", "dry_run": True, "cost": "0", "exit_code": 0}


PLAIN = [
    "Shot 1: {{ hero }} walks, {{ style }}, {{ shot.id }}",
    "{{hero}}{{style}} at {{ shot.index }} and {{ shot.vars.mood }}",
    "{{ n }} and {{ f }} and {{ yes }}",
    "  padded {{ hero }}  ",
]
JINJA_ONLY = [
    "{{ hero|upper }}",
    "{{ shot.items }}",  # a dict method, as Jinja sees it
    "{{- hero }}",
    "{{ hero }} {% if yes %}x{% endif %}",
    "{{ shot }}",
    "{{ range }}",  # a global, not a variable
]


@pytest.mark.parametrize("source", PLAIN + JINJA_ONLY)
def test_prompts_render_as_jinja_would(source: str) -> None:
    context = {"hero": "a keeper", "style": "noir", "n": 3, "f": 0.5, "yes": True,
               "shot": {"id": "s1", "index": 1, "vars": {"mood": "dim"}}}
    renderer = PromptRenderer()
    env = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["range"] = renderer.env.globals["range"]
    assert renderer.render(inline=source, context=context) == env.from_string(source).render(context).strip()
    # plain substitutions compile nothing: compiling is what made a long plan slow
    assert (len(renderer._compiled) == 0) == (source in PLAIN)


def test_a_plain_prompt_with_an_undefined_name_is_still_jinjas_error(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        vars: {mood: dim}
        shots:
          - {id: a, prompt: "a lamp, {{ moood }}"}
    """)
    with pytest.raises(TemplateError) as e:
        storyboard.load(path)
    assert "'moood' is undefined" in str(e.value) and ":4:" in str(e.value)


def test_a_thousand_distinct_prompts_compile_no_template(write_board: Callable[..., Path]) -> None:
    board = storyboard.load(_long_board(write_board, 1000))
    assert board.prompts["s999"] == "Shot 999: a keeper walks, noir, s999"


def _printed(capsys: pytest.CaptureFixture[str], error: Exception) -> tuple[str, int]:
    with pytest.raises(SystemExit) as exit_, _errors():
        raise error
    return capsys.readouterr().err.strip(), int(exit_.value.code or 0)


def test_errors_are_told_apart_by_their_fields_not_their_text(capsys: pytest.CaptureFixture[str]) -> None:
    located = SpecError("unknown key 'moood'", file="film.yaml", line=3, column=5)
    assert _printed(capsys, located) == ("film.yaml:3:5: unknown key 'moood'", 1)
    # text that looks like FILE:LINE is not a location: only a SpecError's problems are
    looks_located = MediaError("clip:7: not a readable video")
    assert _printed(capsys, looks_located) == ("error: clip:7: not a readable video", 1)
    unlocated = SpecError("the storyboard is empty")
    assert _printed(capsys, unlocated) == ("error: <storyboard>: the storyboard is empty", 1)
    assert _printed(capsys, UsageError("bad value")) == ("error: bad value", 2)


def test_set_keeps_text_that_is_not_yaml() -> None:
    assert parse_sets(["x=[a, b", "y=3", "z=it's: odd: text"]) == {"x": "[a, b", "y": 3, "z": "it's: odd: text"}
