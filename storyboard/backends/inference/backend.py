"""The ``inference`` backend: a video app (Kling V3.0) on inference.sh's task API.

One shot is: upload the start/end images (``POST /files`` then ``PUT upload_url``),
``POST /apps/run``, follow ``GET /tasks/{id}/stream`` (NDJSON) until the task ends,
download ``output.video``. The protocol is the one the official ``inferencesh`` SDK
speaks (see ``inference-api.md``); the ``fakeserver`` package plays it on loopback.
:mod:`.protocol` parses, :mod:`.transport` sends and retries (and says what is never
retried), :mod:`.waiting` follows a task; this module is the lifecycle of one shot and
the live app read (:meth:`InferenceBackend.get_app`).

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
* A failed, truncated (Content-Length mismatch) or unreadable (``probe``) download is
  retried with a freshly read output URL, never by resubmitting the task.
* The server's envelope ``messages`` are passed on as warnings (``ctx.warn`` when the
  context has it, else the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from storyboard.backends.base import ShotContext
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
    Retryable,
    Transport,
)
from storyboard.backends.inference.waiting import ShotState, TaskFollower
from storyboard.errors import AuthError, BackendError, MediaError, NoOutputError
from storyboard.facts import AUDIO_SUFFIXES
from storyboard.media import StreamedClip, probe
from storyboard.request import ShotRequest, estimate

__all__ = ["BASE_URL_ENV", "DEFAULT_BASE_URL", "InferenceBackend", "parse_app_ref"]

BASE_URL_ENV = "INFERENCE_BASE_URL"
DEFAULT_BASE_URL = "https://api.inference.sh"

log = logging.getLogger("storyboard.backends.inference")

_APP_REF = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9][A-Za-z0-9_.-]*)(?:@([A-Za-z0-9_.-]+))?$"
)


def _image_check(path: Path) -> None:
    """Raise MediaError when ``path`` is not a readable image (an image app's output)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:  # Pillow raises many kinds for broken files
        raise MediaError(f"{path.name}: not a readable image ({type(exc).__name__})") from None


def _leave_beside(clip: Path, digest: str) -> None:
    """What downloading learnt, beside the clip (``<clip>.sha256``: size and digest; the
    decoder left ``<clip>.last.png``): the runner stores and chains without rereading."""
    clip.with_name(clip.name + ".sha256").write_text(f"{clip.stat().st_size} {digest}")


def _audio_check(path: Path) -> None:
    """Raise MediaError when ``path`` is not readable audio (a TTS or music app's output)."""
    from storyboard.media import probe_audio

    probe_audio(path)


def _audio_suffix(url: str) -> str:
    """An audio output's suffix from its URL (ffmpeg reads the content either way)."""
    from urllib.parse import urlsplit

    suffix = Path(urlsplit(url).path).suffix.lower()
    return suffix if suffix in AUDIO_SUFFIXES else ".mp3"


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
    """``namespace/name[@version]`` as (``namespace/name``, version or None)."""
    match = _APP_REF.match(ref.strip())
    if match is None:
        raise BackendError(
            f"malformed app reference {ref!r}: expected namespace/name or namespace/name@VERSION"
        )
    namespace, name, version = match.groups()
    return f"{namespace}/{name}", version


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return "image/jpeg"
    if suffix == ".png":
        return "image/png"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


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
        self._uploaded: dict[str, str] = {}  # sha256 of content -> file uri
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._staged: set[str] = set()  # uploaded by stage(), not yet used by a shot

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
        return await self._download(str(final["id"]), url, shot, what)

    async def get_app(self, ref: str) -> dict[str, Any]:
        """The app object for ``namespace/name`` or ``namespace/name@VERSION`` (live).

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
            await self._upload(path, None)
        except (BackendError, OSError) as exc:
            log.debug("staging %s failed (the shot will upload it): %s", path.name, exc)

    async def _upload(self, path: Path, shot: ShotState | None) -> str:
        name = shot.shot if shot else None
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise BackendError(f"cannot read image {path}: {exc.strerror}", shot=name) from exc
        digest = hashlib.sha256(data).hexdigest()
        lock = self._upload_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            uri = self._uploaded.get(digest)
            if uri is not None:
                if shot is not None and digest in self._staged:  # staged for this shot: not a saving
                    self._staged.discard(digest)
                elif shot is not None:
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
            files = await self._api("POST", "/files", what=what, shot=shot, body={"files": [spec]})
            record = files[0] if isinstance(files, list) and files else None
            if (
                not isinstance(record, dict)
                or not record.get("upload_url")
                or not record.get("uri")
            ):
                raise BackendError(f"{what}: inference.sh gave no upload URL", shot=name)
            await self._http.call(
                "PUT",
                str(record["upload_url"]),
                what=what,
                shot=name,
                content=data,
                headers={"Content-Type": content_type},
            )
            uri = str(record["uri"])
            self._uploaded[digest] = uri
            if shot is None:
                self._staged.add(digest)
            self.stats.uploads += 1
            self.stats.upload_bytes += len(data)
            return uri

    async def _submit(self, request: ShotRequest, shot: ShotState) -> dict[str, Any]:
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
        if request.references and request.references_input:
            shot.ctx.progress(status="uploading")
            inputs[request.references_input] = [await self._upload(Path(p), shot) for p in request.references]
        # Journalled before the paid call: if this process dies before the task id comes
        # back, the next render knows a task may exist that it cannot find (and says so).
        shot.ctx.remember("submitting", time.strftime("%Y-%m-%dT%H:%M:%S"))
        try:
            task = await self._api(
                "POST",
                "/apps/run",
                what="submit",
                shot=shot,
                body={"app": request.app, "input": inputs},
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

    async def _download(self, task_id: str, url: str, shot: ShotState, what: str = "video") -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id) or "clip"
        work = Path(shot.ctx.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if what == "image" else _audio_suffix(url) if what == "audio" else ".mp4"
        dest = work / f"{safe}{suffix}"
        part = work / f"{safe}{suffix}.part"
        check = _image_check if what == "image" else _audio_check if what == "audio" else probe
        current, last = url, ""
        try:
            async for attempt in self._http.retrying():
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        current = await self._fresh_video_url(task_id, current, shot, what)
                    # A clip is hashed and decoded as it arrives (a chained child needs its
                    # hash and last frame): nothing is read again once the last byte is in.
                    frame_to = dest.with_name(dest.name + ".last.png")
                    frame_to.unlink(missing_ok=True)  # from an earlier attempt
                    streamed = StreamedClip(frame_to) if what == "video" else None
                    try:
                        await self._http.fetch(current, part, streamed.feed if streamed else None)
                    except BaseException:
                        if streamed is not None:
                            await asyncio.to_thread(streamed.abort)
                        raise
                    digest, frame = await asyncio.to_thread(streamed.finish) if streamed else ("", None)
                    if frame is None:  # a frame means every listed frame decoded: nothing to check
                        try:
                            await asyncio.to_thread(check, part)
                        except MediaError as exc:
                            raise Retryable(
                                f"the downloaded file is not a valid {what} ({exc})"
                            ) from exc
                    if what == "image" and part.read_bytes()[:3] == b"\xff\xd8\xff":
                        dest = dest.with_suffix(".jpg")
                    part.replace(dest)
                    if streamed is not None:
                        _leave_beside(dest, digest)
                    return dest
        except Retryable as exc:
            last = exc.reason
        with contextlib.suppress(OSError):
            part.unlink()
        raise BackendError(
            f"could not download the clip of task {task_id} after {self.max_attempts} attempts ({last}); "
            "the task completed (and was billed): render again to re-attach and download it without "
            "paying again",
            shot=shot.shot,
        )

    async def _fresh_video_url(self, task_id: str, url: str, shot: ShotState, what: str = "video") -> str:
        """Output URLs may be signed and expire: read the task again (best effort)."""
        try:
            task = await self._api(
                "GET", f"/tasks/{task_id}", what=f"read task {task_id}", shot=shot
            )
        except AuthError:
            raise
        except BackendError:
            return url
        fresh = output_url(task.get("output"), what) if isinstance(task, dict) else None
        return fresh or url
