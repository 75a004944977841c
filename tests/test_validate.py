"""`storyboard validate` on malformed storyboards: every error names file:line:col and
says what is allowed; the exit code is 1; no traceback."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from storyboard.cli import main

HEAD = "storyboard: 1\n"

# (name, yaml, message fragment, line) — line None: the message has no line (whole file)
CASES: list[tuple[str, str, str, int | None]] = [
    ("yaml_syntax", HEAD + 'shots:\n  - id: a\n    prompt: "unterminated\n', "YAML syntax", 4),
    ("bad_indentation", HEAD + "shots:\n  - id: a\n     prompt: x\n",
     "YAML syntax: this line is indented more than the list item above it", 4),
    ("tab_indent", HEAD + "shots:\n\t- id: a\n", "YAML syntax: a tab character is not allowed", 3),
    ("list_top_level", "- storyboard: 1\n- shots: []\n", "the top level must be a mapping", 1),
    ("empty_file", "", "the file is empty", 1),
    ("missing_version", "shots:\n  - id: a\n    prompt: x\n", "missing 'storyboard: 1'", 1),
    (
        "unsupported_version",
        "storyboard: 2\nshots:\n  - id: a\n    prompt: x\n",
        "unsupported format version 2",
        1,
    ),
    ("empty_shots", HEAD + "shots: []\n", "'shots' is empty", 2),
    ("shots_not_list", HEAD + "shots: {a: 1}\n", "must be a list", 2),
    (
        "duplicate_ids",
        HEAD + "shots:\n  - id: a\n    prompt: x\n  - id: a\n    prompt: y\n",
        "duplicate shot id 'a'",
        5,
    ),
    (
        "bad_id_chars",
        HEAD + "shots:\n  - id: Dock 1\n    prompt: x\n",
        "may use only lower-case letters",
        3,
    ),
    (
        "typo_top_level",
        HEAD + "titel: x\nshots:\n  - id: a\n    prompt: x\n",
        "unknown field 'titel' in the top level; did you mean 'title'?",
        2,
    ),
    (
        "typo_shot_level",
        HEAD + "shots:\n  - id: dock\n    promt: x\n",
        "unknown field 'promt' in shot 'dock'",
        4,
    ),
    (
        "typo_defaults",
        HEAD + "defaults:\n  aspect: '16:9'\nshots:\n  - id: a\n    prompt: x\n",
        "did you mean 'aspect_ratio'?",
        3,
    ),
    (
        "both_prompt_and_template",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    template: t.j2\n",
        "has both 'prompt' and 'template'",
        5,
    ),
    (
        "neither_prompt_nor_template",
        HEAD + "shots:\n  - id: a\n    duration: 5\n",
        "has neither 'prompt' nor 'template'",
        3,
    ),
    (
        "missing_template_file",
        HEAD + "shots:\n  - id: a\n    template: nowhere.j2\n",
        "template 'nowhere.j2' not found",
        4,
    ),
    (
        "jinja_syntax_error",
        HEAD + 'shots:\n  - id: a\n    prompt: "{{ hero "\n',
        "template syntax error",
        4,
    ),
    (
        "undefined_variable",
        HEAD + 'shots:\n  - id: a\n    prompt: "{{ hero }} walks"\n',
        "'hero' is undefined",
        4,
    ),
    (
        "sandbox_escape",
        HEAD + "shots:\n  - id: a\n    prompt: \"{{ ''.__class__.__mro__ }}\"\n",
        "not allowed in a template",
        4,
    ),
    (
        "unknown_frame_reference",
        HEAD + "shots:\n  - id: a\n    prompt: x\n  - id: b\n    prompt: y\n    image: '@nope'\n",
        "refers to unknown shot 'nope'",
        7,
    ),
    (
        "frame_time_out_of_range",
        HEAD
        + "shots:\n  - id: a\n    prompt: x\n    duration: 4\n  - id: b\n    prompt: y\n    image: '@a:7.5'\n",
        "asks for 7.5 s into 'a', which lasts 4 s",
        8,
    ),
    (
        "bad_frame_selector",
        HEAD
        + "shots:\n  - id: a\n    prompt: x\n  - id: b\n    prompt: y\n    image: '@a:middle'\n",
        "is not first, last or a time",
        7,
    ),
    (
        "cycle",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: '@b'\n  - id: b\n    prompt: y\n",
        "shot cycle: ",
        5,
    ),
    (
        "missing_image_near_name",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: okk.png\n",
        "image file 'okk.png' does not exist; did you mean 'ok.png'?",
        5,
    ),
    (
        "undefined_name_typo",
        HEAD + "vars: {mood: calm}\nshots:\n  - id: a\n    prompt: '{{ moood }}'\n",
        "'moood' is undefined; did you mean 'mood'?",
        5,
    ),
    (
        "missing_image_file",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: assets/none.png\n",
        "does not exist",
        5,
    ),
    (
        "absolute_image_path",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: /etc/hostname\n",
        "is an absolute path",
        5,
    ),
    (
        "escaping_image_path",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: ../outside.png\n",
        "leaves the storyboard's folder",
        5,
    ),
    (
        "url_image",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: file:///etc/passwd\n",
        "is a URL",
        5,
    ),
    (
        "non_image_file",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    image: notes.png\n",
        "is not a PNG or JPEG image",
        5,
    ),
    (
        "end_image_without_image",
        HEAD
        + "shots:\n  - id: a\n    prompt: x\n    image: null\n    end_image: '@b:first'\n  - id: b\n    prompt: y\n    image: null\n",
        "end_image needs a start image",
        6,
    ),
    (
        "bad_mode",
        HEAD + "defaults:\n  mode: ultra\nshots:\n  - id: a\n    prompt: x\n",
        "allowed: 'std' or 'pro'",
        3,
    ),
    (
        "bad_aspect",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    aspect_ratio: '5:4'\n",
        "'5:4'; klingai/video-v3 allows 16:9, 9:16, 1:1",
        5,
    ),
    (
        "duration_type",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    duration: 5.5\n",
        "a duration is a whole number of seconds (an integer)",
        5,
    ),
    (
        "duration_string",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    duration: '5'\n",
        "a duration is a whole number of seconds (an integer)",
        5,
    ),
    (
        "duration_range",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    duration: 20\n",
        "klingai/video-v3 allows duration 3..15; got 20",
        5,
    ),
    ("sound_type", HEAD + "shots:\n  - id: a\n    prompt: x\n    sound: loud\n", "sound", 5),
    (
        "long_prompt",
        HEAD
        + 'vars: {w: word}\nshots:\n  - id: a\n    prompt: "{% for i in range(700) %}{{ w }} {% endfor %}"\n',
        "3499 characters after rendering; klingai/video-v3 allows at most 3072",
        5,
    ),
    (
        "long_negative_prompt",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    app: klingai/video-v3@snapshot-2025-original\n"
        "    negative_prompt: " + "n" * 2600 + "\n",
        "negative_prompt is 2600 characters; klingai/video-v3 allows at most 2500",
        6,
    ),
    (
        "transition_too_long",
        HEAD
        + "shots:\n  - id: a\n    prompt: x\n    duration: 3\n  - id: b\n    prompt: y\n    transition: {type: dissolve, duration: 3}\n",
        "must be shorter than both neighbouring clips",
        8,
    ),
    (
        "unknown_transition",
        HEAD
        + "shots:\n  - id: a\n    prompt: x\n  - id: b\n    prompt: y\n    transition: {type: disolve}\n",
        "unknown transition 'disolve'; did you mean 'dissolve'?",
        7,
    ),
    (
        "unknown_shot_in_cut",
        HEAD + "shots:\n  - id: a\n    prompt: x\ncut: [a, bb]\n",
        "cut names unknown shot 'bb'",
        5,
    ),
    (
        "duplicate_key",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    prompt: y\n",
        "duplicate key 'prompt'",
        5,
    ),
    (
        "missing_audio",
        HEAD + "shots:\n  - id: a\n    prompt: x\naudio:\n  - file: music.mp3\n",
        "audio file 'music.mp3' does not exist",
        6,
    ),
    ("tiny_image", HEAD + "shots:\n  - id: a\n    prompt: x\n    image: tiny.png\n", "10×10 px", 5),
    (
        "billion_laughs",
        HEAD
        + "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nshots: *g\n",
        "too many values",
        None,
    ),
    (
        "huge_range_template",
        HEAD + 'shots:\n  - id: a\n    prompt: "{% for i in range(10**9) %}x{% endfor %}"\n',
        "not allowed in a template",
        4,
    ),
    (
        "huge_string_template",
        HEAD + "shots:\n  - id: a\n    prompt: \"{{ 'x' * 100000000 }}\"\n",
        "not allowed in a template",
        4,
    ),
    (
        "transition_on_first_shot",
        HEAD + "shots:\n  - id: a\n    prompt: x\n    transition: dissolve\n",
        "opens the film",
        5,
    ),
]


@pytest.fixture
def assets(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    (tmp_path / "notes.png").write_text("this is text, not a picture\n")
    make_image("tiny.png", size=(10, 10))
    make_image("ok.png")
    (tmp_path.parent / "outside.png").write_bytes((tmp_path / "ok.png").read_bytes())
    return tmp_path


@pytest.mark.parametrize(("name", "text", "fragment", "line"), CASES, ids=[c[0] for c in CASES])
def test_malformed_storyboard(
    name: str, text: str, fragment: str, line: int | None, assets: Path
) -> None:
    path = assets / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    out = result.output
    assert result.exit_code == 1, out
    assert fragment in out, out
    assert "Traceback" not in out
    if line is not None:
        located = re.search(re.escape(str(path)) + r":(\d+)(?::(\d+))?: ", out)
        assert located, out
        assert int(located.group(1)) == line, out


def test_at_least_thirty_malformed_cases() -> None:
    assert len(CASES) >= 30


def test_several_errors_reported_together(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - id: a
            promt: x
            duration: 2.5
          - id: b
            prompt: y
            mode: fast
    """)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith(str(path))]
    assert len(lines) == 3, result.output
    assert {int(ln.split(":")[1]) for ln in lines} == {4, 5, 8}


