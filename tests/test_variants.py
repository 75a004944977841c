"""Drafts and finals (issue 14): ``--app OLD=NEW`` renders the same storyboard on another
app into its own film and its own cache keys; ``plan`` shows both costs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from storyboard.cli import main

BOARD = """
storyboard: 1
defaults: {duration: 4, mode: std}
shots:
  - id: a
    prompt: a harbor at dusk
  - id: b
    prompt: the keeper looks up
"""
SWAP = "klingai/video-v3=bytedance/seedance-2-0"


def _statuses(report: Path) -> dict[str, str]:
    return {s["id"]: s["status"] for s in json.loads(report.read_text())["shots"]}


def test_a_draft_has_its_own_film_and_keys(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD)
    out = path.parent / "out"
    draft = CliRunner().invoke(main, ["render", str(path), "--app", SWAP])
    assert draft.exit_code == 0, draft.output
    assert (out / "film.seedance-2-0.mp4").exists() and not (out / "film.mp4").exists()
    assert _statuses(out / "film.seedance-2-0.mp4.render.json") == {"a": "generated", "b": "generated"}
    final = CliRunner().invoke(main, ["render", str(path)])
    assert final.exit_code == 0, final.output
    # the final never takes the draft's clips: other app, other keys
    assert _statuses(out / "film.mp4.render.json") == {"a": "generated", "b": "generated"}
    again = CliRunner().invoke(main, ["render", str(path), "--app", SWAP])
    assert again.exit_code == 0, again.output
    assert _statuses(out / "film.seedance-2-0.mp4.render.json") == {"a": "cached", "b": "cached"}
    keys = {json.loads((out / n).read_text())["shots"][0]["key"] for n in
            ("film.mp4.render.json", "film.seedance-2-0.mp4.render.json")}
    assert len(keys) == 2


def test_plan_shows_both_costs(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD)
    out = CliRunner().invoke(main, ["plan", str(path), "--app", SWAP])
    assert out.exit_code == 0, out.output
    # Kling 720p with sound $0.126/s × 8 s; seedance 720p: 87,300 tokens a shot (1280×720, 97 fr.),
    # at $7.0/M for the text-only first and $4.3/M for the second, chained on its last frame
    assert "as written $1.008 | with --app klingai/video-v3=bytedance/seedance-2-0: $0.986\n" in out.output


def test_bad_swaps_are_one_clear_line(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD)
    for args, message in [
        (["--app", "klingai/video-v3"], "write OLD=NEW"),
        (["--app", "klingai/video-v3=nobody/none"], "unknown app 'nobody/none'"),
        (["--app", "bytedance/seedance-2-0=klingai/video-v3"], "no shot or still uses bytedance/seedance-2-0"),
        (["--app", "klingai/video-v3=alibaba/wan-2-7-i2v"],
         "with --app klingai/video-v3=alibaba/wan-2-7-i2v: shot 'a': alibaba/wan-2-7-i2v"),
    ]:
        res = CliRunner().invoke(main, ["render", str(path), *args])
        assert res.exit_code != 0 and message in res.output, res.output
        assert "Traceback" not in res.output
    assert not (path.parent / "out").exists()
