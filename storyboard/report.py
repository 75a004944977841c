"""The HTML render report: one page beside the film.

``<film stem>.html`` shows the film (a ``<video>`` with a relative ``src``: the one
file the page links to), a contact sheet (the first and last frame of every shot),
each shot's rendered prompt, cache hit, cost and timings (read from the
``<film>.render.json`` the runner writes) and the shot graph (its Mermaid source and a
plain list of edges: drawing Mermaid needs its JavaScript, which a page that must open
from disk with no network cannot fetch).

Every picture, and the narration's captions (WebVTT), is inlined as a ``data:`` URI, so
the page opens from disk (Chromium will not load a ``file:`` track) and can be mailed or
moved on its own (the film then plays only where it sits beside it). The frames are also
written to ``<film stem>.report/``, with ``contact-sheet.png``. No scripts, fonts or remote
files. The page comes from the autoescaping Jinja2 template ``data/report.html.j2``; the
render report is read through :mod:`storyboard.reportdata`'s typed model.
A cache hit costs nothing now: its cost and time are the original generation's, as
the cache recorded them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from storyboard.errors import UsageError
from storyboard.facts import usd
from storyboard.reportdata import (
    RenderReport,
    Reroll,
    ShotEntry,
    film_of,
    read_render_report,
    report_json_path,
)

if TYPE_CHECKING:
    from storyboard.board import Board


@dataclass(frozen=True)
class ShotFrames:
    """A shot's first and last frame on disk, for the contact sheet."""

    shot: str
    first: Path
    last: Path
    caption: str


def _clip_path(board: Board, recorded: str | None, key: str | None, cache_dir: str | Path | None) -> Path | None:
    """The clip a shot used. The report records it as the runner saw it (possibly
    relative to the folder it ran in); else ask the cache by the shot's key."""
    if recorded:
        for candidate in (Path(recorded), board.spec.folder / recorded):
            if candidate.is_file():
                return candidate
    if key:
        from storyboard.cache import open_cache

        root = open_cache(board.path, cache_dir, create=False)
        if root.root.is_dir():
            entry = root.lookup(key)
            if entry is not None:
                return entry.path
    return None


def _size(shot: ShotEntry) -> str:
    """A shot's length and mode for the report's table (a still: its app)."""
    if shot.kind == "still":
        return f"still · {shot.app}"
    return f"{shot.duration} s · {shot.mode}{' · silent' if shot.sound is False else ''}"


def _caption(shot: ShotEntry) -> str:
    status = "cached" if shot.cache_hit else str(shot.status or "")
    length = "still" if shot.kind == "still" else f"{shot.duration if shot.duration is not None else '?'} s"
    return f"{shot.id} · {length} · {status}"


async def _extract_all(jobs: list[tuple[Path, str, Path]]) -> None:
    from storyboard.media import extract_frame

    await asyncio.gather(*(extract_frame(clip, sel, dest) for clip, sel, dest in jobs))


def extract_frames(board: Board, data: RenderReport, folder: Path,
                   cache_dir: str | Path | None = None) -> list[ShotFrames]:
    """First and last frame of every shot that has a clip, in film order then the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    order = {sid: i for i, sid in enumerate(data.cut or board.cut)}
    shots = sorted(data.shots, key=lambda s: (order.get(s.id, len(order)), s.id))
    jobs: list[tuple[Path, str, Path]] = []
    out: list[ShotFrames] = []
    for shot in shots:
        clip = _clip_path(board, shot.clip, shot.key, cache_dir)
        if clip is None:
            continue
        first, last = folder / f"{shot.id}-first.png", folder / f"{shot.id}-last.png"
        jobs += [(clip, "first", first), (clip, "last", last)]
        out.append(ShotFrames(shot.id, first, last, _caption(shot)))
        for take in shot.takes:  # the other takes, shown side by side with the pick
            take_clip = _clip_path(board, take.clip, take.key, cache_dir)
            if take.picked or take_clip is None:
                continue
            name = f"{shot.id}#{take.take}"
            first, last = folder / f"{shot.id}-take{take.take}-first.png", folder / f"{shot.id}-take{take.take}-last.png"
            jobs += [(take_clip, "first", first), (take_clip, "last", last)]
            out.append(ShotFrames(name, first, last, f"{name} (take {take.take})"))
    if jobs:
        asyncio.run(_extract_all(jobs))
    return out


def contact_sheet(frames: list[ShotFrames], dest: Path, *, title: str = "", thumb_height: int = 160,
                  columns: int = 2) -> Path:
    """A PNG grid: one cell per shot, its first and last frame side by side, captioned."""
    from PIL import Image, ImageDraw, ImageFont

    if not frames:
        raise UsageError("no clips to put on a contact sheet")
    font = ImageFont.load_default(size=max(12, thumb_height // 9))
    title_font = ImageFont.load_default(size=max(16, thumb_height // 7))
    thumbs: list[tuple[Image.Image, Image.Image, str]] = []
    for f in frames:
        pair = []
        for p in (f.first, f.last):
            with Image.open(p) as im:
                w, h = im.size
                pair.append(im.convert("RGB").resize((max(1, round(w * thumb_height / h)), thumb_height),
                                                     Image.Resampling.LANCZOS))
        thumbs.append((pair[0], pair[1], f.caption))
    pad, gap, caption_h = 16, 6, thumb_height // 5 + 8
    cell_w = max(a.width + gap + b.width for a, b, _ in thumbs)
    cell_h = thumb_height + caption_h
    columns = max(1, min(columns, len(thumbs)))
    rows = -(-len(thumbs) // columns)
    head = (thumb_height // 5 + 2 * pad) if title else pad
    sheet = Image.new("RGB", (pad + columns * (cell_w + pad), head + rows * (cell_h + pad)), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), title, fill=(240, 240, 240), font=title_font)
    for i, (a, b, caption) in enumerate(thumbs):
        x = pad + (i % columns) * (cell_w + pad)
        y = head + (i // columns) * (cell_h + pad)
        sheet.paste(a, (x, y))
        sheet.paste(b, (x + a.width + gap, y))
        draw.text((x, y + thumb_height + 4), f"{i + 1}. {caption}  (first | last)", fill=(220, 220, 220), font=font)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, format="PNG", optimize=True)
    return dest


def data_uri(image: Path, *, height: int | None = 180) -> str:
    """An image as a ``data:`` URI, scaled down to ``height`` pixels (None: as it is)."""
    from PIL import Image

    if height is None:
        return "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode("ascii")
    with Image.open(image) as im:
        w, h = im.size
        small = im.convert("RGB")
        if h > height:
            small = small.resize((max(1, round(w * height / h)), height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def captions_uri(vtt: Path) -> str:
    """The WebVTT captions as a ``data:`` URI: a page opened from disk may not load a
    ``file:`` track (Chromium refuses it as unsafe), but it plays inline cues."""
    return "data:text/vtt;charset=utf-8;base64," + base64.b64encode(vtt.read_bytes()).decode("ascii")


_PAGES = jinja2.Environment(loader=jinja2.PackageLoader("storyboard", "data"), autoescape=True,
                            undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


@dataclass
class _TakeCell:
    take: int
    picked: bool
    frames: tuple[str, str] | None
    clip: str | None


@dataclass
class _RerollRow:
    row: Reroll
    clip: str | None


@dataclass
class _Row:
    """One shot's row of the table, its pictures inlined and its links relative."""

    shot: ShotEntry
    num: str
    size: str
    frames: tuple[str, str] | None
    sources: str
    cost: str
    timing: str
    billed: float | None
    takes: list[_TakeCell] = field(default_factory=list)
    rerolls: list[_RerollRow] = field(default_factory=list)


