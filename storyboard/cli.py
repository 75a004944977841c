"""The ``storyboard`` command.

Exit codes: 0 done; 1 invalid storyboard or a shot failed; 2 usage error; 3 over budget.
Imports are deferred into the commands so that ``storyboard --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from storyboard.facts import TAKES_MAX
from storyboard.options import parse_budget, parse_sets

if TYPE_CHECKING:
    from storyboard.board import Board
    from storyboard.plan import Plan

F = TypeVar("F", bound=Callable[..., Any])


def _err(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def _errors(verbose: bool = False) -> Iterator[None]:
    """Catch StoryboardError once: one clear message, the right exit code."""
    from storyboard.errors import StoryboardError

    try:
        yield
    except StoryboardError as e:
        if verbose:
            import traceback

            traceback.print_exc()
        _err(_redact(str(e) if _located(e) or "\n" in str(e) else f"error: {e}"))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _err("interrupted; every clip already made is cached, and journalled remote tasks resume on the next render")
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        sys.stderr.close()
        sys.exit(0)
    except click.exceptions.Exit:
        raise
    except click.ClickException:
        raise
    except Exception as e:  # a bug: still no traceback unless asked
        if verbose:
            raise
        _err(_redact(f"internal error: {type(e).__name__}: {e} (run with --verbose for the traceback; please report it)"))
        sys.exit(1)


def _located(e: Exception) -> bool:
    """Whether the error already starts with its FILE:LINE (a SpecError's problems do)."""
    from storyboard.errors import SpecError

    return isinstance(e, SpecError) and any(p.file is not None for p in e.problems)


def _redact(text: str) -> str:
    key = os.environ.get("INFERENCE_API_KEY")
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text


def _load(file: str, sets: Sequence[str]) -> Board:
    from storyboard.board import load

    values = parse_sets(sets)
    board = load(file, vars=values)
    for name, near in board.unused_vars(values):
        hint = f"; did you mean '{near}'?" if near else ""
        _err(f"warning: --set {name}: no prompt uses '{name}'{hint}")
    for name in board.unused_characters():
        _err(f"warning: character '{name}' is in no shot (list it in a shot's characters:)")
    return board


file_arg = click.argument("file", type=click.Path(dir_okay=False, path_type=str))
set_opt = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a template variable.")
app_opt = click.option("--app", "swaps", multiple=True, metavar="OLD=NEW",
                       help="Render on another app (a draft): out/<stem>.<variant>.mp4, its own cache keys.")
reroll_opt = click.option("--reroll-drifted", "reroll", type=click.IntRange(0, TAKES_MAX), default=0, metavar="N",
                          help="Regenerate a chained shot whose seam drifted up to N more times, within --budget.")
verbose_opt = click.option("--verbose", "-v", is_flag=True, help="Show detail (ffmpeg/HTTP) and tracebacks.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", package_name="storyboard", prog_name="storyboard")
def main() -> None:
    """Turn a YAML storyboard into a finished multi-shot film.

    Try: storyboard render examples/harbor.yaml
    """


def _add_apps_group() -> None:
    from storyboard.appscmd import apps_group

    main.add_command(apps_group)
    from storyboard.studio.command import studio  # click only: the web stack loads when it runs

    main.add_command(studio)


@main.command()
@file_arg
@set_opt
@verbose_opt
def validate(file: str, sets: tuple[str, ...], verbose: bool) -> None:
    """Check a storyboard; print every problem as FILE:LINE:COL: message."""
    with _errors(verbose):
        board = _load(file, sets)
        n = sum(1 for s in board.shots if not s.is_still)
        stills = len(board.shots) - n
        secs = sum(s.duration for s in board.shots)
        also = f", {stills} still{'s' if stills != 1 else ''}" if stills else ""
        click.echo(f"{file}: ok — {n} shot{'s' if n != 1 else ''}{also}, {secs} s generated, "
                   f"{len(board.cut)} in the cut, depth {board.graph.depth()}")


def _cache_view(board: Board, cache_dir: str | None) -> Any:
    from storyboard.cache import Cache

    return Cache.for_board(board.path, cache_dir, create=False)


def _backend(name: str) -> Any:
    from storyboard.backends import get_backend

    return get_backend(name)


@main.command()
@file_arg
@set_opt
@click.option("--backend", default=None, help="Backend to price and key for (default: the file's).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Cache folder.")
@click.option("--force", "force", multiple=True, metavar="SHOT", help="Plan as if SHOT were regenerated.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON document (every shot).")
@click.option("--all", "all_rows", is_flag=True, help="Show every shot (a long plan shows its first and last).")
@reroll_opt
@app_opt
@verbose_opt
def plan(file: str, sets: tuple[str, ...], backend: str | None, cache_dir: str | None, force: tuple[str, ...],
         as_json: bool, all_rows: bool, reroll: int, swaps: tuple[str, ...], verbose: bool) -> None:
    """Show the order, cache hits, cost and critical path. Generates nothing."""
    with _errors(verbose):
        board = _load(file, sets)
        final = board
        board, _ = _swapped(board, swaps)
        name = backend or board.spec.model.backend
        _check_force(board, force)
        be = _backend(name)
        from storyboard.runner._reroll import plan_view, reroll_line, reroll_totals

        p = board.plan(backend=name, cache=plan_view(_cache_view(board, cache_dir), board, reroll),
                       variant=getattr(be, "variant", ""), force=frozenset(force), price=be.price,
                       speaker=_speaker(be, board))
        if as_json:
            click.echo(json.dumps({**p.to_json(), **reroll_totals(board, p, reroll)}, indent=2))
        else:
            print_plan(board, p, all_rows=all_rows, extra=reroll_line(board, p, reroll))
            if swaps:
                click.echo(_side_by_side(final, p, swaps))


def _speaker(be: Any, board: Board) -> str | None:
    """The backend's offline voice, asked only when there is something to voice: asking
    may load the media stack (~0.3 s), which a plan without lines or music never needs."""
    return getattr(be, "speaker", None) if board.lines or board.music else None


def _swapped(board: Board, swaps: Sequence[str]) -> tuple[Board, str | None]:
    """The board with ``--app OLD=NEW`` applied, and the variant's name (None: as written)."""
    if not swaps:
        return board, None
    from storyboard.variants import parse_app_swaps, swap_apps, variant_name

    mapping = parse_app_swaps(swaps)
    return swap_apps(board, mapping), variant_name(mapping)


def _side_by_side(final: Board, p: Plan, swaps: Sequence[str]) -> str:
    """Both costs of every used node at list prices: the storyboard as written, and the variant."""
    from storyboard.facts import usd

    written = final.plan(backend="inference")
    names = ", ".join(swaps)
    return (f"side by side (list-price estimates, every node, nothing cached): as written {usd(written.full_cost)}"
            f" | with --app {names}: {usd(_sum_reference(p))}")


def _sum_reference(p: Plan) -> Any:
    from decimal import Decimal

    total = Decimal(0)
    for s in p.shots:
        if s.status == "unused":
            continue
        if s.reference_price is None:
            return None
        total += s.reference_price
    return total


def _check_force(board: Board, force: Sequence[str]) -> None:
    ids = {s.id for s in board.shots}
    for f in force:
        if f not in ids:
            raise click.BadParameter(f"no shot '{f}' in {board.path}", param_hint="--force")


PLAN_ROWS_SHOWN = 10  # a plan longer than 2× this shows its first and last rows (all with --all)


def _tier(s: Any) -> str:
    from storyboard.facts import usd

    rate = "?" if s.rate is None else usd(s.rate)
    if getattr(s, "is_still", False):
        return f"{usd(s.reference_price) if s.reference_price is not None else '?'}/image" + (
            f" ({s.tier})" if s.tier else "")
    return f"{rate}/s ({s.tier})" if s.tier else f"{rate}/s"


def print_plan(board: Board, p: Plan, *, file: Any = None, all_rows: bool = False, extra: str = "") -> None:
    """The plan as a table, then totals, the critical path, a legend and ``extra`` lines."""
    from rich.console import Console
    from rich.table import Table

    from storyboard.facts import usd

    out = file or sys.stdout
    console = Console(file=out, soft_wrap=False, width=None if out.isatty() else 160)
    table = Table(title=f"{board.title} — plan ({p.backend})", title_justify="left")
    for col, kw in (("#", {"justify": "right"}), ("shot", {}), ("image", {}), ("end", {}),
                    ("dur", {"justify": "right"}), ("tier (estimate)", {}), ("status", {}),
                    ("cost", {"justify": "right"}), ("key", {})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    shots = list(p.shots)
    hidden = 0
    if not all_rows and len(shots) > 2 * PLAN_ROWS_SHOWN:
        hidden = len(shots) - 2 * PLAN_ROWS_SHOWN
        shots = shots[:PLAN_ROWS_SHOWN] + shots[-PLAN_ROWS_SHOWN:]
    for i, s in enumerate(shots):
        if hidden and i == PLAN_ROWS_SHOWN:
            table.add_row("…", f"{hidden} more shots (--all shows every row)", *[""] * 8)
        status = s.status if s.status != "after" else "after " + ", ".join(s.after)
        if not s.in_cut and s.status != "unused":
            status += " (not in cut)"
        table.add_row(str(s.order + 1), s.id, s.request.image_source or "—", s.request.end_image_source or "",
                      "still" if s.is_still else f"{s.request.duration}s", _tier(s), status,
                      usd(s.cost), (s.key or s.recipe)[:10] + ("" if s.key else "…"))
    console.print(table)
    counts: dict[str, int] = {}
    for s in p.shots:
        counts[s.status] = counts.get(s.status, 0) + 1
    lines = [f"{len(p.shots)} shots: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
             f"to generate: {len(p.pending)} of {len(p.shots)} shots, {p.seconds_to_generate} s; cost {usd(p.cost)}"]
    if p.pending and p.cost != p.reference_cost:
        apps = ", ".join(sorted({s.request.app for s in p.pending}))
        lines.append(f"the same shots on inference.sh ({apps}): about {usd(p.reference_cost)} "
                     "(estimated from list prices; inference.sh's may differ)")
    lines += p.audio_summary()
    lines += [f"note: {s.id}: {s.note}" for s in p.shots if s.note]
    lines.append(f"critical path: {' → '.join(p.critical_path)} ({p.critical_seconds:g} s of footage)")
    if any(not s.key for s in p.shots):
        lines.append("key: the cache key's first characters; one ending in … is provisional (a hash of the "
                     "shot's inputs): the final key needs the clips of the shots it starts from")
    out.write("".join(line + "\n" for line in lines) + extra)  # plain text: no markup parsing or wrapping


@main.command()
@file_arg
@set_opt
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@verbose_opt
def graph(file: str, sets: tuple[str, ...], fmt: str, verbose: bool) -> None:
    """Print the shot graph as Mermaid or Graphviz dot."""
    with _errors(verbose):
        board = _load(file, sets)
        click.echo(board.graph.to_mermaid() if fmt == "mermaid" else board.graph.to_dot(), nl=False)


def _concurrency(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 1:
        raise click.BadParameter(f"{value} is not a valid number of parallel shots; use 1 or more")
    return value


@main.command()
@file_arg
@click.option("--backend", default=None, help="animatic (offline, default), inference, or a plugin's name.")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False), help="Film path.")
@click.option("--concurrency", "-j", default=4, show_default=True, type=int, callback=_concurrency,
              help="Shots generated at once.")
@click.option("--budget", default=None, metavar="USD", help="Refuse before paying anything if the plan costs more.")
@click.option("--dry-run", is_flag=True, help="Print the plan and what would be paid; generate nothing.")
@click.option("--force", "force", multiple=True, metavar="SHOT", help="Regenerate SHOT (and the shots chained from it).")
@set_opt
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Cache folder (default .storyboard/).")
@click.option("--otio", default=None, type=click.Path(dir_okay=False), help="Also write an OpenTimelineIO timeline.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line instead of the progress display.")
@reroll_opt
@app_opt
@verbose_opt
def render(file: str, backend: str | None, output: str | None, concurrency: int, budget: str | None, dry_run: bool,
           force: tuple[str, ...], sets: tuple[str, ...], cache_dir: str | None, otio: str | None, as_json: bool,
           reroll: int, swaps: tuple[str, ...], verbose: bool) -> None:
    """Generate what is missing and assemble the film."""
    budget_value = parse_budget(budget)
    vars_ = parse_sets(sets)
    _setup_logging(verbose)
    with _errors(verbose):
        import asyncio

        from storyboard.board import load
        from storyboard.runner import Pipeline
        from storyboard.runner._reroll import reroll_line

        board, variant = _swapped(load(file, vars=vars_), swaps)
        if variant is not None and output is None:
            from storyboard.variants import variant_output

            output = str(variant_output(board.output, variant))
        _check_force(board, force)
        display = None
        if not dry_run:
            from storyboard.progress import make_display

            display = make_display(as_json=as_json, verbose=verbose)
        pipeline = Pipeline(board, backend=backend, output=output, cache_dir=cache_dir, concurrency=concurrency,
                            budget=budget_value, force=force, dry_run=dry_run, on_event=display, otio=otio,
                            reroll_drifted=reroll)
        try:
            result = asyncio.run(pipeline.run())
        finally:
            if display is not None:
                display.close()
        if dry_run:
            if as_json:  # --json on render is always JSON lines: the plan is one event, on one line
                click.echo(json.dumps({"event": "plan", **result.plan.to_json()}, default=str))
            else:
                print_plan(board, result.plan, extra=reroll_line(board, result.plan, reroll))
                click.echo("dry run: nothing generated, nothing paid")
            return
        if not as_json:
            from storyboard.facts import usd

            click.echo(f"{result.film} ({result.duration:.2f} s) — paid {usd(result.cost)}; "
                       f"report {result.report}")


def _setup_logging(verbose: bool) -> None:
    import logging

    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("asyncio", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@file_arg
@set_opt
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Cache folder.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@verbose_opt
def cancel(file: str, sets: tuple[str, ...], cache_dir: str | None, yes: bool, verbose: bool) -> None:
    """Cancel the remote tasks an interrupted render left running (stops paying for them)."""
    _setup_logging(verbose)
    with _errors(verbose):
        import asyncio

        from storyboard.cache import Cache

        board = _load(file, sets)
        cache = Cache.for_board(board.path, cache_dir, create=False)
        mine = [(key, data) for key, data in cache.journal_entries()
                if data.get("storyboard") == str(board.path) and data.get("state", {}).get("task_id")]
        if not mine:
            click.echo("no journalled remote tasks for this storyboard; nothing to cancel")
            return
        for _key, data in mine:
            click.echo(f"{data.get('shot')}: task {data['state']['task_id']}")
        if not yes and not click.confirm(f"cancel {len(mine)} task(s)? The money already spent is not refunded"):
            return
        from storyboard.backends import get_backend

        backend = get_backend("inference")

        async def go() -> None:
            try:
                for key, data in mine:
                    await backend.cancel(data["state"]["task_id"])  # type: ignore[attr-defined]
                    cache.forget(key)
                    click.echo(f"{data.get('shot')}: cancelled")
            finally:
                await backend.aclose()

        asyncio.run(go())


@main.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write to a file.")
def schema(output: str | None) -> None:
    """Print the JSON Schema of the storyboard format (for yaml-language-server)."""
    from storyboard.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# -- ecosystem commands (report, init) live below this line --


@main.command()
@file_arg
@set_opt
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="The film, as given to render --output (default: the storyboard's output).")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False),
              help="Where to write the page (default: the film's path with .html).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Cache folder the render used.")
