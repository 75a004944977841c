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
from storyboard.board import Board, build_graph
from storyboard.errors import SpecError, UsageError
from storyboard.shotinputs import resolve_inputs

if TYPE_CHECKING:
    from storyboard.spec import ResolvedShot

__all__ = ["fitted_duration", "parse_app_swaps", "swap_apps", "variant_name", "variant_output"]


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
    raises UsageError when no node uses OLD, SpecError when a swapped node does not fit.

    A draft adapts: a swapped shot whose duration is outside NEW's range is moved to the
    nearest duration NEW takes, and ``Board.notes`` says so, one line per shot. (A final,
    without ``--app``, never adapts: an out-of-range value is an error.)"""
    def target(app: str) -> str | None:
        return swaps.get(app) or swaps.get(apps.app_name(app))

    nodes = [s for s in board.spec.shots if s.kind != "title"]  # a title card runs on no app
    used = {s.app for s in nodes} | {apps.app_name(s.app) for s in nodes}
    missing = [old for old in swaps if old not in used]
    if missing:
        raise UsageError(f"--app {missing[0]}=…: no shot or still uses {missing[0]} "
                         f"(they use {', '.join(sorted({s.app for s in nodes}))})")
    shots: list[ResolvedShot] = []
    notes: list[str] = []
    for shot in board.spec.shots:
        new = target(shot.app) if shot.kind != "title" else None
        if new is not None:
            shot = dataclasses.replace(shot, app=new)
            fitted = fitted_duration(new, shot.duration) if shot.kind == "shot" else None
            if fitted is not None and fitted != shot.duration:
                notes.append(f"shot '{shot.id}': {new} takes no {shot.duration} s clip; this draft makes it "
                             f"{fitted} s (the storyboard says {shot.duration} s)")
                shot = dataclasses.replace(shot, duration=fitted)
        shots.append(shot)
    spec = dataclasses.replace(board.spec, shots=tuple(shots))
    spec.__dict__.pop("_by_id_cache", None)
    try:
        inputs = resolve_inputs(spec, board.prompts)
    except SpecError as e:
        how = " ".join(f"--app {old}={new}" for old, new in swaps.items())
        raise SpecError([dataclasses.replace(p, message=f"with {how}: {p.message}") for p in e.problems]) from None
    graph = build_graph(spec) if notes else board.graph  # durations moved: the critical path follows
    return dataclasses.replace(board, spec=spec, graph=graph, inputs=inputs, notes=(*board.notes, *notes))


# Whole seconds searched for the nearest duration an app takes (no video app takes more).
_SECONDS = range(1, 61)


def fitted_duration(app: str, seconds: int) -> int | None:
    """The whole seconds nearest to ``seconds`` that ``app`` (its current version, or the
    one pinned) takes for a clip's duration, by the app's own check; None when the app
    has no duration input or takes no whole seconds at all."""
    ref = apps.parse_app_ref(app)
    profile = apps.profile(ref.name)
    version = (profile.version(ref.version) or profile.version()) if profile is not None else None
    if profile is None or version is None or profile.input_name("duration", version) is None:
        return None

    def takes(n: int) -> bool:
        got = apps.app_inputs(profile, version, {"duration": n})
        return not any(p.concept == "duration" for p in got.problems)

    if takes(seconds):
        return seconds
    fits = [n for n in _SECONDS if takes(n)]
    return min(fits, key=lambda n: (abs(n - seconds), n)) if fits else None
