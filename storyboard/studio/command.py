"""The ``storyboard studio`` command (click only here: the web stack loads when it runs)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

__all__ = ["studio"]


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("rows", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--matrix", is_flag=True, help="FILE is a matrix board and ROWS its CSV: one row per film.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (default: a free one).")
@click.option("--backend", default=None, help="Render on this backend (default: the file's).")
@click.option("--budget", default=None, metavar="USD", help="Refuse a render whose plan costs more.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="Cache folder.")
@click.option("--concurrency", "-j", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Shots generated at once.")
@click.option("--no-browser", is_flag=True, help="Print the URL; do not open a browser.")
def studio(file: Path, rows: Path | None, matrix: bool, port: int, backend: str | None, budget: str | None,
           cache_dir: str | None, concurrency: int, no_browser: bool) -> None:
    """Open a local page on FILE: watch a render, compare takes, pick, edit and preview."""
    from storyboard.options import parse_budget

    if matrix != (rows is not None):
        raise click.UsageError("--matrix takes the board and its rows: storyboard studio --matrix FILE ROWS.csv")
    for p in (file, rows):
        if p is not None and not p.is_file():
            raise click.UsageError(f"no such file: {p}")
    value = parse_budget(budget)
    try:
        from storyboard.studio._serve import serve
        from storyboard.studio._session import StudioOptions
    except ImportError as e:
        raise click.ClickException(f"the studio needs its extra: pip install 'storyboard-film[studio]' ({e})") from None
    from decimal import Decimal

    options = StudioOptions(backend=backend, budget=None if value is None else Decimal(str(value)),
                            cache_dir=cache_dir, concurrency=concurrency)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the studio: nothing to say
        serve(file, options, port=port, open_browser=not no_browser, matrix_rows=rows)
