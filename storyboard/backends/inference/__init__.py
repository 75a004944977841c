"""The ``inference`` backend: apps on inference.sh's task API.

:mod:`.protocol` parses (pure), :mod:`.transport` sends and retries, :mod:`.backend`
is the lifecycle of one shot. Import from here.
"""

from __future__ import annotations

from storyboard.backends.inference.backend import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    InferenceBackend,
    parse_app_ref,
)
from storyboard.backends.inference.protocol import (
    TaskStatus,
    apply_update,
    billed_seconds,
    parse_status,
    retry_after_seconds,
    video_url,
)
from storyboard.backends.inference.transport import API_KEY_ENV, InferenceStats, may_resubmit

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "InferenceBackend",
    "InferenceStats",
    "TaskStatus",
    "apply_update",
    "billed_seconds",
    "may_resubmit",
    "parse_app_ref",
    "parse_status",
    "retry_after_seconds",
    "video_url",
]
