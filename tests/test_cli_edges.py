"""The command's edges: ``render --json`` always ends with one final event, ``cancel``
without a terminal, the command registry, and the face's imports (no circle, no private
module of another package)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakeserver import FakeInference
from storyboard.cache import open_cache

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-edges-91ab"
BOARD = """
storyboard: 1
defaults: {mode: std, duration: 3}
shots:
  - id: harbor
    prompt: a harbor at dusk
    image: null
  - id: keeper
    prompt: the keeper looks up
    image: null
"""
LONG_LINE = " ".join(["the keeper climbs and climbs the long stair"] * 6)


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.05) as server:
        yield server


def _cli(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
         stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "storyboard.cli", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, stdin=stdin, timeout=240)


def _finals(stdout: str) -> list[dict[str, object]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert events, "no JSON on stdout"
    finals = [e for e in events if e["event"] in ("render_finished", "render_failed")]
    assert len(finals) == 1 and finals[0] is events[-1], stdout
    return finals


def _bad_spec(path: Path) -> list[str]:
    path.write_text(BOARD.replace("duration: 3}", "duration: 3, colour: red}"))
    return []


def _long_line(path: Path) -> list[str]:
    path.write_text(BOARD + f'    say: "{LONG_LINE}"\n')
    return []


@pytest.mark.parametrize(("case", "args", "code", "words"), [
    ("invalid storyboard", ["--backend", "animatic"], 1, ["film.yaml:3:36:", "colour"]),
    ("unknown --force", ["--force", "nosuch"], 2, ["no shot 'nosuch'"]),
    ("bad --budget", ["--budget", "lots"], 2, ["--budget"]),
    ("bad --concurrency", ["-j", "0"], 2, ["0 is not a valid number"]),
    ("over budget", ["--backend", "inference", "--budget", "0.01"], 3, ["over budget"]),
    ("line too long for its shot", ["--backend", "animatic"], 1, ["film.yaml:", "the shot has 3.00 s"]),
    ("shot failed", ["--backend", "inference"], 1, ["content policy"]),
    ("no API key", ["--backend", "inference", "--no-key"], 1, ["INFERENCE_API_KEY"]),
])
def test_render_json_ends_with_one_render_failed(case: str, args: list[str], code: int, words: list[str],
                                                 fake: FakeInference, tmp_path: Path) -> None:
    path = tmp_path / "film.yaml"
    path.write_text(BOARD)
    if case == "invalid storyboard":
        _bad_spec(path)
    if case == "line too long for its shot":
        _long_line(path)
    if case == "shot failed":
        fake.fail_prompt = "the keeper"
    env = {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    if "--no-key" in args:
        args = [a for a in args if a != "--no-key"]
        env["INFERENCE_API_KEY"] = ""
    out = _cli(["render", str(path), "--json", "--cache-dir", str(tmp_path / "c"), *args], env=env)
    assert out.returncode == code, (out.stdout, out.stderr)
    final = _finals(out.stdout)[0]
    assert final["event"] == "render_failed" and final["exit_code"] == code, final
    message = str(final["message"])
    assert all(w in message for w in words), message
    assert KEY not in out.stdout + out.stderr


def test_render_json_ends_with_render_finished(tmp_path: Path) -> None:
    path = tmp_path / "film.yaml"
    path.write_text(BOARD)
    out = _cli(["render", str(path), "--json", "--cache-dir", str(tmp_path / "c")])
    assert out.returncode == 0, out.stderr
    final = _finals(out.stdout)[0]
    assert final["event"] == "render_finished" and Path(str(final["film"])).is_file()


def test_cancel_without_a_terminal_cancels_nothing_and_says_pass_yes(fake: FakeInference, tmp_path: Path) -> None:
    path = tmp_path / "film.yaml"
    path.write_text(BOARD)
    task = fake.create_task({"app": "klingai/video-v3", "input": {"prompt": "a harbor at dusk", "duration": 3}})
    open_cache(path, None).remember("k" * 64, "task_id", task.id, shot="harbor", storyboard=str(path))
    env = {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    out = _cli(["cancel", str(path)], env=env)  # stdin is /dev/null
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "nothing cancelled: no terminal to confirm; pass --yes"
    assert "internal error" not in out.stderr and not fake.calls_to("POST", f"/tasks/{task.id}/cancel")
    assert len(list(open_cache(path, None).journal_entries())) == 1
    yes = _cli(["cancel", str(path), "--yes"], env=env)
    assert yes.returncode == 0 and "harbor: cancelled" in yes.stdout, yes.stderr


def test_every_registered_command_loads_and_help_lists_it() -> None:
    from click.testing import CliRunner

    from storyboard.cli import COMMANDS, main

    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0, out.output
    for name in COMMANDS:
        assert f"  {name} " in out.output, name
        assert main.get_command(None, name) is not None  # type: ignore[arg-type]


def _face_modules() -> list[Path]:
    return [p for p in sorted((ROOT / "storyboard").glob("*.py"))
            if p.stem in ("cli", "clikit", "appscmd", "plancmd", "rendercmd", "doctor")]


def test_no_command_module_imports_cli_or_a_private_module_of_another_package() -> None:
    from tests.test_architecture import imports

    bad = []
    for path in _face_modules():
        for line, target in imports(path):
            parts = target.split(".")
            if path.stem != "cli" and target.startswith("storyboard.cli") and not target.startswith(
                    "storyboard.clikit"):
                bad.append(f"{path.name}:{line}: {target} (a circle back to cli)")
            if target.startswith("storyboard.") and any(p.startswith("_") and not p.startswith("__")
                                                        for p in parts[1:-1]):
                bad.append(f"{path.name}:{line}: {target} (another package's private module)")
    assert bad == []


def test_the_face_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in _face_modules()}
    assert sizes and max(sizes.values()) <= 450, sizes


@pytest.mark.parametrize("command", ["plan"])
def test_plan_help_does_not_promise_to_generate(command: str) -> None:
    from click.testing import CliRunner

    from storyboard.cli import main

    out = CliRunner().invoke(main, [command, "--help"])
    assert out.exit_code == 0
    assert "Regenerate" not in out.output and "Render on" not in out.output, out.output


def test_cache_dir_help_mentions_urls() -> None:
    from click.testing import CliRunner

    from storyboard.cli import main

    for command in ("plan", "render", "cancel", "report"):
        out = CliRunner().invoke(main, [command, "--help"])
        assert "s3://" in out.output, command



def _every_app() -> list[str]:
    from storyboard import apps

    out = []
    for name in apps.known_apps():
        p = apps.profile(name)
        assert p is not None
        out += [f"{name}@{v}" for v in sorted(p.versions)]
    return out


@pytest.mark.parametrize("app", _every_app())
def test_apps_show_names_only_what_exists_and_prices_only_what_the_version_takes(app: str) -> None:
    from click.testing import CliRunner

    from storyboard.cli import main

    out = CliRunner().invoke(main, ["apps", "show", app])
    assert out.exit_code == 0, out.output
    # a path is in the repo, a published price file (../shared/apps) or named in inference-sh/grid
    published = ROOT.parent / "shared" / "apps"
    for grid, path in re.findall(r"(inference-sh/grid )?((?:\.\.?/|\b[\w.-]+/)[\w./-]*\.(?:md|json|yaml)\b)",
                                 out.output):
        assert grid or (ROOT / path).exists() or (published / path).exists(), \
            f"{app} points at {path}, which is not in the repo nor among the apps' published files"
    missing = set()
    for line in out.output.splitlines():
        if line.startswith("not in this version: "):
            missing = set(line.split(": ", 1)[1].split(", "))
        if line.startswith("price by "):
            by = set(line.split()[2].rstrip(":").split("/"))
            assert not by & missing, f"{app}: {line!r} after 'not in this version: {', '.join(sorted(missing))}'"


def test_apps_suggests_only_options_it_takes() -> None:
    from click.testing import CliRunner

    from storyboard.cli import main

    for args in (["show", "klingai/video-v3", "--live"], ["pull", "klingai/video-v3"]):
        out = CliRunner().invoke(main, ["apps", *args], env={"INFERENCE_API_KEY": ""})
        assert out.exit_code == 1 and "INFERENCE_API_KEY" in out.output and "Traceback" not in out.output
        takes = set(re.findall(r"--[a-z-]+", CliRunner().invoke(main, ["apps", args[0], "--help"]).output))
        suggested = set(re.findall(r"--[a-z-]+", out.output))
        assert suggested <= takes, (args, suggested - takes)


def _tables(text: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.parametrize("doc", ["docs/scale.md", "docs/cli.md", "README.md"])
def test_every_docs_table_has_one_header_and_rows_as_wide(doc: str) -> None:
    for table in _tables((ROOT / doc).read_text()):
        width = table[0].count("|")
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", table[1]), table[:2]
        separators = [row for row in table if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", row)]
        assert len(separators) == 1, table[:3]
        assert all(row.count("|") == width for row in table), table


def test_docs_cli_lists_every_command_and_render_option() -> None:
    from storyboard.cli import main

    text = (ROOT / "docs" / "cli.md").read_text()
    synopsis = text.split("```", 2)[1]
    for name in main.list_commands(None):  # type: ignore[arg-type]
        assert f"storyboard {name}" in synopsis, name
    assert "--app OLD=NEW" in synopsis


def test_install_commands_use_the_distribution_name() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = project["name"]
    assert name != "storyboard"  # taken on the package index by another project
    extras = set(project["optional-dependencies"])
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / ".ci" / "run",
             *(ROOT / "storyboard").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]
    seen = 0
    for path in files:
        for m in re.finditer(r"pip install [\"']?([\w.-]+)(?:\[([\w,]+)\])?", path.read_text()):
            if m.group(1) in ("-e", "-q", ".", "NAME") or m.group(1).startswith((".", "-")):
                continue
            if m.group(1).startswith("storyboard"):
                seen += 1
                assert m.group(1) == name, f"{path.relative_to(ROOT)}: {m.group(0)}"
                assert set((m.group(2) or "").split(",")) - {""} <= extras, m.group(0)
    assert seen >= 5


def test_the_readme_try_against_a_server_section_works_as_written(tmp_path: Path) -> None:
    import shlex
    import shutil

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try against a server", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```")[1::2]
    start = next(ln for ln in blocks[0].splitlines() if ln.strip())
    assert start.startswith("python -m fakeserver") and "INFERENCE_BASE_URL" in section
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, *shlex.split(start)[1:]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        command = None
        for line in blocks[1].splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                env[name] = url if "PORT" in value else value
            elif line.startswith("storyboard "):
                command = shlex.split(line)
        assert command is not None and env.get("INFERENCE_BASE_URL") == url and env.get("INFERENCE_API_KEY")
        out = subprocess.run([sys.executable, "-m", "storyboard.cli", *command[1:]], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stderr
        assert "paid $" in out.stdout and (tmp_path / "examples" / "out" / "harbor.mp4").is_file()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def test_the_two_assembly_paths_share_one_value_object_not_eleven_parameters() -> None:
    import inspect

    from storyboard.media import _assemble

    render = inspect.signature(_assemble._render).parameters
    copying = inspect.signature(_assemble._render_copying).parameters
    assert len(render) <= 4 and len(copying) <= 4, (list(render), list(copying))
    shared = set(render) & set(copying)
    assert shared == {"job"}, shared


@pytest.mark.slow
def test_pipelines_are_clean_under_mypy_strict() -> None:
    from mypy import api

    out, err, code = api.run(["--strict", "--no-error-summary", str(ROOT / "pipelines")])
    assert code == 0, out + err


def test_render_json_interrupted_ends_with_render_failed(fake: FakeInference, tmp_path: Path) -> None:
    import signal

    fake.latency = 30.0  # the shots are in flight when the interrupt comes
    path = tmp_path / "film.yaml"
    path.write_text(BOARD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    proc = subprocess.Popen([sys.executable, "-m", "storyboard.cli", "render", str(path), "--json", "--backend",
                             "inference", "--cache-dir", str(tmp_path / "c")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"shot_started"' in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    final = _finals("".join(lines) + rest)[0]
    assert final["event"] == "render_failed" and final["exit_code"] == 130 and "interrupted" in str(final["message"])
