"""The pure core: graph, prompts, plan keys and cost, the read-only CLI commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from storyboard.backends.animatic import AnimaticBackend
from storyboard.cli import main
from storyboard.errors import GraphError, SpecError
from storyboard.graph import ShotGraph
from storyboard.prompts import PromptError, PromptRenderer
from storyboard.request import FrameRef, ShotRequest, cache_key, parse_frame_ref

BRANCHY = """
storyboard: 1
title: Harbor at Dusk
defaults: {{mode: std, duration: 4, sound: {sound}}}
vars:
  hero: a lighthouse keeper
  style: cinematic, 35mm
shots:
  - id: harbor
    prompt: "Drone over the harbor. {{{{ style }}}}"
    image: harbor.png
    duration: 6
  - id: keeper
    prompt: "{{{{ hero }}}} {{{{ action }}}}"
    vars: {{action: looks up at the sky}}
  - id: storm
    prompt: "Storm over {{{{ shots.harbor.prompt }}}} (shot {{{{ shot.index }}}}, {{{{ shot.duration }}}} s)"
    transition: {{type: dissolve, duration: 0.5}}
  - id: dawn
    image: "@harbor:first"
    end_image: "@keeper:2.5"
    prompt: dawn
    mode: pro
"""


@pytest.fixture
def branchy(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("harbor.png")
    return write_board(BRANCHY.format(sound="true"))


def test_frame_reference_parsing() -> None:
    assert parse_frame_ref("@a") == FrameRef("a", "last")
    assert parse_frame_ref("@a:first") == FrameRef("a", "first")
    assert parse_frame_ref("@a:2.5") == FrameRef("a", 2.5)
    assert parse_frame_ref("assets/x.png") is None
    with pytest.raises(ValueError):
        parse_frame_ref("@a:middle")
    with pytest.raises(ValueError):
        parse_frame_ref("@:last")


def test_graph_order_cycle_and_critical_path() -> None:
    g = ShotGraph("abcd", [("a", "b", "last"), ("b", "c", "last"), ("a", "d", "first")],
                  {"a": 6, "b": 4, "c": 4, "d": 10})
    assert g.order() == ["a", "b", "c", "d"]
    assert g.critical_path() == (["a", "d"], 16.0)
    assert g.descendants("b") == {"c"}
    assert g.needed_for(["c"]) == {"a", "b", "c"}
    cyc = ShotGraph("ab", [("a", "b", "last"), ("b", "a", "last")], {"a": 1, "b": 1})
    with pytest.raises(GraphError, match=r"shot cycle: (a -> b -> a|b -> a -> b)"):
        cyc.check()


def test_longer_cycle_names_every_shot(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - {id: a, prompt: x, image: "@c"}
          - {id: b, prompt: y}
          - {id: c, prompt: z}
    """)
    with pytest.raises(GraphError) as err:
        storyboard.load(path)
    assert "a -> b -> c -> a" in str(err.value) or "b -> c -> a -> b" in str(err.value) or "c -> a -> b -> c" in str(err.value)


def test_default_chaining_and_opt_outs(write_board: Callable[..., Path]) -> None:
    path = write_board("""
        storyboard: 1
        shots:
          - {id: a, prompt: x}
          - {id: b, prompt: y}
          - {id: c, prompt: z, image: null}
    """)
    board = storyboard.load(path)
    assert board.spec.shot("a").image is None
    assert board.spec.shot("b").image == FrameRef("a", "last")
    assert board.spec.shot("c").image is None
    unchained = write_board("storyboard: 1\nchain: false\nshots:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y}\n",
                            name="unchained.yaml")
    assert storyboard.load(unchained).spec.shot("b").image is None


def test_prompts_context(branchy: Path) -> None:
    board = storyboard.load(branchy)
    assert board.prompts["harbor"] == "Drone over the harbor. cinematic, 35mm"
    assert board.prompts["keeper"] == "a lighthouse keeper looks up at the sky"
    assert board.prompts["storm"] == "Storm over Drone over the harbor. cinematic, 35mm (shot 2, 4 s)"
    over = storyboard.load(branchy, vars={"hero": "a fisherman"})
    assert over.prompts["keeper"] == "a fisherman looks up at the sky"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ x.__globals__ }}", "not allowed"),
        ("{% for i in range(10**9) %}{% endfor %}", "not allowed"),
        ("{{ 'x' * 10**8 }}", "not allowed"),
        ("{{ 2 ** 10000 }}", "not allowed"),
        ("{% for i in range(9000) %}{% for j in range(9000) %}{% for k in range(9000) %}{% endfor %}{% endfor %}{% endfor %}",
             "ran for more than"),
        ("{% include '/etc/passwd' %}", "not found"),
        ("{% include '../../../../etc/passwd' %}", "not found"),
    ],
)
def test_sandbox_refuses(source: str, fragment: str) -> None:
    with pytest.raises(PromptError, match=fragment):
        PromptRenderer().render(inline=source, context={"x": lambda: 1})


def test_library_templates_are_reachable() -> None:
    from storyboard.prompts import library_dir

    assert (library_dir() / "__init__.py").exists()


