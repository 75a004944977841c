"""The judge (issue 27 item 3): `pick: auto` against the real fake server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.board import load
from storyboard.cache import open_cache
from storyboard.cli import main
from storyboard.errors import SpecError
from storyboard.runner._judge import JudgeView

KEY = "sk-fake-judge-0123456789"
BOARD = """\
storyboard: 1
defaults: {{duration: 3}}
vars:
  product: teal bottle
{extra}shots:
  - id: a
    prompt: "A keeper lights the lamp"
    takes: 3
    pick: auto
  - id: b
    prompt: "The beam sweeps the sea"
"""


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    # match_first_frame=False: every take its own clip (the fake makes one per input set otherwise)
    with FakeInference(api_key=KEY, latency=0.05, match_first_frame=False) as fake, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFERENCE_API_KEY", KEY)
        mp.setenv("INFERENCE_BASE_URL", fake.url)
        yield fake


def _kinds(fake: FakeInference, kind: str) -> list[Any]:
    return [t for t in fake.submissions if t.kind == kind]


@pytest.mark.parametrize("handoff", ["last", "best"])
def test_judge_picks_a_take_the_next_shot_starts_from(write_board: Callable[..., Path], fake: FakeInference,
                                                      handoff: str) -> None:
    path = write_board(BOARD.format(extra="").replace("    pick: auto\n", f"    pick: auto\n    handoff: {handoff}\n"))
    fake.text_script = [{"arguments": {"take": 3, "reason": "the lamp is lit and the keeper is in frame"}}]
    result = storyboard.render(path, backend="inference", budget="20")
    videos = _kinds(fake, "video")
    assert sorted(str(t.input["prompt"]) for t in videos).count("A keeper lights the lamp") == 3
    assert len(videos) == 4  # 3 takes of a, then b
    (judge,) = _kinds(fake, "text")
    assert len(judge.input["images"]) >= 3 and "A keeper lights the lamp" in judge.input["text"]
    assert judge.input["tools"][0]["function"]["name"] == "pick_take"
    # the chosen take is the shot's clip and the parent of b
    assert result.shots["a"].clip == result.shots["a#3"].clip
    report = json.loads(Path(result.report).read_text())
    shot_a = next(s for s in report["shots"] if s["id"] == "a")
    assert shot_a["facts"]["judge"]["reason"] == "the lamp is lit and the keeper is in frame"
    cache = open_cache(path, create=False)
    plan = load(path).plan(backend="inference", cache=JudgeView(cache))
    assert plan["b"].key == result.shots["b"].key and plan["b"].status == "cached"
    assert load(path).plan(backend="inference", cache=cache)["b"].key != result.shots["b"].key  # take 1 differs
    # b starts on take 3's last frame: the image it was sent is that frame as prepared
    b_task = videos[-1]
    assert b_task.input["prompt"] == "The beam sweeps the sea" and b_task.input.get("image")
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"])
    planned = json.loads(out.output)
    assert {s["status"] for s in planned["shots"]} == {"cached"}  # the plan knows the pick
    assert [(a["id"], a["status"]) for a in planned["audio"]] == [("judge:a", "cached")]  # and the verdict
    # a re-render asks nothing
    before = len(fake.submissions)
    storyboard.render(path, backend="inference")
    assert len(fake.submissions) == before


def test_a_hand_pick_wins_and_is_never_sent(write_board: Callable[..., Path], fake: FakeInference) -> None:
    path = write_board(BOARD.format(extra=""))
    out = CliRunner().invoke(main, ["pick", str(path), "a", "2"])
    assert out.exit_code == 0, out.output
    result = storyboard.render(path, backend="inference")
    assert _kinds(fake, "text") == [] and result.plan["a"].take == 2 and "judge" not in result.shots["a"].facts


def test_the_plan_prices_all_three_kinds(write_board: Callable[..., Path]) -> None:
    extra = '  tagline: {app: anthropic/claude-haiku-4-5, prompt: "A tagline for a {{ product }}", max_tokens: 60}\n'
    plan = load(write_board(BOARD.format(extra=extra))).plan(backend="inference").to_json()
    kinds = {a["kind"]: a for a in plan["audio"]}
    assert set(kinds) == {"text", "judge"}
    assert all(a["cost"] is not None and float(a["cost"]) > 0 for a in kinds.values())
    assert all(s["cost"] is not None for s in plan["shots"]) and plan["totals"]["cost"] is not None
    shots = sum(float(s["cost"]) for s in plan["shots"])
    assert float(plan["totals"]["cost"]) == pytest.approx(shots + sum(float(a["cost"]) for a in kinds.values()))


def test_offline_keeps_take_one_for_free(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD.format(extra=""))
    events: list[Any] = []
    result = storyboard.render(path, backend="animatic", on_event=events.append)
    assert not any("none picked" in str(getattr(e, "message", "")) for e in events)  # the judge picks, not you
    assert result.film is not None and result.shots["a"].facts["judge"]["take"] == 1


def test_none_rerolls_within_the_budget(write_board: Callable[..., Path], fake: FakeInference) -> None:
    path = write_board(BOARD.format(extra=""))
    fake.text_script = [{"arguments": {"take": "none", "reason": "the lamp is dark in every take"}},
                        {"arguments": {"take": 4, "reason": "the new take lights the lamp"}}]
    result = storyboard.render(path, backend="inference", budget="20", reroll_drifted=1)
    assert len(_kinds(fake, "text")) == 2
    assert len([t for t in _kinds(fake, "video") if t.input["prompt"] == "A keeper lights the lamp"]) == 4
    assert result.shots["a"].clip == result.shots["a#4"].clip


@pytest.mark.parametrize(("change", "fragment"), [
    (("    takes: 3\n", ""), "pick: auto needs takes: 2 or more"),
    (("shots:\n", "judge: klingai/video-v3\nshots:\n"), "takes no images"),
])
def test_bad_judging_is_located(write_board: Callable[..., Path], change: tuple[str, str], fragment: str) -> None:
    with pytest.raises(SpecError) as e:
        load(write_board(BOARD.format(extra="").replace(*change)))
    assert fragment in str(e.value) and "film.yaml:" in str(e.value)


def test_an_answer_without_a_take_is_asked_again_once(write_board: Callable[..., Path], fake: FakeInference) -> None:
    path = write_board(BOARD.format(extra=""))
    fake.text_script = [{"response": "They all look lovely."}, {"response": '{"take": 2, "reason": "sharpest"}'}]
    result = storyboard.render(path, backend="inference")
    first, second = (t.input["text"] for t in _kinds(fake, "text"))
    assert "Answer only by calling pick_take" in second and first != second
    assert result.shots["a"].clip == result.shots["a#2"].clip
    assert result.shots["a"].facts["judge"]["reason"] == "sharpest"
