"""Takes: the lock file that records which take of a shot is picked, and each take's seed.

The lock file sits beside the storyboard (``film.yaml`` → ``film.takes.yaml``) and is meant
to be committed::

    # storyboard takes: the picked take of each shot (storyboard pick FILE SHOT TAKE)
    picks:
      harbor: 2

A shot with no pick uses take 1. It may also pin app versions, written by hand::

    apps:
      klingai/video-v3: VERSION_ID

An unversioned app reference then renders that version (the live check reads it, and
every request is sent pinned to it); ``@latest`` on an app the file pins is an error.
Pure, apart from reading and writing that one file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from storyboard.errors import SpecError, StoryboardError
from storyboard.facts import TAKES_MAX

__all__ = ["HEADER", "TAKES_MAX", "Lock", "lock_path", "pick", "read_lock", "take_seed", "write_lock"]

HEADER = "# storyboard takes: the picked take of each shot (storyboard pick FILE SHOT TAKE)\n"


@dataclass(frozen=True)
class Lock:
    """The picks read from a lock file (shot → take, from 1), and notes on dropped picks."""

    path: Path
    picks: Mapping[str, int] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    apps: Mapping[str, str] = field(default_factory=dict)  # app (namespace/name) -> pinned version id
    app_lines: Mapping[str, str] = field(default_factory=dict)  # app -> "FILE:LINE:COL" of its pin

    def take(self, shot_id: str) -> int:
        """The picked take of a shot (1 when none is picked)."""
        return self.picks.get(shot_id, 1)


def lock_path(storyboard: Path) -> Path:
    """Where the lock file of a storyboard lives: beside it, ``<stem>.takes.yaml``."""
    return storyboard.with_name(f"{storyboard.stem}.takes.yaml")


def _where(path: Path, mark: yaml.Mark | None) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)


def _garbage(path: Path, mark: yaml.Mark | None, what: str) -> SpecError:
    return SpecError(f"takes lock file: {what}; expected 'picks:' mapping shot ids to take numbers "
                     f"(fix it, or delete the file to use take 1 everywhere)", file=str(path),
                     line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)


def read_lock(storyboard: Path, takes: Mapping[str, int]) -> Lock:
    """Read the lock file beside ``storyboard`` against the shots' take counts. A missing file
    picks nothing; a pick of a gone shot or take is dropped with a note; garbage is an error
    naming the file and line."""
    path = lock_path(storyboard)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Lock(path)
    except (OSError, UnicodeDecodeError) as e:
        raise StoryboardError(f"{path}: cannot read the takes lock file ({e})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise _garbage(path, mark, f"not YAML ({getattr(e, 'problem', None) or e})") from None
    if root is None:
        return Lock(path)
    if not isinstance(root, yaml.MappingNode):
        raise _garbage(path, root.start_mark, "not a mapping")
    picks: dict[str, int] = {}
    dropped: list[str] = []
    pins: dict[str, str] = {}
    pin_lines: dict[str, str] = {}
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "apps":
            _read_pins(path, value, pins, pin_lines)
            continue
        if not isinstance(key, yaml.ScalarNode) or key.value != "picks":
            raise _garbage(path, key.start_mark, f"unknown key {getattr(key, 'value', '?')!r}")
        if isinstance(value, yaml.ScalarNode) and value.value in ("", "null", "~"):
            continue
        if not isinstance(value, yaml.MappingNode):
            raise _garbage(path, value.start_mark, "'picks' is not a mapping")
        for shot, take in value.value:
            if not isinstance(shot, yaml.ScalarNode) or not isinstance(take, yaml.ScalarNode):
                raise _garbage(path, shot.start_mark, "a pick is not 'SHOT: TAKE'")
            try:
                number = int(take.value)
            except ValueError:
                number = 0
            if number < 1 or str(number) != take.value.strip():
                raise _garbage(path, take.start_mark, f"take {take.value!r} of '{shot.value}' is not a whole number ≥ 1")
            if shot.value not in takes:
                dropped.append(f"{_where(path, shot.start_mark)}: shot '{shot.value}' is gone; its pick is dropped")
            elif number > takes[shot.value]:
                dropped.append(f"{_where(path, take.start_mark)}: shot '{shot.value}' has {takes[shot.value]} "
                               f"take(s), not {number}; its pick is dropped")
            else:
                picks[shot.value] = number
    return Lock(path, picks, tuple(dropped), pins, pin_lines)


def _read_pins(path: Path, node: yaml.Node, pins: dict[str, str], lines: dict[str, str]) -> None:
    """The ``apps:`` mapping of app to pinned version id (both plain text)."""
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
        return
    if not isinstance(node, yaml.MappingNode):
        raise _garbage(path, node.start_mark, "'apps' is not a mapping of app to version id")
    for app, version in node.value:
        if not isinstance(app, yaml.ScalarNode) or not isinstance(version, yaml.ScalarNode) \
                or "/" not in app.value or not version.value.strip() or "@" in app.value:
            raise _garbage(path, app.start_mark, "an app pin is not 'namespace/name: VERSION_ID'")
        pins[app.value] = version.value.strip()
        lines[app.value] = _where(path, app.start_mark)


def write_lock(lock: Lock) -> Path:
    """Write the picks (sorted) atomically. A picked take 1 is kept: it is a pin too (a pinned
    take is never rerolled by ``--reroll-drifted``)."""
    body = "".join(f"  {shot}: {take}\n" for shot, take in sorted(lock.picks.items()))
    text = HEADER + ("picks:\n" + body if body else "picks: {}\n")
    if lock.apps:
        text += "apps:\n" + "".join(f"  {app}: {version}\n" for app, version in sorted(lock.apps.items()))
    tmp = lock.path.with_name(f".{lock.path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(lock.path)
    return lock.path


def pick(lock: Lock, takes: Mapping[str, int], shot_id: str, take: int) -> Lock:
    """The lock with ``take`` of ``shot_id`` picked; an unknown shot or take is an error."""
    if shot_id not in takes:
        known = ", ".join(sorted(takes)[:8])
        raise StoryboardError(f"pick: no shot '{shot_id}' in the storyboard (shots: {known})")
    if not 1 <= take <= takes[shot_id]:
        raise StoryboardError(f"pick: shot '{shot_id}' has {takes[shot_id]} take(s); pick 1..{takes[shot_id]}, "
                              f"not {take}")
    return Lock(lock.path, {**lock.picks, shot_id: take}, apps=lock.apps, app_lines=lock.app_lines)


def take_seed(shot_id: str, take: int) -> int:
    """The seed of a take on an app with a ``seed`` input: fixed by shot and take, so a take
    is reproducible and recorded by its number alone."""
    return int.from_bytes(hashlib.sha256(f"{shot_id}#take{take}".encode()).digest()[:4], "big") >> 1
