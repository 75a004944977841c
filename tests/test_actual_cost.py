"""What a task really cost (issue 24, item 2): the report puts the cost a finished task
reports (its ``output_meta``) beside the estimate, a shot over its estimate by more than
10 % warns once, and ``--budget`` counts the actual spend before each new paid call."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fakeserver import FakeInference
from storyboard.cli import main
from storyboard.errors import BudgetError
from storyboard.request import ShotRequest, billed_cost
from storyboard.runner._spend import Spend

KEY = "sk-test-actual-24"
# seedance-2-0, 720p 16:9, 4 s, text only: 1280×720×(24·4+1)/1024 = 87,300 tokens at $7.0/M
TOKENS = 87300
ESTIMATE = Decimal(TOKENS) * Decimal("7.0") / 1_000_000  # $0.6111
CHAINED = Decimal(TOKENS) * Decimal("4.3") / 1_000_000  # the second shot starts on the first's last frame

BOARD = """
storyboard: 1
defaults: {app: bytedance/seedance-2-0, resolution: 720p, aspect_ratio: "16:9", duration: 4, sound: false}
shots:
  - id: dawn
    prompt: the sea at dawn
  - id: noon
    prompt: the sea at noon
"""


class ReportingFake(FakeInference):
    """The fake, reporting Seedance usage as the real app does (``extra.completion_tokens``)."""

    tokens_factor = 1.0  # reported tokens = the formula's × this

    def _output(self, task: Any) -> dict[str, Any]:
        out = super()._output(task)
        for item in out.get("output_meta", {}).get("outputs", []):
            if item.get("type") == "video" and task.app.startswith("bytedance/seedance"):
                item.setdefault("extra", {})["completion_tokens"] = int(TOKENS * self.tokens_factor)
        return out


@pytest.fixture
def fake() -> Iterator[ReportingFake]:
    with ReportingFake(api_key=KEY, latency=0.05) as server:
        yield server


def render(fake: FakeInference, path: Path, *args: str) -> Any:
    env = {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    return CliRunner().invoke(main, ["render", str(path), "--backend", "inference", *args], env=env)


def report_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path.parent / "out" / "film.mp4.render.json").read_text())
    return data


def test_the_report_puts_the_reported_cost_beside_the_estimate(fake: ReportingFake,
                                                               write_board: Callable[..., Path]) -> None:
    fake.tokens_factor = 1.05  # within 10 %: no warning
    path = write_board(BOARD)
    result = render(fake, path)
    assert result.exit_code == 0, result.output
    shots = {s["id"]: s for s in report_of(path)["shots"]}
    reported = Decimal(int(TOKENS * 1.05)) * Decimal("7.0") / 1_000_000
    assert Decimal(shots["dawn"]["estimate"]) == ESTIMATE
    assert Decimal(shots["dawn"]["actual_cost"]) == reported
    assert "over its estimate" not in result.output


def test_a_shot_over_its_estimate_by_more_than_10_percent_warns_once(fake: ReportingFake,
                                                                    write_board: Callable[..., Path]) -> None:
    fake.tokens_factor = 1.5
    path = write_board(BOARD.replace("  - id: noon\n    prompt: the sea at noon\n", ""))
    result = render(fake, path)
    assert result.exit_code == 0, result.output
    assert result.output.count("over its estimate") == 1, result.output
    line = next(x for x in result.output.splitlines() if "over its estimate" in x)
    assert "'dawn' cost $0.917" in line and "50 % over its estimate of $0.611" in line
    assert Decimal(report_of(path)["actual_cost"]) == Decimal(int(TOKENS * 1.5)) * Decimal("7.0") / 1_000_000


def test_budget_counts_the_actual_spend_before_each_paid_call(fake: ReportingFake,
                                                              write_board: Callable[..., Path]) -> None:
    chained = BOARD.replace("prompt: the sea at noon", 'prompt: the sea at noon\n    image: "@dawn:last"')
    path = write_board(chained)
    budget = str(ESTIMATE + CHAINED + Decimal("0.01"))  # the plan fits: $0.99
    fake.tokens_factor = 1.5  # but dawn really costs $0.917, leaving $0.07 for noon's $0.375
    refused = render(fake, path, "--budget", budget)
    assert refused.exit_code != 0
    assert len(fake.submissions) == 1, "noon must not be paid"
    assert "'noon' not made: $0.917 spent so far" in refused.output and "nothing was paid for it" in refused.output
    fake.tokens_factor = 1.0  # dawn is cached (paid once); noon fits what is left
    again = render(fake, path, "--budget", budget)
    assert again.exit_code == 0, again.output
    assert len(fake.submissions) == 2


def test_the_spend_ledger() -> None:
    spend = Spend(Decimal("1.00"))
    spend.reserve("a", Decimal("0.60"))
    with pytest.raises(BudgetError, match="'b' not made"):  # a's estimate is still running
        spend.reserve("b", Decimal("0.50"))
    assert spend.settle("a", Decimal("0.60"), Decimal("0.65")) is None  # 8 % over: quiet
    assert spend.spent == Decimal("0.65")
    with pytest.raises(BudgetError, match=r"\$0.65 spent so far"):
        spend.reserve("b", Decimal("0.40"))
    spend.reserve("b", Decimal("0.40"), paid_already=True)  # re-attached: paid by an earlier render
    spend.release("b")
    with pytest.raises(BudgetError, match="price is unknown"):
        spend.reserve("c", None)
    warning = spend.settle("d", Decimal("0.10"), Decimal("0.12"))
    assert warning is not None and "20 % over its estimate of $0.1" in warning
    assert Spend(None).settle("x", None, None) is None


def test_a_raw_item_is_the_charge_itself_and_tokens_set_the_seedance_cost() -> None:
    kling = ShotRequest(shot_id="a", prompt="p", app="klingai/video-v3",
                        inputs={"prompt": "p", "duration": 5, "resolution": "720p", "sound": True})
    raw = {"inputs": [{"type": "text"}], "outputs": [{"type": "raw", "cost": 42.5}]}
    assert billed_cost(kling, raw) == Decimal("0.425")
    seconds = {"outputs": [{"type": "video", "seconds": 6.0, "resolution": "720p"}]}
    assert billed_cost(kling, seconds) == Decimal("0.126") * 6  # billed seconds, at the tier's rate
    seed = ShotRequest(shot_id="s", prompt="p", app="bytedance/seedance-2-0", image_source="start.png",
                       inputs={"prompt": "p", "duration": 5, "resolution": "720p", "ratio": "16:9"})
    tokens = {"outputs": [{"type": "video", "seconds": 5.0, "width": 1280, "height": 720,
                           "extra": {"completion_tokens": 100000}}]}
    assert billed_cost(seed, tokens) == Decimal(100000) * Decimal("4.3") / 1_000_000  # with an image: $4.3/M
    size = {"outputs": [{"type": "video", "seconds": 5.0, "width": 1280, "height": 720}]}
    assert billed_cost(seed, size) == Decimal(108900) * Decimal("4.3") / 1_000_000
    assert billed_cost(seed, {"outputs": []}) is None and billed_cost(seed, None) is None


def test_elevenlabs_is_billed_by_the_characters_it_reports() -> None:
    line = ShotRequest(shot_id="say:a", prompt="Hello there.", app="elevenlabs/tts", kind="audio",
                       inputs={"text": "Hello there.", "voice": "george", "model": "eleven_flash_v2_5"})
    meta = {"outputs": [{"type": "audio", "seconds": 1.2, "extra": {"characters": 2000, "model": "eleven_flash_v2_5"}}]}
    assert billed_cost(line, meta) == Decimal("0.30")  # 2,000 characters at $0.15/1K (flash)
    assert billed_cost(line, {"outputs": [{"type": "audio", "seconds": 1.2}]}) is None  # it says nothing
