"""A moto S3 server in a process of its own that counts every HTTP request it answers.

    python -m benchmarks._s3count

Prints its URL on the first line of stdout, then serves until stdin closes; on exit it
prints one JSON line: ``total`` requests, ``by`` (method and cache area: claims, index,
clips, journal, other → count), ``takeovers`` (claim generations above 0 created: a
lease taken over from a dead owner) and ``create_refused`` (create-only claim writes
answered 412: a race for a claim lost). The requests are the real ones on the wire
(a WSGI layer around moto's application), not calls counted in the client.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

AREAS = ("claims", "index", "clips", "journal")
_GENERATION = re.compile(r"/claims/[^/]+/(\d+)\.json$")


def area_of(path: str, query: str) -> str:
    """Which part of the cache a request touches (a listing by its ``prefix``)."""
    where = unquote(path)
    prefix = parse_qs(query).get("prefix")
    if prefix:
        where += "/" + prefix[0]
    return next((a for a in AREAS if f"/{a}/" in where or where.endswith(f"/{a}")), "other")


class Counting:
    """WSGI middleware: counts each request by method and area, and claim outcomes."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.by: Counter[str] = Counter()
        self.takeovers = 0
        self.create_refused = 0
        self._lock = threading.Lock()
        self._serial = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        creating = method == "PUT" and environ.get("HTTP_IF_NONE_MATCH") == "*"
        status: list[str] = []

        def start(code: str, headers: Any, *rest: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *rest)

        with self._serial:  # moto's bucket is not thread-safe (a listing beside a delete fails)
            body = list(self.app(environ, start))
        with self._lock:
            self.by[f"{method} {area_of(path, environ.get('QUERY_STRING', ''))}"] += 1
            code = status[0][:3] if status else ""
            if creating and code == "412":
                self.create_refused += 1
            gen = _GENERATION.search(unquote(path))
            if creating and code == "200" and gen and int(gen.group(1)) > 0:
                self.takeovers += 1
        return body

    def summary(self) -> dict[str, Any]:
        """What the exit line holds."""
        with self._lock:
            return {"total": sum(self.by.values()), "by": dict(self.by), "takeovers": self.takeovers,
                    "create_refused": self.create_refused}


def main() -> None:
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    counting = Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, counting, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
    print(json.dumps(counting.summary()), flush=True)


if __name__ == "__main__":
    main()
