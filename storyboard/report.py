"""The HTML render report: one page beside the film.

``<film stem>.html`` shows the film (a ``<video>`` with a relative ``src``: the one
file the page links to), a contact sheet (the first and last frame of every shot),
each shot's rendered prompt, cache hit, cost and timings (read from the
``<film>.render.json`` the runner writes) and the shot graph (its Mermaid source and a
plain list of edges: drawing Mermaid needs its JavaScript, which a page that must open
from disk with no network cannot fetch).

Every picture is inlined as a ``data:`` URI, so the page can be mailed or moved on its
own (the film then plays only where it sits beside it). The frames are also written to
``<film stem>.report/``, with ``contact-sheet.png``. No scripts, fonts or remote files.
A cache hit costs nothing now: its cost and time are the original generation's, as
the cache recorded them.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.errors import UsageError
from storyboard.facts import usd

if TYPE_CHECKING:
    from storyboard.board import Board

REPORT_SUFFIX = ".render.json"


@dataclass(frozen=True)
class ShotFrames:
    """A shot's first and last frame on disk, for the contact sheet."""

    shot: str
    first: Path
    last: Path
    caption: str


def report_json_path(film: Path) -> Path:
    """Where the runner writes the render report of ``film``."""
    return film.with_name(film.name + REPORT_SUFFIX)


def film_of(result_json_path: Path) -> Path:
    """The film a render report belongs to (the report is ``<film>.render.json``)."""
    name = result_json_path.name
    if name.endswith(REPORT_SUFFIX):
        return result_json_path.with_name(name[: -len(REPORT_SUFFIX)])
    return result_json_path.with_suffix(".mp4")


def read_render_report(path: Path) -> dict[str, Any]:
    """The ``<film>.render.json`` the runner wrote; a UsageError if there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no render report at {path}; render the storyboard first (storyboard render FILE)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the render report {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("shots"), list):
        raise UsageError(f"{path} is not a storyboard render report")
    return data


def _clip_path(board: Board, shot: dict[str, Any], cache_dir: str | Path | None) -> Path | None:
    """The clip a shot used. The report records it as the runner saw it (possibly
    relative to the folder it ran in); else ask the cache by the shot's key."""
    recorded = shot.get("clip")
    if recorded:
        for candidate in (Path(recorded), board.spec.folder / recorded):
            if candidate.is_file():
                return candidate
    key = shot.get("key")
    if key:
        from storyboard.cache import open_cache

        root = open_cache(board.path, cache_dir, create=False)
        if root.root.is_dir():
            entry = root.lookup(str(key))
            if entry is not None:
                return entry.path
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _money(value: Any) -> str:
    return usd(_decimal(value))


def made_cost(shot: dict[str, Any]) -> Decimal | None:
    """What making the shot's clip cost: paid now, or (a cache hit) when it was generated."""
    if shot.get("cache_hit"):
        return _decimal((shot.get("facts") or {}).get("cost"))
    return _decimal(shot.get("cost"))


def made_seconds(shot: dict[str, Any]) -> float | None:
    """How long generating the shot's clip took: now, or (a cache hit) when it was generated."""
    value = (shot.get("facts") or {}).get("generation_seconds") if shot.get("cache_hit") else shot.get("seconds")
    return float(value) if isinstance(value, (int, float)) else None


def film_cost(data: dict[str, Any]) -> Decimal | None:
    """What the clips of the film cost to make, cache hits included; None if any is unknown."""
    cut = set(data.get("cut") or ())
    total = Decimal(0)
    for shot in data["shots"]:
        if shot["id"] in cut:
            cost = made_cost(shot)
            if cost is None:
                return None
            total += cost
    return total


def _size(shot: dict[str, Any]) -> str:
    """A shot's length and mode for the report's table (a still: its app), escaped."""
    if shot.get("kind") == "still":
        return f"still · {_e(shot.get('app'))}"
    return (f"{_e(shot.get('duration'))} s · {_e(shot.get('mode'))}"
            f"{' · silent' if shot.get('sound') is False else ''}")


