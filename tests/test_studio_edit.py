"""The studio's round-trip edits and served paths, on their own (no browser): an edit
changes only the edited value in every example; a bad edit writes nothing."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import pytest

from storyboard.studio._edit import EditError, check_text, edit_text, replace_file
from storyboard.studio._safety import Guard, inside

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _changed(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("---", "+++"))]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_a_prompt_edit_changes_only_that_prompt(example: Path) -> None:
    text = example.read_text()
    shot = re.findall(r"- id: ([\w-]+)", text)[-1]
    after = edit_text(text, example, shot=shot, fields={"prompt": "A new prompt"})
    changed = _changed(text, after)
    assert "A new prompt" in changed[-1] and changed[-1].startswith("+") and all(c.startswith("-") for c in changed[:-1])
    assert len(re.findall("#", after)) == len(re.findall("#", text))  # every comment kept


def test_folded_prompt_stays_folded_and_vars_keep_their_comment(tmp_path: Path) -> None:
    path = tmp_path / "film.yaml"
    text = ("storyboard: 1\nvars:\n  style: noir   # the look\nshots:\n  - id: a\n    prompt: >-\n"
            "      A long\n      prompt\n")
    after = edit_text(text, path, shot="a", fields={"prompt": "Short {{ style }}"}, vars={"style": "pastel"})
    # the edited var keeps its comment (ruamel may move it by the value's change in length)
    assert re.sub(r" +#", " #", after) == ("storyboard: 1\nvars:\n  style: pastel # the look\nshots:\n  - id: a\n"
                                         "    prompt: >-\n      Short {{ style }}\n")
    assert edit_text(text, path, shot="a", fields={"say": ""}) == text  # no say: line, none added


def test_bad_edits_name_the_file_and_line(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "harbor.yaml", tmp_path / "harbor.yaml")
    (tmp_path / "assets").mkdir()
    for f in (ROOT / "examples" / "assets").iterdir():
        shutil.copy(f, tmp_path / "assets" / f.name)
    path = tmp_path / "harbor.yaml"
    text = path.read_text()
    with pytest.raises(EditError, match=r"no shot 'nope'"):
        edit_text(text, path, shot="nope", fields={"prompt": "x"})
    with pytest.raises(EditError, match=r"'image' is not editable"):
        edit_text(text, path, shot="harbor", fields={"image": "x"})
    with pytest.raises(EditError, match=rf"^{re.escape(str(path))}:\d+:\d+: "):
        check_text(edit_text(text, path, shot="harbor", fields={"duration": "99"}), path)
    assert path.read_text() == text and not list(tmp_path.glob(".*"))  # nothing written, no probe left
    replace_file(path, text + "\n")
    assert path.read_text() == text + "\n"


def test_inside_refuses_what_is_outside_or_hidden(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    (tmp_path / ".env").write_text("KEY=1")
    (tmp_path / "out.txt").write_text("y")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "out.txt")
    root = tmp_path / "a"
    assert inside(root, "f.txt") == (root / "f.txt").resolve()
    for bad in ("../out.txt", "/etc/passwd", "link", "", "x/../f.txt", "..\\out.txt", "C:/x", ".env"):
        assert inside(root, bad) is None, bad
    assert inside(tmp_path, ".env") is None


def test_guard_reasons() -> None:
    g = Guard(None, "tok", 5000)

    def scope(host: str = "127.0.0.1:5000", origin: str | None = None, qs: str = "token=tok") -> dict[str, object]:
        headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
        return {"type": "http", "headers": headers, "query_string": qs.encode()}
    assert g.refusal(scope()) is None
    assert g.refusal(scope(host="localhost:5000", origin="http://localhost:5000")) is None
    assert "Host" in (g.refusal(scope(host="attacker.example:5000")) or "")
    assert "Origin" in (g.refusal(scope(origin="http://127.0.0.1:5001")) or "")
    assert "token" in (g.refusal(scope(qs="token=to")) or "")


def test_lines_and_text_nodes_are_on_the_page(tmp_path: Path) -> None:
    from tests.studio_helpers import studio

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    board = tmp_path / "examples" / "narrated.yaml"
    with studio(board) as s:
        page = s.get("/", params={"token": s.token}).text
    assert 'id="audio"' in page and "data-node=\"say:" in page
    assert page.count('class="say"') >= 1
