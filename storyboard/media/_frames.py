"""Extracting one exact frame from a clip (PyAV, seeking rather than decoding it all)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import zlib
from pathlib import Path
from typing import Any

import av

from storyboard.errors import MediaError

_BACKOFF_SECONDS = 2.0


def parse_selector(selector: str | float) -> str | float:
    """``"first"``, ``"last"`` or a time in seconds (``2.5``, ``"2.5"``). Pure."""
    if isinstance(selector, int | float) and not isinstance(selector, bool):
        if selector < 0:
            raise MediaError(f"frame time must be >= 0, got {selector}")
        return float(selector)
    text = str(selector).strip().lower()
    if text in ("first", "last"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise MediaError(
            f"bad frame selector {selector!r}: use 'first', 'last' or seconds"
        ) from None
    if value < 0:
        raise MediaError(f"frame time must be >= 0, got {value}")
    return value


def _open_video(clip: Path) -> tuple[Any, Any]:
    if not clip.is_file():
        raise MediaError(f"clip not found: {clip}")
    try:
        container = av.open(str(clip))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{clip}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{clip}: not a video (no video stream)")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _frame_time(frame: Any) -> float:
    return float(frame.pts * frame.time_base) if frame.pts is not None else 0.0


def _decode_from(container: Any, stream: Any, seconds: float) -> Any:
    """Seek to the keyframe at or before ``seconds`` and return the decoded-frame iterator."""
    target = int(seconds / stream.time_base) + (stream.start_time or 0)
    container.seek(max(0, target), stream=stream, backward=True, any_frame=False)
    return container.decode(stream)


def _last_keyframe_time(container: Any, stream: Any, duration: float) -> float:
    """Demux (no decoding) the tail to find the last keyframe, so only its GOP is decoded."""
    start = max(0.0, duration - _BACKOFF_SECONDS)
    target = int(start / stream.time_base) + (stream.start_time or 0)
    container.seek(max(0, target), stream=stream, backward=True, any_frame=False)
    last_key: float | None = None
    base = stream.start_time or 0
    for packet in container.demux(stream):
        if packet.size and packet.is_keyframe and packet.pts is not None:
            last_key = float((packet.pts - base) * stream.time_base)
    return last_key if last_key is not None else 0.0


def _stream_duration(container: Any, stream: Any) -> float:
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / 1_000_000)
    return 0.0


def _extract(clip: Path, selector: str | float, dest: Path) -> Path:
    choice = parse_selector(selector)
    container, stream = _open_video(clip)
    try:
        chosen: Any = None
        if choice == "first":
            for frame in _decode_from(container, stream, 0.0):
                chosen = frame
                break
        elif choice == "last":
            duration = _stream_duration(container, stream)
            key = _last_keyframe_time(container, stream, duration)
            for frame in _decode_from(container, stream, key):
                chosen = frame
            if chosen is None and key > 0:  # odd index: fall back to decoding it all
                for frame in _decode_from(container, stream, 0.0):
                    chosen = frame
        else:
            assert isinstance(choice, float)
            base = float((stream.start_time or 0) * stream.time_base)
            for frame in _decode_from(container, stream, choice):
                if chosen is not None and _frame_time(frame) - base > choice + 1e-6:
                    break
                chosen = frame
        if chosen is None:
            raise MediaError(f"{clip}: no decodable frame for {selector!r}")
        image = chosen.to_image()
    except av.FFmpegError as exc:
        raise MediaError(f"{clip}: cannot decode a frame ({exc})") from exc
    finally:
        container.close()
    return save_frame(image, dest)


def save_frame(image: Any, dest: Path) -> Path:
    """Write a decoded frame as PNG, atomically (a temp file, then a rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    # zlib level 1 with run-length matching: a third of the time of the default, and
    # about as small (the PNG filters leave runs); frames are intermediates on the
    # chain's critical path (extracted, then uploaded)
    image.save(tmp, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    tmp.replace(dest)
    return dest


async def extract_frame(clip: Path, selector: str | float, dest: Path) -> Path:
    """Write one frame of ``clip`` to ``dest`` as PNG.

    ``selector``: ``"first"``; ``"last"`` (the last decoded frame, exactly); or seconds,
    meaning the frame on screen at that time (the last frame with pts <= t; past the end,
    the last frame). Seeks, so the cost stays flat as clips get longer.
    """
    return await asyncio.to_thread(_extract, Path(clip), selector, Path(dest))


_SKIPPABLE = frozenset({"h264", "hevc"})  # codecs whose frames say when nothing refers to them


def _decode_last(stream: Any, packets: Any) -> tuple[Any, int]:
    """The last frame shown (largest pts) of ``packets`` in decode order, exactly, and how
    many packets with data there were.

    A frame no other frame refers to (``NONREF``) is skipped when an earlier packet is
    shown after it: it can be neither the last frame shown nor a reference, so every
    frame decoded stays bit-exact. The choice is made packet by packet as they arrive
    (the decoder's threads take the skip setting with each packet), so decoding keeps
    pace with a download."""
    context = stream.codec_context
    skipping = context.name in _SKIPPABLE
    latest: int | None = None  # the largest pts so far
    count = 0
    last: Any = None
    for packet in packets:
        if packet.size:
            count += 1
            pts = packet.pts
            shown_later = pts is not None and latest is not None and pts < latest
            if pts is not None and (latest is None or pts > latest):
                latest = pts
            context.skip_frame = "NONREF" if skipping and shown_later else "DEFAULT"
        for frame in packet.decode():
            if last is None or (frame.pts or 0) >= (last.pts or 0):
                last = frame
    return last, count


class _Growing:
    """A read-only, forward-only file over bytes that are still arriving: reads wait for
    them. Not seekable on purpose: an MP4 with its index first (``+faststart``, as
    served) decodes as it comes; one with its index last cannot, and gives no frame."""

    def __init__(self, owner: StreamedClip) -> None:
        self._owner = owner
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, waiting until some have arrived or the download ended."""
        chunk = self._owner.read_at(self._pos, size if size >= 0 else 1 << 30)
        self._pos += len(chunk)
        return chunk


class StreamedClip:
    """A clip hashed and decoded while it downloads: :meth:`feed` it every chunk; when the
    last has come, :meth:`finish` gives its SHA-256 and its last frame at once, instead
    of reading the file again and decoding it after (a chain's next shot needs both).
    With ``frame_to``, the last frame is also written there as PNG by the decoding thread.

    Decoding runs in a thread as the bytes arrive. A frame comes back only when every
    frame the clip's index lists was decoded (the clip is whole and readable); a clip it
    cannot decode, or not all of, gives none (the caller's own checks say what is wrong)."""

    def __init__(self, frame_to: Path | None = None) -> None:
        self._hash = hashlib.sha256()
        self._data = bytearray()
        self._complete = False
        self._ready = threading.Condition()
        self._last: Any = None
        self._frame_to = frame_to
        self._thread = threading.Thread(target=self._decode, name="storyboard-decode", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the clip."""
        self._hash.update(chunk)
        with self._ready:
            self._data += chunk
            self._ready.notify_all()

    def read_at(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``pos``, once there are some there (or the download ended)."""
        with self._ready:
            self._ready.wait_for(lambda: self._complete or len(self._data) > pos)
            return bytes(self._data[pos:pos + size])

    def _decode(self) -> None:
        options = {"probesize": "32768", "analyzeduration": "0"}  # stream info from the index
        try:
            with av.open(_Growing(self), mode="r", options=options) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frames decode on every core
                last, packets = _decode_last(stream, container.demux(stream))
                # every packet its index lists arrived and the end decoded: whole and readable
                whole = last is not None and packets == stream.frames
                self._last = last.to_image() if whole else None
            if self._last is not None and self._frame_to is not None:  # encoded here, off the caller's clock
                save_frame(self._last, self._frame_to)
        except Exception:  # not decodable as it came: no frame; the caller's checks say why
            self._last = None

    def finish(self) -> tuple[str, Any]:
        """(SHA-256 hex, the last frame as a PIL image or None), once every byte is fed."""
        with self._ready:
            self._complete = True
            self._ready.notify_all()
        self._thread.join()
        return self._hash.hexdigest(), self._last

    def abort(self) -> None:
        """Stop (a broken download): the decoder sees the end and exits."""
        with self._ready:
            self._complete = True
            self._ready.notify_all()
        self._thread.join()
