"""The same storyboard in several aspect ratios and/or modes.

    python -m pipelines.variants examples/product_spot.yaml --aspect 9:16 --aspect 1:1
    python -m pipelines.variants examples/harbor.yaml --mode std --mode pro --budget 10

A variant overrides ``aspect_ratio`` / ``mode`` for every shot (the defaults and any
shot that sets its own), then the storyboard is checked and its prompts rendered
again (a prompt may mention ``shot.aspect_ratio``). Variants are priced together,
refused over --budget (exit 3), and rendered through one cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import storyboard
from pipelines._batch import (
    BatchResult,
    Job,
    exit_codes,
    finish,
    render_batch,
)
from pipelines._dask import dask_address, render_batch_dask
from storyboard import ASPECT_RATIOS, MODES, Backend, Board, UsageError, parse_budget, parse_sets


def variant_inputs(aspect_ratio: str | None = None, mode: str | None = None) -> dict[str, Any]:
    """The model-input overrides of one variant (checked)."""
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise UsageError(f"unknown aspect ratio {aspect_ratio!r}; allowed: {', '.join(ASPECT_RATIOS)}")
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    return {k: v for k, v in (("aspect_ratio", aspect_ratio), ("mode", mode)) if v is not None}


def variant_name(stem: str, aspect_ratio: str | None, mode: str | None) -> str:
    """A variant's film name: the storyboard's stem, the ratio (16x9), the mode."""
    parts = [stem]
    if aspect_ratio:
        parts.append(aspect_ratio.replace(":", "x"))
    if mode:
        parts.append(mode)
    return "-".join(parts)


def jobs_for(board: Board, *, aspects: Sequence[str] = (), modes: Sequence[str] = (),
             output_dir: str | Path | None = None, vars: dict[str, Any] | None = None) -> list[Job]:
    """One job per combination of the given aspect ratios and modes."""
    if not aspects and not modes:
        raise UsageError("name at least one variant: --aspect RATIO and/or --mode std|pro")
    out_dir = Path(output_dir) if output_dir else board.spec.folder / "out" / "variants"
    jobs = []
    aspect_list: list[str | None] = [*dict.fromkeys(aspects)] or [None]
    mode_list: list[str | None] = [*dict.fromkeys(modes)] or [None]
    for aspect, mode in itertools.product(aspect_list, mode_list):
        name = variant_name(board.path.stem, aspect, mode)
        overrides = variant_inputs(aspect, mode)
        variant = storyboard.load(board.path, vars=vars, overrides=overrides)
        jobs.append(Job(name=name, board=variant, output=out_dir / f"{name}.mp4", vars=dict(vars or {}),
                        overrides=overrides))
    return jobs


def run_variants(board_path: str | Path, *, aspects: Sequence[str] = (), modes: Sequence[str] = (),
                 vars: dict[str, Any] | None = None, output_dir: str | Path | None = None,
                 backend: str | Backend | None = None, cache_dir: str | Path | None = None, concurrency: int = 4,
                 budget: Decimal | None = None, dry_run: bool = False, films: int = 1,
                 dask: str | None = None, on_progress: Callable[[str], Any] | None = None) -> BatchResult:
    """Render every combination of ``aspects`` and ``modes``, ``films`` at once (or one
    per task on the Dask scheduler at ``dask``)."""
    if not aspects and not modes:
        raise UsageError("name at least one variant: --aspect RATIO and/or --mode std|pro")
    board = storyboard.load(board_path, vars=vars)
    jobs = jobs_for(board, aspects=aspects, modes=modes, output_dir=output_dir, vars=vars)
    if dask:
        return render_batch_dask(jobs, address=dask, backend=backend, cache_dir=cache_dir,  # type: ignore[arg-type]
                                 concurrency=concurrency, budget=budget, dry_run=dry_run, on_progress=on_progress)
    return render_batch(jobs, backend=backend, cache_dir=cache_dir, concurrency=concurrency, budget=budget,
                        dry_run=dry_run, films=films)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("storyboard_file", metavar="STORYBOARD", type=click.Path(exists=True, dir_okay=False))
@click.option("--aspect", "aspects", multiple=True, type=click.Choice(ASPECT_RATIOS), help="An aspect ratio (repeat).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES), help="A mode (repeat).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a template variable (repeat).")
@click.option("--output-dir", "-o", default=None, type=click.Path(file_okay=False),
              help="Where the films go (default: out/variants/ beside the storyboard).")
@click.option("--backend", default=None, help="animatic (offline), inference, or a plugin's name.")
@click.option("--cache-dir", default=None, help="Shared cache: a folder or a URL (s3://bucket/prefix).")
@click.option("--concurrency", "-j", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--films", "-f", default=1, show_default=True, type=click.IntRange(min=1),
              help="Films rendered at once (a shot they share is still paid for once).")
@click.option("--budget", default=None, metavar="USD", help="Refuse (exit 3) if the variants together cost more.")
@click.option("--dry-run", is_flag=True, help="Price the variants; generate nothing.")
@click.option("--dask", default=None, metavar="ADDRESS",
              help="Render one film per task on this Dask scheduler (default: $DASK_SCHEDULER_ADDRESS, else locally).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def main(storyboard_file: str, aspects: tuple[str, ...], modes: tuple[str, ...], sets: tuple[str, ...],
         output_dir: str | None,
         backend: str | None, cache_dir: str | None, concurrency: int, films: int, budget: str | None,
         dry_run: bool, dask: str | None, as_json: bool) -> None:
    """Render STORYBOARD in every combination of --aspect and --mode."""
    limit = parse_budget(budget)
    values = parse_sets(sets)
    with exit_codes():
        result = run_variants(storyboard_file, aspects=aspects, modes=modes, vars=values, output_dir=output_dir,
                              backend=backend, cache_dir=cache_dir, concurrency=concurrency, budget=limit,
                              dry_run=dry_run, films=films, dask=dask_address(dask),
                              on_progress=lambda line: click.echo(line, err=True))
        finish(result, title=f"{Path(storyboard_file).name}: variants", as_json=as_json)


if __name__ == "__main__":  # pragma: no cover
    main()
