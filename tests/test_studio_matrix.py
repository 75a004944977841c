"""`storyboard studio --matrix board.yaml rows.csv`: one row per film with its status and
cost; a row opens that film's board, which renders the film where the matrix puts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.matrix import jobs_for
from storyboard import read_rows
from tests.studio_helpers import CHROMIUM, chromium, studio

BOARD = """\
storyboard: 1
title: Spot
backend: animatic
defaults: {app: klingai/video-v3, duration: 3}
vars:
  product: a kettle
shots:
  - id: hero
    prompt: "{{ product }} on a kitchen table"
  - id: close
    prompt: "{{ product }}, close up"
"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_matrix_rows_open_their_film_board(tmp_path: Path) -> None:
    board = tmp_path / "spot.yaml"
    board.write_text(BOARD)
    rows = tmp_path / "rows.csv"
    rows.write_text("product\na red kettle\na blue teapot\n")
    with studio(board, "--matrix", str(rows)) as s, chromium() as page:
        page.goto(s.url)
        assert page.locator("#matrix tbody tr").count() == 2
        assert page.inner_text("tr[data-row='1'] .status") == "2 to generate"
        assert page.inner_text("tr[data-row='2'] td:nth-child(3)") == "a blue teapot"
        page.click("tr[data-row='1'] a")
        page.wait_for_selector("#card-hero")
        assert "a red kettle" in page.inner_text("#card-hero")
        page.click("#render")
        page.wait_for_function("[...document.querySelectorAll('.card')].every(c => c.dataset.status === 'cached')"
                               " && document.querySelector('#state').textContent === 'idle'", timeout=60_000)
        page.goto(s.url)
        assert page.inner_text("tr[data-row='1'] .status") == "rendered"
        assert page.inner_text("tr[data-row='2'] .status") == "2 to generate"
        assert page.inner_text("tr[data-row='1'] .cost") == "$0"
    film = jobs_for(board, read_rows(rows))[0].output  # where `python -m pipelines.matrix` puts it
    assert film.is_file()
    assert not jobs_for(board, read_rows(rows))[1].output.exists()


def test_matrix_needs_its_rows(tmp_path: Path) -> None:
    import subprocess
    import sys

    board = tmp_path / "spot.yaml"
    board.write_text(BOARD)
    done = subprocess.run([sys.executable, "-c", "from storyboard.cli import main; main()", "studio", "--matrix",
                           str(board), "--no-browser"], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "--matrix takes the board and its rows" in done.stderr
