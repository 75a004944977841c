"""Which cache a location names: a folder (:class:`Cache`) or a URL (:class:`SharedCache`).

The one factory for both, so the base class never builds its own subclass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from storyboard.cache._local import CACHE_ENV, DEFAULT_DIRNAME, Cache
from storyboard.cache._shared import SharedCache
from storyboard.facts import is_cache_url


def open_cache(board_path: Path, cache_dir: str | Path | None = None, *, create: bool = True,
               verify: Callable[[Path], object] | None = None) -> Cache:
    """The cache of a storyboard: ``cache_dir``, else $STORYBOARD_CACHE, else beside it.

    A URL (``s3://bucket/prefix``) is a shared cache (fsspec, imported only then); its
    local copy stays beside the board."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or None
    if cache_dir is not None and is_cache_url(cache_dir):
        return SharedCache(board_path.parent / DEFAULT_DIRNAME, str(cache_dir), create=create, verify=verify)
    root = Path(cache_dir) if cache_dir else board_path.parent / DEFAULT_DIRNAME
    return Cache(root, create=create, verify=verify)
