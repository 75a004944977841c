"""Messages a user sees when a storyboard is wrong (issue 16 items 3-5): YAML syntax in
plain words, one failed prompt reported once, did-you-mean for typos, cycles located;
and the spec's limits taken from ``storyboard.facts``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

import storyboard
from storyboard import facts
from storyboard.cli import main
from storyboard.errors import GraphError, PromptError, SpecError, StoryboardError, TemplateError
from storyboard.spec import ASPECT_RATIOS, check_image_file, load_spec, parse_yaml
from storyboard.spec.yamlwords import explain

HEAD = "storyboard: 1\n"

# (name, yaml, plain words, line of the mistake) — each is a common indentation slip
YAML_SLIPS = [
    ("key_indented_more", HEAD + "shots:\n  - id: a\n     prompt: x\n",
     "indented more than the list item above it", 4),
    ("top_key_indented_more", HEAD + "  title: x\nshots: []\n", "indented more than the line above it", 2),
    ("key_indented_less_in_item", HEAD + "shots:\n  - id: a\n   prompt: x\n",
     "indented less than the list item above it; line its key up with the item's keys (under 'id')", 4),
    ("key_between_levels", HEAD + "defaults:\n    mode: std\n  duration: 3\nshots: []\n",
     "a mapping key here needs the same indentation as the keys above it", 4),
    ("tab_indent", HEAD + "shots:\n\t- id: a\n", "a tab character is not allowed for indentation", 3),
    ("tab_in_item", HEAD + "shots:\n  - id: a\n\tprompt: x\n", "a tab character is not allowed", 4),
    ("item_indented_more", HEAD + "shots:\n  - id: a\n    prompt: x\n   - id: b\n",
     "this list item is indented more than the list item above it", 5),
    ("item_indented_less", HEAD + "shots:\n    - id: a\n      prompt: x\n  - id: b\n",
     "this list item is not lined up with the list items above it", 5),
    ("item_among_keys", HEAD + "vars:\n  a: 1\n  - b\nshots: []\n",
     "a list item ('- ') cannot stand among 'key: value' lines", 4),
    ("key_at_item_level", HEAD + "shots:\n  - id: a\n    prompt: x\n  title: y\n",
     "lined up with the list's '-' items but is not one", 5),
    ("missing_colon", HEAD + "shots:\n  - id: a\n    prompt x\n    duration: 3\n",
     "this line needs a ':' after its key", 4),
    ("colon_in_value", HEAD + "shots:\n  - id: a\n    prompt: dawn: a harbor\n",
     "a value here contains ': '; put the whole value in quotes", 4),
    ("unclosed_quote", HEAD + 'shots:\n  - id: a\n    prompt: "unterminated\n', "has no closing quote", 4),
    ("unclosed_flow_list", HEAD + "shots: [a, b\n", "this '[' is not closed", 2),
    ("backquote", HEAD + "title: `x`\nshots: []\n", "a value cannot start with '`'; put the value in quotes", 2),
]


@pytest.mark.parametrize(("name", "text", "words", "line"), YAML_SLIPS, ids=[c[0] for c in YAML_SLIPS])
def test_yaml_slips_in_plain_words(name: str, text: str, words: str, line: int) -> None:
    with pytest.raises(SpecError) as err:
        parse_yaml(text, "film.yaml")
    problem = err.value.problems[0]
    assert problem.message.startswith("YAML syntax: "), problem
    assert words in problem.message, problem
    assert (problem.file, problem.line) == ("film.yaml", line), problem
    assert problem.column is not None
    # PyYAML's own wording of the parser state is gone
    for raw in ("did not find expected", "expected <block end>", "could not find expected",
                "cannot start any token", "mapping values are not allowed"):
        assert raw not in problem.message, problem


@pytest.mark.parametrize("loader", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)],
                         ids=["pure-python", "libyaml"])
@pytest.mark.parametrize(("name", "text", "words", "line"), YAML_SLIPS, ids=[c[0] for c in YAML_SLIPS])
def test_both_yaml_parsers_get_the_same_words(loader: type, name: str, text: str, words: str, line: int) -> None:
    # PyYAML and libyaml word the same mistake differently ("expected <block end>, but found
    # '-'" / "did not find expected key"); the user reads the same plain words from either.
    with pytest.raises(yaml.MarkedYAMLError) as err:
        yaml.compose(text, Loader=loader)
    said = explain(err.value, text)
    assert words in said.message
    assert said.mark is not None and said.mark.line + 1 == line


def test_unknown_yaml_errors_keep_the_parsers_words() -> None:
    text = HEAD + "a: &x 1\nb: *y\n"
    with pytest.raises(SpecError, match=r"YAML syntax: found undefined alias"):
        parse_yaml(text, "film.yaml")


# ---------------------------------------------------------------- prompts


def test_a_failed_prompt_is_reported_once(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        vars: {mood: calm}
        shots:
          - id: start
            prompt: "{{ moood }} harbor"
          - id: b
            prompt: "after {{ shots.start.prompt }}"
          - id: c
            prompt: "then {{ shots['b'].prompt }}"
          - id: d
            prompt: "{{ mood }} and {{ shots.start.id }}"
    """)
    with pytest.raises(TemplateError) as err:
        storyboard.load(path)
    text = str(err.value)
    assert "has no attribute" not in text and "dict object" not in text, text
    lines = text.splitlines()
    assert len(lines) == 4, text
    assert lines[0] == f"{path}:5:13: shot 'start': prompt: 'moood' is undefined; did you mean 'mood'?"
    assert lines[1] == f"{path}:7:13: shot 'b': its prompt uses shot 'start', whose prompt failed (see above)"
    assert lines[2].endswith("shot 'c': its prompt uses shot 'b', whose prompt failed (see above)")
    assert "shot 'd': its prompt uses shot 'start'" in lines[3]


