"""The content-addressed clip store, the shot journal and the render lock.

Layout of a cache folder (``.storyboard/`` beside the storyboard by default)::

    clips/ab/<sha256>.mp4        clips by content hash (a still: .png or .jpg)
    index/ab/<shot key>.json     shot cache key → clip hash (+ facts for the report)
    journal/<shot key>.json      small state a backend remembered before waiting
    frames/<clip hash>-<sel>.png frames extracted from clips
    prepared/<hash>.<ext>        images prepared to the model's rules
    locks/<hash>.lock            one render per output at a time (flock)
    claims/<shot key>.lock       one render at a time pays for a shot key (flock; see claims.py)
    tmp/                         temporary files (same disk, so renames are atomic)

Every write is atomic: a temp file in the same folder, fsync, rename. Index entries are
one file per key, so renders of different storyboards can share one cache safely.
This package is the only code that writes into the cache. It imports no media code:
the runner passes in how to check that a clip is a readable video (``verify``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.cache.claims import Claim, LocalClaims
from storyboard.errors import CacheError, LockedError
from storyboard.facts import AUDIO_SUFFIXES, IMAGE_SUFFIXES

CACHE_ENV = "STORYBOARD_CACHE"
DEFAULT_DIRNAME = ".storyboard"
_CHUNK = 1 << 20
KEPT_SUFFIXES = IMAGE_SUFFIXES + AUDIO_SUFFIXES + (".json",)  # kept as they are (.json: a text answer); else .mp4


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def known_sha256(clip: Path) -> str | None:
    """The digest written beside ``clip`` as it was made, when it is for this size."""
    try:
        size, digest = clip.with_name(clip.name + ".sha256").read_text().split()
        return digest if int(size) == clip.stat().st_size and len(digest) == 64 else None
    except (OSError, ValueError):
        return None


def _oserror(action: str, path: Path, e: OSError) -> CacheError:
    if e.errno == errno.ENOSPC:
        return CacheError(f"disk full while {action} {path}; free some space (clips made so far are kept)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the file system is read-only" if e.errno == errno.EROFS else "permission denied"
        return CacheError(
            f"cannot write the cache: {why} while {action} {path}; "
            f"make the folder writable or choose another with --cache-dir or {CACHE_ENV}"
        )
    return CacheError(f"cache error while {action} {path}: {e.strerror or e}; "
                      f"fix it or choose another cache folder with --cache-dir or {CACHE_ENV}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically: temp file in the same folder, fsync, rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    except OSError as e:
        raise _oserror("writing", path, e) from None


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


@dataclass(frozen=True)
class Entry:
    """A cached clip: the shot key, the clip's content hash and path, report facts."""

    key: str
    clip: str  # content hash
    path: Path
    facts: dict[str, Any]