def _frames(f: ShotFrames | None, height: int = 180) -> tuple[str, str] | None:
    return None if f is None else (data_uri(f.first, height=height), data_uri(f.last, height=height))


def _row(shot: ShotEntry, num: str, frames: dict[str, ShotFrames], where: Path) -> _Row:
    seconds = shot.made_seconds

    def link(clip: str | None) -> str | None:
        return _rel(Path(clip), where) if clip else None

    return _Row(
        shot=shot, num=num, size=_size(shot), frames=_frames(frames.get(shot.id)),
        sources=" → ".join(x for x in (shot.image or "none", shot.end_image) if x),
        cost=usd(shot.made_cost), timing=f"{seconds:.1f} s" if seconds is not None else "—",
        billed=shot.billed_seconds or shot.facts.billed_seconds,
        takes=[_TakeCell(t.take, t.picked, _frames(frames.get(shot.id if t.picked else f"{shot.id}#{t.take}"), 90),
                         link(t.clip)) for t in shot.takes],
        rerolls=[_RerollRow(r, link(r.clip)) for r in shot.facts.rerolls],
    )  # fmt: skip


def render_html(board: Board, data: RenderReport, *, page: Path, film: Path | None,
                frames: list[ShotFrames], sheet: Path | None) -> str:
    """The page's HTML, from the package's autoescaping template ``data/report.html.j2``.
    Paths are made relative to the page's folder; pictures and captions are inlined."""
    where = page.parent
    by_frames = {f.shot: f for f in frames}
    cut = list(data.cut or board.cut)
    order = {sid: i for i, sid in enumerate(cut)}
    shots = sorted(data.shots, key=lambda s: (order.get(s.id, len(order)), s.id))
    has_film = film is not None and film.is_file()
    vtt = film.with_suffix(".vtt") if film is not None else None
    return _PAGES.get_template("report.html.j2").render(
        r=data, title=data.title or board.title, board_name=board.path.name,
        duration=round(data.duration, 2) if data.duration else "—",
        paid=usd(data.cost), film_cost=usd(data.film_cost()), estimate=usd(data.estimate),
        film_src=_rel(film, where) if has_film and film is not None else None,
        film_name=film.name if film is not None else "",
        captions=captions_uri(vtt) if has_film and data.narration and vtt is not None and vtt.is_file() else None,
        sheet=data_uri(sheet, height=None) if sheet is not None else None,
        rows=[_row(s, str(order[s.id] + 1) if s.id in order else "–", by_frames, where) for s in shots],
        edges=board.graph.edges(), cut=cut, mermaid=board.graph.to_mermaid(),
    )  # fmt: skip


def write_report_html(board: Board, result_json_path: str | Path, *, output: str | Path | None = None,
                      cache_dir: str | Path | None = None, sheet: bool = True) -> Path:
    """Write the HTML report of a render beside its film and return the page's path.

    ``result_json_path`` is the ``<film>.render.json`` the runner wrote. The frames go
    into ``<film stem>.report/`` beside the page, with ``contact-sheet.png``."""
    result_json_path = Path(result_json_path)
    data = read_render_report(result_json_path)
    film = film_of(result_json_path)
    page = Path(output) if output else film.with_suffix(".html")
    assets = page.with_name(page.stem + ".report")
    frames = extract_frames(board, data, assets, cache_dir)
    sheet_path = contact_sheet(frames, assets / "contact-sheet.png", title=board.title) if (sheet and frames) else None
    page.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(board, data, page=page, film=film, frames=frames, sheet=sheet_path)
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(page)
    return page


__all__ = ["RenderReport", "ShotFrames", "captions_uri", "contact_sheet", "data_uri", "extract_frames", "film_of",
           "read_render_report", "render_html", "report_json_path", "write_report_html"]