def _caption(shot: dict[str, Any]) -> str:
    status = "cached" if shot.get("cache_hit") else str(shot.get("status") or "")
    length = "still" if shot.get("kind") == "still" else f"{shot.get('duration', '?')} s"
    return f"{shot['id']} · {length} · {status}"


async def _extract_all(jobs: list[tuple[Path, str, Path]]) -> None:
    from storyboard.media import extract_frame

    await asyncio.gather(*(extract_frame(clip, sel, dest) for clip, sel, dest in jobs))


def extract_frames(board: Board, data: dict[str, Any], folder: Path,
                   cache_dir: str | Path | None = None) -> list[ShotFrames]:
    """First and last frame of every shot that has a clip, in film order then the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    order = {sid: i for i, sid in enumerate(data.get("cut") or board.cut)}
    shots = sorted(data["shots"], key=lambda s: (order.get(s["id"], len(order)), s.get("id")))
    jobs: list[tuple[Path, str, Path]] = []
    out: list[ShotFrames] = []
    for shot in shots:
        clip = _clip_path(board, shot, cache_dir)
        if clip is None:
            continue
        first, last = folder / f"{shot['id']}-first.png", folder / f"{shot['id']}-last.png"
        jobs += [(clip, "first", first), (clip, "last", last)]
        out.append(ShotFrames(shot["id"], first, last, _caption(shot)))
        for take in shot.get("takes") or []:  # the other takes, shown side by side with the pick
            take_clip = _clip_path(board, take, cache_dir)
            if take.get("picked") or take_clip is None:
                continue
            name = f"{shot['id']}#{take['take']}"
            first, last = folder / f"{shot['id']}-take{take['take']}-first.png", folder / f"{shot['id']}-take{take['take']}-last.png"
            jobs += [(take_clip, "first", first), (take_clip, "last", last)]
            out.append(ShotFrames(name, first, last, f"{name} (take {take['take']})"))
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


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:24px;color:#1d1d1f;background:#fafafa}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.meta span{margin-right:16px;white-space:nowrap}
video{width:100%;max-height:70vh;background:#000;border-radius:6px}
table{border-collapse:collapse;width:100%}td,th{border-top:1px solid #e3e3e3;padding:8px;vertical-align:top;
text-align:left}th{font-size:13px;color:#666}
td.frames img{height:90px;border-radius:3px;margin-right:4px}
td.prompt{font-size:13px;max-width:420px}.num{text-align:right;white-space:nowrap}
.hit{color:#0a7d32;font-weight:600}.miss{color:#8a5a00}.failed{color:#b00020;font-weight:600}
code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#f0f0f0;padding:12px;
overflow:auto;border-radius:6px}
.seam{font-size:12px;color:#555;margin-bottom:4px}figure.take{display:inline-block;margin:0 16px 0 0}
figure.take img{height:60px;border-radius:3px;margin-right:4px}figure.take figcaption{font-size:12px}
ul.edges,ul.rerolls{list-style:none;padding:0}ul.rerolls{font-size:13px;margin:0}ul.edges li{margin:4px 0}
ul.edges code{background:#e8eefc;padding:2px 6px;border-radius:4px}.sel{color:#666;font-size:13px}
img.sheet{max-width:100%;border-radius:6px}
"""


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


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(board: Board, data: dict[str, Any], *, page: Path, film: Path | None,
                frames: list[ShotFrames], sheet: Path | None) -> str:
    """The page's HTML. Pure: paths are made relative to the page's folder."""
    where = page.parent
    by_frames = {f.shot: f for f in frames}
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(data.get('title') or board.title)} — storyboard report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(data.get('title') or board.title)}</h1>",
        '<p class="meta">',
        f"<span>storyboard <code>{_e(board.path.name)}</code></span>",
        f"<span>backend <b>{_e(data.get('backend'))}</b></span>",
        f"<span>film {_e(round(float(data['duration']), 2)) if data.get('duration') else '—'} s</span>",
        f"<span>paid this render <b>{_e(_money(data.get('cost')))}</b></span>",
        f"<span>cost of the film <b>{_e(usd(film_cost(data)))}</b></span>",
        f"<span>estimate {_e(_money(data.get('estimate')))}</span>",
        f"<span>render {_e(data.get('seconds'))} s</span>",
        f"<span>assembly {_e(data.get('assembly') or '—')}</span>",
        f"<span>plan <code>{_e(str(data.get('board_hash') or '')[:12])}</code></span>",
        "</p>",
    ]
    if film is not None and film.is_file():
        vtt = film.with_suffix(".vtt")
        track = (f'<track kind="captions" srclang="en" label="Narration" default src="{_e(_rel(vtt, where))}">'
                 if data.get("narration") and vtt.is_file() else "")
        parts.append(f'<video controls preload="metadata" src="{_e(_rel(film, where))}">{track}</video>')
        parts.append(f'<p><a href="{_e(_rel(film, where))}">{_e(film.name)}</a></p>')
    else:
        parts.append("<p><b>No film</b>: the render did not finish (see the shots below).</p>")
    if sheet is not None:
        parts += ["<h2>Contact sheet</h2>",
                  f'<img class="sheet" src="{data_uri(sheet, height=None)}" alt="first and last frame of every shot">']
    parts += ["<h2>Shots</h2>", "<table><thead><tr>",
              "<th>#</th><th>shot</th><th>first · last</th><th>prompt</th><th>from</th><th>status</th>"
              "<th class=num>cost</th><th class=num>time</th></tr></thead><tbody>"]
    cut = list(data.get("cut") or board.cut)
    order = {sid: i for i, sid in enumerate(cut)}
    for shot in sorted(data["shots"], key=lambda s: (order.get(s["id"], len(order)), s["id"])):
        sid = shot["id"]
        f = by_frames.get(sid)
        imgs = (f'<img src="{data_uri(f.first)}" alt="{_e(sid)} first frame">'
                f'<img src="{data_uri(f.last)}" alt="{_e(sid)} last frame">') if f else "—"
        imgs = _seam_html(shot.get("seam")) + imgs
        status = str(shot.get("status") or "")
        if shot.get("cache_hit"):
            badge = '<span class="hit">cache hit</span>'
        elif status == "failed":
            badge = f'<span class="failed">failed</span><br><small>{_e(shot.get("error"))}</small>'
        else:
            badge = f'<span class="miss">{_e(status)}</span>'
        sources = " → ".join(x for x in (shot.get("image") or "none", shot.get("end_image")) if x)
        seconds = made_seconds(shot)
        billed = shot.get("billed_seconds") or (shot.get("facts") or {}).get("billed_seconds")
        timing = f"{seconds:.1f} s" if seconds is not None else "—"
        cost = _e(usd(made_cost(shot)))
        if shot.get("cache_hit"):
            timing += "<br><small>when made</small>"
            cost = f"{cost}<br><small>when made; $0 now</small>"
        if billed:
            timing += f"<br><small>billed {_e(billed)} s</small>"
        task = f"<br><small>task {_e(shot['task_id'])}</small>" if shot.get("task_id") else ""
        num = str(order[sid] + 1) if sid in order else "–"
        parts.append(
            f"<tr><td class=num>{num}</td><td><b>{_e(sid)}</b><br><small>{_size(shot)}</small></td>"
            f"<td class=frames>{imgs}</td><td class=prompt>{_e(shot.get('prompt'))}</td>"
            f"<td><code>{_e(sources)}</code></td><td>{badge}{task}<br><small><code>"
            f"{_e(str(shot.get('key') or '')[:10])}</code></small></td>"
            f"<td class=num>{cost}</td><td class=num>{timing}</td></tr>")
        if shot.get("takes"):
            parts.append(_takes_html(board, shot, by_frames, where))
        if (shot.get("facts") or {}).get("rerolls"):
            parts.append(_rerolls_html(shot, where))
    parts.append("</tbody></table>")
    parts += ["<h2>Shot graph</h2>", "<ul class=edges>"]
    edges = board.graph.edges()
    for u, v, label in edges:
        parts.append(f"<li><code>{_e(u)}</code> → <code>{_e(v)}</code> "
                     f"<span class=sel>{_e(label or '')}</span></li>")
    if not edges:
        parts.append("<li>no frame references: every shot starts on its own</li>")
    parts += ["</ul>", f"<p>Film order: {' → '.join(f'<code>{_e(s)}</code>' for s in cut)}</p>",
              "<details><summary>Mermaid source (paste into any Mermaid viewer)</summary>",
              f"<pre>{_e(board.graph.to_mermaid())}</pre></details>",
              "</body></html>", ""]
    return "\n".join(parts)


