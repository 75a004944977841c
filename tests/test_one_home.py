"""Each fact has one home (issue 26, item 9): the 300 px minimum side, the 0.5 s transition
and handoff defaults, which plan statuses cost money, "is this cache location a URL", and
the one cache-key rule of every node. The literals are searched in the source (AST), so a
second copy written anywhere fails here."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import storyboard.music as music
import storyboard.narration as narration
from storyboard import apps, facts
from storyboard.plan import PAID_STATUSES
from storyboard.request import CACHE_KEY_VERSION, digest, node_key

ROOT = Path(__file__).resolve().parents[1]


def _trees(*folders: str) -> Iterator[tuple[Path, ast.AST]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


def test_the_300_px_minimum_side_is_written_once() -> None:
    found = []
    for path, tree in _trees("storyboard"):
        slices = {id(n.upper) for n in ast.walk(tree) if isinstance(n, ast.Slice)}  # text[:300]: a length
        found += [_where(path, n) for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and n.value == 300 and id(n) not in slices]
    assert found == ["storyboard/facts.py:" + str(_line_of("storyboard/facts.py", "MODEL_MIN_IMAGE_SIDE = 300"))]
    # the app profiles that state the rule agree with it
    assert apps.profile("klingai/video-v3").rules["*"]["files"]["min_side"] == facts.MODEL_MIN_IMAGE_SIDE


def _line_of(rel: str, text: str) -> int:
    lines = (ROOT / rel).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_the_half_second_defaults_are_written_once() -> None:
    found = []
    for rel in ("storyboard/spec/models.py", "storyboard/spec/resolve.py", "storyboard/spec/resolved.py"):
        tree = ast.parse((ROOT / rel).read_text())
        found += [_where(ROOT / rel, n) for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == 0.5]
    handoff = ast.parse((ROOT / "storyboard/media/_handoff.py").read_text())
    for fn in ast.walk(handoff):
        if isinstance(fn, ast.AsyncFunctionDef | ast.FunctionDef):
            found += [_where(ROOT / "storyboard/media/_handoff.py", d) for d in fn.args.defaults
                      if isinstance(d, ast.Constant) and d.value == 0.5]
    assert found == []


def test_which_statuses_cost_money_is_written_once() -> None:
    paid = {"generate", "after", "forced"}
    found = []
    for path, tree in _trees("storyboard", "pipelines"):
        typed = {id(n.slice) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}  # Literal[...]: a type
        for n in ast.walk(tree):
            if isinstance(n, ast.Tuple | ast.Set | ast.List) and id(n) not in typed:
                words = {e.value for e in n.elts if isinstance(e, ast.Constant)}
                if paid <= words:
                    found.append(_where(path, n))
    assert found == [f"storyboard/planned.py:{_line_of('storyboard/planned.py', 'PAID_STATUSES: frozenset')}"]
    assert paid == PAID_STATUSES


def test_is_this_cache_location_a_url_is_written_once() -> None:
    found = []
    for path, tree in _trees("storyboard", "pipelines"):
        if path.name == "images.py" and path.parent.name == "spec":
            continue  # an image *reference* that is a URL (refused): another fact
        for n in ast.walk(tree):
            if (isinstance(n, ast.Compare) and isinstance(n.left, ast.Constant) and n.left.value == "://"):
                found.append(_where(path, n))
    home = _line_of("storyboard/facts.py", 'return "://" in str(location)')
    assert found == [f"storyboard/facts.py:{home}"]
    assert facts.is_cache_url("s3://bucket/x") and not facts.is_cache_url(Path("cache"))


def test_voice_lines_and_music_are_keyed_by_the_one_rule_with_their_keys_unchanged() -> None:
    assert not hasattr(narration, "KEY_VERSION") and not hasattr(music, "KEY_VERSION")
    for module in ("storyboard/narration.py", "storyboard/music.py"):
        text = (ROOT / module).read_text()
        assert "hashlib" not in text and "json.dumps" not in text, module
    # the keys are those written before the rule moved (cached lines and tracks are not paid again)
    old_line = hashlib.sha256(json.dumps({"v": 1, "app": "falai/kokoro-tts", "version": "v1", "voice": "af_bella",
                                          "text": "Hello.", "inputs": {"speed": 1.1}}, sort_keys=True).encode())
    assert narration.line_key("falai/kokoro-tts", "v1", "af_bella", "Hello.", {"speed": 1.1}) == old_line.hexdigest()
    old_music = digest({"v": 1, "maker": "placeholder", "seconds": 12.5})
    assert node_key({"maker": "placeholder", "seconds": 12.5}) == old_music and CACHE_KEY_VERSION == 1
