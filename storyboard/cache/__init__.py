"""The cache: content-addressed clips, the shot journal, claims and the render lock.

Imports nothing from storyboard but ``errors`` (no media, no backends).
"""

from storyboard.cache._local import (
    CACHE_ENV,
    DEFAULT_DIRNAME,
    Cache,
    Entry,
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    known_sha256,
)
from storyboard.cache._open import open_cache
from storyboard.cache._remoteclaims import lease_stats
from storyboard.cache.claims import Claim, ClaimStore, LocalClaims

__all__ = [
    "CACHE_ENV",
    "DEFAULT_DIRNAME",
    "Cache",
    "Claim",
    "ClaimStore",
    "Entry",
    "LocalClaims",
    "atomic_write_bytes",
    "atomic_write_json",
    "file_sha256",
    "known_sha256",
    "lease_stats",
    "open_cache",
]
