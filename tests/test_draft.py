"""`storyboard draft` (issue 27 item 2): from an idea against the real fake server, and
offline from a script."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from fakeserver.text import instance
from storyboard.board import load
from storyboard.draft import draft_command, split_script
from storyboard.spec.models import json_schema
from tests.helpers import fake_in_env

KEY = "sk-fake-draft-0123456789"
IDEA = "a lighthouse keeper's last night on duty"


def valid(shots: int = 6) -> dict[str, Any]:
    return {"storyboard": 1, "title": "The last night", "defaults": {"aspect_ratio": "9:16"},
            "characters": {"elias": {"description": "an old lighthouse keeper with a white beard"}},
            "shots": [{"id": f"s{i}", "prompt": f"Elias at the lamp, moment {i}, warm light", "duration": 5,
                       "characters": ["elias"]} for i in range(1, shots + 1)]}


def invalid(seconds: int = 40) -> dict[str, Any]:
    board = valid()
    board["shots"][1]["duration"] = seconds
    board["shots"][2]["transition"] = "wipe-sideways"
    return board


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with fake_in_env(KEY) as server:
        yield server


def _draft(*args: str) -> Any:
    return CliRunner().invoke(draft_command, list(args), catch_exceptions=False)


def _text_calls(fake: FakeInference) -> list[dict[str, Any]]:
    return [t.input for t in fake.submissions if t.kind == "text"]


def test_idea_validates_after_one_repair_then_is_cached(tmp_path: Path, fake: FakeInference) -> None:
    out = tmp_path / "keeper.yaml"
    fake.text_script = [{"arguments": invalid()}, {"arguments": valid()}]
    got = _draft(IDEA, "--shots", "6", "--aspect", "9:16", "-o", str(out))
    assert got.exit_code == 0, got.output
    calls = _text_calls(fake)
    assert len(calls) == 2
    # the tool's parameters are the file format's schema; the app's limits are in the system prompt
    tool = calls[0]["tools"][0]["function"]
    assert tool["name"] == "write_storyboard" and tool["parameters"] == json.loads(json.dumps(json_schema()))
    assert "3 to 15 seconds" in calls[0]["system_prompt"]
    # the repair round sends the loader's located problems back
    assert "keeper.yaml:" in calls[1]["text"] and "duration" in calls[1]["text"]
    text = out.read_text()
    assert text.startswith("# drafted by `storyboard draft` with anthropic/claude-sonnet-4-6 (version ")
    assert IDEA in text.splitlines()[0]
    board = load(out)
    assert len(board.shots) == 6 and board.shots[0].aspect_ratio == "9:16"
    # the same idea and options: the same file, no text call
    out.unlink()
    again = _draft(IDEA, "--shots", "6", "--aspect", "9:16", "-o", str(out))
    assert again.exit_code == 0 and len(_text_calls(fake)) == 2 and out.read_text() == text


def test_still_invalid_after_two_repairs_writes_nothing(tmp_path: Path, fake: FakeInference) -> None:
    out = tmp_path / "keeper.yaml"
    fake.text_script = [{"arguments": invalid(s)} for s in (40, 41, 42)]
    got = _draft(IDEA, "-o", str(out))
    assert got.exit_code != 0 and not out.exists()
    assert "still invalid after 2 repairs" in got.output and "keeper.yaml:" in got.output
    assert len(_text_calls(fake)) == 3


def test_text_answer_with_json_is_accepted_and_none_is_retried_once(tmp_path: Path, fake: FakeInference) -> None:
    out = tmp_path / "a.yaml"
    fake.text_script = [{"response": "Here is a lovely idea!"},
                        {"response": "Sure:\n```json\n" + json.dumps(valid()) + "\n```"}]
    got = _draft(IDEA, "-o", str(out))
    assert got.exit_code == 0, got.output
    assert len(_text_calls(fake)) == 2 and "Answer only by calling" in _text_calls(fake)[1]["text"]
    fake.text_script = [{"response": "no"}, {"response": "still no"}]
    bad = _draft("another idea", "-o", str(tmp_path / "b.yaml"))
    assert bad.exit_code != 0 and "no call of write_storyboard and no JSON" in bad.output
    assert not (tmp_path / "b.yaml").exists()


def test_fake_tool_arguments_satisfy_the_parameters() -> None:
    schema = json_schema()
    jsonschema.validate(instance(schema), schema)


def test_idea_needs_the_text_app_offline(tmp_path: Path) -> None:
    got = _draft(IDEA, "--backend", "animatic", "-o", str(tmp_path / "x.yaml"))
    assert got.exit_code != 0 and "--from-script" in got.output


def test_bad_options_are_refused_before_any_call(tmp_path: Path, fake: FakeInference) -> None:
    got = _draft(IDEA, "--aspect", "5:4", "-o", str(tmp_path / "x.yaml"))
    assert got.exit_code != 0 and "--aspect 5:4: klingai/video-v3 takes 16:9, 9:16, 1:1" in got.output
    bad_app = _draft(IDEA, "--text-app", "klingai/video-v3", "-o", str(tmp_path / "x.yaml"))
    assert bad_app.exit_code != 0 and "is not a text app" in bad_app.output
    assert fake.submissions == [] and not (tmp_path / "x.yaml").exists()


SCRIPT = " ".join([
    "The lighthouse stood alone at the edge of the world.", "Every night for forty years, Elias climbed its stairs.",
    "Tonight the lamp would turn for the last time.", "He polished the great lens slowly.",
    "Outside, the sea was black and calm.", "A ship's light blinked far away.",
    "He remembered his first night on duty.", "His hands had shaken then.", "Now they were steady and old.",
    "At dawn the new automatic beacon would take over.", "He watched the beam sweep the water once more.",
    "Then he walked down the stairs and did not look back.",
])


def test_split_script_keeps_each_shot_under_max_shot() -> None:
    from storyboard.narration import estimate_seconds

    one = split_script(SCRIPT, 1.0)
    assert len(one) == 12  # a sentence each
    few = split_script(SCRIPT, 8.0)
    assert 1 < len(few) < 12 and " ".join(few) == SCRIPT
    assert all(estimate_seconds(line) <= 8.0 for line in few)


def test_from_script_renders_a_narrated_animatic_with_captions(tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    out = tmp_path / "keeper.yaml"
    got = _draft("--from-script", str(script), "--aspect", "9:16", "--max-shot", "4", "-o", str(out))
    assert got.exit_code == 0, got.output
    data = yaml.safe_load(out.read_text())
    lines = [s["say"] for s in data["shots"]]
    assert " ".join(lines) == SCRIPT and all("{{ style }}" in s["prompt"] for s in data["shots"])
    result = storyboard.render(out, backend="animatic")
    assert result.film is not None and result.film.exists()
    assert [n.text for n in result.narration] == lines
    srt = [p for p in result.captions if p.suffix == ".srt"]
    assert srt and SCRIPT.split()[0] in srt[0].read_text()


def test_from_script_with_the_model_writing_prompts(tmp_path: Path, fake: FakeInference) -> None:
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    out = tmp_path / "keeper.yaml"
    got = _draft("--from-script", str(script), "--backend", "inference", "-o", str(out))
    assert got.exit_code == 0, got.output
    (call,) = _text_calls(fake)
    assert call["tools"][0]["function"]["name"] == "write_prompts"
    data = yaml.safe_load(out.read_text())
    assert all(s["prompt"].startswith("xxxxxxxx") for s in data["shots"])  # the fake's schema-built answer
    assert " ".join(s["say"] for s in data["shots"]) == SCRIPT


def test_narrate_asks_for_a_line_on_every_shot(tmp_path: Path, fake: FakeInference) -> None:
    out = tmp_path / "narrated.yaml"
    said = valid()
    for shot in said["shots"]:
        shot["say"] = f"The keeper waits, {shot['id']}."
    fake.text_script = [{"arguments": valid()}, {"arguments": said}]
    got = _draft(IDEA, "--narrate", "-o", str(out))
    assert got.exit_code == 0, got.output
    first, second = _text_calls(fake)
    assert "say:" in first["system_prompt"] and "has no say: line (--narrate)" in second["text"]
    assert len(load(out).lines) == 6  # a voiced line per shot


def test_a_sentence_longer_than_the_apps_longest_shot_holds_its_last_frame(tmp_path: Path) -> None:
    script = tmp_path / "long.txt"
    script.write_text("Short one. " + " ".join(["word"] * 45) + ".")  # ~18 s of speech; klingai/video-v3 stops at 15
    out = tmp_path / "long.yaml"
    got = _draft("--from-script", str(script), "--max-shot", "4", "-o", str(out))
    assert got.exit_code == 0, got.output
    first, second = yaml.safe_load(out.read_text())["shots"]
    assert "fit" not in first and second["fit"] == "extend" and second["duration"] == 15
    assert storyboard.render(out, backend="animatic").film is not None
