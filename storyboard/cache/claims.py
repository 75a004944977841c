"""Claims: one render at a time may pay for a shot key.

Before a paid submission the runner claims the shot's key. A second render that finds
the key claimed does not submit: it waits until the claim is released, then takes the
clip from the cache, or, when the owner died without storing one, claims the key
itself and re-attaches to the task the owner journalled (the journal lives beside the
claim, under the same key).

:class:`ClaimStore` is what a store must offer. :class:`LocalClaims` implements it on a
local folder with one ``flock``-ed file per key: the kernel releases the lock when its
process dies (even by SIGKILL), so a dead owner's claim is free at once, with no lease
to wait out. A store without such locks (object storage) implements the same two
methods with a conditional create (put-if-absent) plus a lease that the holder's process
renews and that a waiter may take over once it has expired.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Protocol

__all__ = ["Claim", "ClaimStore", "LocalClaims"]


class Claim(Protocol):
    """A held claim on one shot key."""

    key: str

    def renew(self) -> None:
        """Extend the lease now (a leased claim is also renewed on its own while held);
        nothing for a flock."""

    def release(self) -> None:
        """Give the key up (idempotent). Done after the clip is stored, or on failure."""


class ClaimStore(Protocol):
    """Where claims live: the same store as the clips and the journal."""

    def try_claim(self, key: str) -> Claim | None:
        """Claim ``key`` atomically; None while another live render holds it."""

    def holder(self, key: str) -> str | None:
        """Who holds ``key`` (informative text), or None when nobody does."""


def owner_text() -> str:
    """How a claim names its owner: host, pid and the time it was taken."""
    return f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}"


class LocalClaim:
    """A claim held as an exclusive ``flock`` on ``claims/<key>.lock``."""

    def __init__(self, key: str, path: Path, fd: int) -> None:
        self.key = key
        self._path = path
        self._fd: int | None = fd

    def renew(self) -> None:
        """Nothing: the kernel holds a flock until release or the process's death."""

    def release(self) -> None:
        """Remove the lock file, then unlock: a waiter that opened the old file retries."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self._path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


class LocalClaims:
    """Claims in a local folder. Safe between processes and within one process (every
    claim opens the file anew, and ``flock`` locks belong to the open file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.lock"

    def try_claim(self, key: str) -> LocalClaim | None:
        """Claim ``key`` with a non-blocking exclusive flock; None when it is held."""
        path = self._path(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the file after we opened it: our lock
            # is then on an orphan, and a third render could lock a new file. Retry.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        with contextlib.suppress(OSError):  # informative only (the disk may be full)
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner_text().encode(), 0)
        return LocalClaim(key, path, fd)

    def holder(self, key: str) -> str | None:
        """The owner text of a live claim on ``key``, else None."""
        claim = self.try_claim(key)
        if claim is not None:
            claim.release()
            return None
        with contextlib.suppress(OSError):
            return self._path(key).read_text(errors="replace").strip() or "another render"
        return "another render"
