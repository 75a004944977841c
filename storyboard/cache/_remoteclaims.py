"""Claims on an fsspec filesystem without locks (object storage): a conditional create
plus a lease.

A claim on key K is the object ``claims/K/<generation>.json``. The holder of the
highest generation whose lease has not expired holds K. To claim K a runner lists
``claims/K/``: no generation → it creates generation 0; the top one expired → it creates
the next one; it creates with a put-if-absent (S3 ``If-None-Match: *``), so of two
runners racing for the same generation exactly one wins. The holder renews its lease
(rewrites its own object) every third of the lease, from one thread per process that
nothing else blocks, and deletes it on release. :func:`lease_stats` counts renewals that
failed, came late, or came after the lease had lapsed.

Which stores are safe (see docs/reliability.md): S3 and S3-compatible servers that honour
``If-None-Match: *`` on PutObject (AWS S3 since 2024, MinIO, moto), and a local folder
(``file://``: an exclusive ``open(…, "xb")``). A store whose fsspec driver has no
create-only write is refused with a CacheError, never silently unsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storyboard.cache.claims import owner_text

LEASE_ENV = "STORYBOARD_CLAIM_LEASE"
DEFAULT_LEASE = 60.0
RENEWING_AT_ONCE = 16  # renewals the lease keeper writes side by side


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


def list_names(fs: Any, folder: str) -> list[str]:
    """The object names directly under ``folder``: on S3 one listing (s3fs's ``ls`` of an
    empty folder lists its parent too, every claim folder in the cache), else ``ls``."""
    if "s3" in _protocols(fs):
        bucket, key, _ = fs.split_path(folder)
        out = fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=f"{key.rstrip('/')}/", Delimiter="/")
        return [f"{bucket}/{o['Key']}" for o in out.get("Contents", [])]
    fs.invalidate_cache(folder)
    try:
        return [str(n) for n in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return []


def object_exists(fs: Any, path: str) -> bool:
    """Whether the object ``path`` exists: on S3 one HEAD (s3fs's ``exists`` of a missing
    object also lists its folder), else ``exists``."""
    if "s3" in _protocols(fs):
        bucket, key, _ = fs.split_path(path)
        try:
            fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return False
        return True
    return bool(fs.exists(path))


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


class _Keeper:
    """One daemon thread per process that renews every held lease on time, whatever the
    renders' event loops are doing (a loop blocked on a slow call, or starved of the GIL
    among many workers, once let a live holder's lease run out: issue 29). On an async
    store (s3fs) its writes go through an I/O loop of their own, not fsspec's shared one,
    where they queued behind every other request of the process. A renewal that fails is
    tried again within a second, not a third of a lease later."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked child holds no claims and no thread
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._claims: dict[int, RemoteClaim] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._own: dict[int, tuple[Any, Any]] = {}  # id(fs) → (fs, its twin on the keeper's loop)

    def fs_for(self, fs: Any) -> Any:
        """``fs``, or for an async store its twin whose requests run on the keeper's loop."""
        if not getattr(fs, "async_impl", False):
            return fs
        with self._lock:
            if id(fs) not in self._own:
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                    threading.Thread(target=self._loop.run_forever, name="storyboard-claim-lease-io",
                                     daemon=True).start()
                twin = type(fs)(**fs.storage_options, skip_instance_cache=True, loop=self._loop)
                self._own[id(fs)] = (fs, twin)
            return self._own[id(fs)][1]

    def add(self, claim: RemoteClaim) -> None:
        with self._lock:
            self._claims[id(claim)] = claim
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="storyboard-claim-leases", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, claim: RemoteClaim) -> None:
        with self._lock:
            self._claims.pop(id(claim), None)

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                due = [c for c in self._claims.values() if c.due <= now]
            try:
                if len(due) == 1:
                    due[0].renew()
                elif due:  # side by side: hundreds of claims held through a rate limit's waits
                    if self._pool is None:  # (one after the other, 114 of 516 renewals came late)
                        self._pool = ThreadPoolExecutor(RENEWING_AT_ONCE, thread_name_prefix="storyboard-claim-renew")
                    list(self._pool.map(RemoteClaim.renew, due))
            except Exception:  # a renewal never raises; should one, the keeper must not die of it
                for claim in due:
                    claim.due = max(claim.due, time.monotonic() + 1.0)
            with self._lock:
                soonest = min((c.due for c in self._claims.values()), default=None)
            self._wake.wait(None if soonest is None else max(0.05, soonest - time.monotonic()))
            self._wake.clear()


_KEEPER = _Keeper()
_COUNTS_LOCK = threading.Lock()
_COUNTS: Counter[str] = Counter()


def _count(what: str, most: int | None = None) -> None:
    with _COUNTS_LOCK:
        if most is None:
            _COUNTS[what] += 1
        else:
            _COUNTS[what] = max(_COUNTS[what], most)


def lease_stats() -> dict[str, int]:
    """This process's lease renewals so far: ``renewed``; ``failed`` (the write failed, tried
    again soon); ``late`` (more than half the lease had passed since the last write);
    ``lapsed`` (the whole lease had passed: another render may have taken the key over);
    ``lost`` (it had: a higher generation exists, so this holder stops renewing); and
    ``slowest_ms``, the longest a renewal's write took."""
    with _COUNTS_LOCK:
        return {k: _COUNTS[k] for k in ("renewed", "failed", "late", "lapsed", "lost", "slowest_ms")}


