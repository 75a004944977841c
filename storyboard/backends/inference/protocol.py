"""inference.sh's task protocol as pure functions: status codes, stream updates, envelopes.

Nothing here does I/O. The shapes are those of the official SDKs (``inferencesh`` 0.36.0
for Python, ``sdk-js`` for JavaScript); ``inference-api.md`` is the short version.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, field
from datetime import UTC
from enum import IntEnum
from typing import Any

__all__ = [
    "QUEUED",
    "TERMINAL",
    "Envelope",
    "TaskStatus",
    "apply_update",
    "billed_seconds",
    "describe_exception",
    "error_code",
    "error_words",
    "message_texts",
    "output_url",
    "parse_status",
    "phase",
    "problem_detail",
    "retry_after_seconds",
    "unwrap",
    "video_url",
]


class TaskStatus(IntEnum):
    """Task status codes of the current API (the SDK's ``TaskStatus``)."""

    UNKNOWN = 0
    RECEIVED = 1
    QUEUED = 2
    DISPATCHED = 3
    PREPARING = 4
    SERVING = 5
    SETTING_UP = 6
    RUNNING = 7
    CANCELLING = 8
    UPLOADING = 9
    COMPLETED = 10
    FAILED = 11
    CANCELLED = 12
    REJECTED = 13


TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.REJECTED}
)
QUEUED = frozenset(
    {TaskStatus.UNKNOWN, TaskStatus.RECEIVED, TaskStatus.QUEUED, TaskStatus.DISPATCHED}
)


def parse_status(value: object) -> TaskStatus | None:
    """An integer status or its lower-case name ("completed"); None when absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return TaskStatus(value)
        except ValueError:
            return TaskStatus.UNKNOWN
    if isinstance(value, str):
        name = value.strip().upper()
        if name.isdigit():
            return parse_status(int(name))
        return TaskStatus.__members__.get(name, TaskStatus.UNKNOWN)
    return TaskStatus.UNKNOWN


def phase(status: TaskStatus) -> str:
    """The progress phase a status belongs to: queued, running or cancelling."""
    if status in QUEUED:
        return "queued"
    if status == TaskStatus.CANCELLING:
        return "cancelling"
    return "running"


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class Envelope:
    """A JSON answer with its ``{"data": .., "messages": [..]}`` wrapping taken off."""

    data: Any
    messages: list[str] = field(default_factory=list)


def message_texts(messages: Any) -> list[str]:
    """The human text of an envelope's ``messages`` (strings, or objects with a text)."""
    if not isinstance(messages, list):
        return []
    texts: list[str] = []
    for item in messages:
        if isinstance(item, str) and item.strip():
            texts.append(item.strip())
        elif isinstance(item, dict):
            for key in ("message", "text", "detail", "title"):
                value = item.get(key)
                if isinstance(value, str) and value.strip():
                    texts.append(value.strip())
                    break
    return texts


def unwrap(payload: Any) -> Envelope:
    """Take off the V3 envelope (as the SDKs do), keeping the server's messages."""
    if isinstance(payload, dict) and "data" in payload and "fields" not in payload:
        return Envelope(payload["data"], message_texts(payload.get("messages")))
    return Envelope(payload)


def problem_detail(body: Any, fallback: str) -> str:
    """The human part of a problem+json (or any) error body; ``fallback`` when empty."""
    if isinstance(body, str):
        text = body.strip()
        return text[:300] if text else fallback
    if isinstance(body, dict):
        errors = body.get("errors")
        for key in ("detail", "title", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                if errors:
                    return f"{value} ({json.dumps(errors)[:300]})"
                return value
    return json.dumps(body)[:300]


def error_code(body: Any) -> tuple[str, dict[str, Any]]:
    """The service's error code and its ``meta`` in an error body ("" and {} when none):
    problem+json extension members (``code``, ``meta``) or the ``{"error": {..}}`` form."""
    if not isinstance(body, dict):
        return "", {}
    error = body.get("error")
    inner: dict[str, Any] = error if isinstance(error, dict) else body
    code, meta = inner.get("code"), inner.get("meta")
    return (code if isinstance(code, str) else ""), (meta if isinstance(meta, dict) else {})


def _limit_words(meta: dict[str, Any]) -> str:
    what = meta.get("resource_label") or meta.get("resource") or "a plan limit"
    used = f" ({meta['current']} of {meta['limit']})" if meta.get("limit") is not None and \
        meta.get("current") is not None else ""
    return f"{what}{used}"


def error_words(status: int, code: str, meta: dict[str, Any]) -> str | None:
    """What an error code of the service means and what to do, in words; None for a code
    without words of its own (the caller says what the status means)."""
    if status == 402 and code == "limit_exceeded":
        return (f"your inference.sh plan's limit is reached: {_limit_words(meta)} (limit_exceeded); "
                "wait for it to reset or upgrade the plan, then render again")
    if status == 402 and code == "payment_method_required":
        page = meta.get("billing_page") or "the inference.sh billing page"
        return (f"inference.sh needs a saved payment method for this run (payment_method_required); "
                f"add one at {page}, then render again")
    if status == 402:
        return ("insufficient balance on inference.sh (HTTP 402 Payment Required, low balance): "
                "top up the account, then render again")
    if status == 403 and code == "insufficient_scope":
        scope = meta.get("required_scope")
        needs = f"the scope '{scope}'" if scope else "a scope this call needs"
        return (f"the API key lacks {needs} (insufficient_scope, HTTP 403); create a key with it and "
                "set it in INFERENCE_API_KEY")
    if status == 500 and code == "entitlement_unavailable":
        return ("inference.sh could not check your plan (entitlement_unavailable, HTTP 500); nothing "
                "was started: it is retried, and rendering again later is safe")
    return None


def apply_update(snapshot: dict[str, Any], event: dict[str, Any]) -> None:
    """Merge one stream event into the task snapshot.

    ``{"data": {..}, "fields": [..]}`` is a partial update: all of ``data`` is merged,
    as both official SDKs do (``fields`` only says what changed; a failed task's
    ``error`` may ride along unlisted). Anything else is (part of) a task snapshot.
    """
    data = event.get("data")
    if isinstance(data, dict) and isinstance(event.get("fields"), list):
        snapshot.update(data)
    elif isinstance(data, dict) and len(event) <= 2 and "status" not in event:
        snapshot.update(data)  # {"data": task} envelope
    else:
        snapshot.update(event)


def output_url(output: Any, name: str) -> str | None:
    """``output[name]`` as a URL: a string, or a file object with ``uri``/``url``."""
    value = output.get(name) if isinstance(output, dict) else None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for key in ("uri", "url"):
            inner = value.get(key)
            if isinstance(inner, str) and inner:
                return inner
    return None


def video_url(output: Any) -> str | None:
    """``output.video`` as a URL."""
    return output_url(output, "video")


def billed_seconds(output_meta: Any) -> float | None:
    """Seconds of video the task was billed for, from ``output_meta.outputs``."""
    if not isinstance(output_meta, dict):
        return None
    total = 0.0
    found = False
    for item in output_meta.get("outputs") or []:
        if isinstance(item, dict) and item.get("type") == "video":
            seconds = item.get("seconds")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                total += float(seconds)
                found = True
    return total if found else None


def describe_exception(exc: BaseException) -> str:
    """``Type: text`` for an exception, for one-line error messages."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
