"""Bad input, rendered for real: ``storyboard render FILE --backend inference`` against the
fake inference.sh on 127.0.0.1. Every case exits 1–3 with one clear line (FILE:LINE:COL
where it applies), no traceback, no film, and not one request to the API — let alone a
paid one.

The corpus is ``tests/bad/*.yaml`` (one file per case; its first lines say what it must
produce: ``# expect: <fragment>`` and ``# line: <n>`` or ``# line: -``), plus every case
of ``tests/test_validate.py``'s table, plus cases generated here (a 50 MB file, a file
nested 50 000 levels deep, ``/dev/zero``) and command-line mistakes.
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from fakeserver import FakeInference
from storyboard.cli import main
from tests.helpers import KEY
from tests.test_validate import CASES as VALIDATE_CASES

BAD = Path(__file__).parent / "bad"

VALID = "storyboard: 1\ndefaults: {duration: 3, mode: std}\nshots:\n  - id: a\n    prompt: a harbor\n    image: ok.png\n  - id: b\n    prompt: the keeper\n"

# Files whose bytes cannot carry a UTF-8 header: (fragment, line or None)
NO_HEADER = {"not_utf8_utf16.yaml": ("not UTF-8 text (byte 0xff)", 1)}


def _corpus() -> list[tuple[str, str, int | None]]:
    cases = []
    for path in sorted(BAD.glob("*.yaml")):
        if path.name in NO_HEADER:
            fragment, line = NO_HEADER[path.name]
        else:
            head = path.read_bytes()[:400].decode("utf-8", errors="replace").splitlines()
            fragment = head[0].removeprefix("# expect: ")
            raw = head[1].removeprefix("# line: ")
            line = None if raw == "-" else int(raw)
        cases.append((path.name, fragment, line))
    return cases


CORPUS = _corpus()


def _png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A tiny PNG whose header declares width×height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.3) as server:
        yield server


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The storyboard's folder, with every asset the corpus names, and files outside it."""
    folder = tmp_path / "work"
    (folder / "assets").mkdir(parents=True)
    (folder / "tpl").mkdir()
    for name, size in (("ok.png", (640, 360)), ("assets/ok.png", (640, 360)), ("tiny.png", (10, 10))):
        Image.new("RGB", size, (200, 120, 40)).save(folder / name)
    (folder / "notes.png").write_text("this is a text file, renamed\n")
    _png_bomb(folder / "bomb.png")
    (folder / "broken.png").write_bytes((folder / "ok.png").read_bytes()[:120])
    with (folder / "huge.png").open("wb") as f:  # sparse: 100 MB that take no disk
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(100 * 1024 * 1024)
    (folder / "text.mp3").write_text("ID3? no: this is text\n" * 20)
    (folder / "tpl" / "latin1.j2").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "secret.txt").write_text("TOP-SECRET-do-not-send\n")
    (tmp_path / "outside.png").write_bytes((folder / "ok.png").read_bytes())
    (tmp_path / "outside.m4a").write_text("x")
    os.symlink(tmp_path / "outside.png", folder / "link.png")
    os.symlink(tmp_path / "secret.txt", folder / "tpl" / "escape.j2")
    return folder


def render(fake: FakeInference, *args: str, key: str | None = KEY) -> Result:
    env = {"INFERENCE_BASE_URL": fake.url, "INFERENCE_API_KEY": key}
    return CliRunner().invoke(main, ["render", *args, "--backend", "inference"], env=env)


def assert_refused(result: Result, fake: FakeInference, board: Path, *, fragment: str, line: int | None = None,
                   exit_codes: tuple[int, ...] = (1,), one_line: bool = True) -> None:
    out = result.output
    assert result.exit_code in exit_codes, out
    assert fragment in out, out
    assert "Traceback" not in out and "internal error" not in out, out
    err_lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    if one_line:
        assert len(err_lines) == 1, out
    if line is not None:
        located = re.search(re.escape(str(board)) + r":(\d+)(?::(\d+))?: ", out)
        assert located, out
        assert int(located.group(1)) == line, out
    assert fake.calls == [], [(c.method, c.path) for c in fake.calls]
    assert fake.submissions == []
    assert not list(board.parent.glob("out/*.mp4")), "a film was written"