class RemoteClaim:
    """A held claim: one generation object under ``claims/<key>/``, with a lease that the
    process's lease keeper renews every third of the lease until it is released."""

    def __init__(self, store: RemoteClaims, key: str, gen: int, expires: float) -> None:
        self.key = key
        self.gen = gen
        self.lost = False  # its lease lapsed and another render took the key over
        self._store = store
        self._path: str | None = f"{store.folder}/{key}/{gen}.json"
        self._expires = expires
        self.due = time.monotonic() + store.lease / 3
        self.on_release: Callable[[], object] | None = None  # the cache forgets what it kept
        # a renewal (the keeper's thread) and the release (the render's) never overlap:
        # a write after the delete would bring the released claim back for a whole lease
        self._writing = threading.Lock()
        _KEEPER.add(self)

    def renew(self) -> None:
        """Rewrite the claim with a fresh lease; a failure is counted and tried again soon."""
        with self._writing:
            self._renew()

    def _renew(self) -> None:
        if self._path is None or self.lost:
            return
        lease = self._store.lease
        behind = time.time() - (self._expires - lease)  # since the last write
        if behind >= lease:
            _count("lapsed")
            try:
                gens = self._store.generations(self.key)
            except Exception:  # the store is unreachable: count it and try again soon
                self._retry_soon()
                return
            if max(gens, default=-1) > self.gen:
                self.lost = True  # rewriting it now would bring back a claim another render holds
                _count("lost")
                _KEEPER.remove(self)
                return
        elif behind > lease / 2:
            _count("late")
        expires = time.time() + lease
        began = time.monotonic()
        try:
            _KEEPER.fs_for(self._store.fs).pipe_file(self._path, self._store.body(expires))
        except Exception:
            self._retry_soon()
            return
        self._expires = expires
        self.due = time.monotonic() + lease / 3
        _count("renewed")
        _count("slowest_ms", round((time.monotonic() - began) * 1000))

    def _retry_soon(self) -> None:
        _count("failed")
        self.due = time.monotonic() + min(1.0, self._store.lease / 6)

    def still_held(self) -> bool:
        """Whether this render still holds the key, checked before money moves: True while
        the lease it last wrote runs; after that, True only when no render created a
        higher generation (then the lease is renewed at once)."""
        if self.lost or self._path is None:
            return False
        if time.time() < self._expires - 1.0:
            return True
        self.renew()
        return not self.lost

    def release(self) -> None:
        """Stop renewing and delete the claim object (idempotent)."""
        _KEEPER.remove(self)
        with self._writing:
            path, self._path = self._path, None
        if path is None:
            return
        if self.on_release is not None:
            self.on_release()
        if not self.lost:
            with contextlib.suppress(Exception):
                self._store.fs.rm_file(path)


class RemoteClaims:
    """Claims under ``folder`` on the fsspec filesystem ``fs`` (see the module docstring)."""

    def __init__(self, fs: Any, folder: str, lease: float | None = None) -> None:
        self.fs = fs
        self.folder = folder.rstrip("/")
        self.lease = lease if lease is not None else lease_seconds()
        self._seen: dict[str, int] = {}  # key → the live generation a waiter last saw

    def body(self, expires: float) -> bytes:
        """What a claim object holds: its owner and when its lease ends."""
        return json.dumps({"owner": owner_text(), "expires": expires}).encode()

    def generations(self, key: str) -> list[int]:
        """The claim generations of ``key`` now on the store, lowest first."""
        names = list_names(self.fs, f"{self.folder}/{key}")
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
        """Create the next generation of ``key``'s claim if nobody live holds it.

        A waiter that saw a live generation looks at that one object again (one request)
        rather than listing: a taker only ever creates a generation above an expired one."""
        seen = self._seen.get(key)
        if seen is not None:
            top = self._read(key, seen)
            if top is not None and float(top.get("expires", 0)) > time.time():
                return None
            self._seen.pop(key, None)
        gens = self.generations(key)
        nxt = 0
        if gens:
            top = self._read(key, gens[-1])
            if top is None:  # released between the listing and the read: look again next poll
                return None
            if float(top.get("expires", 0)) > time.time():
                self._seen[key] = gens[-1]
                return None
            nxt = gens[-1] + 1  # its owner died (lease expired): take it over
        expires = time.time() + self.lease
        if not create_if_absent(self.fs, f"{self.folder}/{key}/{nxt}.json", self.body(expires)):
            return None
        for g in gens:  # the expired generations before ours
            with contextlib.suppress(Exception):
                self.fs.rm_file(f"{self.folder}/{key}/{g}.json")
        return RemoteClaim(self, key, nxt, expires)

    def holder(self, key: str) -> str | None:
        """The owner text of a live claim on ``key``, else None."""
        gens = self.generations(key)
        top = self._read(key, gens[-1]) if gens else None
        if top is None or float(top.get("expires", 0)) <= time.time():
            return None
        return str(top.get("owner") or "another render")
