"""Claims on an fsspec filesystem without locks (object storage): a conditional create
plus a lease.

A claim on key K is the object ``claims/K/<generation>.json``. The holder of the
highest generation whose lease has not expired holds K. To claim K a runner lists
``claims/K/``: no generation → it creates generation 0; the top one expired → it creates
the next one; it creates with a put-if-absent (S3 ``If-None-Match: *``), so of two
runners racing for the same generation exactly one wins. The holder renews its lease
(rewrites its own object) every third of the lease, and deletes it on release.

Which stores are safe (see docs/reliability.md): S3 and S3-compatible servers that honour
``If-None-Match: *`` on PutObject (AWS S3 since 2024, MinIO, moto), and a local folder
(``file://``: an exclusive ``open(…, "xb")``). A store whose fsspec driver has no
create-only write is refused with a CacheError, never silently unsafe.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from storyboard.cache.claims import owner_text

LEASE_ENV = "STORYBOARD_CLAIM_LEASE"
DEFAULT_LEASE = 60.0


def lease_seconds() -> float:
    """The claim lease: $STORYBOARD_CLAIM_LEASE seconds, else 60."""
    try:
        return max(0.5, float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE))
    except ValueError:
        return DEFAULT_LEASE


def _protocols(fs: Any) -> tuple[str, ...]:
    return tuple(fs.protocol) if isinstance(fs.protocol, tuple | list) else (str(fs.protocol),)


def read_small(fs: Any, path: str) -> bytes:
    """A small object's bytes in one request (s3fs asks for the size first otherwise)."""
    if "s3" in _protocols(fs):
        return bytes(fs.cat_file(path, max_concurrency=1))
    return bytes(fs.cat_file(path))


class ConditionalCreateUnsupported(Exception):
    """The filesystem cannot create an object only if it is absent."""


def create_if_absent(fs: Any, path: str, data: bytes) -> bool:
    """Write ``path`` only when it does not exist; False when it already did."""
    protocols = _protocols(fs)
    if "file" in protocols or "local" in protocols:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            return False
        return True
    if "s3" in protocols or "s3a" in protocols:
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except TypeError as e:  # an s3fs without mode= (before 2024.12)
            raise ConditionalCreateUnsupported("this s3fs has no create-only write; upgrade s3fs") from e
        return True
    raise ConditionalCreateUnsupported(f"the {protocols[0]}:// store has no create-only write storyboard can use")


class RemoteClaim:
    """A held claim: one generation object under ``claims/<key>/``, with a lease."""

    def __init__(self, store: RemoteClaims, key: str, path: str) -> None:
        self.key = key
        self.renew_every: float | None = store.lease / 3
        self._store = store
        self._path: str | None = path

    def renew(self) -> None:
        """Rewrite the claim with a fresh lease (best effort: a failed renewal retries later)."""
        if self._path is not None:
            with contextlib.suppress(Exception):
                self._store.fs.pipe_file(self._path, self._store.body())

    def release(self) -> None:
        """Delete the claim object (idempotent)."""
        if self._path is None:
            return
        with contextlib.suppress(Exception):
            self._store.fs.rm_file(self._path)
        self._path = None


class RemoteClaims:
    """Claims under ``folder`` on the fsspec filesystem ``fs`` (see the module docstring)."""

    def __init__(self, fs: Any, folder: str, lease: float | None = None) -> None:
        self.fs = fs
        self.folder = folder.rstrip("/")
        self.lease = lease if lease is not None else lease_seconds()

    def body(self) -> bytes:
        """What a claim object holds: its owner and when its lease ends."""
        return json.dumps({"owner": owner_text(), "expires": time.time() + self.lease}).encode()

    def _generations(self, key: str) -> list[int]:
        folder = f"{self.folder}/{key}"
        self.fs.invalidate_cache(folder)
        try:
            names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        gens = []
        for name in names:
            stem = str(name).rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
            if stem.isdigit():
                gens.append(int(stem))
        return sorted(gens)

    def _read(self, key: str, gen: int) -> dict[str, Any] | None:
        try:
            data = json.loads(read_small(self.fs, f"{self.folder}/{key}/{gen}.json"))
        except FileNotFoundError:
            return None
        except ValueError:  # being written, or torn: treat as live until it expires by age
            return {"owner": "another render", "expires": time.time() + 1}
        return data if isinstance(data, dict) else None

    def try_claim(self, key: str) -> RemoteClaim | None:
        """Create the next generation of ``key``'s claim if nobody live holds it."""
        gens = self._generations(key)
        nxt = 0
        if gens:
            top = self._read(key, gens[-1])
            if top is None:  # released between the listing and the read: look again next poll
                return None
            if float(top.get("expires", 0)) > time.time():
                return None
            nxt = gens[-1] + 1  # its owner died (lease expired): take it over
        path = f"{self.folder}/{key}/{nxt}.json"
        if not create_if_absent(self.fs, path, self.body()):
            return None
        for g in gens:  # the expired generations before ours
            with contextlib.suppress(Exception):
                self.fs.rm_file(f"{self.folder}/{key}/{g}.json")
        return RemoteClaim(self, key, path)

    def holder(self, key: str) -> str | None:
        """The owner text of a live claim on ``key``, else None."""
        gens = self._generations(key)
        top = self._read(key, gens[-1]) if gens else None
        if top is None or float(top.get("expires", 0)) <= time.time():
            return None
        return str(top.get("owner") or "another render")
