"""The studio's Render and Cancel are the CLI's: a paid render asks for the planned cost and
respects --budget; Cancel leaves the journal Ctrl-C leaves, and the next render (the CLI's)
re-attaches. A file changed on disk is reloaded with a notice. Real Chromium, real fake
inference.sh server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeInference
from storyboard.cache import open_cache
from tests.studio_helpers import CHROMIUM, chromium, studio, ten_shots

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
KEY = "sk-test-studio-77cd"
BOARD = """
    storyboard: 1
    defaults: {mode: std, duration: 3}
    shots:
      - {id: one, prompt: first, image: start.png}
      - {id: two, prompt: second, image: start.png}
      - {id: three, prompt: third}
"""


def _dialogs(page: Any, answer: list[bool]) -> list[str]:
    """Answer every confirm() with ``answer[0]``; the messages shown."""
    seen: list[str] = []

    def on(dialog: Any) -> None:
        seen.append(dialog.message)
        if answer[0]:
            dialog.accept()
        else:
            dialog.dismiss()
    page.on("dialog", on)
    return seen


def test_a_paid_render_asks_with_the_planned_cost_and_respects_budget(
        write_board: Callable[..., Path], make_image: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    make_image("start.png")
    path = write_board(BOARD)
    with FakeInference(api_key=KEY) as fake:
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        monkeypatch.setenv("INFERENCE_BASE_URL", fake.url)
        with studio(path, "--backend", "inference", "--budget", "0.10") as s, chromium() as page:
            answer = [False]
            seen = _dialogs(page, answer)
            page.goto(s.url)
            page.click("#render")
            page.wait_for_function("document.querySelector('#state').textContent === 'idle'")
            page.wait_for_timeout(300)
            assert len(seen) == 1 and "planned cost $" in seen[0] and "budget $0.1)" in seen[0]
            assert fake.submissions == []  # declined: nothing paid, nothing started
            answer[0] = True
            page.click("#render")
            page.wait_for_function("document.querySelector('#error').textContent.includes('over budget')")
            assert "Nothing was paid" in page.inner_text("#error")
            assert KEY not in page.content()
        assert fake.submissions == []


def test_cancel_leaves_the_journal_ctrl_c_leaves(write_board: Callable[..., Path], make_image: Callable[..., Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_image("start.png")
    path = write_board(BOARD)
    with FakeInference(api_key=KEY, latency=2.0) as fake:
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        monkeypatch.setenv("INFERENCE_BASE_URL", fake.url)
        with studio(path, "--backend", "inference") as s, chromium() as page:
            _dialogs(page, [True])
            page.goto(s.url)
            page.click("#render")
            deadline = time.monotonic() + 30
            while len(fake.submissions) < 2 and time.monotonic() < deadline:
                page.wait_for_timeout(50)  # (Playwright answers the confirm dialog only while called)
            assert len(fake.submissions) == 2, page.inner_text("#error")
            page.wait_for_function("document.querySelector('#card-one').dataset.status === 'generating'")
            page.wait_for_timeout(300)  # the journal is written before waiting
            page.click("#cancel")  # one click
            page.wait_for_function("document.querySelector('#error').textContent.includes('cancelled')")
            assert page.inner_text("#state") == "idle"
            journal = dict(open_cache(path).journal_entries())
            assert {d["shot"] for d in journal.values()} == {"one", "two"}
            assert not (path.parent / "out" / "film.mp4").exists()
            assert KEY not in page.content()
        # the CLI's next render re-attaches to both tasks and pays only for the third shot
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        done = subprocess.run([sys.executable, "-m", "storyboard.cli", "render", str(path), "--backend", "inference"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(fake.calls_to("POST", "/apps/run")) == 3
        assert list(open_cache(path).journal_entries()) == []


def test_a_file_changed_on_disk_is_reloaded_with_a_notice(tmp_path: Path) -> None:
    board = ten_shots(tmp_path)
    with studio(board) as s, chromium() as page:
        page.goto(s.url)
        assert page.locator(".card").count() == 10
        text = board.read_text()
        cut = text.index("  - id: s9")
        board.write_text(text[:cut])  # another editor removes the last shot
        page.wait_for_function("document.querySelector('#notice').textContent.includes('changed on disk')")
        page.wait_for_function("document.querySelectorAll('.card').length === 9")
        board.write_text(text[:cut] + "  - id: s9\n    prompt: [unclosed\n")
        page.wait_for_function("document.querySelector('#error').textContent.includes('ten.yaml:')")


def test_a_second_studio_on_the_same_board_waits_as_a_second_cli_render_does(
        write_board: Callable[..., Path], make_image: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    make_image("start.png")
    path = write_board(BOARD)
    with FakeInference(api_key=KEY, latency=2.0) as fake:
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        monkeypatch.setenv("INFERENCE_BASE_URL", fake.url)
        with studio(path, "--backend", "inference") as a, studio(path, "--backend", "inference") as b, \
                chromium() as page:
            _dialogs(page, [True])
            other = page.context.browser.new_page()
            _dialogs(other, [True])
            page.goto(a.url)
            other.goto(b.url)
            page.click("#render")
            page.wait_for_function("document.querySelector('#card-one').dataset.status === 'generating'")
            other.click("#render")
            other.wait_for_function("document.querySelector('#error').textContent.includes('already rendering')")
            assert str(path.parent / "out" / "film.mp4") in other.inner_text("#error")
            page.click("#cancel")
            page.wait_for_function("document.querySelector('#error').textContent.includes('cancelled')")
        assert len(fake.submissions) == 2  # the second studio paid for nothing


def test_plan_costs_update_after_an_edit_before_anything_is_paid(
        write_board: Callable[..., Path], make_image: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    make_image("start.png")
    path = write_board(BOARD)
    monkeypatch.setenv("INFERENCE_API_KEY", KEY)
    monkeypatch.setenv("INFERENCE_BASE_URL", "http://127.0.0.1:9")  # nothing may be called

    def planned(s: Any) -> float:
        cards = s.get("/fragment/cards", params={"token": s.token}).text
        return float(re.search(r'id="planned-cost">\$([\d.]+)<', cards).group(1))

    with studio(path, "--backend", "inference") as s:
        before = planned(s)
        r = s.post("/api/edit", {"shot": "three", "fields": {"duration": "6"}})
        assert r.status_code == 200 and r.json()["changed"] == ["three"]
        after = planned(s)
        assert after > before  # three's 3 s became 6 s on a per-second price
        assert "duration: 6" in path.read_text()
