"""Drafts and finals (issue 14): ``--app OLD=NEW`` renders the same storyboard on another
app into its own film and its own cache keys; ``plan`` shows both costs."""

from __future__ import annotations

import json
import shutil
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
    ]:
        res = CliRunner().invoke(main, ["render", str(path), *args])
        assert res.exit_code != 0 and message in res.output, res.output
        assert "Traceback" not in res.output
    assert not (path.parent / "out").exists()


def test_a_value_written_on_the_shot_is_still_checked_on_the_new_app(write_board: Callable[..., Path]) -> None:
    # defaults follow the app (Wan has no aspect ratio): only the shot's own value is an error
    path = write_board(BOARD.replace("prompt: a harbor at dusk", 'prompt: a harbor at dusk\n    aspect_ratio: "9:16"'))
    res = CliRunner().invoke(main, ["plan", str(path), "--app", "klingai/video-v3=alibaba/wan-2-7-i2v"])
    assert res.exit_code != 0, res.output
    assert ("film.yaml:6:19: with --app klingai/video-v3=alibaba/wan-2-7-i2v: shot 'a': alibaba/wan-2-7-i2v "
            "(version snapshot-2026-08-05) has no aspect ratio") in res.output, res.output
    assert "sound" not in res.output  # the file's default sound is not sent to Wan: no error for it


HARBOR = Path(__file__).resolve().parent.parent / "examples" / "harbor.yaml"
README_DRAFT = "klingai/video-v3=bytedance/seedance-2-0"


def test_the_readmes_draft_example_adapts_each_duration_with_a_line(tmp_path: Path) -> None:
    # examples/harbor.yaml's lamp is 3 s: Kling takes it, Seedance takes 4..15 s
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"--app {README_DRAFT}" in readme
    shutil.copytree(HARBOR.parent, tmp_path / "examples", ignore=shutil.ignore_patterns("out", "*.mp4"))
    path = tmp_path / "examples" / "harbor.yaml"
    line = ("note: shot 'lamp': bytedance/seedance-2-0 takes no 3 s clip; this draft makes it 4 s "
            "(the storyboard says 3 s)")
    plan = CliRunner().invoke(main, ["plan", str(path), "--app", README_DRAFT, "--json"])
    assert plan.exit_code == 0, plan.output
    data = json.loads(plan.output)
    assert data["notes"] == [line.removeprefix("note: ")]
    assert {s["id"]: s["duration"] for s in data["shots"]}["lamp"] == 4
    draft = CliRunner().invoke(main, ["render", str(path), "--app", README_DRAFT])
    assert draft.exit_code == 0, draft.output
    assert draft.output.count(line) == 1
    report = json.loads((path.parent / "out" / "harbor.seedance-2-0.mp4.render.json").read_text())
    assert {s["id"]: s["duration"] for s in report["shots"]}["lamp"] == 4


def test_a_final_never_adapts_a_duration(write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD.replace("prompt: the keeper looks up",
                                     "prompt: the keeper looks up\n    app: bytedance/seedance-2-0\n    duration: 3"))
    res = CliRunner().invoke(main, ["plan", str(path)])
    assert res.exit_code != 0
    assert "shot 'b': bytedance/seedance-2-0 allows duration 4..15; got 3" in res.output, res.output
