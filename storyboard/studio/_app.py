"""The studio's web app: Starlette routes over a :class:`Session`, pages rendered by
Jinja2 (autoescaped), progress as server-sent events, the :class:`Guard` in front."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from storyboard.errors import StoryboardError
from storyboard.studio._safety import Guard, inside, redact
from storyboard.studio._session import Session
from storyboard.studio._worker import Worker

__all__ = ["HERE", "BoardPage", "board_routes", "make_app", "pages", "running", "static"]

HERE = Path(__file__).resolve().parent
STATIC = {"studio.js": "text/javascript", "studio.css": "text/css"}


def pages() -> Environment:
    """The studio's Jinja2 templates, autoescaped."""
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True)


def _error(e: Exception, status: int = 422) -> JSONResponse:
    return JSONResponse({"error": redact(str(e))}, status_code=status)


def _not_found() -> Response:
    return Response("not found", status_code=404, media_type="text/plain")


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise StoryboardError("the request body must be a JSON object")
    return data


async def static(request: Request) -> Response:
    """The page's script and style sheet (and nothing else)."""
    name = request.path_params["name"]
    if name not in STATIC:
        return _not_found()
    return FileResponse(HERE / "static" / name, media_type=STATIC[name])


def make_app(session: Session, token: str, port: int) -> Guard:
    """The studio app for ``session``, guarded by ``token`` on ``port``."""
    return Guard(Starlette(routes=board_routes(session, token), lifespan=running([session])), token, port)


