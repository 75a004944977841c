"""`storyboard init NAME`: a new storyboard folder that validates and renders offline."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from PIL import Image

import storyboard
from storyboard.cli import main
from storyboard.media import probe
from storyboard.spec import json_schema


def test_init_creates_a_storyboard_that_renders(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "harbor-film", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "harbor-film"
    board_path = folder / "harbor-film.yaml"
    assert f"storyboard render {board_path}" in result.output

    lines = board_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# yaml-language-server: $schema=storyboard.schema.json"
    schema = folder / "storyboard.schema.json"
    assert json.loads(schema.read_text(encoding="utf-8")) == json_schema()

    data = yaml.safe_load(board_path.read_text(encoding="utf-8"))
    assert data["title"] == "Harbor Film"
    templated = [s for s in data["shots"] if "template" in s]
    assert templated and (folder / "templates" / templated[0]["template"]).is_file()
    image = folder / data["shots"][0]["image"]
    with Image.open(image) as im:
        assert im.format == "PNG" and min(im.size) >= 300
    assert (folder / ".gitignore").read_text(encoding="utf-8").split() == ["out/", ".storyboard/"]

    board = storyboard.load(board_path)
    assert len(board.shots) == 3
    assert "paper boat" in board.prompts["opening"]  # the template rendered with the file's vars
    film = storyboard.render(board, backend="animatic")
    assert film.film == folder / "out" / "harbor-film.mp4"
    info = probe(film.film)
    assert info.has_audio and info.width > info.height


def test_init_validates_with_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init", "a", "--dir", str(tmp_path), "--title", "My Short"]).exit_code == 0
    result = runner.invoke(main, ["validate", str(tmp_path / "a" / "a.yaml")])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    assert yaml.safe_load((tmp_path / "a" / "a.yaml").read_text(encoding="utf-8"))["title"] == "My Short"


def test_init_into_a_nested_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "films/short", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "films" / "short" / "short.yaml").is_file()


def test_init_refuses_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["init", "taken", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]


def test_init_into_an_empty_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert CliRunner().invoke(main, ["init", "empty", "--dir", str(tmp_path)]).exit_code == 0


def test_init_refuses_odd_names(tmp_path: Path) -> None:
    for name in ("two words", "-dash", "a.b", ".."):
        result = CliRunner().invoke(main, ["init", name, "--dir", str(tmp_path)])
        assert result.exit_code == 2, (name, result.output)