def test_semantic_errors_reported_together(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - id: a
            prompt: x
            image: missing.png
          - id: b
            prompt: y
            image: '@zzz'
        cut: [a, b, c]
    """)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "missing.png' does not exist" in result.output
    assert "unknown shot 'zzz'" in result.output
    assert "unknown shot 'c'" in result.output


def test_template_file_error_points_into_the_template(
    tmp_path: Path, write_board: Callable[..., Path]
) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "storm.j2").write_text("A storm.\nThe {{ boat }} rocks.\n")
    path = write_board("""
        storyboard: 1
        templates: [tpl]
        shots:
          - id: storm
            template: storm.j2
    """)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "storm.j2:2: shot 'storm' (template storm.j2): 'boat' is undefined" in result.output


def test_symlink_escaping_folder_is_refused(
    tmp_path: Path, make_image: Callable[..., Path], write_board: Callable[..., Path]
) -> None:
    outside = tmp_path.parent / "secret.png"
    outside.write_bytes(make_image("x.png").read_bytes())
    os.symlink(outside, tmp_path / "link.png")
    path = write_board("""
        storyboard: 1
        shots:
          - id: a
            prompt: x
            image: link.png
    """)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "outside the storyboard's folder" in result.output


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("storyboard: 1\nshots:\n  - id: a\n    prompt: caf\xe9\n".encode("latin-1"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4:" in result.output and "not UTF-8" in result.output


def test_huge_file_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as f:
        f.write("storyboard: 1\nshots:\n")
        line = "  - {id: a, prompt: " + "x" * 200 + "}\n"
        f.write(line * (50 * 1024 * 1024 // len(line)))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "a storyboard may be at most" in result.output


def test_valid_storyboard_summary(
    write_board: Callable[..., Path], make_image: Callable[..., Path]
) -> None:
    make_image("assets/harbor.png")
    path = write_board("""
        storyboard: 1
        shots:
          - id: harbor
            prompt: harbor
            image: assets/harbor.png
          - id: keeper
            prompt: keeper
    """)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok — 2 shots, 10 s generated, 2 in the cut, depth 2" in result.output


def test_set_overrides_vars(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - id: a
            prompt: "{{ hero }}"
    """)
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 1
    result = CliRunner().invoke(main, ["validate", str(path), "--set", "hero=a keeper"])
    assert result.exit_code == 0, result.output


def test_malformed_set_is_a_usage_error(write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\nshots:\n  - id: a\n    prompt: x\n")
    result = CliRunner().invoke(main, ["validate", str(path), "--set", "novalue"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output