def test_reading_a_later_shot_says_so(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - id: a
            prompt: "{{ shots.b.prompt }}"
          - id: b
            prompt: y
    """)
    with pytest.raises(TemplateError, match=r"no shot 'b' above this one has a prompt"):
        storyboard.load(path)


@pytest.mark.parametrize(("prompt", "sets", "suggestion"), [
    ("{{ moood }}", {}, "mood"),                     # a file variable
    ("{{ shotvar_x }}", {}, "shotvar"),              # a shot variable
    ("{{ lightt }}", {"light": "dusk"}, "light"),    # a --set variable
    ("{{ vars.moood }}", {}, "mood"),                # a key of vars
    ("{{ shot.duraton }}", {}, "duration"),          # a key of shot
])
def test_undefined_names_suggest_a_near_one(write_board: Callable[..., Path], prompt: str,
                                            sets: dict[str, str], suggestion: str) -> None:
    path = write_board(f"""
        storyboard: 1
        vars: {{mood: calm}}
        shots:
          - id: a
            prompt: "{prompt}"
            vars: {{shotvar: 1}}
    """)
    with pytest.raises(TemplateError) as err:
        storyboard.load(path, vars=sets)
    assert f"did you mean '{suggestion}'?" in str(err.value), str(err.value)


def test_no_suggestion_when_nothing_is_near(write_board: Callable[..., Path]) -> None:
    path = write_board('storyboard: 1\nshots:\n  - id: a\n    prompt: "{{ zebra }}"\n')
    with pytest.raises(TemplateError) as err:
        storyboard.load(path)
    assert "'zebra' is undefined" in str(err.value) and "did you mean" not in str(err.value)


def test_prompt_error_is_a_storyboard_error() -> None:
    e = PromptError("boom", template="t.j2", file="t.j2", line=3)
    assert isinstance(e, StoryboardError)
    assert (e.message, e.template, e.file, e.line, e.depends_on) == ("boom", "t.j2", "t.j2", 3, None)


# ---------------------------------------------------------------- --set nobody reads


def _validate(path: Path, *sets: str) -> tuple[int, str, str]:
    args = ["validate", str(path)]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


def test_unused_set_key_warns_with_a_suggestion(write_board: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "scene.j2").write_text("{% include 'part.j2' %} at {{ hour }}")
    (tmp_path / "tpl" / "part.j2").write_text("{{ vars.style }} light")
    path = write_board("""
        storyboard: 1
        templates: [tpl]
        vars: {mood: calm, hour: dawn, style: soft}
        shots:
          - id: a
            prompt: "{{ mood }} harbor"
          - id: b
            template: scene.j2
    """)
    code, out, err = _validate(path, "moodd=x")
    assert code == 0 and "ok" in out
    assert err.strip() == "warning: --set moodd: no prompt uses 'moodd'; did you mean 'mood'?"
    # names read by an inline prompt, a template file, a template it includes (through vars.)
    for used in ("mood=x", "hour=noon", "style=hard"):
        code, out, err = _validate(path, used)
        assert code == 0 and err == "", (used, err)


def test_unused_set_key_without_near_name(write_board: Callable[..., Path]) -> None:
    path = write_board('storyboard: 1\nvars: {mood: calm}\nshots:\n  - id: a\n    prompt: "{{ mood }}"\n')
    code, _, err = _validate(path, "zzz=1")
    assert code == 0 and err.strip() == "warning: --set zzz: no prompt uses 'zzz'"


def test_no_warning_when_a_prompt_reads_vars_as_a_whole(write_board: Callable[..., Path]) -> None:
    path = write_board(
        'storyboard: 1\nshots:\n  - id: a\n    prompt: "{% for k, v in vars | dictsort %}{{ k }}={{ v }} {% endfor %}x"\n')
    code, _, err = _validate(path, "anything=1")
    assert code == 0 and err == ""


# ---------------------------------------------------------------- files and cycles


def test_missing_image_suggests_a_near_name(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    make_image("assets/harbour.png")
    make_image("assets/keeper.png")
    path = write_board("storyboard: 1\nshots:\n  - id: a\n    prompt: x\n    image: assets/harbor.png\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == (f"{path}:5:12: shot 'a': image: image file 'assets/harbor.png' does not exist; "
                              "did you mean 'assets/harbour.png'?")


def test_missing_image_in_a_misspelled_folder(write_board: Callable[..., Path],
                                             make_image: Callable[..., Path]) -> None:
    make_image("assets/harbor.png")
    path = write_board("storyboard: 1\nshots:\n  - id: a\n    prompt: x\n    image: asets/harbor.png\n")
    with pytest.raises(SpecError, match=r"did you mean 'assets/harbor.png'\?"):
        load_spec(path)


def test_cycle_points_at_the_reference_that_closes_it(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - id: a
            prompt: x
            image: "@c"
          - id: b
            prompt: y
          - id: c
            prompt: z
            image: "@b:first"
    """)
    with pytest.raises(GraphError) as err:
        storyboard.load(path)
    problem = err.value.problems[0]
    assert "shot cycle: " in problem.message
    # a -> b is implicit (chained); the written references are a's image and c's image
    assert (problem.file, problem.line) in ((str(path), 5), (str(path), 10)), problem
    names = problem.message.split("shot cycle: ")[1].split(";")[0].split(" -> ")
    assert names[0] == names[-1] and set(names) == {"a", "b", "c"}


