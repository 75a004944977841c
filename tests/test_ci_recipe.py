"""The GitHub Actions recipe (docs/github-actions/render.yml): every `storyboard`
command in it parses against the real command line, the API key comes from a
secret, the cache is keyed by the plan hash, and films are uploaded."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from storyboard.cli import main

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "docs" / "github-actions" / "render.yml"
COMMAND = re.compile(r"(?<![\w/.-])storyboard\s+(?:validate|plan|render|report|graph|schema|init|cancel)\b[^|;&)>\n]*")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def env(workflow: dict[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for job in workflow["jobs"].values():
        out.update({k: str(v) for k, v in job.get("env", {}).items()})
    return out


def substitute(line: str, variables: dict[str, str]) -> str:
    """Fill in GitHub expressions and shell variables with plausible values."""
    line = re.sub(r"\$\{\{[^}]*\}\}", "x", line)

    def shell(m: re.Match[str]) -> str:
        value = variables.get(m.group(1) or m.group(2), "x")
        return "5" if "${{" in value and "budget" in value else ("x" if "${{" in value else value)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", shell, line)


def storyboard_commands(workflow: dict[Any, Any]) -> list[list[str]]:
    variables = env(workflow)
    found = []
    for step in steps(workflow):
        script = step.get("run", "")
        script = script.replace("\\\n", " ")
        for m in COMMAND.finditer(script):
            found.append(shlex.split(substitute(m.group(0), variables))[1:])
    return found


def test_the_workflow_runs_storyboard(workflow: dict[Any, Any]) -> None:
    commands = storyboard_commands(workflow)
    names = [c[0] for c in commands]
    assert {"validate", "plan", "render", "report"} <= set(names)


def test_every_command_line_parses(workflow: dict[Any, Any]) -> None:
    for args in storyboard_commands(workflow):
        with main.make_context("storyboard", list(args), resilient_parsing=False) as ctx:
            name, cmd, rest = main.resolve_command(ctx, list(args))
            assert cmd is not None and name is not None, args
            try:
                cmd.make_context(name, rest, parent=ctx)
            except click.UsageError as e:  # pragma: no cover - the failure message
                pytest.fail(f"storyboard {' '.join(args)}: {e.format_message()}")


def test_render_has_a_budget_and_uses_the_cache(workflow: dict[Any, Any]) -> None:
    render = [c for c in storyboard_commands(workflow) if c[0] == "render"]
    assert render
    for args in render:
        assert "--budget" in args
        assert args[args.index("--cache-dir") + 1] == ".storyboard"


def test_cache_is_keyed_by_the_plan_hash(workflow: dict[Any, Any]) -> None:
    plan_steps = [s for s in steps(workflow) if "storyboard plan" in s.get("run", "")]
    assert plan_steps and "--json" in plan_steps[0]["run"] and "board_hash" in plan_steps[0]["run"]
    plan_id = plan_steps[0]["id"]
    cache = [s for s in steps(workflow) if str(s.get("uses", "")).startswith("actions/cache@")]
    assert cache
    assert cache[0]["with"]["path"] == ".storyboard"
    assert f"steps.{plan_id}.outputs.hash" in cache[0]["with"]["key"]


def test_over_budget_fails_the_job(workflow: dict[Any, Any]) -> None:
    render = next(s for s in steps(workflow) if "storyboard render" in s.get("run", ""))
    assert '"$code" -eq 3' in render["run"] and 'exit "$code"' in render["run"]
    from storyboard.errors import BudgetError

    assert BudgetError.exit_code == 3


def test_films_are_uploaded(workflow: dict[Any, Any]) -> None:
    uploads = [s for s in steps(workflow) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert uploads and "films/" in uploads[0]["with"]["path"]


def test_the_key_comes_from_a_secret(workflow: dict[Any, Any]) -> None:
    assert env(workflow)["INFERENCE_API_KEY"] == "${{ secrets.INFERENCE_API_KEY }}"
    text = WORKFLOW.read_text(encoding="utf-8")
    for m in re.finditer(r"INFERENCE_API_KEY\s*[:=]\s*(\S.*)", text):
        assert m.group(1).strip().startswith("${{ secrets."), m.group(0)


def test_docs_name_the_workflow() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    assert "github-actions/render.yml" in doc and "secrets.INFERENCE_API_KEY" in doc
