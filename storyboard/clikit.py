"""What every ``storyboard`` command shares: the one error handler, the shared options,
loading a board with its warnings, logging. Command modules (``rendercmd``, ``plancmd``,
``appscmd``, ``doctor``, …) import this; nothing here imports a command, so the face has
no import circle. Heavy imports stay inside functions so ``storyboard --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from storyboard.facts import TAKES_MAX
from storyboard.options import parse_sets

if TYPE_CHECKING:
    from storyboard.board import Board

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["app_opt", "cache_opt", "err", "errors", "file_arg", "load_board", "plan_app_opt", "plan_reroll_opt",
           "redact", "reroll_opt", "set_opt", "setup_logging", "verbose_opt", "warn_unused"]


def err(message: str) -> None:
    """One line on stderr."""
    click.echo(message, err=True)


@contextmanager
def errors(verbose: bool = False, on_fail: Callable[[str, int], Any] | None = None) -> Iterator[None]:
    """Catch StoryboardError once: one clear message, the right exit code. ``on_fail``
    (message, exit code) is told too, whatever ended the command (``render --json``)."""
    from storyboard.errors import StoryboardError

    def fail(message: str, code: int) -> NoReturn:
        err(message)
        if on_fail is not None:
            on_fail(message, code)
        sys.exit(code)

    try:
        yield
    except StoryboardError as e:
        if verbose:
            import traceback

            traceback.print_exc()
        fail(redact(str(e) if _located(e) or "\n" in str(e) else f"error: {e}"), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted; every clip already made is cached, and journalled remote tasks resume on the next "
             "render", 130)
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        sys.stderr.close()
        sys.exit(0)
    except click.exceptions.Abort:  # end of input at a prompt: nothing was done
        fail("aborted: nothing done", 1)
    except click.exceptions.Exit:
        raise
    except click.ClickException as e:
        if on_fail is not None:
            on_fail(redact(e.format_message()), e.exit_code)
        raise
    except Exception as e:  # a bug: still no traceback unless asked
        if verbose:
            raise
        fail(redact(f"internal error: {type(e).__name__}: {e} (run with --verbose for the traceback; please "
                    "report it)"), 1)


def _located(e: Exception) -> bool:
    """Whether the error already starts with its FILE:LINE (a SpecError's problems do)."""
    from storyboard.errors import SpecError

    return isinstance(e, SpecError) and any(p.file is not None for p in e.problems)


def redact(text: str) -> str:
    """``text`` with the API key's value replaced by ``***``."""
    key = os.environ.get("INFERENCE_API_KEY")
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text


def load_board(file: str, sets: Sequence[str]) -> Board:
    """Load FILE with ``--set`` values; warn about values no prompt reads and idle characters."""
    from storyboard.board import load

    values = parse_sets(sets)
    board = load(file, vars=values)
    warn_unused(board, values)
    return board


def warn_unused(board: Board, values: dict[str, Any]) -> None:
    """Warn for each ``--set`` name no prompt read (with a did-you-mean) and each idle character."""
    for name, near in board.unused_vars(values):
        hint = f"; did you mean '{near}'?" if near else ""
        err(f"warning: --set {name}: no prompt uses '{name}'{hint}")
    for name in board.unused_characters():
        err(f"warning: character '{name}' is in no shot (list it in a shot's characters:)")


def setup_logging(verbose: bool) -> None:
    """Debug logging (ffmpeg/HTTP detail) with ``--verbose``."""
    import logging

    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("asyncio", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


file_arg = click.argument("file", type=click.Path(dir_okay=False, path_type=str))
set_opt = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a template variable.")
app_opt = click.option("--app", "swaps", multiple=True, metavar="OLD=NEW",
                       help="Render on another app (a draft): out/<stem>.<variant>.mp4, its own cache keys.")
plan_app_opt = click.option("--app", "swaps", multiple=True, metavar="OLD=NEW",
                            help="Plan a draft on another app: its own cache keys and prices, beside the original's.")
reroll_opt = click.option("--reroll-drifted", "reroll", type=click.IntRange(0, TAKES_MAX), default=0, metavar="N",
                          help="Regenerate a chained shot whose seam drifted up to N more times, within --budget.")
plan_reroll_opt = click.option("--reroll-drifted", "reroll", type=click.IntRange(0, TAKES_MAX), default=0,
                               metavar="N", help="Count up to N rerolls of each chained shot in the worst-case cost.")
verbose_opt = click.option("--verbose", "-v", is_flag=True, help="Show detail (ffmpeg/HTTP) and tracebacks.")


def cache_opt(help_text: str = "Cache: a folder (default .storyboard/ beside the storyboard) or a URL "
                               "(s3://bucket/prefix).") -> Callable[[F], F]:
    """``--cache-dir``: a folder or an fsspec URL (not checked as a path, so s3:// passes)."""
    return click.option("--cache-dir", default=None, metavar="DIR|URL", help=help_text)
