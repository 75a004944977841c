"""What storyboard lets out: the API key goes to the API's own host and nowhere else —
not to disk, logs, reports, journals, error messages or --verbose output; templates run
in a sandbox; file references stay inside the storyboard's folder.

Every address used here is on 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.cli import main
from storyboard.errors import RenderFailed, SpecError
from storyboard.events import Event
from storyboard.prompts import PromptError, PromptRenderer
from storyboard.runner import Pipeline
from tests.helpers import BOARD, KEY, SHOTS, backend_for

SECRET_FILE_TEXT = "TOP-SECRET-file-content-1234"


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    # Uploads and outputs live on a second loopback host, as on a storage service.
    with FakeInference(api_key=KEY, latency=0.3, files_host="127.0.0.2") as server:
        yield server


@pytest.fixture
def board_path(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("start.png")
    return write_board(BOARD)


def cli(board: Path, fake: FakeInference, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("INFERENCE_API_KEY", "INFERENCE_BASE_URL")}
    env["INFERENCE_BASE_URL"] = fake.url
    if key is not None:
        env["INFERENCE_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "storyboard.cli", "render", str(board), "--backend", "inference", "--verbose", *args],
        env=env, capture_output=True, text=True, timeout=180,
    )


def files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle.encode() in p.read_bytes()]


# ---------------------------------------------------------------- the key


def test_key_is_nowhere_after_full_failed_and_refused_renders(
    fake: FakeInference, board_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outputs: list[str] = []

    # 1. a full render, --verbose (DEBUG logs of storyboard, httpx and httpcore on stderr)
    done = cli(board_path, fake)
    assert done.returncode == 0, done.stderr
    assert "DEBUG" in done.stderr, "expected --verbose to log at DEBUG"
    outputs += [done.stdout, done.stderr]
    assert (board_path.parent / "out" / "film.mp4.render.json").exists()

    # 2. a failed render (one task fails), --verbose
    board_path.write_text(BOARD.replace("a storm gathers", "a storm breaks"))
    fake.fail_prompt = "storm breaks"
    failed = cli(board_path, fake)
    assert failed.returncode == 1, failed.stderr
    outputs += [failed.stdout, failed.stderr]

    # 3. a render left mid-wait (journal written), in process, logging at DEBUG
    caplog.set_level(logging.DEBUG)
    fake.fail_prompt, fake.latency = None, 3.0
    board_path.write_text(BOARD.replace("a storm gathers", "a storm passes"))
    with pytest.raises(RenderFailed) as waited:
        asyncio.run(Pipeline(storyboard.load(board_path),
                             backend=backend_for(fake, task_timeout=0.2, stall_timeout=0.2)).run())
    outputs.append(str(waited.value))
    journal = list((board_path.parent / ".storyboard" / "journal").glob("*.json"))
    assert journal, "expected a journalled task"

    # 4. the key refused (HTTP 401), --verbose
    fake.api_key = "sk-the-server-wants-another"
    board_path.write_text(BOARD.replace("a storm gathers", "a storm ends"))
    refused = cli(board_path, fake)
    assert refused.returncode == 1
    assert "the API key was refused (HTTP 401); check INFERENCE_API_KEY" in refused.stderr
    outputs += [refused.stdout, refused.stderr]

    assert caplog.records
    outputs += [r.getMessage() for r in caplog.records]
    for text in outputs:
        assert KEY not in text
    assert files_holding(tmp_path, KEY) == []
    for part in ("journal", "index", "clips"):
        assert (board_path.parent / ".storyboard" / part).exists()


def test_wrong_key_says_401_without_the_key(fake: FakeInference, board_path: Path) -> None:
    wrong = "sk-test-WRONG-1a2b3c"
    result = CliRunner().invoke(main, ["render", str(board_path), "--backend", "inference"],
                                env={"INFERENCE_API_KEY": wrong, "INFERENCE_BASE_URL": fake.url})
    assert result.exit_code == 1, result.output
    assert "HTTP 401" in result.output and "INFERENCE_API_KEY" in result.output
    assert wrong not in result.output and KEY not in result.output and "Traceback" not in result.output
    assert fake.submissions == []


def test_missing_key_is_refused_before_any_request(fake: FakeInference, board_path: Path) -> None:
    result = CliRunner().invoke(main, ["render", str(board_path), "--backend", "inference"],
                                env={"INFERENCE_API_KEY": None, "INFERENCE_BASE_URL": fake.url})
    assert result.exit_code == 1, result.output
    assert "INFERENCE_API_KEY" in result.output and "Traceback" not in result.output
    assert fake.calls == []
    assert not (board_path.parent / "out").exists()


def test_key_goes_only_to_the_api_host(fake: FakeInference, board_path: Path) -> None:
    result = asyncio.run(Pipeline(storyboard.load(board_path), backend=backend_for(fake)).run())
    assert result.film is not None and len(fake.submissions) == SHOTS
    api = [c for c in fake.calls if c.server == "api"]
    files = [c for c in fake.calls if c.server == "files"]
    assert {c.method for c in files} == {"PUT", "GET"}  # uploads and downloads on 127.0.0.2
    assert all(c.headers.get("authorization") == f"Bearer {KEY}" for c in api)
    assert all("authorization" not in c.headers for c in files), [c.path for c in files]
    assert all(KEY not in str(c.headers) and KEY.encode() not in c.body for c in files)


def test_key_not_sent_after_a_redirect_to_another_host(write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\ndefaults: {duration: 3, mode: std}\nshots:\n  - {id: a, prompt: a harbor}\n")
    with FakeInference(api_key=KEY, latency=0.2, files_host="127.0.0.2", redirect_outputs=True) as fake:
        result = asyncio.run(Pipeline(storyboard.load(path), backend=backend_for(fake)).run())
        assert result.film is not None
        redirected = [c for c in fake.calls if c.server == "files" and c.path.startswith("/outputs/")]
        assert redirected and all("authorization" not in c.headers for c in redirected)


def test_key_is_not_in_repr_or_errors(fake: FakeInference, board_path: Path) -> None:
    backend = backend_for(fake)
    assert KEY not in repr(backend) and "key=set" in repr(backend)
    # the service echoes the key back in a task's error: storyboard's error must blank it
    fake.fail_prompt = "harbor"
    fake.fail_error = f"upstream refused: Authorization: Bearer {KEY}"
    events: list[Event] = []
    with pytest.raises(RenderFailed) as err:
        asyncio.run(Pipeline(storyboard.load(board_path), backend=backend, on_event=events.append).run())
    said = str(err.value) + "\n" + "\n".join(repr(e) for e in events)
    assert "upstream refused: Authorization: Bearer ***" in str(err.value), str(err.value)
    assert KEY not in said


# ---------------------------------------------------------------- the template sandbox


@pytest.fixture
def renderer(tmp_path: Path) -> PromptRenderer:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_FILE_TEXT)
    folder = tmp_path / "board" / "tpl"
    folder.mkdir(parents=True)
    (folder / "fine.j2").write_text("a fine {{ what }}")
    os.symlink(secret, folder / "leak.j2")
    os.symlink(tmp_path, folder / "up")
    return PromptRenderer([folder])


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__ }}",
    "{{ x.__dict__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ range(10**9)|list|length }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ 'x'.ljust(10**10) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format('x') }}",
    "{% include '/etc/passwd' %}",
    "{% include '../secret.txt' %}",
    "{% include 'up/secret.txt' %}",
    "{% include 'leak.j2' %}",
    "{% import 'leak.j2' as x %}{{ x }}",
    "{% extends 'leak.j2' %}",
    "{{ '/etc/passwd'|open }}",
    "{{ '/etc/passwd'|read }}",
    "{{ '/etc/passwd'|include }}",
], ids=lambda s: s[:40])
def test_sandbox_refuses(renderer: PromptRenderer, source: str) -> None:
    with pytest.raises(PromptError) as err:
        renderer.render(inline=source, context={"x": {"a": 1}, "what": "day"})
    assert SECRET_FILE_TEXT not in err.value.message and "root:" not in err.value.message


def test_sandbox_still_renders_library_and_local_templates(renderer: PromptRenderer) -> None:
    assert renderer.render(inline="{% include 'fine.j2' %}", context={"what": "day"}) == "a fine day"
    assert renderer.render(template="fine.j2", context={"what": "night"}) == "a fine night"


def test_symlinked_template_is_refused_as_a_whole_template(renderer: PromptRenderer) -> None:
    with pytest.raises(PromptError, match="points outside its folder") as err:
        renderer.render(template="leak.j2", context={})
    assert SECRET_FILE_TEXT not in str(err.value)


# ---------------------------------------------------------------- file references


@pytest.fixture
def folder(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    board = tmp_path / "board"
    board.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    make_image("elsewhere/pic.png")
    (outside / "music.m4a").write_bytes(b"\0" * 64)
    make_image("board/ok.png")
    os.symlink(outside / "pic.png", board / "pic-link.png")
    os.symlink(outside / "music.m4a", board / "music-link.m4a")
    os.symlink(outside, board / "outdir")
    return board


@pytest.mark.parametrize(("field", "fragment"), [
    ("  image: ../elsewhere/pic.png", "leaves the storyboard's folder"),
    ("  image: /etc/hostname", "is an absolute path"),
    ("  image: file:///etc/passwd", "is a URL"),
    ("  image: file:ok.png", "is a URL"),
    ("  image: http://127.0.0.1:9/pic.png", "is a URL"),
    ("  image: pic-link.png", "outside the storyboard's folder"),
    ("  image: outdir/pic.png", "outside the storyboard's folder"),
    ("  image: ok.png\n    end_image: pic-link.png", "outside the storyboard's folder"),
    ("  image: ok.png\naudio:\n  - file: music-link.m4a", "outside the storyboard's folder"),
    ("  image: ok.png\naudio:\n  - file: ../elsewhere/music.m4a", "leaves the storyboard's folder"),
    ("  image: ok.png\ntemplates: [outdir]", "outside the storyboard's folder"),
    ("  image: ok.png\noutput: ../film.mp4", "leaves the storyboard's folder"),
    ("  image: ok.png\noutput: outdir/film.mp4", "outside the storyboard's folder"),
    ("  image: ok.png\noutput: /tmp/film.mp4", "is an absolute path"),
], ids=lambda v: v.strip().replace("\n", " ")[:50] if isinstance(v, str) and v.startswith(" ") else None)
def test_file_references_stay_inside_the_folder(folder: Path, field: str, fragment: str) -> None:
    path = folder / "film.yaml"
    path.write_text("storyboard: 1\nshots:\n- id: a\n  prompt: x\n" + field.replace("\n    ", "\n  ") + "\n")
    with pytest.raises(SpecError) as err:
        storyboard.load(path)
    assert fragment in str(err.value)


def test_output_elsewhere_is_still_possible_on_purpose(folder: Path, tmp_path: Path) -> None:
    path = folder / "film.yaml"
    path.write_text("storyboard: 1\ndefaults: {duration: 3}\nshots:\n- id: a\n  prompt: x\n")
    film = tmp_path / "elsewhere" / "film.mp4"
    result = CliRunner().invoke(main, ["render", str(path), "--output", str(film)])
    assert result.exit_code == 0, result.output
    assert film.exists()

