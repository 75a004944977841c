"""Drafts and finals: the same storyboard on other apps (``--app OLD=NEW``), into its own
film (``out/<stem>.<variant>.mp4``) and its own cache keys (the app is in every key).

Pure: a board in, a board out; the swapped shots' inputs are checked against the new
app like any shot's, so a concept the new app lacks is a located error before anything
is paid.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard import apps
from storyboard.errors import SpecError, UsageError

if TYPE_CHECKING:
    from storyboard.board import Board

__all__ = ["parse_app_swaps", "swap_apps", "variant_name", "variant_output"]


def parse_app_swaps(values: Sequence[str]) -> dict[str, str]:
    """``["klingai/video-v3=bytedance/seedance-2-0"]`` → {old: new}; UsageError when malformed."""
    out: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise UsageError(f"--app {value!r}: write OLD=NEW, e.g. klingai/video-v3=bytedance/seedance-2-0")
        for ref in (old, new):
            name = apps.parse_app_ref(ref).name
            if apps.profile(name) is None:
                raise UsageError(f"--app {value!r}: unknown app '{name}'; storyboard knows: "
                                 f"{', '.join(apps.known_apps())}")
        if old in out:
            raise UsageError(f"--app names {old} twice")
        out[old] = new
    return out


def variant_name(swaps: Mapping[str, str]) -> str:
    """A short file-name-safe name of the variant: the new apps' names (``seedance-2-0``)."""
    parts = [apps.parse_app_ref(new).name.split("/")[-1] for new in swaps.values()]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "+".join(parts))


def variant_output(film: Path, name: str) -> Path:
    """``out/film.mp4`` → ``out/film.<name>.mp4``: a draft never overwrites the final."""
    return film.with_name(f"{film.stem}.{name}{film.suffix}")


def swap_apps(board: Board, swaps: Mapping[str, str]) -> Board:
    """The board with every shot or still on app OLD moved to NEW (as written, or by name);
    raises UsageError when no node uses OLD, SpecError when a swapped node does not fit."""
    from storyboard.shotinputs import resolve_inputs

    def target(app: str) -> str | None:
        return swaps.get(app) or swaps.get(apps.app_name(app))

    used = {s.app for s in board.spec.shots} | {apps.app_name(s.app) for s in board.spec.shots}
    missing = [old for old in swaps if old not in used]
    if missing:
        raise UsageError(f"--app {missing[0]}=…: no shot or still uses {missing[0]} "
                         f"(they use {', '.join(sorted({s.app for s in board.spec.shots}))})")
    shots = tuple(dataclasses.replace(s, app=target(s.app) or s.app) for s in board.spec.shots)
    spec = dataclasses.replace(board.spec, shots=shots)
    spec.__dict__.pop("_by_id_cache", None)
    try:
        inputs = resolve_inputs(spec, board.prompts)
    except SpecError as e:
        how = " ".join(f"--app {old}={new}" for old, new in swaps.items())
        raise SpecError([dataclasses.replace(p, message=f"with {how}: {p.message}") for p in e.problems]) from None
    return dataclasses.replace(board, spec=spec, inputs=inputs)