@pytest.mark.parametrize(("name", "fragment", "line"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_corpus(name: str, fragment: str, line: int | None, fake: FakeInference, work: Path) -> None:
    board = work / name
    board.write_bytes((BAD / name).read_bytes())
    started = time.monotonic()
    result = render(fake, str(board))
    assert_refused(result, fake, board, fragment=fragment, line=line)
    assert time.monotonic() - started < 10
    assert not (work / "pwned.txt").exists()


@pytest.mark.parametrize(("name", "text", "fragment", "line"), VALIDATE_CASES, ids=[c[0] for c in VALIDATE_CASES])
def test_validate_corpus_rendered(name: str, text: str, fragment: str, line: int | None, fake: FakeInference,
                                  work: Path) -> None:
    (work.parent / "outside.png").write_bytes((work / "ok.png").read_bytes())
    board = work / f"{name}.yaml"
    board.write_text(text, encoding="utf-8")
    result = render(fake, str(board))
    assert_refused(result, fake, board, fragment=fragment, line=line, one_line=False)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) + len(VALIDATE_CASES) >= 80


def test_fifty_megabyte_storyboard_refused_quickly(fake: FakeInference, work: Path) -> None:
    board = work / "huge.yaml"
    with board.open("w") as f:
        f.write("storyboard: 1\nshots:\n")
        line = "  - {id: a, prompt: " + "x" * 200 + "}\n"
        f.write(line * (50 * 1024 * 1024 // len(line)))
    started = time.monotonic()
    result = render(fake, str(board))
    assert time.monotonic() - started < 2
    assert_refused(result, fake, board, fragment="a storyboard may be at most 8 MB")


def test_billion_laughs_refused_quickly(fake: FakeInference, work: Path) -> None:
    levels = ["a: &a [" + ", ".join(["lol"] * 10) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    board = work / "laughs.yaml"
    board.write_text("storyboard: 1\nvars:\n" + "".join(f"  {lv}\n" for lv in levels)
                     + "shots:\n  - id: a\n    prompt: '{{ i }}'\n")
    started = time.monotonic()
    result = render(fake, str(board))
    assert time.monotonic() - started < 2
    assert_refused(result, fake, board, fragment="too many values")


def test_nesting_fifty_thousand_deep_does_not_crash(fake: FakeInference, work: Path) -> None:
    # libyaml's composer recursed into a segfault on this before it was bounded
    board = work / "deep.yaml"
    board.write_text("storyboard: 1\nvars: {x: " + "[" * 50_000 + "]" * 50_000 + "}\nshots:\n  - {id: a, prompt: x}\n")
    assert_refused(render(fake, str(board)), fake, board, fragment="more than 64 levels deep", line=2)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_not_read_forever(fake: FakeInference, device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    started = time.monotonic()
    result = render(fake, device)
    assert time.monotonic() - started < 5
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and fake.calls == []


@pytest.mark.parametrize(("target", "fragment", "code"), [
    ("missing.yaml", "missing.yaml: no such file", 1),
    ("assets", "assets' is a directory", 2),  # click's own usage error
])
def test_not_a_storyboard_file(fake: FakeInference, work: Path, target: str, fragment: str, code: int) -> None:
    result = render(fake, str(work / target))
    assert result.exit_code == code, result.output
    assert fragment in result.output, result.output
    assert "Traceback" not in result.output and fake.calls == []


# ---------------------------------------------------------------- command-line mistakes


@pytest.mark.parametrize(("args", "fragment"), [
    (["--set", "novalue"], "KEY=VALUE"),
    (["--set", "=x"], "KEY=VALUE"),
    (["--set", "bad key=x"], "KEY=VALUE"),
    (["--budget", "abc"], "is not an amount in USD"),
    (["--budget", "-1"], "non-negative"),
    (["--budget", "nan"], "non-negative"),
    (["--budget", "inf"], "non-negative"),
    (["--concurrency", "0"], "use 1 or more"),
    (["--concurrency", "-3"], "use 1 or more"),
    (["--concurrency", "many"], "is not a valid integer"),
    (["--force", "nosuch"], "no shot 'nosuch'"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_errors_exit_2(args: list[str], fragment: str, fake: FakeInference, work: Path) -> None:
    board = work / "film.yaml"
    board.write_text(VALID)
    result = render(fake, str(board), *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output, result.output
    assert "Traceback" not in result.output
    assert fake.calls == [] and not (work / "out").exists()


def test_unknown_backend_is_a_usage_error(fake: FakeInference, work: Path) -> None:
    board = work / "film.yaml"
    board.write_text(VALID)
    result = CliRunner().invoke(main, ["render", str(board), "--backend", "nosuch"])
    assert result.exit_code == 2, result.output
    assert "unknown backend 'nosuch'" in result.output and "Traceback" not in result.output


def test_budget_too_low_exits_3_and_pays_nothing(fake: FakeInference, work: Path) -> None:
    board = work / "film.yaml"
    board.write_text(VALID)
    result = render(fake, str(board), "--budget", "0.50")
    assert_refused(result, fake, board, fragment="over budget", exit_codes=(3,))
    assert "Nothing was paid" in result.output
    assert not (work / ".storyboard" / "journal").exists() or not any((work / ".storyboard" / "journal").iterdir())


def test_audio_that_is_text_is_refused_before_any_upload(fake: FakeInference, work: Path) -> None:
    # The storyboard is otherwise valid and has an image to upload: the runner's check_media
    # must refuse the audio before the first request.
    board = work / "film.yaml"
    board.write_text(VALID + "audio:\n  - file: text.mp3\n")
    result = render(fake, str(board))
    assert_refused(result, fake, board, fragment="is not a readable audio file", line=10)


def test_set_with_an_alias_bomb_is_bounded(fake: FakeInference, work: Path) -> None:
    board = work / "film.yaml"
    board.write_text("storyboard: 1\nshots:\n  - id: a\n    prompt: '{{ x }}'\n")
    bomb = "[" + ", ".join(
        ["&a [" + ", ".join(["lol"] * 10) + "]"]
        + [f"&{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abcdefg", "bcdefgh", strict=True)]
    ) + "]"
    started = time.monotonic()
    result = render(fake, str(board), "--set", f"x={bomb}")
    assert time.monotonic() - started < 2
    assert result.exit_code == 2, result.output
    assert "too many values" in result.output
    assert "Traceback" not in result.output and fake.calls == []


def test_template_cannot_run_commands(fake: FakeInference, work: Path) -> None:
    board = work / "film.yaml"
    board.write_text("storyboard: 1\nshots:\n  - id: a\n    prompt: \"{{ lipsum.__globals__['os'].system('touch pwned.txt') }}\"\n")
    result = render(fake, str(board))
    assert result.exit_code == 1 and "not allowed in a template" in result.output
    assert not (work / "pwned.txt").exists() and not Path("pwned.txt").exists()
