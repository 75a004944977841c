"""``storyboard studio --matrix board.yaml rows.csv``: one row per film of a matrix (the
row's values are the board's vars, as ``python -m pipelines.matrix`` renders them), with
its status and cost; a row opens that film's board, the same page as ``storyboard studio``
mounted under ``/row/N``. The films are named as the matrix names them without
``--name-column``: ``out/<stem>/<stem>-N.mp4``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from storyboard.errors import StoryboardError
from storyboard.facts import usd
from storyboard.options import read_rows
from storyboard.studio._app import board_routes, pages, running, static
from storyboard.studio._safety import Guard
from storyboard.studio._session import Session, StudioOptions

__all__ = ["make_matrix_app", "matrix_sessions"]


def matrix_sessions(board: Path, rows_csv: Path, options: StudioOptions) -> list[Session]:
    """One session per row: the board with the row's vars, its film where the matrix puts it."""
    board = board.resolve()
    out = board.parent / "out" / board.stem
    sessions = []
    for i, row in enumerate(read_rows(rows_csv), start=1):
        s = Session(board, options, vars=row, output=out / f"{board.stem}-{i}.mp4")
        s.reload()
        sessions.append(s)
    return sessions


def _row(i: int, s: Session) -> dict[str, Any]:
    film = s.output
    plan = s.plan
    if s.board is None:
        status = "invalid"
    elif film is not None and film.is_file():
        status = "rendered" if plan is not None and not plan.pending else "rendered; changed since"
    else:
        status = f"{len(plan.pending) + len(plan.pending_takes)} to generate" if plan is not None else "?"
    return {"n": i, "name": film.stem if film else str(i), "vars": s.vars or {}, "status": status,
            "cost": usd(plan.cost) if plan is not None else "?", "error": s.error}


def make_matrix_app(sessions: list[Session], rows_csv: Path, token: str, port: int) -> Guard:
    """The matrix page, each row's board mounted under ``/row/N``, guarded as the board's."""
    board = sessions[0].path if sessions else rows_csv
    if not sessions:
        raise StoryboardError(f"{rows_csv}: no rows")
    env = pages()

    async def page(request: Request) -> Response:
        for s in sessions:
            if s.changed_on_disk():
                s.reload()
        rows = [_row(i, s) for i, s in enumerate(sessions, start=1)]
        return HTMLResponse(env.get_template("matrix.html").render(
            rows=rows, token=token, board=board.name, csv=rows_csv.name, columns=list(rows[0]["vars"])))

    routes: list[Any] = [Route("/", page)]
    routes += [Mount(f"/row/{i}", routes=board_routes(s, token, base=f"/row/{i}"))
               for i, s in enumerate(sessions, start=1)]
    routes.append(Route("/static/{name}", static))
    return Guard(Starlette(routes=routes, lifespan=running(sessions)), token, port)
