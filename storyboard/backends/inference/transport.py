"""The HTTP layer of the inference backend: one httpx client, auth, retries, downloads.

What is retried, and what never is
----------------------------------
* Idempotent requests (uploads, ``GET /apps/..``, ``GET /tasks/{id}``, the stream,
  the download, cancel) are retried on connection errors, timeouts, 429 and 5xx, with
  exponential backoff and jitter (``Retry-After`` honoured), ``max_attempts`` in all.
  The generic part (attempts, waits) is ``tenacity``; the decision of what is worth
  another try is :meth:`Transport._attempt`.
* ``POST /apps/run`` starts (and bills) a task and is not idempotent. It is sent again
  only when the server clearly did not take it: :func:`may_resubmit` (429, or 503 with
  ``Retry-After``) or a connection that could not be opened (nothing was sent). Any
  other failure after the request went out raises :class:`MaybeSubmitted`.

The API key is sent only to the API's own origin (scheme, host, port of the base URL)
by :class:`ApiKeyAuth`, which checks every request; signed upload URLs and output files
on other hosts get no ``Authorization`` header. The key is never logged and never part
of an error message.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Generator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential

from storyboard.backends.inference.protocol import (
    Envelope,
    describe_exception,
    error_code,
    error_words,
    problem_detail,
    retry_after_seconds,
    unwrap,
)
from storyboard.errors import AuthError, BackendError, MaybeSubmitted, RateLimited, TaskFailed

__all__ = [
    "API_KEY_ENV",
    "ApiKeyAuth",
    "InferenceStats",
    "MaybeSubmitted",
    "Retryable",
    "Transport",
    "may_resubmit",
]

API_KEY_ENV = "INFERENCE_API_KEY"

log = logging.getLogger("storyboard.backends.inference")


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


class Retryable(Exception):
    """An attempt failed in a way worth another try."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        *,
        busy: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.busy = busy  # 429/503: the server asked us to slow down
        self.status = status


def may_resubmit(response: httpx.Response) -> bool:
    """Whether a failed ``POST /apps/run`` answer clearly says the task was not taken.

    Only 429, and 503 with ``Retry-After``: a 503 without it (like 500/502/504) may come
    from a gateway after it forwarded the request, so the task may exist and be billed.
    """
    code = response.status_code
    if code == 500 and error_code(_body(response))[0] == "entitlement_unavailable":
        return True  # the plan could not be checked: refused before any task was made
    return code == 429 or (code == 503 and "Retry-After" in response.headers)


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in) of a URL."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class ApiKeyAuth(httpx.Auth):
    """``Authorization: Bearer`` for requests to the API's own origin, and no other."""

    def __init__(self, key: str, api_origin: tuple[str, str, int | None]) -> None:
        self._key = key
        self._origin = api_origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the API key to a request for the API's origin; strip it from any other."""
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key}"
        else:
            request.headers.pop("Authorization", None)
        yield request


class _Backoff(wait_base):
    """Exponential backoff with jitter, or the server's ``Retry-After`` (capped)."""

    def __init__(self, base: float, cap: float, max_retry_after: float) -> None:
        self._exponential = wait_exponential(multiplier=base, max=cap)
        self._max_retry_after = max_retry_after

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, Retryable) else None
        if retry_after is not None:
            delay = min(retry_after, self._max_retry_after)
            # spread over up to one more such wait: callers sent away together (one API
            # key's rate limit) come back apart, not as one herd at the window's edge
            return delay + random.uniform(0, min(delay, 5.0))
        cap = float(self._exponential(retry_state))
        return random.uniform(cap / 2, cap)


BUSY_ATTEMPTS, BUSY_WAIT = 100, 600.0  # busy answers naming their wait: at most, per request