@click.option("--contact-sheet", "sheet_copy", default=None, type=click.Path(dir_okay=False),
              help="Also copy the contact sheet PNG (first/last frame of every shot) here.")
@verbose_opt
def report(file: str, sets: tuple[str, ...], output: str | None, html_path: str | None, cache_dir: str | None,
           sheet_copy: str | None, verbose: bool) -> None:
    """Write an HTML page of the last render beside the film: the film, a contact
    sheet, each shot's prompt, cache hit, cost and timings, and the shot graph."""
    with _errors(verbose):
        from storyboard.report import report_json_path, write_report_html

        board = _load(file, sets)
        film = Path(output) if output else board.output
        page = write_report_html(board, report_json_path(film), output=html_path, cache_dir=cache_dir)
        if sheet_copy:
            import shutil

            sheet = page.with_name(page.stem + ".report") / "contact-sheet.png"
            if sheet.is_file():
                Path(sheet_copy).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sheet, sheet_copy)
        click.echo(str(page))


@main.command()
@file_arg
@click.argument("shot")
@click.argument("take", type=int)
@verbose_opt
def pick(file: str, shot: str, take: int, verbose: bool) -> None:
    """Pick TAKE of SHOT: descendants chain from it (recorded in FILE's .takes.yaml, to commit)."""
    with _errors(verbose):
        from storyboard.board import load
        from storyboard.takes import pick as pick_take
        from storyboard.takes import write_lock

        board = load(file)
        assert board.lock is not None
        for note in board.lock.dropped:
            _err(f"warning: {note}")
        before = board.lock.take(shot) if shot in board.lock.picks else None
        lock = pick_take(board.lock, {s.id: s.takes for s in board.shots}, shot, take)
        path = write_lock(lock)
        same = " (already picked: nothing to regenerate)" if before == take else ""
        click.echo(f"{shot}: take {take} picked in {path.name}{same}")


@main.command()
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder to create NAME/ in.")
@click.option("--title", default=None, help="The storyboard's title (default: from NAME).")
def init(name: str, parent: str, title: str | None) -> None:
    """Create NAME/ with a storyboard that renders offline, its schema, a template
    and a start image."""
    with _errors():
        from storyboard.scaffold import scaffold

        where = Path(name)
        made = scaffold(where.name, Path(parent) / where.parent, title=title)
        click.echo(f"created {made.folder}/: {made.storyboard.name}, {made.schema.name}, "
                   f"templates/{made.template.name}, assets/{made.image.name}")
        click.echo(f"next: storyboard render {made.storyboard}")


if __name__ == "__main__":  # pragma: no cover
    main()


_add_apps_group()