def running(sessions: list[Session]) -> Any:
    """The app's lifespan: each session's render worker and file watcher."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watchers = []
        for session in sessions:
            session.worker = Worker(asyncio.get_running_loop(), session.on_event, session.on_end)
            watchers.append(asyncio.create_task(session.watch()))
        try:
            yield
        finally:
            for session, watcher in zip(sessions, watchers, strict=True):
                watcher.cancel()
                assert session.worker is not None
                session.worker.cancel()
                await asyncio.to_thread(session.worker.join, 30)
    return lifespan


def board_routes(session: Session, token: str, base: str = "") -> list[Route]:
    """The routes of one board's page (under ``base`` when mounted, e.g. a matrix's row)."""
    return BoardPage(session, token, base).routes()


def _take(request: Request) -> int | None:
    raw = request.query_params.get("take")
    return int(raw) if raw and raw.isdigit() else None


class BoardPage:
    """One board's page and its API: each method is a route's endpoint."""

    def __init__(self, session: Session, token: str, base: str = "") -> None:
        self.session, self.token, self.base = session, token, base
        self.env = pages()

    def routes(self) -> list[Route]:
        """Every route of the page."""
        return [
            Route("/", self.page), Route("/fragment/cards", self.cards), Route("/events", self.events),
            Route("/api/render", self.render, methods=["POST"]), Route("/api/cancel", self.cancel, methods=["POST"]),
            Route("/api/edit", self.edit, methods=["POST"]),
            Route("/api/source", self.source, methods=["GET", "POST"]),
            Route("/api/pick", self.pick, methods=["POST"]), Route("/frame/{shot}/{which}", self.frame),
            Route("/clip/{shot}", self.clip), Route("/film", self.film), Route("/film/{part}", self.film),
            Route("/files/{path:path}", self.files), Route("/cache/{path:path}", self.cached),
            Route("/static/{name}", static),
        ]

    def context(self) -> dict[str, Any]:
        """What the templates show."""
        session = self.session
        film = session.shown_film()
        vtt = film.with_suffix(".vtt") if film is not None else None
        return {"s": session, "token": self.token, "base": self.base, "cards": session.cards(),
                "totals": session.totals(), "film_version": film.stat().st_mtime_ns if film else None,
                "captions": vtt is not None and vtt.is_file(), "error": redact(session.error or "") or None,
                "busy": session.worker.kind if session.worker else None, "audio": session.audio(),
                "vars": dict(session.board.spec.model.vars) if session.board else {}}

    async def page(self, request: Request) -> Response:
        """The board page."""
        return HTMLResponse(self.env.get_template("board.html").render(self.context()))

    async def cards(self, request: Request) -> Response:
        """The cards alone (the page swaps them in after an event)."""
        return HTMLResponse(self.env.get_template("cards.html").render(self.context()))

    async def events(self, request: Request) -> Response:
        """The runner's events and the studio's, as server-sent events."""
        return StreamingResponse(self.session.hub.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def render(self, request: Request) -> Response:
        """Start a render; a paid one first answers 409 with the planned cost to confirm."""
        session = self.session
        try:
            data = await _body(request)
            if session.board is None:
                raise StoryboardError(session.error or "the storyboard is invalid")
            ask = session.confirm_needed(data.get("confirm"))
            if ask is not None:
                return JSONResponse(ask, status_code=409)
            session.start("render")
        except StoryboardError as e:
            return _error(e, 409 if "already running" in str(e) else 422)
        return JSONResponse({"started": True}, status_code=202)

    async def cancel(self, request: Request) -> Response:
        """Cancel the running render (as Ctrl-C does)."""
        assert self.session.worker is not None
        return JSONResponse({"cancelling": self.session.worker.cancel()})

    def preview(self) -> str:
        """Rebuild the animatic preview now, or when the running render ends."""
        session = self.session
        assert session.worker is not None
        if session.worker.busy:
            session.preview_pending = True
            return "saved; the preview is rebuilt when the running render ends"
        session.start("preview")
        return "saved; rebuilding the preview"

    async def edit(self, request: Request) -> Response:
        """A shot's fields or the vars, written round-trip; then the preview."""
        try:
            data = await _body(request)
            fields = {str(k): str(v) for k, v in (data.get("fields") or {}).items()}
            vars_ = {str(k): str(v) for k, v in (data.get("vars") or {}).items()}
            changed = self.session.edit(data.get("shot"), fields, vars_)
        except StoryboardError as e:
            return _error(e)
        notice = self.preview() if changed else "nothing changed"
        self.session.hub.publish({"event": "board", "notice": notice, "changed": changed})
        return JSONResponse({"changed": changed, "notice": notice})

    async def source(self, request: Request) -> Response:
        """The file's text (GET), or a new text, checked before it is written (POST)."""
        if request.method == "GET":
            return Response(self.session.path.read_text(encoding="utf-8"), media_type="text/plain; charset=utf-8")
        try:
            self.session.replace_source(str((await _body(request)).get("text", "")))
        except StoryboardError as e:
            return _error(e)
        notice = self.preview()
        self.session.hub.publish({"event": "board", "notice": notice})
        return JSONResponse({"notice": notice})

    async def pick(self, request: Request) -> Response:
        """Pick a take (the lock file); the descendants to regenerate are marked."""
        try:
            data = await _body(request)
            take = data.get("take")
            if not isinstance(take, int) or isinstance(take, bool):
                raise StoryboardError(f"pick: take must be a whole number, not {take!r}")
            marked = self.session.pick(str(data.get("shot")), take)
        except StoryboardError as e:
            return _error(e)
        self.session.hub.publish({"event": "board", "notice": f"take {take} of {data.get('shot')} picked; "
                                  f"{len(marked)} descendant(s) to regenerate", "marked": marked})
        return JSONResponse({"marked": marked})

    async def frame(self, request: Request) -> Response:
        """A shot's (or take's) first or last frame."""
        which = request.path_params["which"]
        if which not in ("first", "last"):
            return _not_found()
        try:
            path = await self.session.frame(request.path_params["shot"], which, _take(request))
        except StoryboardError:
            path = None
        return FileResponse(path) if path is not None else _not_found()

    async def clip(self, request: Request) -> Response:
        """A shot's (or take's) cached clip."""
        path = self.session.clip(request.path_params["shot"], _take(request))
        return FileResponse(path) if path is not None else _not_found()

    async def film(self, request: Request) -> Response:
        """The film the page plays, or its captions."""
        path = self.session.shown_film()
        if path is not None and request.path_params.get("part") == "captions.vtt":
            path = path.with_suffix(".vtt")
        return FileResponse(path, headers={"Cache-Control": "no-store"}) \
            if path is not None and path.is_file() else _not_found()

    async def files(self, request: Request) -> Response:
        """A file of the board's folder (nothing outside it, nothing hidden)."""
        path = inside(self.session.path.parent, request.path_params["path"])
        return FileResponse(path) if path is not None else _not_found()

    async def cached(self, request: Request) -> Response:
        """A file of the board's cache."""
        path = inside(self.session.cache().root, request.path_params["path"])
        return FileResponse(path) if path is not None else _not_found()
