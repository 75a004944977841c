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
from tests.helpers import fake_in_env

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
    with fake_in_env(KEY) as server:
        yield server


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
    before, reads = len(fake.submissions), len(fake.calls_to("GET", "/apps/anthropic"))
    again = storyboard.render(path, backend="inference")
    assert len(fake.submissions) == before and again.film is not None  # a re-render makes 0 calls
    assert len(fake.calls_to("GET", "/apps/anthropic")) == reads  # not even a live read of the text app
    # `storyboard plan` reads the cached answer: the node and the shots reading it are cached
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"])
    plan_json = json.loads(out.output)
    assert [a["status"] for a in plan_json["audio"]] == ["cached"]
    assert {s["status"] for s in plan_json["shots"]} == {"cached"} and answer in plan_json["shots"][0]["prompt"]


def test_each_matrix_row_makes_one_text_call(write_board: Callable[..., Path], fake: FakeInference) -> None:
    from pipelines.matrix import run_matrix

    path = write_board(BOARD.format(product="teal bottle"))
    rows = [{"product": "teal bottle"}, {"product": "red mug"}, {"product": "blue jar"}]
    result = run_matrix(path, rows, backend="inference", budget=Decimal(20))
    assert all(f.error is None for f in result.films)
    assert sorted(t["text"] for t in _texts(fake)) == sorted(f"A six-word tagline for a {r['product']}" for r in rows)
    again = run_matrix(path, [*rows, {"product": "red mug"}], backend="inference")  # a row again: no new call
    assert all(f.error is None for f in again.films) and len(_texts(fake)) == 3


def test_the_fake_answers_from_the_request() -> None:
    from fakeserver.text import text_output

    one = text_output({"text": "A tagline for a teal bottle", "max_tokens": 60}, [])
    assert one == text_output({"text": "A tagline for a teal bottle", "max_tokens": 60}, [])  # deterministic
    assert one["response"] != text_output({"text": "A tagline for a red mug", "max_tokens": 60}, [])["response"]
    assert one["usage"]["prompt_tokens"] == 7 and one["usage"]["completion_tokens"] > 0
    tool = {"type": "function", "function": {"name": "pick", "parameters": {
        "type": "object", "required": ["take", "reason"],
        "properties": {"take": {"type": "integer", "minimum": 1, "maximum": 3}, "reason": {"type": "string"}}}}}
    called = text_output({"text": "pick", "tools": [tool], "images": ["a", "b"]}, [])
    (call,) = called["tool_calls"]
    assert call["function"]["name"] == "pick" and json.loads(call["function"]["arguments"]) == {"take": 1,
                                                                                                "reason": "xxxx"}
    assert called["usage"]["prompt_tokens"] > 3200  # two images counted
    scripted = text_output({"text": "x", "tools": [tool]}, [{"response": "no tool"}])
    assert scripted["tool_calls"] is None and scripted["response"] == "no tool"


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


def test_set_replaces_a_text_node(write_board: Callable[..., Path]) -> None:
    board = load(write_board(BOARD.format(product="teal bottle")), vars={"tagline": "Drink teal."})
    assert board.texts == () and board.prompts["b"] == "Close on the teal bottle: Drink teal."
