"""The live check before the first paid call: read each app once, re-check every shot.

A backend that can read apps (``get_app``, the inference backend) is asked for each app
reference the storyboard uses, once per render, all at once; the inference backend then
sends every request of the render pinned to the version it read (``ns/name@VERSION``).
Every shot's inputs are then checked against the version it serves
(``Board.with_live_apps``): a storyboard that is valid offline but not live is refused
with one line per field, and nothing is paid. The version read is remembered in the
cache, keyed by app reference, so a later render whose shots are all cached needs no
network at all (its cache keys hold that version).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storyboard import apps
from storyboard.board import Board
from storyboard.cache import Cache, atomic_write_json
from storyboard.errors import AuthError, BackendError, CacheError
from storyboard.events import AppResolved, Event

_FOLDER = "apps"


def remembered_path(cache: Cache, ref: str) -> Path:
    """Where the version an app reference was last read live at is kept, beside the cache
    (the one rule for shots, lines, music and text nodes)."""
    safe = ref.replace("/", "__").replace("@", "--")
    return cache.root / _FOLDER / f"{safe}.json"


def remembered(board: Board, cache: Cache | None) -> dict[str, apps.AppVersion]:
    """The versions earlier live checks read for this board's apps (none when never checked)."""
    if cache is None:
        return {}
    out: dict[str, apps.AppVersion] = {}
    for ref in board.apps_used():
        try:
            data = json.loads(remembered_path(cache, ref).read_text())
            out[ref] = apps.AppVersion(data["app"], data["version_id"], data["input_schema"],
                                       data.get("output_schema", {}), "live (remembered)")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def with_remembered(board: Board, cache: Cache | None) -> Board:
    """The board keyed by the versions last read live (as it was loaded when there are none)."""
    known = remembered(board, cache)
    return board.with_live_apps(known) if known else board


async def live_check(board: Board, backend: object, cache: Cache, emit: Callable[[Event], None]) -> Board:
    """Read every app the board uses from the backend, remember them, and re-check every shot.

    The apps are read at once (one round trip for any number of apps, not one each). Raises
    SpecError (what changed, which shots; nothing paid) or the backend's error when an app
    cannot be read after retries (never a guess). A backend without ``get_app`` is trusted.
    """
    get_app = getattr(backend, "get_app", None)
    if not callable(get_app):
        return board
    refs = {text: apps.parse_app_ref(text) for text in board.apps_used()}
    pins = dict(board.lock.apps) if board.lock is not None else {}

    async def read(ref_text: str) -> Any:
        ref = refs[ref_text]
        pin = pins.get(ref.name) if ref.version is None and not ref.latest else None
        try:
            return await get_app(ref.pinned_to(pin) if pin else ref_text)
        except AuthError:
            raise
        except BackendError as e:  # no guessing: the render stops here, before anything is paid
            raise BackendError(f"could not check {ref_text} against inference.sh before paying ({e}); "
                               "nothing was paid", status=e.status, retryable=e.retryable) from None

    payloads = await asyncio.gather(*(read(text) for text in refs))
    live: dict[str, apps.AppVersion] = {}
    writes = []
    for (ref_text, ref), payload in zip(refs.items(), payloads, strict=True):
        version = apps.app_from_api(payload, ref.name)
        live[ref.text] = version  # the backend sends every request of this render pinned to it
        writes.append(asyncio.to_thread(_remember, cache, ref_text, version))
        pinned = ref.version is not None or (ref.name in pins and not ref.latest)
        emit(AppResolved(app=ref.name, version=version.version_id, pinned=pinned))
    await asyncio.gather(*writes)
    return board.with_live_apps(live)


def _remember(cache: Cache, ref_text: str, version: apps.AppVersion) -> None:
    """Remember a version read live (only saves a request next time: a full disk is said
    later); unchanged since the last render, it is not written again."""
    path = remembered_path(cache, ref_text)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()) == json.loads(json.dumps(version.to_json(), default=str)):
            return
    with contextlib.suppress(CacheError):
        atomic_write_json(path, version.to_json())
