"""The ``inference`` backend: a video app (Kling V3.0) on inference.sh's task API.

One shot is: upload the start/end images (``POST /files`` then ``PUT upload_url``),
``POST /apps/run``, follow ``GET /tasks/{id}/stream`` (NDJSON) until the task ends,
download ``output.video``. The protocol is the one the official ``inferencesh`` SDK
speaks (see ``inference-api.md``); ``tests/fakeserver.py`` plays it on loopback.

What is retried, and what never is
----------------------------------
* Idempotent requests — uploads, ``GET /tasks/{id}``, the stream, the download,
  cancel — are retried on connection errors, timeouts, 429 and 5xx, with
  exponential backoff and jitter (``Retry-After`` honoured), ``max_attempts`` in all.
* ``POST /apps/run`` starts (and bills) a task, and is not idempotent. It is retried
  only when the server clearly did not take it: 429 or 503 (after ``Retry-After``,
  seconds or an HTTP-date), or a connection that could not be opened (refused,
  connect timeout: nothing was sent). After retries it is :class:`RateLimited`.
* **A timeout or a dropped connection after the request was sent** (and a 500, 502
  or 504, which a gateway may send after forwarding it) is *not* retried: the task
  may exist, and the API offers no way to find it — no idempotency key, no lookup by
  client reference (the SDK has neither), and no task id came back to journal. So
  :class:`BackendError` says the submission may have been accepted and to check the
  inference.sh dashboard before rendering again. Paying twice silently is worse than
  stopping once loudly.
* The task id is journalled (``ctx.remember("task_id", id)``) the moment the run
  response arrives, before any waiting. A later render of the same shot re-attaches
  to it (no upload, no submission); only a journalled task that is gone (404) or that
  ended failed/cancelled/rejected is replaced by a new submission.
* Waiting: the stream is read until a terminal status. When it ends, breaks, or
  sends only heartbeats for ``stall_timeout`` seconds, ``GET /tasks/{id}`` reconciles
  and the stream is reopened after ``poll_interval`` (doubling, up to 8×, while
  streams bring nothing). Consecutive broken streams are bounded by ``max_attempts``;
  a quiet task only by ``task_timeout`` (a queued Kling task may be silent for
  minutes). Either way the task id stays journalled: render again to re-attach.
* A failed, truncated (Content-Length mismatch) or unreadable (``probe``) download is
  retried with a freshly read output URL, never by resubmitting the task.

The API key is sent only to the API's own origin (scheme, host, port of the base
URL) by an :class:`httpx.Auth` that checks every request; signed upload URLs and
output files on other hosts get no ``Authorization`` header. The key is never
logged and never part of an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import logging
import mimetypes
import os
import random
import re
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from datetime import UTC
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any

import httpx

from storyboard.backends.base import ShotContext
from storyboard.errors import AuthError, BackendError, MediaError, RateLimited, TaskFailed
from storyboard.media import probe
from storyboard.request import ShotRequest, estimate

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "InferenceBackend",
    "InferenceStats",
    "TaskStatus",
    "parse_status",
]

API_KEY_ENV = "INFERENCE_API_KEY"
BASE_URL_ENV = "INFERENCE_BASE_URL"
DEFAULT_BASE_URL = "https://api.inference.sh"

log = logging.getLogger(__name__)


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
_QUEUED = frozenset(
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


@dataclass
class InferenceStats:
    """Counters for benchmarks and the render report."""

    requests: int = 0  # HTTP requests sent (every attempt, streams and downloads included)
    uploads: int = 0  # files actually uploaded
    upload_bytes: int = 0
    dedupe_hits: int = 0  # uploads skipped: same content already uploaded by this backend
    bytes_saved: int = 0  # bytes not uploaded thanks to dedupe
    submissions: int = 0  # POST /apps/run that returned a task
    retries: int = 0
    reconnects: int = 0  # stream reopenings
    downloads: int = 0
    download_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# ---------------------------------------------------------------- small pure helpers


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class _ApiKeyAuth(httpx.Auth):
    """``Authorization: Bearer`` for requests to the API's own origin, and no other."""

    def __init__(self, key: str, api_origin: tuple[str, str, int | None]) -> None:
        self._key = key
        self._origin = api_origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key}"
        else:
            request.headers.pop("Authorization", None)
        yield request


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


