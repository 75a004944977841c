"""``storyboard plan``: the order, cache hits, cost and critical path; and the plan table
``render --dry-run`` prints too."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from storyboard.clikit import (
    cache_opt,
    errors,
    file_arg,
    load_board,
    plan_app_opt,
    plan_reroll_opt,
    set_opt,
    verbose_opt,
)

if TYPE_CHECKING:
    from storyboard.board import Board
    from storyboard.plan import Plan


def _cache_view(board: Board, cache_dir: str | None) -> Any:
    from storyboard.cache import open_cache

    return open_cache(board.path, cache_dir, create=False)


def _backend(name: str) -> Any:
    from storyboard.backends import get_backend

    return get_backend(name)


@click.command()
@file_arg
@set_opt
@click.option("--backend", default=None, help="Backend to price and key for (default: the file's).")
@cache_opt()
@click.option("--force", "force", multiple=True, metavar="SHOT",
              help="Plan as if SHOT (and the shots chained from it) were not cached.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON document (every shot).")
@click.option("--all", "all_rows", is_flag=True, help="Show every shot (a long plan shows its first and last).")
@plan_reroll_opt
@plan_app_opt
@verbose_opt
def plan(file: str, sets: tuple[str, ...], backend: str | None, cache_dir: str | None, force: tuple[str, ...],
         as_json: bool, all_rows: bool, reroll: int, swaps: tuple[str, ...], verbose: bool) -> None:
    """Show the order, cache hits, cost and critical path. Generates nothing."""
    with errors(verbose):
        board = load_board(file, sets)
        final = board
        board, _ = swapped(board, swaps)
        name = backend or board.spec.model.backend
        check_force(board, force)
        be = _backend(name)
        from storyboard.runner import plan_view, reroll_line, reroll_totals, with_cached_texts

        if getattr(be, "paid", True):  # the text nodes' answers already made key the shots that read them
            board = with_cached_texts(board, _cache_view(board, cache_dir))

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


def swapped(board: Board, swaps: Sequence[str]) -> tuple[Board, str | None]:
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


def check_force(board: Board, force: Sequence[str]) -> None:
    """A usage error (exit 2) when a ``--force`` names no shot of the board."""
    ids = {s.id for s in board.shots}
    for f in force:
        if f not in ids:
            raise click.BadParameter(f"no shot '{f}' in {board.path}", param_hint="--force")


PLAN_ROWS_SHOWN = 10  # a plan longer than 2× this shows its first and last rows (all with --all)


def _tier(s: Any) -> str:
    from storyboard.facts import usd

    if s.request.kind == "title":
        return "title card (drawn here, free)"
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
                      usd(s.total_cost) + (f" ({1 + len(s.takes)} takes)" if s.takes else ""),
                      (s.key or s.recipe)[:10] + ("" if s.key else "…"))
    console.print(table)
    counts: dict[str, int] = {}
    for s in p.shots:
        counts[s.status] = counts.get(s.status, 0) + 1
    lines = [f"{len(p.shots)} shots: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
             f"to generate: {len(p.pending)} of {len(p.shots)} shots, {p.seconds_to_generate} s; cost {usd(p.cost)}"]
    if p.pending and p.cost != p.reference_cost:
        apps = ", ".join(sorted({s.request.app for s in p.pending if s.request.kind != "title"}))
        lines.append(f"the same shots on inference.sh ({apps}): about {usd(p.reference_cost)} "
                     "(estimated from list prices; inference.sh's may differ)")
    lines += p.audio_summary()
    lines += [f"note: {s.id}: {s.note}" for s in p.shots if s.note] + [f"note: {n}" for n in p.notes]
    lines.append(f"critical path: {' → '.join(p.critical_path)} ({p.critical_seconds:g} s of footage)")
    if any(not s.key for s in p.shots):
        lines.append("key: the cache key's first characters; one ending in … is provisional (a hash of the "
                     "shot's inputs): the final key needs the clips of the shots it starts from")
    out.write("".join(line + "\n" for line in lines) + extra)  # plain text: no markup parsing or wrapping