# ---------------------------------------------------------------- one home per fact


def test_spec_facts_come_from_facts() -> None:
    enum = storyboard_schema_enum()
    assert enum == list(ASPECT_RATIOS) == list(facts.ASPECT_FRAME_SIZES)
    from storyboard import spec

    assert spec.TRANSITIONS is facts.TRANSITIONS
    assert spec.MIN_IMAGE_SIDE == facts.MIN_IMAGE_SIDE


@pytest.mark.parametrize("name", ["fadefast", "fadeslow"])
def test_transitions_media_accepts_validate(write_board: Callable[..., Path], name: str) -> None:
    path = write_board(f"storyboard: 1\nshots:\n  - {{id: a, prompt: x}}\n  - {{id: b, prompt: y, transition: {name}}}\n")
    assert load_spec(path).shot("b").transition == name


@pytest.mark.parametrize(("size", "ok"), [
    ((8192, 8192), True),        # exactly MAX_IMAGE_PIXELS
    ((8193, 8192), False),       # one column past it
    ((facts.MIN_IMAGE_SIDE, 400), True),
    ((facts.MIN_IMAGE_SIDE - 1, 400), False),
])
def test_image_limits_at_the_edge(tmp_path: Path, size: tuple[int, int], ok: bool) -> None:
    Image.new("1", size, 1).save(tmp_path / "edge.png")  # 1-bit: tiny file, quick to decode
    img, why = check_image_file(tmp_path, "edge.png")
    assert (img is not None) is ok, why
    if size[0] * size[1] > facts.MAX_IMAGE_PIXELS:
        assert why is not None and f"{facts.MAX_IMAGE_PIXELS:,} pixels" in why


def test_spec_imports_only_leaf_modules() -> None:
    import ast

    allowed = ("storyboard.errors", "storyboard.facts", "storyboard.request", "storyboard.spec")
    folder = Path(storyboard.__file__).parent / "spec"
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("storyboard"):
                    assert name.startswith(allowed), f"{source.name} imports {name}"


def storyboard_schema_enum() -> list[str]:
    """The aspect ratios the file format's JSON Schema offers (from facts, its one home)."""
    from storyboard.spec import json_schema

    return list(json_schema()["$defs"]["Defaults"]["properties"]["aspect_ratio"]["enum"])