def _seam_html(seam: Any) -> str:
    """The continuity score of the seam into a shot, shown before its first frame."""
    if not isinstance(seam, dict):
        return ""
    mark = '<span class="failed">drifted</span> ' if seam.get("drifted") else ""
    return (f'<div class=seam>{mark}seam from <code>{_e(seam.get("from"))}</code>: PSNR '
            f'{_e(seam.get("psnr"))} dB · colour distance {_e(seam.get("histogram"))}</div>')


def _takes_html(board: Board, shot: dict[str, Any], frames: dict[str, ShotFrames], where: Path) -> str:
    """A row with every take of a shot side by side: frames, clip, the pick or how to pick it."""
    sid = shot["id"]
    cells = []
    for take in shot["takes"]:
        n = take["take"]
        f = frames.get(sid if take.get("picked") else f"{sid}#{n}")
        imgs = (f'<img src="{data_uri(f.first, height=90)}" alt="{_e(sid)} take {n} first frame">'
                f'<img src="{data_uri(f.last, height=90)}" alt="{_e(sid)} take {n} last frame">') if f else "—"
        clip = take.get("clip")
        link = f' · <a href="{_e(_rel(Path(clip), where))}">clip</a>' if clip else ""
        how = ("<b>picked</b>" if take.get("picked")
               else f"<code>storyboard pick {_e(board.path.name)} {_e(sid)} {n}</code>")
        cells.append(f"<figure class=take>{imgs}<figcaption>take {n}{link}<br>{how}</figcaption></figure>")
    return f"<tr class=takes><td></td><td colspan=7>{''.join(cells)}</td></tr>"