def test_cache_key_is_a_merkle_chain() -> None:
    req = ShotRequest(shot_id="b", prompt="p", duration=5)
    parent_v1 = {"image": {"clip": "aaa", "selector": "last"}, "end_image": None}
    parent_v2 = {"image": {"clip": "bbb", "selector": "last"}, "end_image": None}
    k1 = cache_key(req, backend="inference", images=parent_v1)
    assert k1 == cache_key(ShotRequest(shot_id="renamed", prompt="p", duration=5), backend="inference", images=parent_v1)
    assert k1 != cache_key(req, backend="inference", images=parent_v2)
    assert k1 != cache_key(req, backend="animatic", images=parent_v1)
    assert k1 != cache_key(ShotRequest(shot_id="b", prompt="p", duration=6), backend="inference", images=parent_v1)
    assert k1 != cache_key(req, backend="inference", images={**parent_v1, "image": {"clip": "aaa", "selector": "first"}})


def test_plan_statuses_and_costs(branchy: Path) -> None:
    board = storyboard.load(branchy)
    plan = board.plan(backend="inference")
    status = {s.id: s.status for s in plan.shots}
    assert status == {"harbor": "generate", "keeper": "after", "storm": "after", "dawn": "after"}
    assert plan["dawn"].after == ("harbor", "keeper")
    assert plan["harbor"].key is not None and plan["keeper"].key is None
    # std with sound: 0.126/s; dawn is pro with sound: 0.168/s
    assert plan.cost == Decimal("0.126") * (6 + 4 + 4) + Decimal("0.168") * 4
    assert plan.critical_path == ("harbor", "keeper", "storm")
    assert plan.critical_seconds == 14.0
    animatic = board.plan(backend=AnimaticBackend())
    assert animatic.cost == Decimal(0)
    assert animatic.reference_cost == plan.cost


def test_plan_of_silent_shots_uses_silent_prices(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> None:
    make_image("harbor.png")
    path = write_board(BRANCHY.format(sound="false"))
    plan = storyboard.load(path).plan(backend="inference")
    assert plan.cost == Decimal("0.084") * 14 + Decimal("0.112") * 4


def test_unknown_app_is_a_located_error(write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\ndefaults: {app: someone/other-model}\nshots:\n  - {id: a, prompt: x}\n")
    with pytest.raises(SpecError, match=r":2:\d+: .*unknown app 'someone/other-model'; storyboard knows: .*klingai/video-v3"):
        storyboard.load(path)
    result = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"])
    assert result.exit_code == 1 and "unknown app" in result.output


def test_plan_command_table_and_json(branchy: Path) -> None:
    result = CliRunner().invoke(main, ["plan", str(branchy), "--backend", "inference"])
    assert result.exit_code == 0, result.output
    for text in ("harbor", "after harbor, keeper", "critical path: harbor → keeper → storm (14 s"):
        assert text in result.output
    data = json.loads(CliRunner().invoke(main, ["plan", str(branchy), "--json"]).output)
    assert [s["id"] for s in data["shots"]] == ["harbor", "keeper", "storm", "dawn"]
    assert data["totals"]["seconds_to_generate"] == 18
    assert data["totals"]["critical_path"] == ["harbor", "keeper", "storm"]
    assert len(data["board_hash"]) == 64


def test_graph_command(branchy: Path) -> None:
    mermaid = CliRunner().invoke(main, ["graph", str(branchy)]).output
    assert mermaid.startswith("graph LR") and "s_harbor -->|last| s_keeper" in mermaid
    assert "s_harbor -->|first| s_dawn" in mermaid and "s_keeper -->|end:2.5| s_dawn" in mermaid
    dot = CliRunner().invoke(main, ["graph", str(branchy), "--format", "dot"]).output
    assert dot.startswith("digraph") and '"harbor" -> "keeper"' in dot


def test_schema_command_is_json_schema_with_descriptions() -> None:
    out = CliRunner().invoke(main, ["schema"]).output
    schema = json.loads(out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "shots" in schema["properties"] and "storyboard" in schema["required"]
    shot = schema["$defs"]["Shot"]
    assert shot["additionalProperties"] is False
    assert "description" in shot["properties"]["image"]


def test_usage_errors_exit_2(branchy: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["render", str(branchy), "--budget", "lots"]).exit_code == 2
    assert runner.invoke(main, ["render", str(branchy), "--concurrency", "0"]).exit_code == 2
    assert runner.invoke(main, ["render", str(branchy), "--set", "=x"]).exit_code == 2
    assert runner.invoke(main, ["plan", str(branchy), "--force", "nope"]).exit_code == 2
    assert runner.invoke(main, ["render", str(branchy), "--backend", "nope"]).exit_code == 2
    assert runner.invoke(main, ["frobnicate"]).exit_code == 2


def test_version() -> None:
    out = CliRunner().invoke(main, ["--version"]).output
    assert out.startswith("storyboard, version ")


def test_a_variant_goes_to_its_own_file(write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\nshots:\n  - {id: a, prompt: x}\n")
    plain = storyboard.load(path)
    variant = storyboard.load(path, overrides={"aspect_ratio": "9:16", "resolution": "1080p"})
    assert plain.output == path.parent / "out" / "film.mp4"
    assert variant.output == path.parent / "out" / "film.1080p-9x16.mp4"
    assert variant.output != plain.output
