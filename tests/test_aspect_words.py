"""Issue 25 (item 6) and issue 26 (item 9): an unquoted `16:9` is said in words with the
shot's own app's values; a wrong format version hides no other error; aspect ratios have
one home (facts.py) and the file format (spec/) holds no app's rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

import storyboard
from storyboard import apps, facts
from storyboard.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent

BOARD = """
storyboard: 1
shots:
  - id: a
    prompt: a harbor
    aspect_ratio: 16:9
  - id: b
    app: bytedance/seedance-2-0
    prompt: boats
    aspect_ratio: 9:16
"""


def _messages(path: Path) -> list[str]:
    with pytest.raises(SpecError) as e:
        storyboard.load(path)
    return [str(p) for p in e.value.problems]


def test_an_unquoted_ratio_says_write_it_quoted_with_the_shots_own_apps_values(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD)
    seedance = apps.profile("bytedance/seedance-2-0")
    assert seedance is not None
    version = seedance.version()
    assert version is not None
    values = ", ".join(version.properties[seedance.concepts["aspect_ratio"]]["enum"])
    assert _messages(path) == [
        f'{path}:5:19: shot \'a\': aspect_ratio is 969: YAML reads 16:9 unquoted as a number; write it quoted: '
        '"16:9" (klingai/video-v3 allows 16:9, 9:16, 1:1)',
        f'{path}:9:19: shot \'b\': aspect_ratio is 556: YAML reads 9:16 unquoted as a number; write it quoted: '
        f'"9:16" (bytedance/seedance-2-0 allows {values})',
    ]


def test_a_ratio_no_app_takes_lists_the_shots_app_not_every_ratio(write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\nshots:\n  - id: a\n    prompt: x\n    aspect_ratio: '5:4'\n")
    assert _messages(path) == [f"{path}:5:19: shot 'a': aspect_ratio is '5:4'; klingai/video-v3 allows 16:9, 9:16, 1:1"]


def test_a_wrong_format_version_hides_no_other_error(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD.replace("storyboard: 1", "storyboard: 2").replace("prompt: boats", "promt: boats"))
    got = _messages(path)
    assert got[0] == f"{path}:1:13: unsupported format version 2; this version of storyboard reads format 1 " \
                     "('storyboard: 1')"
    assert any("write it quoted: \"16:9\"" in m for m in got) and any("'promt'" in m for m in got), got
    # a file that is right apart from its version still says only that
    only = write_board("storyboard: 3\nshots:\n  - id: a\n    prompt: x\n", name="v3.yaml")
    assert _messages(only) == [f"{only}:1:13: unsupported format version 3; this version of storyboard reads "
                               "format 1 ('storyboard: 1')"]


def _code(folder: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in folder.rglob("*.py")}


def test_aspect_ratios_have_one_home() -> None:
    listed = [p.relative_to(ROOT).as_posix() for p, text in _code(ROOT / "storyboard").items()
              if re.search(r'"21:9"|"3:2"', text)]
    assert listed == ["storyboard/facts.py"], listed
    from storyboard.spec import ASPECT_RATIOS

    assert tuple(facts.ASPECT_FRAME_SIZES) == ASPECT_RATIOS


def test_the_file_format_holds_no_apps_rules() -> None:
    # spec/ names the default apps, nothing an app allows (its ranges, ratios, sizes, formats)
    for path, text in _code(ROOT / "storyboard" / "spec").items():
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"(?i)kling|seedance|\b300\b|3\.\.15", line):
                assert re.match(r'DEFAULT_(IMAGE_)?APP = "klingai/', line), f"{path.name}:{n}: {line.strip()}"
