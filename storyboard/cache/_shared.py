"""The cache on any fsspec filesystem (``s3://bucket/prefix``, ``gs://…``), shared by
machines, with a local read-through copy.

Remote layout under the URL (the same names as a local cache)::

    clips/ab/<sha256>.mp4        clips by content hash, written once (put-if-absent)
    index/ab/<shot key>.json     shot key → clip hash (+ facts), written after its clip
    journal/<shot key>.json      the remote task id, beside the claim
    claims/<shot key>/<n>.json   the claim (see _remoteclaims.py)

Everything else (frames, prepared images, render locks, work folders) stays in the local
folder, which also keeps a copy of every clip used, so assembly and frame extraction
read local disk. Credentials and endpoints come only from the filesystem's own
configuration (for S3: AWS_* variables incl. AWS_ENDPOINT_URL, ~/.aws); no error or
report names anything but the URL.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.cache._local import Cache, Entry
from storyboard.cache._remoteclaims import (
    ConditionalCreateUnsupported,
    RemoteClaim,
    RemoteClaims,
    object_exists,
    read_small,
)
from storyboard.errors import CacheError

_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS")


def scrub(text: str) -> str:
    """``text`` with any credential value from the environment blanked out."""
    for var in _SECRET_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


@dataclass
class _Held:
    """A claim this process holds, and its key's journal, read once when claimed."""

    claim: RemoteClaim
    journal: dict[str, Any]


