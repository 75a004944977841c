"""The ``storyboard`` command: the group, and where each command lives.

Exit codes: 0 done; 1 invalid storyboard or a shot failed; 2 usage error; 3 over budget.
Adding a command is one line in ``COMMANDS`` (its module is imported only when the
command runs or help lists it), so ``storyboard --help`` and each command start fast.
What commands share (the error handler, options) is in ``storyboard.clikit``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import click

from storyboard import __version__
from storyboard.clikit import cache_opt, err, errors, file_arg, load_board, set_opt, verbose_opt

# name → "module:attribute" of a click command defined outside this file.
COMMANDS: dict[str, str] = {
    "plan": "storyboard.plancmd:plan",
    "render": "storyboard.rendercmd:render",
    "cancel": "storyboard.rendercmd:cancel",
    "apps": "storyboard.appscmd:apps_group",
    "doctor": "storyboard.doctor:doctor",
    "draft": "storyboard.draft:draft_command",
    "studio": "storyboard.studio.command:studio",  # click only: the web stack loads when it runs
}


class Commands(click.Group):
    """The ``storyboard`` group: the commands below, and those named in ``COMMANDS``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, sorted."""
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module when it lives in ``COMMANDS``."""
        if cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="storyboard")
def main() -> None:
    """Turn a YAML storyboard into a finished multi-shot film.

    Try: storyboard render examples/harbor.yaml
    """


@main.command()
@file_arg
@set_opt
@verbose_opt
def validate(file: str, sets: tuple[str, ...], verbose: bool) -> None:
    """Check a storyboard; print every problem as FILE:LINE:COL: message."""
    with errors(verbose):
        board = load_board(file, sets)
        n = sum(1 for s in board.shots if not s.is_still)
        stills = len(board.shots) - n
        secs = sum(s.duration for s in board.shots)
        also = f", {stills} still{'s' if stills != 1 else ''}" if stills else ""
        click.echo(f"{file}: ok — {n} shot{'s' if n != 1 else ''}{also}, {secs} s generated, "
                   f"{len(board.cut)} in the cut, depth {board.graph.depth()}")


@main.command()
@file_arg
@set_opt
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@verbose_opt
def graph(file: str, sets: tuple[str, ...], fmt: str, verbose: bool) -> None:
    """Print the shot graph as Mermaid or Graphviz dot."""
    with errors(verbose):
        board = load_board(file, sets)
        click.echo(board.graph.to_mermaid() if fmt == "mermaid" else board.graph.to_dot(), nl=False)


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


@main.command()
@file_arg
@set_opt
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="The film, as given to render --output (default: the storyboard's output).")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False),
              help="Where to write the page (default: the film's path with .html).")
@cache_opt("The cache the render used: a folder or a URL (s3://bucket/prefix).")
@click.option("--contact-sheet", "sheet_copy", default=None, type=click.Path(dir_okay=False),
              help="Also copy the contact sheet PNG (first/last frame of every shot) here.")
@verbose_opt
def report(file: str, sets: tuple[str, ...], output: str | None, html_path: str | None, cache_dir: str | None,
           sheet_copy: str | None, verbose: bool) -> None:
    """Write an HTML page of the last render beside the film: the film, a contact
    sheet, each shot's prompt, cache hit, cost and timings, and the shot graph."""
    with errors(verbose):
        from storyboard.report import report_json_path, write_report_html

        board = load_board(file, sets)
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
    with errors(verbose):
        from storyboard.board import load
        from storyboard.takes import pick as pick_take
        from storyboard.takes import write_lock

        board = load(file)
        assert board.lock is not None
        for note in board.lock.dropped:
            err(f"warning: {note}")
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
    with errors():
        from storyboard.scaffold import scaffold

        where = Path(name)
        made = scaffold(where.name, Path(parent) / where.parent, title=title)
        click.echo(f"created {made.folder}/: {made.storyboard.name}, {made.schema.name}, "
                   f"templates/{made.template.name}, assets/{made.image.name}")
        click.echo(f"next: storyboard render {made.storyboard}")


if __name__ == "__main__":  # pragma: no cover
    main()