class Cache:
    """A cache folder. Safe to share between storyboards and concurrent renders.

    ``verify(path)`` raises when a clip whose bytes changed is not a readable video; it
    is called only for a clip that must be re-hashed (the runner passes media's probe).
    """

    # The longest a render waiting on another one's claim sleeps between looks (seconds):
    # a look here is a flock, cheap, so it looks every 0.2 s (runner._context.holding).
    claim_poll_most = 0.2
    remote = False  # a shared store's cache calls wait on the network (see SharedCache)

    def __init__(self, root: Path, *, create: bool = True, verify: Callable[[Path], object] | None = None) -> None:
        self.root = root.absolute()  # reports and journals name clips by absolute path
        self.verify = verify
        self.claims = LocalClaims(self.root / "claims")
        self.dropped: list[tuple[str, str]] = []  # (key, why) of entries found broken
        self._verified: dict[str, Path] = {}
        if create:
            try:
                for sub in ("clips", "index", "journal", "frames", "prepared", "locks", "claims", "tmp"):
                    (root / sub).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _oserror("creating", root, e) from None
            if not os.access(root, os.W_OK) or not os.access(root / "tmp", os.W_OK):
                raise CacheError(
                    f"cannot write the cache: {root} is read-only; make it writable or choose another with "
                    f"--cache-dir or {CACHE_ENV}"
                )

    def sweep_tmp(self, older_than: float = 24 * 3600) -> int:
        """Remove work folders a killed render left in tmp/ (only old ones: a render
        running right now may share this cache). Returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than
        with contextlib.suppress(OSError):
            for entry in (self.root / "tmp").iterdir():
                with contextlib.suppress(OSError):
                    if entry.lstat().st_mtime < cutoff:
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink()
                        removed += 1
        return removed

    # ------------------------------------------------------------------ clips

    def _clip_path(self, digest: str, suffix: str = ".mp4") -> Path:
        # a still is kept as its image, a voiced line or music as its audio file; a clip is .mp4
        return self.root / "clips" / digest[:2] / f"{digest}{suffix}"

    def _index_path(self, key: str) -> Path:
        return self.root / "index" / key[:2] / f"{key}.json"

    def tmp_dir(self, prefix: str = "work-") -> Path:
        """A new private work folder in tmp/ (same disk as the clips: renames are atomic)."""
        try:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))
        except OSError as e:
            raise _oserror("creating a work folder in", self.root / "tmp", e) from None

    def lookup(self, key: str) -> Entry | None:
        """The cached clip of a shot key, checked; a broken entry is dropped (None)."""
        ipath = self._index_path(key)
        try:
            meta = json.loads(ipath.read_text())
            digest = str(meta["clip"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self._drop(key, "its index entry is unreadable")
            return None
        path = self._clip_path(digest, str(meta.get("suffix", ".mp4")))
        if digest in self._verified:
            return Entry(key, digest, path, dict(meta.get("facts", {})))
        why = self._check_clip(path, digest, meta)
        if why:
            self._drop(key, why)
            return None
        self._verified[digest] = path
        return Entry(key, digest, path, dict(meta.get("facts", {})))

    def _check_clip(self, path: Path, digest: str, meta: dict[str, Any]) -> str | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return "its clip file is missing"
        # Trust an unchanged file (same size and mtime as stored); rehash anything else.
        if st.st_size == meta.get("size") and st.st_mtime_ns == meta.get("mtime_ns"):
            return None
        if file_sha256(path) != digest:
            return "its clip file was modified or truncated (hash mismatch)"
        if self.verify is not None:
            try:
                self.verify(path)
            except Exception:
                return "its clip file is not a readable video"
        return None

    def _drop(self, key: str, why: str) -> None:
        self.dropped.append((key, why))
        with contextlib.suppress(OSError):
            self._index_path(key).unlink()

    def clip_hash(self, key: str) -> str | None:
        """The content hash of the clip cached under ``key``, if any."""
        entry = self.lookup(key)
        return entry.clip if entry else None

    def store(self, key: str, clip: Path, *, shot: str, facts: dict[str, Any] | None = None) -> Entry:
        """Move a finished clip into the store (by content hash) and index it under key.
        A ``<clip>.sha256`` beside it (``SIZE DIGEST``, hashed as it was downloaded) saves
        reading it again when its size still matches."""
        digest = known_sha256(clip) or file_sha256(clip)
        suffix = clip.suffix.lower() if clip.suffix.lower() in KEPT_SUFFIXES else ".mp4"
        dest = self._clip_path(digest, suffix)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() and file_sha256(dest) == digest:
                clip.unlink(missing_ok=True)
            else:
                with clip.open("rb") as f:
                    os.fsync(f.fileno())
                if clip.stat().st_dev == dest.parent.stat().st_dev:
                    os.replace(clip, dest)
                else:  # pragma: no cover - clip made on another disk
                    tmp = dest.with_suffix(".part")
                    shutil.copyfile(clip, tmp)
                    os.replace(tmp, dest)
                    clip.unlink(missing_ok=True)
                _fsync_dir(dest.parent)
            st = dest.stat()
        except OSError as e:
            raise _oserror("storing a clip in", dest.parent, e) from None
        meta = {"clip": digest, "shot": shot, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "created": time.time(), "facts": facts or {}, **({"suffix": suffix} if suffix != ".mp4" else {})}
        atomic_write_json(self._index_path(key), meta)
        self._verified[digest] = dest
        return Entry(key, digest, dest, dict(facts or {}))

    # ------------------------------------------------------------------ derived files

    def frame_path(self, clip_hash: str, selector: str | float) -> Path:
        """Where the frame ``selector`` of a clip is kept."""
        sel = selector if isinstance(selector, str) else f"t{selector:g}"
        return self.root / "frames" / f"{clip_hash}-{sel}.png"

    def prepared_path(self, token: str, suffix: str = ".png") -> Path:
        """Where an image prepared to the model's rules is kept."""
        return self.root / "prepared" / f"{token}{suffix}"

    def publish(self, tmp: Path, dest: Path) -> Path:
        """Atomically move a finished derived file (frame, prepared image) into place."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        except OSError as e:
            raise _oserror("writing", dest, e) from None
        return dest

    # ------------------------------------------------------------------ journal

    def _journal_path(self, key: str) -> Path:
        return self.root / "journal" / f"{key}.json"

    def journal(self, key: str) -> dict[str, Any]:
        """The journal of a shot key ({} when there is none)."""
        try:
            data = json.loads(self._journal_path(key).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def remember(self, key: str, field: str, value: str, **context: Any) -> None:
        """Journal one field of a shot key durably (before a paid wait)."""
        data = self.journal(key)
        data.update(context)
        data.setdefault("state", {})[field] = value
        data["updated"] = time.time()
        atomic_write_json(self._journal_path(key), data)

    def recall(self, key: str, field: str) -> str | None:
        """A journalled field of a shot key, if any."""
        value = self.journal(key).get("state", {}).get(field)
        return str(value) if value is not None else None

    def forget(self, key: str) -> None:
        """Drop a shot key's journal (its clip is stored)."""
        with contextlib.suppress(OSError):
            self._journal_path(key).unlink()

    def journal_entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every journalled shot key with its journal."""
        folder = self.root / "journal"
        if not folder.is_dir():
            return
        for p in sorted(folder.glob("*.json")):
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                yield p.stem, data

    # ------------------------------------------------------------------ claims

    def try_claim(self, key: str) -> Claim | None:
        """Claim a shot key before paying for it; None while another render holds it."""
        try:
            return self.claims.try_claim(key)
        except OSError as e:
            raise _oserror("claiming a shot in", self.root / "claims", e) from None

    # ------------------------------------------------------------------ lock

    @contextlib.contextmanager
    def lock(self, output: Path) -> Iterator[None]:
        """Hold the render lock of one output file (released even on SIGKILL)."""
        token = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:24]
        path = self.root / "locks" / f"{token}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _oserror("locking", path, e) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                raise LockedError(
                    f"already rendering {output} ({holder or 'another process'}); wait for it to finish"
                ) from None
            with contextlib.suppress(OSError):  # who holds it: informative only (the disk may be full)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}".encode(), 0)
            yield
        finally:
            os.close(fd)
