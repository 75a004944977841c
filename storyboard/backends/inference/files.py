"""Files to and from inference.sh: uploads (deduplicated by content) and output downloads.

* An upload is ``POST /files`` then ``PUT upload_url``; the same content is uploaded once
  per backend (a chained shot's start frame may be *staged* ahead of its submission).
* A download streams the output into ``<task>.<suffix>.part``, hashing and decoding a clip
  as it arrives; a failed, truncated (Content-Length mismatch) or unreadable download is
  retried with a freshly read output URL, never by resubmitting the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from storyboard.backends.inference.transport import InferenceStats, Retryable, Transport
from storyboard.errors import BackendError, MediaError
from storyboard.facts import AUDIO_SUFFIXES
from storyboard.media import StreamedClip, probe

__all__ = ["Files"]

# (method, path, what, shot, body) -> the answer's data: the backend's JSON call (warnings included)
ApiCall = Callable[..., Awaitable[Any]]


def _image_check(path: Path) -> None:
    """Raise MediaError when ``path`` is not a readable image (an image app's output)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:  # Pillow raises many kinds for broken files
        raise MediaError(f"{path.name}: not a readable image ({type(exc).__name__})") from None


def _audio_check(path: Path) -> None:
    """Raise MediaError when ``path`` is not readable audio (a TTS or music app's output)."""
    from storyboard.media import probe_audio

    probe_audio(path)


def _audio_suffix(url: str) -> str:
    """An audio output's suffix from its URL (ffmpeg reads the content either way)."""
    suffix = Path(urlsplit(url).path).suffix.lower()
    return suffix if suffix in AUDIO_SUFFIXES else ".mp3"


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return "image/jpeg"
    if suffix == ".png":
        return "image/png"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _leave_beside(clip: Path, digest: str) -> None:
    """What downloading learnt, beside the clip (``<clip>.sha256``: size and digest; the
    decoder left ``<clip>.last.png``): the runner stores and chains without rereading."""
    clip.with_name(clip.name + ".sha256").write_text(f"{clip.stat().st_size} {digest}")


class Files:
    """Uploads and downloads of one backend (its dedupe state lives here)."""

    def __init__(self, http: Transport, api: ApiCall, stats: InferenceStats, public: bool | None) -> None:
        self._http = http
        self._api = api
        self.stats = stats
        self.public = public
        self._uploaded: dict[str, str] = {}  # sha256 of content -> file uri
        self._locks: dict[str, asyncio.Lock] = {}
        self._staged: set[str] = set()  # uploaded by stage(), not yet used by a shot

    async def upload(self, path: Path, shot: Any) -> str:
        """The file URI of ``path``'s content, uploading it unless this backend already did.
        ``shot`` is the shot's state (None when staging ahead of it)."""
        name = shot.shot if shot else None
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise BackendError(f"cannot read image {path}: {exc.strerror}", shot=name) from exc
        digest = hashlib.sha256(data).hexdigest()
        async with self._locks.setdefault(digest, asyncio.Lock()):
            uri = self._uploaded.get(digest)
            if uri is not None:
                if shot is not None and digest in self._staged:  # staged for this shot: not a saving
                    self._staged.discard(digest)
                elif shot is not None:
                    self.stats.dedupe_hits += 1
                    self.stats.bytes_saved += len(data)
                return uri
            content_type = _content_type(path)
            spec = {"uri": "", "filename": path.name, "content_type": content_type, "path": None,
                    "size": len(data), "public": self.public}
            what = f"upload {path.name}"
            files = await self._api("POST", "/files", what=what, shot=shot, body={"files": [spec]})
            record = files[0] if isinstance(files, list) and files else None
            if not isinstance(record, dict) or not record.get("upload_url") or not record.get("uri"):
                raise BackendError(f"{what}: inference.sh gave no upload URL", shot=name)
            await self._http.call("PUT", str(record["upload_url"]), what=what, shot=name, content=data,
                                  headers={"Content-Type": content_type})
            uri = str(record["uri"])
            self._uploaded[digest] = uri
            if shot is None:
                self._staged.add(digest)
            self.stats.uploads += 1
            self.stats.upload_bytes += len(data)
            return uri

    async def download(self, task_id: str, url: str, shot: Any, what: str,
                       fresh_url: Callable[[str], Awaitable[str]]) -> Path:
        """The task's output ``what`` (video, image or audio) in the shot's work folder."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id) or "clip"
        work = Path(shot.ctx.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if what == "image" else _audio_suffix(url) if what == "audio" else ".mp4"
        dest = work / f"{safe}{suffix}"
        part = work / f"{safe}{suffix}.part"
        current, last = url, ""
        try:
            async for attempt in self._http.retrying():
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        current = await fresh_url(current)
                    return await self._attempt(current, dest, part, what)
        except Retryable as exc:
            last = exc.reason
        with contextlib.suppress(OSError):
            part.unlink()
        raise BackendError(
            f"could not download the clip of task {task_id} after {self._http.max_attempts} attempts ({last}); "
            "the task completed (and was billed): render again to re-attach and download it without "
            "paying again",
            shot=shot.shot,
        )

    async def _attempt(self, url: str, dest: Path, part: Path, what: str) -> Path:
        # A clip is hashed and decoded as it arrives (a chained child needs its hash and
        # last frame): nothing is read again once the last byte is in.
        frame_to = dest.with_name(dest.name + ".last.png")
        frame_to.unlink(missing_ok=True)  # from an earlier attempt
        streamed = StreamedClip(frame_to) if what == "video" else None
        try:
            await self._http.fetch(url, part, streamed.feed if streamed else None)
        except BaseException:
            if streamed is not None:
                await asyncio.to_thread(streamed.abort)
            raise
        digest, frame = await asyncio.to_thread(streamed.finish) if streamed else ("", None)
        if frame is None:  # a frame means every listed frame decoded: nothing to check
            check = _image_check if what == "image" else _audio_check if what == "audio" else probe
            try:
                await asyncio.to_thread(check, part)
            except MediaError as exc:
                raise Retryable(f"the downloaded file is not a valid {what} ({exc})") from exc
        if what == "image" and part.read_bytes()[:3] == b"\xff\xd8\xff":
            dest = dest.with_suffix(".jpg")
        part.replace(dest)
        if streamed is not None:
            _leave_beside(dest, digest)
        return dest