class SharedCache(Cache):
    """A cache whose clips, index, journal and claims live at ``url`` (fsspec), with
    ``root`` as the local read-through copy and work area."""

    # A look at a claim here is a request: a waiter backs off to one look a second, so a
    # hot shot's waiters do not flood the store (issue 29).
    claim_poll_most = 1.0
    remote = True

    def __init__(self, root: Path, url: str, *, create: bool = True,
                 verify: Callable[[Path], object] | None = None) -> None:
        super().__init__(root, create=create, verify=verify)
        self.url = url.rstrip("/")
        try:
            import fsspec
        except ImportError:
            raise CacheError(f"a shared cache at {self.url} needs fsspec: pip install 'storyboard-film[s3]'") from None
        try:
            local = fsspec.utils.get_protocol(self.url) in ("file", "local")
            # a folder (file://, e.g. on NFS) makes the parents of what it writes
            fs, base = fsspec.core.url_to_fs(self.url, **({"auto_mkdir": True} if local else {}))
        except ImportError as e:
            raise CacheError(f"a shared cache at {self.url} needs its filesystem driver ({e.name or e}): "
                             "pip install 'storyboard-film[s3]' (s3fs) or gcsfs") from None
        except Exception as e:
            raise self._error("opening", e) from None
        self.fs: Any = fs
        self.base = str(base).rstrip("/")
        self.leased = RemoteClaims(fs, f"{self.base}/claims")
        self.claims = self.leased  # type: ignore[assignment]
        # The journals of the keys this process holds claims on: the holder is their only
        # writer, so it reads each once, when it claims, and keeps it (issue 29: the
        # journal was read before every write and every recall, six reads a shot).
        self._held: dict[str, _Held] = {}

    def _error(self, action: str, e: BaseException) -> CacheError:
        why = scrub(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return CacheError(f"shared cache {self.url}: failed while {action}: {why}; check the store's "
                          "credentials/endpoint (standard configuration, e.g. AWS_* variables)")

    def _remote(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def _cat(self, path: str) -> bytes | None:
        try:
            return read_small(self.fs, path)
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ clips

    def _remote_meta(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self._cat(self._remote("index", key[:2], f"{key}.json"))
        except Exception as e:
            raise self._error("reading the index", e) from None
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
            str(meta["clip"])
        except (ValueError, KeyError, TypeError):
            return None
        return meta if isinstance(meta, dict) else None

    def lookup(self, key: str) -> Entry | None:
        """The local copy if there is one, else the shared clip, downloaded once and checked."""
        entry = super().lookup(key)
        if entry is not None:
            return entry
        meta = self._remote_meta(key)
        if meta is None:
            return None
        digest = str(meta["clip"])
        suffix = str(meta.get("suffix", ".mp4"))  # a still or audio keeps its own (kept since 2026-11)
        work = self.tmp_dir("fetch-")
        local = work / f"{digest}{suffix}"
        try:
            self.fs.get_file(self._remote("clips", digest[:2], f"{digest}{suffix}"), str(local))
        except FileNotFoundError:
            self.dropped.append((key, "its shared clip is missing"))
            return None
        except Exception as e:
            raise self._error("downloading a clip", e) from None
        from storyboard.cache._local import file_sha256

        if file_sha256(local) != digest:
            self.dropped.append((key, "its shared clip does not match its hash"))
            return None
        entry = super().store(key, local, shot=str(meta.get("shot", "")), facts=dict(meta.get("facts", {})))
        with contextlib.suppress(OSError):
            work.rmdir()
        return entry

    def clip_hash(self, key: str) -> str | None:
        """The content hash cached under ``key`` (the shared index; nothing downloaded)."""
        entry = super().lookup(key)
        if entry is not None:
            return entry.clip
        meta = self._remote_meta(key)
        return str(meta["clip"]) if meta else None

    def store(self, key: str, clip: Path, *, shot: str, facts: dict[str, Any] | None = None) -> Entry:
        """Keep the clip locally, upload it once by content hash, then index it remotely."""
        entry = super().store(key, clip, shot=shot, facts=facts)
        suffix = entry.path.suffix
        rclip = self._remote("clips", entry.clip[:2], f"{entry.clip}{suffix}")
        meta = {"clip": entry.clip, "shot": shot, "created": time.time(), "facts": facts or {},
                **({"suffix": suffix} if suffix != ".mp4" else {})}
        try:
            if not object_exists(self.fs, rclip):  # content-addressed: an existing object is the same bytes
                self.fs.put_file(str(entry.path), rclip)
            self.fs.pipe_file(self._remote("index", key[:2], f"{key}.json"),
                              json.dumps(meta, sort_keys=True, default=str).encode())
        except Exception as e:
            raise self._error("uploading a clip", e) from None
        return entry

    # ------------------------------------------------------------------ journal (beside the claim)

    def _journal_remote(self, key: str) -> str:
        return self._remote("journal", f"{key}.json")

    def journal(self, key: str) -> dict[str, Any]:
        """The shared journal of a shot key ({} when there is none)."""
        held = self._held.get(key)
        if held is not None:
            return copy.deepcopy(held.journal)
        return self._read_journal(key)

    def _read_journal(self, key: str) -> dict[str, Any]:
        try:
            raw = self._cat(self._journal_remote(key))
        except Exception as e:
            raise self._error("reading the journal", e) from None
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def remember(self, key: str, field: str, value: str, **context: Any) -> None:
        """Journal one field of a shot key on the shared store (only the claim holder writes).
        Before a submission (``submitting``), a holder whose lease lapsed and whose key
        another render took over stops: that render submits or re-attaches, not both."""
        held = self._held.get(key)
        if field == "submitting" and held is not None and not held.claim.still_held():
            raise CacheError(f"shared cache {self.url}: this render's claim on a shot lapsed and another "
                             "render took the shot over; it was not submitted here, so it is not paid twice. "
                             "Render again to take its clip from the cache")
        data = self.journal(key)
        data.update(context)
        data.setdefault("state", {})[field] = value
        data["updated"] = time.time()
        try:
            self.fs.pipe_file(self._journal_remote(key), json.dumps(data, sort_keys=True, default=str).encode())
        except Exception as e:
            raise self._error("writing the journal", e) from None
        if held is not None:
            held.journal = data

    def forget(self, key: str) -> None:
        """Drop a shot key's shared journal."""
        held = self._held.get(key)
        if held is not None:
            held.journal = {}
        with contextlib.suppress(Exception):
            self.fs.rm_file(self._journal_remote(key))

    def journal_entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every journalled shot key on the shared store."""
        folder = self._remote("journal")
        try:
            self.fs.invalidate_cache(folder)
            names = sorted(str(n) for n in self.fs.ls(folder, detail=False))
        except FileNotFoundError:
            return
        except Exception as e:
            raise self._error("listing the journal", e) from None
        for name in names:
            if name.endswith(".json"):
                key = name.rsplit("/", 1)[-1].removesuffix(".json")
                data = self.journal(key)
                if data:
                    yield key, data

    # ------------------------------------------------------------------ claims

    def try_claim(self, key: str) -> RemoteClaim | None:
        """Claim a shot key on the shared store (conditional create + lease); its journal
        is read once now and kept while the claim is held."""
        try:
            claim = self.leased.try_claim(key)
            if claim is not None:
                try:
                    self._held[key] = _Held(claim, self._read_journal(key))
                except BaseException:
                    claim.release()
                    raise
                claim.on_release = lambda: self._held.pop(key, None)
            return claim
        except ConditionalCreateUnsupported as e:
            raise CacheError(f"shared cache {self.url}: {e}; claims would not be safe there "
                             "(safe: s3:// with If-None-Match, or a local folder)") from None
        except Exception as e:
            raise self._error("claiming a shot", e) from None