def _rerolls_html(shot: dict[str, Any], where: Path) -> str:
    """A row with the rerolls of a drifted shot (--reroll-drifted): each take's seam scores,
    the one kept for the film, and why rerolling stopped early."""
    facts = shot.get("facts") or {}
    items = []
    for row in facts["rerolls"]:
        clip = row.get("clip")
        link = f' · <a href="{_e(_rel(Path(clip), where))}">clip</a>' if clip else ""
        state = '<span class="failed">drifted</span>' if row.get("drifted") else "holds"
        kept = " · <b>kept</b>" if row.get("kept") else ""
        cached = " · cached" if row.get("cached") else ""
        items.append(f"<li>take {_e(row.get('take'))}: PSNR {_e(row.get('psnr'))} dB · colour distance "
                     f"{_e(row.get('histogram'))} · {state}{kept}{cached}{link}</li>")
    stopped = f"<br><small>{_e(facts['reroll_stopped'])}</small>" if facts.get("reroll_stopped") else ""
    return (f"<tr class=rerolls><td></td><td colspan=7><div class=seam>rerolls of <code>{_e(shot['id'])}</code> "
            f"(its seam drifted; the best-scoring take is kept)</div><ul class=rerolls>{''.join(items)}</ul>"
            f"{stopped}</td></tr>")


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


__all__ = ["ShotFrames", "contact_sheet", "data_uri", "extract_frames", "film_cost", "film_of", "made_cost",
           "made_seconds", "read_render_report", "report_json_path", "write_report_html"]