def _unwrap(payload: Any) -> Any:
    if isinstance(payload, dict) and "data" in payload and "fields" not in payload:
        return payload["data"]
    return payload


def _problem_detail(response: httpx.Response) -> str:
    """The human part of a problem+json (or any) error body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
        return text[:300] if text else response.reason_phrase
    if isinstance(body, dict):
        errors = body.get("errors")
        for key in ("detail", "title", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                if errors:
                    return f"{value} ({json.dumps(errors)[:300]})"
                return value
    return json.dumps(body)[:300]


def apply_update(snapshot: dict[str, Any], event: dict[str, Any]) -> None:
    """Merge one stream event into the task snapshot.

    ``{"data": {..}, "fields": [..]}`` is a partial update: only the listed fields
    change. Anything else is (part of) a task snapshot.
    """
    data = event.get("data")
    fields = event.get("fields")
    if isinstance(data, dict) and isinstance(fields, list):
        for name in fields:
            if isinstance(name, str) and name in data:
                snapshot[name] = data[name]
    elif isinstance(data, dict) and len(event) <= 2 and "status" not in event:
        snapshot.update(data)  # {"data": task} envelope
    else:
        snapshot.update(event)


def video_url(output: Any) -> str | None:
    """``output.video`` as a URL: a string, or a file object with ``uri``/``url``."""
    video = output.get("video") if isinstance(output, dict) else None
    if isinstance(video, str) and video:
        return video
    if isinstance(video, dict):
        for key in ("uri", "url"):
            value = video.get(key)
            if isinstance(value, str) and value:
                return value
    return None


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


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return "image/jpeg"
    if suffix == ".png":
        return "image/png"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _phase(status: TaskStatus) -> str:
    if status in _QUEUED:
        return "queued"
    if status == TaskStatus.CANCELLING:
        return "cancelling"
    return "running"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Retryable(Exception):
    """An attempt failed in a way worth another try."""

    def __init__(
        self, reason: str, retry_after: float | None = None, *, busy: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.busy = busy  # 429/503: the server asked us to slow down


class _MaybeSubmitted(BackendError):
    """The submission failed in a way that may have left a (billed) task behind."""


@dataclass
class _Shot:
    """Per-shot state of one ``generate`` call."""

    ctx: ShotContext
    shot: str
    phase: str | None = None
    fraction: float | None = None


# ---------------------------------------------------------------- the backend


class InferenceBackend:
    """Kling V3.0 (or another video app) on inference.sh."""

    name = "inference"
    paid = True

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval: float = 1.0,
        stall_timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        task_timeout: float = 3 * 3600.0,
        public_uploads: bool | None = None,
    ) -> None:
        self._key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self._api_origin = _origin(httpx.URL(self.base_url))
        self._auth: httpx.Auth | None = (
            _ApiKeyAuth(self._key, self._api_origin) if self._key else None
        )
        self._client = client
        self._owns_client = client is None
        self._transport = transport
        self.poll_interval = poll_interval
        self.stall_timeout = stall_timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.task_timeout = task_timeout
        self.public_uploads = public_uploads
        self.stats = InferenceStats()
        self._uploaded: dict[str, str] = {}  # sha256 of content -> file uri
        self._upload_locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:  # never the key
        return (
            f"InferenceBackend(base_url={self.base_url!r}, key={'set' if self._key else 'missing'})"
        )

    # ---------------------------------------------------------------- Backend protocol

    def check_ready(self) -> None:
        """Raise before any work when the backend cannot run (no key, bad URL)."""
        if not self._key:
            raise AuthError(
                f"no API key for inference.sh: set {API_KEY_ENV} "
                "(or use --backend animatic for an offline preview)"
            )
        if self._api_origin[0] not in ("http", "https") or not self._api_origin[1]:
            raise BackendError(f"{BASE_URL_ENV} must be an http(s) URL, got {self.base_url!r}")
        self._http()  # build the client now (CA bundle, pools): not on the first shot's clock

    def price(self, request: ShotRequest) -> Decimal | None:
        return estimate(request)

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        self.check_ready()
        shot = _Shot(ctx=ctx, shot=request.shot_id)
        task: dict[str, Any] | None = None
        journalled = ctx.recall("task_id")
        if journalled:
            task = await self._reattach(journalled, shot)
        if task is None:
            task = await self._submit(request, shot)
        final = await self._wait(task, shot)
        output = self._completed_output(final, shot)
        meta = output.get("output_meta") if isinstance(output, dict) else None
        if meta is not None:
            seconds = billed_seconds(meta)
            if seconds is not None:
                ctx.report(output_meta=meta, billed_seconds=seconds)
            else:
                ctx.report(output_meta=meta)
        url = video_url(output)
        if url is None:
            raise BackendError(
                f"task {final['id']} completed without an output video", shot=shot.shot
            )
        ctx.progress(status="downloading")
        return await self._download(str(final["id"]), url, shot)

    async def cancel(self, task_id: str) -> None:
        """Ask inference.sh to cancel a task (``storyboard cancel``)."""
        self.check_ready()
        await self._api("POST", f"/tasks/{task_id}/cancel", what=f"cancel task {task_id}")

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    # ---------------------------------------------------------------- HTTP plumbing

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                limits=httpx.Limits(
                    max_connections=64, max_keepalive_connections=16, keepalive_expiry=30.0
                ),
                headers={"User-Agent": "storyboard (inference backend)"},
            )
            self._owns_client = True
        return self._client

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _error(self, response: httpx.Response, what: str, shot: str | None) -> BackendError:
        """The exception for a final (non-retryable) HTTP error answer."""
        code = response.status_code
        detail = self._redact(_problem_detail(response))
        if code in (401, 403):
            return AuthError(
                f"the API key was refused (HTTP {code}); check {API_KEY_ENV}", shot=shot
            )
        if code == 402:
            return TaskFailed(
                "insufficient balance on inference.sh (HTTP 402 Payment Required): "
                f"top up the account, then render again ({detail})",
                shot=shot,
            )
        if code == 422:
            return BackendError(
                f"inference.sh refused the input of {what} (HTTP 422): {detail}", shot=shot
            )
        return BackendError(f"{what}: HTTP {code}: {detail}", shot=shot)

    async def _pause(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
            delay += random.uniform(0, min(1.0, 0.1 * delay))
        else:
            cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
            delay = random.uniform(cap / 2, cap)
        self.stats.retries += 1
        await asyncio.sleep(delay)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        shot: str | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        submit: bool = False,
    ) -> httpx.Response:
        """One request, with retries; returns a 2xx response or raises BackendError.

        ``submit`` marks a non-idempotent request: retried only when it was clearly
        not taken (429/503, connection not opened).
        """
        client = self._http()
        last = ""
        busy = False
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.stats.requests += 1
                try:
                    response = await client.request(
                        method,
                        url,
                        json=json_body,
                        content=content,
                        headers=headers,
                        auth=self._auth_arg(),
                    )
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    raise _Retryable(
                        f"cannot connect to {httpx.URL(url).host} ({_describe(exc)})"
                    ) from exc
                except httpx.TransportError as exc:
                    if submit:
                        raise _MaybeSubmitted(
                            f"the connection failed after the task was sent ({_describe(exc)}); "
                            "inference.sh may have accepted it (and may bill it) but no task id came "
                            "back, so it was not resubmitted: check your tasks on inference.sh "
                            "before rendering this shot again",
                            shot=shot,
                        ) from exc
                    raise _Retryable(_describe(exc)) from exc
                code = response.status_code
                if code in (429, 503):
                    raise _Retryable(
                        f"HTTP {code}",
                        retry_after_seconds(response.headers.get("Retry-After")),
                        busy=True,
                    )
                if code >= 500:
                    if submit:
                        raise _MaybeSubmitted(
                            f"inference.sh answered HTTP {code} to the submission "
                            f"({self._redact(_problem_detail(response))}); it may have been accepted, so "
                            "it was not resubmitted: check your tasks on inference.sh before rendering "
                            "this shot again",
                            shot=shot,
                        )
                    raise _Retryable(f"HTTP {code}")
                if code >= 400:
                    raise self._error(response, what, shot)
                return response
            except _Retryable as retry:
                last, busy = retry.reason, retry.busy
                if attempt < self.max_attempts:
                    log.debug("%s: %s; retrying (attempt %d)", what, retry.reason, attempt + 1)
                    await self._pause(attempt, retry.retry_after)
        if busy:
            raise RateLimited(
                f"{what}: inference.sh is busy ({last}) after {self.max_attempts} attempts; "
                "try again later or lower the concurrency",
                shot=shot,
            )
        raise BackendError(f"{what} failed after {self.max_attempts} attempts: {last}", shot=shot)

    def _auth_arg(self) -> httpx.Auth:
        if self._auth is None:  # check_ready() runs first; this is a guard
            raise AuthError(f"no API key for inference.sh: set {API_KEY_ENV}")
        return self._auth

    async def _api(
        self,
        method: str,
        path: str,
        *,
        what: str,
        shot: str | None = None,
        body: Any = None,
        submit: bool = False,
    ) -> Any:
        response = await self._call(
            method,
            f"{self.base_url}{path}",
            what=what,
            shot=shot,
            json_body=body,
            headers={"Accept": "application/json"},
            submit=submit,
        )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return _unwrap(response.json())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BackendError(
                f"{what}: inference.sh answered something that is not JSON", shot=shot
            ) from exc

    # ---------------------------------------------------------------- steps of a shot

    async def _upload(self, path: Path, shot: _Shot) -> str:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise BackendError(f"cannot read image {path}: {exc.strerror}", shot=shot.shot) from exc
        digest = hashlib.sha256(data).hexdigest()
        lock = self._upload_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            uri = self._uploaded.get(digest)
            if uri is not None:
                self.stats.dedupe_hits += 1
                self.stats.bytes_saved += len(data)
                return uri
            content_type = _content_type(path)
            spec = {
                "uri": "",
                "filename": path.name,
                "content_type": content_type,
                "path": None,
                "size": len(data),
                "public": self.public_uploads,
            }
            what = f"upload {path.name}"
            files = await self._api(
                "POST", "/files", what=what, shot=shot.shot, body={"files": [spec]}
            )
            record = files[0] if isinstance(files, list) and files else None
            if (
                not isinstance(record, dict)
                or not record.get("upload_url")
                or not record.get("uri")
            ):
                raise BackendError(f"{what}: inference.sh gave no upload URL", shot=shot.shot)
            await self._call(
                "PUT",
                str(record["upload_url"]),
                what=what,
                shot=shot.shot,
                content=data,
                headers={"Content-Type": content_type},
            )
            uri = str(record["uri"])
            self._uploaded[digest] = uri
            self.stats.uploads += 1
            self.stats.upload_bytes += len(data)
            return uri

    async def _submit(self, request: ShotRequest, shot: _Shot) -> dict[str, Any]:
        if request.end_image is not None and request.image is None:
            raise BackendError(
                "an end image needs a start image (Kling's end_image requires image)",
                shot=shot.shot,
            )
        inputs: dict[str, Any] = dict(request.model_inputs())
        if request.image is not None:
            shot.ctx.progress(status="uploading")
            inputs[request.image_input or "image"] = await self._upload(Path(request.image), shot)
            if request.end_image is not None:
                inputs[request.end_image_input or "end_image"] = await self._upload(Path(request.end_image), shot)
        # Journalled before the paid call: if this process dies before the task id comes
        # back, the next render knows a task may exist that it cannot find (and says so).
        shot.ctx.remember("submitting", time.strftime("%Y-%m-%dT%H:%M:%S"))
        try:
            task = await self._api(
                "POST",
                "/apps/run",
                what="submit",
                shot=shot.shot,
                body={"app": request.app, "input": inputs},
                submit=True,
            )
        except BackendError as exc:
            if not isinstance(exc, _MaybeSubmitted):  # clearly refused: nothing was started
                shot.ctx.remember("submitting", "")
            raise
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise _MaybeSubmitted(
                "inference.sh accepted the submission but returned no task id; "
                "check your tasks on inference.sh before rendering again",
                shot=shot.shot,
            )
        shot.ctx.remember("task_id", task_id)  # before anything else can fail
        shot.ctx.report(task_id=task_id)
        self.stats.submissions += 1
        log.info("shot %s: submitted task %s", shot.shot, task_id)
        return dict(task)

    async def _reattach(self, task_id: str, shot: _Shot) -> dict[str, Any] | None:
        """The journalled task, or None when a new one must be submitted."""
        try:
            task = await self._api(
                "GET", f"/tasks/{task_id}", what=f"re-attach to task {task_id}", shot=shot.shot
            )
        except AuthError:
            raise
        except BackendError as exc:
            if "HTTP 404" in str(exc):
                log.warning(
                    "shot %s: journalled task %s no longer exists; submitting anew",
                    shot.shot,
                    task_id,
                )
                return None
            raise
        if not isinstance(task, dict):
            return None
        task.setdefault("id", task_id)
        status = parse_status(task.get("status"))
        if status in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.REJECTED):
            log.info(
                "shot %s: journalled task %s ended %s; submitting anew",
                shot.shot,
                task_id,
                status.name,
            )
            return None
        shot.ctx.report(task_id=task_id, reattached=True)
        log.info("shot %s: re-attached to task %s", shot.shot, task_id)
        return task

    def _note(self, snapshot: dict[str, Any], shot: _Shot) -> None:
        """Report a phase or progress change to the context."""
        status = parse_status(snapshot.get("status"))
        fraction: float | None = None
        raw = snapshot.get("progress")
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw >= 0:
            fraction = min(1.0, raw / 100 if raw > 1 else float(raw))
        if status is None or status in TERMINAL:
            return
        phase = _phase(status)
        if phase != shot.phase or fraction != shot.fraction:
            shot.phase, shot.fraction = phase, fraction
            shot.ctx.progress(fraction, status=phase)

    async def _wait(self, task: dict[str, Any], shot: _Shot) -> dict[str, Any]:
        task_id = str(task["id"])
        snapshot = dict(task)
        self._note(snapshot, shot)
        if parse_status(snapshot.get("status")) in TERMINAL:
            return snapshot
        deadline = time.monotonic() + self.task_timeout
        failures = 0  # consecutive broken streams: bounded by max_attempts
        quiet = 0  # consecutive rounds without a real event: slows the reconnects
        last = ""
        while True:
            try:
                done, got_events = await self._follow(task_id, snapshot, shot)
                if done and not self._lacks_output(snapshot):
                    return snapshot
                failures = 0
                quiet = 0 if got_events else quiet + 1
                last = "the update stream ended" if got_events else "the update stream went quiet"
            except _Retryable as exc:
                failures += 1
                last = exc.reason
            log.debug("task %s: %s; reconciling", task_id, last)
            fresh = await self._api(
                "GET", f"/tasks/{task_id}", what=f"read task {task_id}", shot=shot.shot
            )
            if isinstance(fresh, dict):
                snapshot.update(fresh)
                self._note(snapshot, shot)
            if parse_status(snapshot.get("status")) in TERMINAL:
                return snapshot
            if failures >= self.max_attempts:
                raise BackendError(
                    f"lost the update stream of task {task_id} {failures} times in a row ({last}); "
                    "it may still finish: render again to re-attach to it",
                    shot=shot.shot,
                )
            if time.monotonic() > deadline:
                raise BackendError(
                    f"task {task_id} has not finished after {self.task_timeout:.0f}s "
                    f"(status {snapshot.get('status')}); render again to re-attach to it",
                    shot=shot.shot,
                )
            self.stats.reconnects += 1
            # A stream that keeps ending at once degrades to polling, not to a busy loop.
            delay = self.poll_interval * 2 ** min(quiet + failures, 3)
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))

    @staticmethod
    def _lacks_output(snapshot: dict[str, Any]) -> bool:
        """Completed per a partial update that did not carry the output: read the task."""
        completed = parse_status(snapshot.get("status")) == TaskStatus.COMPLETED
        return completed and video_url(snapshot.get("output")) is None

    async def _follow(
        self, task_id: str, snapshot: dict[str, Any], shot: _Shot
    ) -> tuple[bool, bool]:
        """Read the task's NDJSON stream into ``snapshot``.

        Returns (terminal status reached, any real event received). Raises _Retryable
        when the stream cannot be opened or breaks.
        """
        url = f"{self.base_url}/tasks/{task_id}/stream"
        headers = {
            "Accept": "application/x-ndjson",
            "Cache-Control": "no-cache",
            "Accept-Encoding": "identity",
        }
        timeout = httpx.Timeout(
            self.timeout, connect=self.connect_timeout, read=self.stall_timeout + 10
        )
        got_events = False
        self.stats.requests += 1
        try:
            async with self._http().stream(
                "GET", url, headers=headers, auth=self._auth_arg(), timeout=timeout
            ) as r:
                if r.status_code >= 400:
                    await r.aread()
                    if r.status_code in (429,) or r.status_code >= 500:
                        raise _Retryable(
                            f"the update stream answered HTTP {r.status_code}",
                            retry_after_seconds(r.headers.get("Retry-After")),
                        )
                    raise self._error(r, f"follow task {task_id}", shot.shot)
                lines = r.aiter_lines()
                last_event = time.monotonic()
                while True:
                    remaining = self.stall_timeout - (time.monotonic() - last_event)
                    if remaining <= 0:
                        return False, got_events
                    try:
                        async with asyncio.timeout(remaining):
                            line = await anext(lines)
                    except (StopAsyncIteration, TimeoutError):
                        return False, got_events
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if not isinstance(event, dict) or event.get("type") == "heartbeat":
                        continue
                    if event.get("event") == "delta":  # LLM token deltas: not for video apps
                        continue
                    last_event = time.monotonic()
                    got_events = True
                    apply_update(snapshot, event)
                    self._note(snapshot, shot)
                    if parse_status(snapshot.get("status")) in TERMINAL:
                        return True, got_events
        except httpx.TransportError as exc:
            raise _Retryable(f"the update stream broke ({_describe(exc)})") from exc

    def _completed_output(self, task: dict[str, Any], shot: _Shot) -> Any:
        task_id = task.get("id")
        status = parse_status(task.get("status"))
        error = task.get("error")
        error_text = self._redact(str(error)) if error else ""
        if status == TaskStatus.COMPLETED:
            return task.get("output")
        if status == TaskStatus.FAILED:
            raise TaskFailed(
                f"task {task_id} failed on inference.sh: {error_text or 'no error message'}",
                shot=shot.shot,
            )
        if status == TaskStatus.CANCELLED:
            raise TaskFailed(f"task {task_id} was cancelled", shot=shot.shot)
        if status == TaskStatus.REJECTED:
            raise TaskFailed(
                f"task {task_id} was rejected: insufficient balance on inference.sh (or no payment method)"
                f"{': ' + error_text if error_text else ''}; top up the account, then render again",
                shot=shot.shot,
            )
        raise BackendError(
            f"task {task_id} ended with unexpected status {task.get('status')!r}", shot=shot.shot
        )

    async def _fetch(self, url: str, dest: Path) -> None:
        """Stream ``url`` into ``dest``; raise _Retryable on any failure."""
        self.stats.requests += 1
        self.stats.downloads += 1
        received = 0
        try:
            async with self._http().stream(
                "GET",
                url,
                headers={"Accept-Encoding": "identity"},
                auth=self._auth_arg(),
                follow_redirects=True,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _Retryable(
                        f"HTTP {response.status_code}",
                        retry_after_seconds(response.headers.get("Retry-After")),
                    )
                expected = response.headers.get("Content-Length")
                with dest.open("wb") as f:
                    async for chunk in response.aiter_raw():
                        f.write(chunk)
                        received += len(chunk)
                self.stats.download_bytes += received
        except httpx.TransportError as exc:
            raise _Retryable(
                f"the download broke after {received} bytes ({_describe(exc)})"
            ) from exc
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise _Retryable(f"truncated download: {received} of {expected} bytes")

    async def _download(self, task_id: str, url: str, shot: _Shot) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id) or "clip"
        work = Path(shot.ctx.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        dest = work / f"{safe}.mp4"
        part = work / f"{safe}.mp4.part"
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._fetch(url, part)
                try:
                    await asyncio.to_thread(probe, part)
                except MediaError as exc:
                    raise _Retryable(f"the downloaded file is not a valid video ({exc})") from exc
                part.replace(dest)
                return dest
            except _Retryable as exc:
                last = exc.reason
                log.debug("task %s: download attempt %d failed: %s", task_id, attempt, last)
                if attempt == self.max_attempts:
                    break
                await self._pause(attempt, exc.retry_after)
                url = await self._fresh_video_url(task_id, url, shot)
        with contextlib.suppress(OSError):
            part.unlink()
        raise BackendError(
            f"could not download the clip of task {task_id} after {self.max_attempts} attempts ({last}); "
            "the task completed (and was billed): render again to re-attach and download it without "
            "paying again",
            shot=shot.shot,
        )

    async def _fresh_video_url(self, task_id: str, url: str, shot: _Shot) -> str:
        """Output URLs may be signed and expire: read the task again (best effort)."""
        try:
            task = await self._api(
                "GET", f"/tasks/{task_id}", what=f"read task {task_id}", shot=shot.shot
            )
        except AuthError:
            raise
        except BackendError:
            return url
        fresh = video_url(task.get("output")) if isinstance(task, dict) else None
        return fresh or url
