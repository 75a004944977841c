"""The soak on one ``s3://`` cache: a real moto server on loopback (as tests/test_scale.py
starts it), the AWS_* variables pointing every runner at it, and the remote cache read
back into a folder so that the checker reads it like a local one (same layout)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import free_port

__all__ = ["LEASE_SECONDS", "fetch_cache", "moto_s3", "remote_journals"]

ACCESS_ID = "AKIASOAKTESTID000001"
SECRET = "soak-secret-do-not-leak-7c6b5a"
# A killed claim holder blocks the others for one lease; a live holder renews every lease/3,
# so the lease must stay well above the longest stall of a loaded machine (the window on
# object storage, docs/reliability.md).
LEASE_SECONDS = "10"
_FS_LOCK = threading.Lock()  # s3fs in this process from one thread at a time (issue 29 item 2)


def _fs() -> Any:
    import fsspec

    return fsspec.filesystem("s3", skip_instance_cache=True)


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """A moto S3 server and a fresh bucket; yields ``s3://bucket``. Sets the AWS_* variables
    (and the claim lease) in this process's environment, which the runners inherit."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # a killed client cut its connection: noise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "STORYBOARD_CLAIM_LEASE")}
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": ACCESS_ID,
                       "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                       "STORYBOARD_CLAIM_LEASE": LEASE_SECONDS})
    try:
        bucket = f"soak-{uuid.uuid4().hex[:10]}"
        with _FS_LOCK:
            _fs().mkdir(bucket)
        yield f"s3://{bucket}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def remote_journals(url: str) -> list[dict[str, Any]]:
    """The journal entries under an ``s3://`` cache (the 'submitting' kill trigger)."""
    out: list[dict[str, Any]] = []
    with _FS_LOCK:
        fs = _fs()
        base = url.removeprefix("s3://")
        try:
            paths = fs.glob(f"{base}/journal/*.json")
            for path in paths:
                with contextlib.suppress(OSError, ValueError):
                    out.append(json.loads(fs.cat_file(path)))
        except OSError:
            pass
    return out


def fetch_cache(url: str, dest: Path) -> Path:
    """The remote cache's clips, index and journal, copied into ``dest`` (same layout)."""
    with _FS_LOCK:
        fs = _fs()
        base = url.removeprefix("s3://")
        for sub in ("clips", "index", "journal"):
            (dest / sub).mkdir(parents=True, exist_ok=True)
            for path in fs.find(f"{base}/{sub}"):
                local = dest / path[len(base) + 1:]
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(fs.cat_file(path))
    return dest
