"""Text nodes (issue 27 item 1): `vars:` written by a text app, against the real fake server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.board import load
from storyboard.cli import main
from storyboard.errors import SpecError

KEY = "sk-fake-text-0123456789"
BOARD = """\
storyboard: 1
defaults: {{duration: 3}}
vars:
  product: {product}
  tagline: {{app: anthropic/claude-haiku-4-5, prompt: "A six-word tagline for a {{{{ product }}}}", max_tokens: 60}}
shots:
  - id: a
    prompt: "A {{{{ product }}}} on a table. {{{{ tagline }}}}"
  - id: b
    prompt: "Close on the {{{{ product }}}}: {{{{ tagline }}}}"
"""


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.05) as fake, pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFERENCE_API_KEY", KEY)
        mp.setenv("INFERENCE_BASE_URL", fake.url)
        yield fake


def _texts(fake: FakeInference) -> list[dict[str, object]]:
    return [t.input for t in fake.submissions if t.kind == "text"]


def test_offline_placeholder_is_visible_and_free(write_board: Callable[..., Path]) -> None:
    board = load(write_board(BOARD.format(product="teal bottle")))
    assert board.prompts["a"] == "A teal bottle on a table. [tagline: A six-word tagline for a teal bottle]"
    plan = board.plan(backend="animatic", speaker="placeholder")
    (node,) = [a for a in plan.audio if a.kind == "text"]
    assert node.id == "text:tagline" and node.cost == 0


def test_text_var_flows_into_two_shots_with_one_call(write_board: Callable[..., Path], fake: FakeInference) -> None:
    path = write_board(BOARD.format(product="teal bottle"))
    plan = load(path).plan(backend="inference")
    kinds = {a.kind for a in plan.audio}
    assert kinds == {"text"} and plan.cost is not None
    (node,) = plan.audio
    # estimated before: the prompt's ~9 tokens at $1/M and every max_tokens (60) at $5/M
    assert node.cost == Decimal("0.000309")
    result = storyboard.render(path, backend="inference", budget="5")
    assert result.film is not None
    sent = _texts(fake)
    assert len(sent) == 1 and sent[0]["text"] == "A six-word tagline for a teal bottle" and sent[0]["max_tokens"] == 60
    videos = [t.input for t in fake.submissions if t.kind == "video"]
    answer = json.loads(Path(result.report).read_text())["texts"][0]["value"]
    assert answer and "[tagline" not in answer
    assert all(answer in v["prompt"] for v in videos) and len(videos) == 2
    report = json.loads(Path(result.report).read_text())
    text_row = next(r for r in report["audio"] if r["id"] == "text:tagline")
    assert text_row["status"] == "generated" and 0 < float(text_row["cost"]) < float(node.cost)  # actual, by usage
    before = len(fake.submissions)
    again = storyboard.render(path, backend="inference")
    assert len(fake.submissions) == before and again.film is not None  # a re-render makes 0 calls
    # `storyboard plan` reads the cached answer: the node and the shots reading it are cached
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"])
    plan_json = json.loads(out.output)
    assert [a["status"] for a in plan_json["audio"]] == ["cached"]
    assert {s["status"] for s in plan_json["shots"]} == {"cached"} and answer in plan_json["shots"][0]["prompt"]


def test_each_matrix_row_makes_one_text_call(write_board: Callable[..., Path], fake: FakeInference) -> None:
    path = write_board(BOARD.format(product="teal bottle"))
    for product in ("teal bottle", "red mug", "teal bottle"):
        storyboard.render(path, backend="inference", vars={"product": product})
    assert [t["text"] for t in _texts(fake)] == ["A six-word tagline for a teal bottle",
                                                  "A six-word tagline for a red mug"]


@pytest.mark.parametrize(("node", "fragment", "line"), [
    ('{app: anthropic/claude-haiku-4-5, prompt: "more {{ tagline }}"}', "reads 'tagline' itself, a cycle", 5),
    ('{app: anthropic/claude-haiku-4-5, prompt: "about {{ shots.a.prompt }}"}', "reads a shot, a cycle", 5),
    ('{app: anthropic/claude-haiku-4-5, prompt: "x", max_tokens: 70000}', "max_tokens 70000 is over", 5),
    ('{app: klingai/video-v3, prompt: "x"}', "is not a text app", 5),
])
def test_bad_text_nodes_are_located(write_board: Callable[..., Path], node: str, fragment: str, line: int) -> None:
    text = BOARD.format(product="teal bottle").replace(
        '{app: anthropic/claude-haiku-4-5, prompt: "A six-word tagline for a {{ product }}", max_tokens: 60}', node)
    with pytest.raises(SpecError) as e:
        load(write_board(text))
    assert fragment in str(e.value) and f"film.yaml:{line}:" in str(e.value)


def test_text_nodes_reading_each_other_in_a_cycle(write_board: Callable[..., Path]) -> None:
    text = BOARD.format(product="teal bottle").replace(
        '"A six-word tagline for a {{ product }}", max_tokens: 60}',
        '"{{ slogan }}"}\n  slogan: {app: anthropic/claude-haiku-4-5, prompt: "{{ tagline }}"}')
    with pytest.raises(SpecError, match="read each other in a cycle"):
        load(write_board(text))


def test_a_node_reading_another_waits_for_its_answer(write_board: Callable[..., Path], fake: FakeInference) -> None:
    text = BOARD.format(product="teal bottle").replace(
        '"A six-word tagline for a {{ product }}", max_tokens: 60}',
        '"Shorten: {{ slogan }}"}\n  slogan: {app: anthropic/claude-haiku-4-5, prompt: "A slogan for {{ product }}"}')
    storyboard.render(write_board(text), backend="inference")
    first, second = _texts(fake)
    assert first["text"] == "A slogan for teal bottle"
    assert second["text"].startswith("Shorten: ") and "[slogan" not in str(second["text"])
