"""Start the studio: bind 127.0.0.1 (a random free port unless one is given), print the
URL with its per-launch token, open the browser, serve until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import webbrowser
from pathlib import Path
from typing import Any

import uvicorn

from storyboard.studio._app import make_app
from storyboard.studio._matrix import make_matrix_app, matrix_sessions
from storyboard.studio._safety import new_token
from storyboard.studio._session import Session, StudioOptions

__all__ = ["HOST", "bind", "serve"]

HOST = "127.0.0.1"  # loopback only: the studio changes files and can spend money


def bind(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def serve(file: Path, options: StudioOptions, *, port: int = 0, open_browser: bool = True,
          matrix_rows: Path | None = None) -> None:
    """Serve the studio of ``file`` (or, with ``matrix_rows``, of its matrix) until stopped."""
    sock = bind(port)
    port = sock.getsockname()[1]
    token = new_token()
    app: Any
    if matrix_rows is not None:
        sessions = matrix_sessions(file, matrix_rows, options)
        app = make_matrix_app(sessions, matrix_rows, token, port)
    else:
        sessions = [Session(file.resolve(), options)]
        sessions[0].reload()
        app = make_app(sessions[0], token, port)
    url = f"http://{HOST}:{port}/?token={token}"
    print(f"storyboard studio: {url}", flush=True)
    print("(Ctrl-C stops it; the token in the URL is this launch's only key)", file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, lifespan="on")
    asyncio.run(_Server(config, sessions).serve(sockets=[sock]))


class _Server(uvicorn.Server):
    """Uvicorn, ending the pages' event streams when asked to stop (else it would wait on them)."""

    def __init__(self, config: uvicorn.Config, sessions: list[Session]) -> None:
        super().__init__(config)
        self.sessions = sessions

    def handle_exit(self, sig: int, frame: Any) -> None:
        """Stop serving; close the open event streams on the server's loop."""
        super().handle_exit(sig, frame)
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for session in self.sessions:
                loop.call_soon_threadsafe(session.hub.close)
