"""The ``inference`` backend: a video app (Kling V3.0) on inference.sh's task API.

One shot is: upload the start/end images (``POST /files`` then ``PUT upload_url``),
``POST /apps/run``, follow ``GET /tasks/{id}/stream`` (NDJSON) until the task ends,
download ``output.video``. The protocol is the one the official ``inferencesh`` SDK
speaks (see ``inference-api.md``); the ``fakeserver`` package plays it on loopback.
:mod:`.protocol` parses, :mod:`.transport` sends and retries (and says what is never
retried), :mod:`.waiting` follows a task, :mod:`.files` uploads and downloads; this
module is the lifecycle of one shot and the live app read (:meth:`InferenceBackend.get_app`).

* Pin what was checked: the live check reads each app (``get_app``); every submission
  of that app is then sent as ``namespace/name@<version read>`` (:meth:`InferenceBackend.send_as`),
  so a deploy between the check and a paid call cannot change the schema under it.

* The task id is journalled (``ctx.remember("task_id", id)``) the moment the run
  response arrives, before any waiting. A later render of the same shot re-attaches
  to it (no upload, no submission); only a journalled task that is gone (404) or that
  ended failed/cancelled/rejected is replaced by a new submission.
* A submission that may have reached the server without a task id coming back is not
  sent again: the API offers no idempotency key and no lookup by client reference, so
  :class:`BackendError` says to check the inference.sh dashboard before rendering
  again. Paying twice silently is worse than stopping once loudly.
* Waiting (:mod:`.waiting`) follows the NDJSON stream, reconciles with ``GET /tasks/{id}``
  and reconnects; the task id stays journalled: render again to re-attach.
* A failed, truncated or unreadable download is retried with a freshly read output URL
  (:mod:`.files`), never by resubmitting the task.
* The server's envelope ``messages`` are passed on as warnings (``ctx.warn`` when the
  context has it, else the log).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from storyboard import apps
from storyboard.backends.base import ShotContext
from storyboard.backends.inference.files import Files
from storyboard.backends.inference.protocol import (
    TaskStatus,
    billed_seconds,
    output_url,
    parse_status,
)
from storyboard.backends.inference.transport import (
    API_KEY_ENV,
    InferenceStats,
    MaybeSubmitted,
    Transport,
)
from storyboard.backends.inference.waiting import ShotState, TaskFollower
from storyboard.errors import AppError, AuthError, BackendError, NoOutputError
from storyboard.request import ShotRequest, estimate

__all__ = ["BASE_URL_ENV", "DEFAULT_BASE_URL", "InferenceBackend", "parse_app_ref"]

BASE_URL_ENV = "INFERENCE_BASE_URL"
DEFAULT_BASE_URL = "https://api.inference.sh"

log = logging.getLogger("storyboard.backends.inference")


def _text_answer(output: Any, task_id: str, ctx: ShotContext) -> Path:
    """A text app's answer kept as ``<task>.json`` in the work folder; its usage reported."""
    if not isinstance(output, dict) or not isinstance(output.get("response", ""), str):
        raise NoOutputError(f"task {task_id} completed without a text response", shot=ctx.shot_id)
    if isinstance(output.get("usage"), dict):
        ctx.report(usage=output["usage"])
    work = Path(ctx.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / (re.sub(r"[^A-Za-z0-9._-]", "_", task_id) + ".json")
    path.write_text(json.dumps({k: output.get(k) for k in ("response", "tool_calls", "usage")}), encoding="utf-8")
    return path


def parse_app_ref(ref: str) -> tuple[str, str | None]:
    """``[app/]namespace/name[@version][:function]`` as (``namespace/name``, version or None;
    ``@latest`` is None). BackendError when it does not parse (the one parser: ``apps``)."""
    try:
        parsed = apps.parse_app_ref(ref)
    except AppError as exc:
        raise BackendError(f"malformed app reference {ref!r}: {exc}") from None
    return parsed.name, parsed.version


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
        self.poll_interval = poll_interval
        self.stall_timeout = stall_timeout
        self.max_attempts = max(1, max_attempts)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.task_timeout = task_timeout
        self.public_uploads = public_uploads
        self.stats = InferenceStats()
        self._http = Transport(
            base_url=self.base_url,
            key=self._key,
            client=client,
            transport=transport,
            stats=self.stats,
            max_attempts=self.max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self._follower = TaskFollower(
            self._http,
            self._read_task,
            poll_interval=poll_interval,
            stall_timeout=stall_timeout,
            max_attempts=self.max_attempts,
            task_timeout=task_timeout,
        )
        self._files = Files(self._http, self._api, self.stats, public_uploads)
        self._read_live: dict[str, list[str]] = {}  # app name -> version ids read live, last = newest read

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
        scheme, host, _ = self._http.api_origin
        if scheme not in ("http", "https") or not host:
            raise BackendError(f"{BASE_URL_ENV} must be an http(s) URL, got {self.base_url!r}")
        self._http.client()  # build the client now (CA bundle, pools): not on a shot's clock

    def price(self, request: ShotRequest) -> Decimal | None:
        """USD this request will cost (the app's price rule, an estimate); None when unknown."""
        return estimate(request)

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        """Upload, submit (or re-attach), wait and download one shot's clip."""
        self.check_ready()
        shot = ShotState(ctx=ctx, shot=request.shot_id)
        task: dict[str, Any] | None = None
        journalled = ctx.recall("task_id")
        if journalled:
            task = await self._reattach(journalled, shot)
        if task is None:
            task = await self._submit(request, shot)
        final = await self._follower.wait(task, shot)
        output = self._follower.outcome(final, shot)
        meta = output.get("output_meta") if isinstance(output, dict) else None
        if meta is not None:
            seconds = billed_seconds(meta)
            if seconds is not None:
                ctx.report(output_meta=meta, billed_seconds=seconds)
            else:
                ctx.report(output_meta=meta)
        if request.kind == "text":  # a text app answers JSON (response, tool_calls, usage), no file
            return _text_answer(output, str(final["id"]), ctx)
        what = {"still": "image", "audio": "audio"}.get(request.kind, "video")
        url = output_url(output, what)
        if url is None:
            raise NoOutputError(f"task {final['id']} completed without an output {what}", shot=shot.shot)
        ctx.progress(status="downloading")
        task_id = str(final["id"])
        return await self._files.download(task_id, url, shot, what,
                                          lambda current: self._fresh_url(task_id, current, shot, what))

    async def get_app(self, ref: str) -> dict[str, Any]:
        """The app object for ``namespace/name`` or ``namespace/name@VERSION`` (live); the
        version read is what this backend's submissions of that app are then pinned to.

        ``GET /apps/{namespace}/{name}`` (the JS SDK's ``apps.getByName``); for a pinned
        version whose id differs from the current one, ``GET /apps/{id}/versions/{version}``
        (``apps.getByVersionId``). Retried like every idempotent GET.
        """
        self.check_ready()
        name, version = parse_app_ref(ref)
        app = await self._read_app(f"/apps/{name}", f"unknown app '{name}' on inference.sh")
        if version is not None and app.get("version_id") != version:
            app_id = app.get("id")
            if not isinstance(app_id, str) or not app_id:
                raise BackendError(f"inference.sh answered app '{name}' without an id")
            app = await self._read_app(
                f"/apps/{app_id}/versions/{version}",
                f"app '{name}' has no version '{version}' on inference.sh",
            )
        served = app.get("version_id") if version is None else version
        served = served if isinstance(served, str) and served else app["version"].get("id")
        if isinstance(served, str) and served:  # what this render's submissions are pinned to
            read = self._read_live.setdefault(name, [])
            read[:] = [v for v in read if v != served] + [served]
        return app

    async def _read_app(self, path: str, missing: str) -> dict[str, Any]:
        try:
            app = await self._api("GET", path, what=f"read app {path[6:]}", shot=None)
        except BackendError as exc:
            if exc.status == 404:
                raise BackendError(missing, status=404) from None
            raise
        version = app.get("version") if isinstance(app, dict) else None
        if not isinstance(app, dict) or not isinstance(version, dict):
            raise BackendError(f"inference.sh answered {path} without an app version")
        return app

    async def cancel(self, task_id: str) -> None:
        """Ask inference.sh to cancel a task (``storyboard cancel``)."""
        self.check_ready()
        await self._api(
            "POST", f"/tasks/{task_id}/cancel", what=f"cancel task {task_id}", shot=None
        )

    async def aclose(self) -> None:
        """Close the HTTP client (if this backend made it)."""
        await self._http.aclose()

    # ---------------------------------------------------------------- HTTP

    async def _api(
        self,
        method: str,
        path: str,
        *,
        what: str,
        shot: ShotState | None,
        body: Any = None,
        submit: bool = False,
    ) -> Any:
        """A JSON API call; the server's messages go on as warnings."""
        answer = await self._http.api(
            method, path, what=what, shot=shot.shot if shot else None, body=body, submit=submit
        )
        for text in answer.messages:
            self._warn(shot, f"inference.sh: {self._http.redact(text)}")
        return answer.data

    async def _read_task(self, task_id: str, shot: ShotState) -> Any:
        return await self._api("GET", f"/tasks/{task_id}", what=f"read task {task_id}", shot=shot)

    @staticmethod
    def _warn(shot: ShotState | None, text: str) -> None:
        warn = getattr(shot.ctx, "warn", None) if shot else None
        if callable(warn):
            warn(text)
        elif shot:
            log.warning("shot %s: %s", shot.shot, text)
        else:
            log.warning("%s", text)

    # ---------------------------------------------------------------- steps of a shot

    async def stage(self, path: Path) -> None:
        """Upload an image that a shot about to be submitted will use (a chained shot's
        start frame), while the runner still stores its parent's clip. Uploads are free
        and deduplicated by content: the shot's own upload then finds it done, or waits
        for this one. A failure here is only logged; the shot uploads it itself."""
        try:
            await self._files.upload(path, None)
        except (BackendError, OSError) as exc:
            log.debug("staging %s failed (the shot will upload it): %s", path.name, exc)

    async def _upload(self, path: Path, shot: ShotState) -> str:
        return await self._files.upload(path, shot)

    def send_as(self, request: ShotRequest) -> str:
        """The app reference a request is submitted as: pinned to the version the live
        check read (``ns/name@VERSION``), so that a deploy after the check cannot change
        the schema under a paid call. A version written in the file is sent as written;
        a request never checked live (built by hand) goes unversioned."""
        try:
            ref = apps.parse_app_ref(request.app)
        except AppError as exc:
            raise BackendError(f"malformed app reference {request.app!r}: {exc}", shot=request.shot_id) from None
        if ref.version is not None:
            return ref.text
        read = self._read_live.get(ref.name, [])
        if request.version is not None and request.version in read:
            return ref.pinned_to(request.version)
        return ref.pinned_to(read[-1] if read and request.version is None else None)

    async def _submit(self, request: ShotRequest, shot: ShotState) -> dict[str, Any]:
        app = self.send_as(request)
        inputs: dict[str, Any] = dict(request.model_inputs())
        if request.image is not None:
            shot.ctx.progress(status="uploading")
            inputs[request.image_input or "image"] = await self._upload(Path(request.image), shot)
            if request.end_image is not None:
                inputs[request.end_image_input or "end_image"] = await self._upload(Path(request.end_image), shot)
        if request.references and request.references_input:
            shot.ctx.progress(status="uploading")
            inputs[request.references_input] = [await self._upload(Path(p), shot) for p in request.references]
        if request.keyframes and request.keyframes_input:  # [seconds, image] pairs (bfl/flux-3-video)
            shot.ctx.progress(status="uploading")
            inputs[request.keyframes_input] = [[at, await self._upload(Path(p), shot)] for at, p in request.keyframes]
        # Journalled before the paid call: if this process dies before the task id comes
        # back, the next render knows a task may exist that it cannot find (and says so).
        shot.ctx.remember("submitting", time.strftime("%Y-%m-%dT%H:%M:%S"))
        try:
            task = await self._api(
                "POST",
                "/apps/run",
                what="submit",
                shot=shot,
                body={"app": app, "input": inputs},
                submit=True,
            )
        except BackendError as exc:
            if not isinstance(exc, MaybeSubmitted):  # clearly refused: nothing was started
                shot.ctx.remember("submitting", "")
            raise
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise MaybeSubmitted(
                "inference.sh accepted the submission but returned no task id; "
                "check your tasks on inference.sh before rendering again",
                shot=shot.shot,
            )
        shot.ctx.remember("task_id", task_id)  # before anything else can fail
        shot.ctx.report(task_id=task_id)
        self.stats.submissions += 1
        log.info("shot %s: submitted task %s", shot.shot, task_id)
        return dict(task)

    async def _reattach(self, task_id: str, shot: ShotState) -> dict[str, Any] | None:
        """The journalled task, or None when a new one must be submitted."""
        try:
            task = await self._api(
                "GET", f"/tasks/{task_id}", what=f"re-attach to task {task_id}", shot=shot
            )
        except AuthError:
            raise
        except BackendError as exc:
            if exc.status == 404:
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

    async def _fresh_url(self, task_id: str, url: str, shot: ShotState, what: str) -> str:
        """Output URLs may be signed and expire: read the task again (best effort)."""
        try:
            task = await self._read_task(task_id, shot)
        except AuthError:
            raise
        except BackendError:
            return url
        fresh = output_url(task.get("output"), what) if isinstance(task, dict) else None
        return fresh or url
