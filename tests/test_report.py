"""The HTML render report: a page beside the film that opens from disk, with no
server and no network, and a contact sheet PNG."""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import storyboard
from storyboard.backends.animatic import AnimaticBackend
from storyboard.cli import main
from storyboard.report import contact_sheet, extract_frames, read_render_report, write_report_html

ROOT = Path(__file__).resolve().parent.parent
HARBOR = ROOT / "examples" / "harbor.yaml"


class Page(HTMLParser):
    """Collects every reference to another file, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "poster", "data") and value is not None:
                self.refs.append((tag, value))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

# Module-scoped fixtures run before conftest's (function-scoped) small-size settings:
# say the size here.
SMALL = AnimaticBackend(short_side=90, fps=8)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[storyboard.Board, Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    board = storyboard.load(HARBOR)
    film, cache = tmp / "films" / "harbor.mp4", tmp / "cache"
    storyboard.render(board, backend=SMALL, output=film, cache_dir=cache)
    # the second render finds every shot cached: the report shows the hits
    storyboard.render(board, backend=SMALL, output=film, cache_dir=cache)
    return board, film, cache


def parse(page: Path) -> Page:
    parser = Page()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_page_is_self_contained_but_for_the_film(rendered: tuple[storyboard.Board, Path, Path]) -> None:
    board, film, cache = rendered
    page = write_report_html(board, film.with_name(film.name + ".render.json"), cache_dir=cache)
    assert page == film.with_suffix(".html")
    parsed = parse(page)
    assert "script" not in parsed.tags, "the page must work without scripts"
    assert ("video", "harbor.mp4") in parsed.refs, "the film is linked relatively"
    imgs = [ref for tag, ref in parsed.refs if tag == "img"]
    assert len(imgs) == 2 * len(board.shots) + 1  # first + last of each shot, and the contact sheet
    assert all(ref.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for ref in imgs)
    files = {ref for tag, ref in parsed.refs if tag != "img"}
    assert files == {"harbor.mp4"}, "the film is the one file the page needs beside it"
    # moved on its own, the page still shows every picture
    moved = page.parent / "elsewhere" / "page.html"
    moved.parent.mkdir()
    shutil.copyfile(page, moved)
    for data in imgs:
        import base64
        import io

        with Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))) as im:
            assert im.width > 10


def test_cached_rerun_shows_what_each_shot_cost_and_took(rendered: tuple[storyboard.Board, Path, Path]) -> None:
    board, film, cache = rendered
    page = write_report_html(board, film.with_name(film.name + ".render.json"), cache_dir=cache)
    html_text = page.read_text(encoding="utf-8")
    rows = html_text.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr>")[1:]
    assert len(rows) == len(board.shots)
    for row in rows:
        cost_cell, time_cell = row.split("<td class=num>")[-2:]
        assert "unknown" not in cost_cell and "$0" in cost_cell and "when made" in cost_cell
        assert "—" not in time_cell and " s<br><small>when made" in time_cell
    text = " ".join(" ".join(parse(page).text).split())
    assert "paid this render $0" in text
    assert "cost of the film $0" in text


def test_page_shows_prompts_hits_costs_and_graph(rendered: tuple[storyboard.Board, Path, Path]) -> None:
    board, film, cache = rendered
    page = write_report_html(board, film.with_name(film.name + ".render.json"), cache_dir=cache)
    text = " ".join(" ".join(parse(page).text).split())
    for sid, prompt in board.prompts.items():
        assert sid in text
        assert prompt in text
    assert text.count("cache hit") == len(board.shots)
    assert "$0" in text
    assert "graph LR" in text  # the mermaid source
    for u, v in board.graph.g.edges:
        assert f"{u} → {v}" in text


def test_report_command(rendered: tuple[storyboard.Board, Path, Path], tmp_path: Path) -> None:
    _board, film, cache = rendered
    sheet = tmp_path / "sheet.png"
    html_path = tmp_path / "elsewhere" / "page.html"
    result = CliRunner().invoke(main, ["report", str(HARBOR), "-o", str(film), "--cache-dir", str(cache),
                                       "--html", str(html_path), "--contact-sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(html_path)
    parsed = parse(html_path)
    for _tag, ref in parsed.refs:
        assert ref.startswith("data:") or (html_path.parent / ref).is_file(), ref
    assert any(tag == "video" and ref.endswith("films/harbor.mp4") for tag, ref in parsed.refs)
    with Image.open(sheet) as im:
        assert im.format == "PNG" and im.width > 200


def test_report_without_a_render_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(HARBOR), "-o", str(tmp_path / "none.mp4")])
    assert result.exit_code == 2
    assert "render the storyboard first" in result.output


def test_contact_sheet_grid(rendered: tuple[storyboard.Board, Path, Path], tmp_path: Path) -> None:
    board, film, cache = rendered
    data = read_render_report(film.with_name(film.name + ".render.json"))
    frames = extract_frames(board, data, tmp_path / "frames", cache)
    assert [f.shot for f in frames] == list(board.cut)
    one = contact_sheet(frames, tmp_path / "one.png", columns=1, thumb_height=60)
    two = contact_sheet(frames, tmp_path / "two.png", columns=2, thumb_height=60)
    with Image.open(one) as a, Image.open(two) as b:
        assert a.height > b.height and a.width < b.width


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_page_opens_in_headless_chromium(rendered: tuple[storyboard.Board, Path, Path]) -> None:
    board, film, cache = rendered
    page = write_report_html(board, film.with_name(film.name + ".render.json"), cache_dir=cache)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={page.parent / 'chromium-profile'}"]
    out = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60, check=True)
    assert "<video" in out.stdout and board.title in out.stdout
    # The contact-sheet pictures load from disk: the page is not a blank sheet of text.
    shot = page.parent / "page.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=60, check=True)
    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500  # photos, not just text on a background


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def narrated_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("narrated")
    shutil.copytree(ROOT / "examples", tmp / "examples")
    board = storyboard.load(tmp / "examples" / "narrated.yaml")
    result = storyboard.render(board, backend=SMALL, output=tmp / "films" / "narrated.mp4", cache_dir=tmp / "cache")
    assert result.report is not None
    return write_report_html(board, result.report, cache_dir=tmp / "cache")


def _in_chromium(page: Path, width: int, script: str) -> object:
    """Open ``page`` from disk (file://) in headless Chromium, ``width`` px wide; run ``script``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": width, "height": 844})
            tab.goto(page.as_uri())
            return tab.evaluate(script)
        finally:
            browser.close()


CUES = """() => new Promise((done) => {
  const track = document.querySelector('video track');
  if (!track) { done(-1); return; }
  const count = () => track.track.cues ? track.track.cues.length : 0;
  if (track.readyState === 2) { done(count()); return; }
  track.addEventListener('load', () => done(count()));
  track.addEventListener('error', () => done(-2));
  setTimeout(() => done(count()), 5000);
})"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_captions_load_from_disk_in_chromium(narrated_page: Path) -> None:
    text = narrated_page.read_text(encoding="utf-8")
    assert "file:" not in text and ".vtt" not in text.split("<track", 1)[1].split(">", 1)[0]
    cues = _in_chromium(narrated_page, 1200, CUES)
    assert isinstance(cues, int) and cues == 3, f"cues loaded: {cues}"


OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_page_shows_the_measured_loudness(narrated_page: Path) -> None:
    data = json.loads(narrated_page.with_suffix(".mp4.render.json").read_text())["loudness"]
    text = " ".join(" ".join(parse(narrated_page).text).split())
    assert f"loudness {data['integrated']:.1f} LUFS integrated, true peak {data['true_peak']:.1f} dBTP" in text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
@pytest.mark.parametrize("width", [390, 1200])
def test_page_fits_a_phone_wide_viewport(narrated_page: Path, width: int) -> None:
    overflow = _in_chromium(narrated_page, width, OVERFLOW)
    assert overflow == 0, f"the page overflows a {width} px viewport by {overflow} px"


def test_render_json_is_read_through_its_model(tmp_path: Path) -> None:
    from storyboard.errors import UsageError

    good = tmp_path / "film.mp4.render.json"
    good.write_text(json.dumps({"title": "T", "cost": "0.50", "cut": ["a"], "future_field": 1, "shots": [
        {"id": "a", "cache_hit": True, "cost": None, "facts": {"cost": "1.25", "generation_seconds": 3}}]}))
    data = read_render_report(good)
    assert data.shots[0].made_cost == Decimal("1.25") and data.shots[0].made_seconds == 3.0
    assert data.film_cost() == Decimal("1.25") and data.loudness is None
    bad = tmp_path / "bad.render.json"
    bad.write_text(json.dumps({"shots": [{"id": "a", "takes": [{"picked": True}]}]}))
    with pytest.raises(UsageError, match=r"not a storyboard render report: shots\.0\.takes\.0\.take: Field required"):
        read_render_report(bad)