class _Stop(stop_base):
    """Give up after ``attempts`` failures. To a submission (``patient``), a busy answer that
    names its wait (429, 503 with Retry-After: not taken, nothing paid; many workers on one
    rate-limited key hear it often) counts apart: BUSY_ATTEMPTS of them, BUSY_WAIT s in all."""

    def __init__(self, attempts: int, patient: bool = False) -> None:
        self.attempts = attempts
        self.patient = patient
        self.busy = 0  # answers that named their wait, so far

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if self.patient and isinstance(exc, Retryable) and exc.busy and exc.retry_after is not None:
            self.busy += 1
            return self.busy >= BUSY_ATTEMPTS or retry_state.idle_for >= BUSY_WAIT
        return retry_state.attempt_number - self.busy >= self.attempts


class Transport:
    """One lazily built ``httpx.AsyncClient`` and the retry rules around it."""

    def __init__(
        self,
        *,
        base_url: str,
        key: str | None,
        client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        stats: InferenceStats,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        max_retry_after: float,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        self.base_url = base_url
        self.api_origin = origin(httpx.URL(base_url))
        self._key = key
        self._auth: httpx.Auth | None = ApiKeyAuth(key, self.api_origin) if key else None
        self._client = client
        self._owns_client = client is None
        self._transport = transport
        self.stats = stats
        self.max_attempts = max(1, max_attempts)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._wait = _Backoff(backoff_base, backoff_max, max_retry_after)

    # ---------------------------------------------------------------- plumbing

    def client(self) -> httpx.AsyncClient:
        """The shared client, built on first use."""
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

    async def aclose(self) -> None:
        """Close the client if this transport made it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def auth(self) -> httpx.Auth:
        """The origin-checking auth; AuthError without a key."""
        if self._auth is None:  # check_ready() runs first; this is a guard
            raise AuthError(f"no API key for inference.sh: set {API_KEY_ENV}")
        return self._auth

    def redact(self, text: str) -> str:
        """``text`` with the API key blanked out."""
        return text.replace(self._key, "***") if self._key else text

    def retrying(self, stop: _Stop | None = None) -> AsyncRetrying:
        """The generic retry policy: ``max_attempts`` tries of :class:`Retryable` failures
        (busy answers that name their wait counted apart, :class:`_Stop`)."""
        return AsyncRetrying(
            stop=stop or _Stop(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        log.debug("attempt %d failed (%s); retrying", retry_state.attempt_number, exc)

    def error(self, response: httpx.Response, what: str, shot: str | None) -> BackendError:
        """The exception for a final (non-retryable) HTTP error answer."""
        code = response.status_code
        detail = self.redact(_response_detail(response))
        words = error_words(code, *error_code(_body(response)))
        if code == 403 and words is not None:
            return AuthError(words, shot=shot, status=code)
        if code == 402 and words is not None:
            return TaskFailed(f"{words} ({detail})", shot=shot, status=code)
        if code in (401, 403):
            return AuthError(
                f"the API key was refused (HTTP {code}); check {API_KEY_ENV}",
                shot=shot,
                status=code,
            )
        if code == 422:
            return BackendError(
                f"inference.sh refused the input of {what} (HTTP 422): {detail}",
                shot=shot,
                status=code,
            )
        return BackendError(f"{what}: HTTP {code}: {detail}", shot=shot, status=code)

    # ---------------------------------------------------------------- requests

    async def call(
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

        ``submit`` marks the paid, non-idempotent ``POST /apps/run``.
        """
        stop = _Stop(self.max_attempts, patient=submit)
        try:
            response: httpx.Response = await self.retrying(stop)(
                self._attempt, method, url, what, shot, json_body, content, headers, submit
            )
        except Retryable as last:
            if last.busy:
                attempts = stop.busy if stop.busy else self.max_attempts
                raise RateLimited(
                    f"{what}: inference.sh is busy ({last.reason}) after {attempts} "
                    "attempts; try again later or lower the concurrency",
                    shot=shot,
                    status=last.status,
                ) from None
            raise BackendError(
                f"{what} failed after {self.max_attempts} attempts: {last.reason}",
                shot=shot,
                status=last.status,
                retryable=True,
            ) from None
        return response

    async def _attempt(
        self,
        method: str,
        url: str,
        what: str,
        shot: str | None,
        json_body: Any,
        content: bytes | None,
        headers: dict[str, str] | None,
        submit: bool,
    ) -> httpx.Response:
        self.stats.requests += 1
        try:
            response = await self.client().request(
                method, url, json=json_body, content=content, headers=headers, auth=self.auth()
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The connection was never opened: nothing was sent, so even a submission may retry.
            raise Retryable(
                f"cannot connect to {httpx.URL(url).host} ({describe_exception(exc)})"
            ) from exc
        except httpx.TransportError as exc:
            if submit:
                raise MaybeSubmitted(
                    f"the connection failed after the task was sent ({describe_exception(exc)}); "
                    "inference.sh may have accepted it (and may bill it) but no task id came "
                    "back, so it was not resubmitted: check your tasks on inference.sh "
                    "before rendering this shot again",
                    shot=shot,
                ) from exc
            raise Retryable(describe_exception(exc)) from exc
        code = response.status_code
        if code < 400:
            return response
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if submit and code >= 500 and not may_resubmit(response):
            raise MaybeSubmitted(
                f"inference.sh answered HTTP {code} to the submission "
                f"({self.redact(_response_detail(response))}); it may have been accepted, so "
                "it was not resubmitted: check your tasks on inference.sh before rendering "
                "this shot again",
                shot=shot,
                status=code,
            )
        if code in (429, 503):
            raise Retryable(f"HTTP {code}", retry_after, busy=True, status=code)
        if code >= 500:
            raise Retryable(error_words(code, *error_code(_body(response))) or f"HTTP {code}", status=code)
        raise self.error(response, what, shot)

    async def api(
        self,
        method: str,
        path: str,
        *,
        what: str,
        shot: str | None = None,
        body: Any = None,
        submit: bool = False,
    ) -> Envelope:
        """A JSON API call to ``base_url + path``; the answer without its envelope."""
        response = await self.call(
            method,
            f"{self.base_url}{path}",
            what=what,
            shot=shot,
            json_body=body,
            headers={"Accept": "application/json"},
            submit=submit,
        )
        if response.status_code == 204 or not response.content:
            return Envelope(None)
        try:
            return unwrap(response.json())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BackendError(
                f"{what}: inference.sh answered something that is not JSON",
                shot=shot,
                status=response.status_code,
            ) from exc

    def stream(
        self, url: str, headers: dict[str, str], timeout: httpx.Timeout
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A streaming GET (one attempt: the caller decides about reconnecting)."""
        self.stats.requests += 1
        return self.client().stream("GET", url, headers=headers, auth=self.auth(), timeout=timeout)

    async def fetch(self, url: str, dest: Path, sink: Callable[[bytes], None] | None = None) -> None:
        """Stream ``url`` into ``dest`` (one attempt), each chunk also to ``sink`` as it comes
        (a hasher, a decoder); raise Retryable on any failure."""
        self.stats.requests += 1
        self.stats.downloads += 1
        received = 0
        try:
            async with self.client().stream(
                "GET",
                url,
                headers={"Accept-Encoding": "identity"},
                auth=self.auth(),
                follow_redirects=True,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise Retryable(
                        f"HTTP {response.status_code}",
                        retry_after_seconds(response.headers.get("Retry-After")),
                        status=response.status_code,
                    )
                expected = response.headers.get("Content-Length")
                with dest.open("wb") as f:
                    async for chunk in response.aiter_raw():
                        f.write(chunk)
                        received += len(chunk)
                        if sink is not None:
                            sink(chunk)
                self.stats.download_bytes += received
        except httpx.TransportError as exc:
            raise Retryable(
                f"the download broke after {received} bytes ({describe_exception(exc)})"
            ) from exc
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise Retryable(f"truncated download: {received} of {expected} bytes")


def _body(response: httpx.Response) -> Any:
    """An error answer's body: its JSON, else its text."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


def _response_detail(response: httpx.Response) -> str:
    return problem_detail(_body(response), response.reason_phrase)
