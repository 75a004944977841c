"""``storyboard render`` and ``storyboard cancel``.

With ``render --json`` stdout is JSON lines, and every run ends with exactly one final
event: ``render_finished`` (the film, or the plan of a dry run) or ``render_failed``
(the message a terminal would show, located, and the exit code), whatever failed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import click

from storyboard.clikit import (
    app_opt,
    cache_opt,
    err,
    errors,
    file_arg,
    load_board,
    reroll_opt,
    set_opt,
    setup_logging,
    verbose_opt,
    warn_unused,
)
from storyboard.options import parse_budget, parse_sets
from storyboard.plancmd import check_force, print_plan, swapped


@dataclass(frozen=True)
class RenderArgs:
    """What ``storyboard render`` was asked, as one value."""

    file: str
    backend: str | None
    output: str | None
    concurrency: int
    budget: str | None
    dry_run: bool
    force: tuple[str, ...]
    sets: tuple[str, ...]
    cache_dir: str | None
    otio: str | None
    as_json: bool
    reroll: int
    swaps: tuple[str, ...]
    verbose: bool


def _final(kind: str, **fields: Any) -> None:
    click.echo(json.dumps({"event": kind, **fields}, default=str))


def _failed(message: str, code: int) -> None:
    _final("render_failed", message=message, exit_code=code)


@click.command()
@file_arg
@click.option("--backend", default=None, help="animatic (offline, default), inference, or a plugin's name.")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False), help="Film path.")
@click.option("--concurrency", "-j", default=4, show_default=True, type=int, help="Shots generated at once.")
@click.option("--budget", default=None, metavar="USD", help="Refuse before paying anything if the plan costs more.")
@click.option("--dry-run", is_flag=True, help="Print the plan and what would be paid; generate nothing.")
@click.option("--force", "force", multiple=True, metavar="SHOT", help="Regenerate SHOT (and the shots chained from it).")
@set_opt
@cache_opt()
@click.option("--otio", default=None, type=click.Path(dir_okay=False), help="Also write an OpenTimelineIO timeline.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON event per line instead of the progress display; the last is render_finished or "
                   "render_failed.")
@reroll_opt
@app_opt
@verbose_opt
def render(**kwargs: Any) -> None:
    """Generate what is missing and assemble the film."""
    args = RenderArgs(**kwargs)
    setup_logging(args.verbose)
    with errors(args.verbose, on_fail=_failed if args.as_json else None):
        _render(args)


def _render(args: RenderArgs) -> None:
    import asyncio

    from storyboard.board import load
    from storyboard.runner import Pipeline, reroll_line

    if args.concurrency < 1:
        raise click.BadParameter(f"{args.concurrency} is not a valid number of parallel shots; use 1 or more",
                                 param_hint="'--concurrency' / '-j'")
    budget = parse_budget(args.budget)
    values = parse_sets(args.sets)
    loaded = load(args.file, vars=values)
    warn_unused(loaded, values)
    board, variant = swapped(loaded, args.swaps)
    if not args.dry_run:  # a dry run's plan says them
        from storyboard.plan import app_notes

        for note in (*board.notes, *app_notes(board)):
            err(f"note: {note}")
    output = args.output
    if variant is not None and output is None:
        from storyboard.variants import variant_output

        output = str(variant_output(board.output, variant))
    check_force(board, args.force)
    display = None
    if not args.dry_run:
        from storyboard.progress import make_display

        display = make_display(as_json=args.as_json, verbose=args.verbose)
    pipeline = Pipeline(board, backend=args.backend, output=output, cache_dir=args.cache_dir,
                        concurrency=args.concurrency, budget=budget, force=args.force, dry_run=args.dry_run,
                        on_event=display, otio=args.otio, reroll_drifted=args.reroll)
    try:
        result = asyncio.run(pipeline.run())
    finally:
        if display is not None:
            display.close()
    if args.dry_run:
        if args.as_json:  # --json on render is always JSON lines: the plan is one event, on one line
            click.echo(json.dumps({"event": "plan", **result.plan.to_json()}, default=str))
            _final("render_finished", dry_run=True, cost=result.plan.cost, exit_code=0)
        else:
            print_plan(board, result.plan, extra=reroll_line(board, result.plan, args.reroll))
            click.echo("dry run: nothing generated, nothing paid")
        return
    if args.as_json:
        _final("render_finished", film=result.film, duration=result.duration, cost=result.cost,
               report=result.report, exit_code=0)
    else:
        from storyboard.facts import usd

        click.echo(f"{result.film} ({result.duration:.2f} s) — paid {usd(result.cost)}; report {result.report}")


NO_TERMINAL = "nothing cancelled: no terminal to confirm; pass --yes"


@click.command()
@file_arg
@set_opt
@cache_opt()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@verbose_opt
def cancel(file: str, sets: tuple[str, ...], cache_dir: str | None, yes: bool, verbose: bool) -> None:
    """Cancel the remote tasks an interrupted render left running (stops paying for them)."""
    setup_logging(verbose)
    with errors(verbose):
        import asyncio

        from storyboard.cache import open_cache

        board = load_board(file, sets)
        cache = open_cache(board.path, cache_dir, create=False)
        mine = [(key, data) for key, data in cache.journal_entries()
                if data.get("storyboard") == str(board.path) and data.get("state", {}).get("task_id")]
        if not mine:
            click.echo("no journalled remote tasks for this storyboard; nothing to cancel")
            return
        for _key, data in mine:
            click.echo(f"{data.get('shot')}: task {data['state']['task_id']}")
        if not yes and not sys.stdin.isatty():
            err(NO_TERMINAL)
            sys.exit(2)
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
