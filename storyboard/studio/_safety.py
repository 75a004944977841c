"""The studio's guard: it changes local files and can spend money, so every request must
come from the page it served. Loopback only; a per-launch token on every request; the
``Host`` header must name the loopback address and port (no DNS rebinding); an ``Origin``
header, when sent, must be the studio's own (no cross-site posts). Files are served only
from the board's folder and its cache: ``..``, absolute paths and hidden files are 404."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs

__all__ = ["TOKEN_HEADER", "Guard", "inside", "new_token", "redact"]

TOKEN_HEADER = "x-studio-token"
Scope = dict[str, Any]


def redact(text: str) -> str:
    """``text`` with the API key, if it appears, replaced by *** (as the CLI's errors are)."""
    key = os.environ.get("INFERENCE_API_KEY")
    return text.replace(key, "***") if key and len(key) >= 4 else text


def new_token() -> str:
    """A fresh per-launch token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


class Guard:
    """ASGI middleware: 403 for a foreign Host or Origin, or a missing or wrong token."""

    def __init__(self, app: Any, token: str, port: int) -> None:
        self.app = app
        self.token = token
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{h}" for h in self.hosts}

    def refusal(self, scope: Scope) -> str | None:
        """Why a request is refused, or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if headers.get("host") not in self.hosts:
            return "forbidden: the Host header is not this studio's (127.0.0.1 or localhost, its port)"
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return "forbidden: a request from another site (Origin) is refused"
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = headers.get(TOKEN_HEADER) or (query.get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return "forbidden: this studio's token is missing or wrong (open the URL the command printed)"
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Pass the request on, or answer 403."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        why = self.refusal(scope)
        if why is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": why}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def inside(root: Path, rel: str) -> Path | None:
    """The file ``rel`` names under ``root``, or None: absolute paths, ``..``, hidden parts
    and anything that resolves (through links) outside ``root`` are refused."""
    if not rel or rel.startswith(("/", "\\")) or "\\" in rel or "\x00" in rel:
        return None
    parts = PurePosixPath(rel).parts
    if any(p in ("..", ".") or p.startswith(".") or ":" in p for p in parts):
        return None
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target
