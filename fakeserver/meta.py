"""The pricing metadata a completed task carries (``output.output_meta``), as real apps write it.

The shape is the SDK's ``OutputMeta`` (``inferencesh.models.output_meta``): ``inputs`` and
``outputs`` lists of items typed ``text``/``image``/``video``/``audio``, each with its own
fields (video: width, height, resolution_mp, resolution, seconds, fps; image: width,
height, resolution_mp, count; audio: seconds, sample_rate) and ``extra`` for an app's own
pricing factors. Billed seconds are the output's real length (a video's whole frames over
its frame rate, as the SDK's ``probe_video`` measures it; a WAV's samples over its rate):
:func:`mp4_video_seconds` and :func:`wav_seconds` read it back from a file.

:func:`output_meta` is the one place that writes it: a price rule that needs another
figure adds it there.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Mapping
from typing import Any

__all__ = ["mp4_video_seconds", "output_meta", "wav_seconds"]


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the ISO-BMFF boxes in ``data[start:end]``."""
    out = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < head:
            break
        out.append((kind, at + head, min(end, at + size)))
        at += size
    return out


def mp4_video_seconds(data: bytes) -> float | None:
    """The video track's length in an mp4 (its ``mdhd`` duration over its timescale)."""
    for kind, s, e in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for tkind, ts, te in _boxes(data, s, e):
            if tkind != b"trak":
                continue
            for mkind, ms, me in _boxes(data, ts, te):
                if mkind != b"mdia":
                    continue
                parts = {k: (bs, be) for k, bs, be in _boxes(data, ms, me)}
                hdlr, mdhd = parts.get(b"hdlr"), parts.get(b"mdhd")
                if hdlr is None or mdhd is None or data[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
                    continue
                at = mdhd[0]
                if data[at] == 1:
                    scale, length = struct.unpack(">IQ", data[at + 20:at + 32])
                else:
                    scale, length = struct.unpack(">II", data[at + 12:at + 20])
                return round(length / scale, 3) if scale else None
    return None


def wav_seconds(data: bytes) -> float | None:
    """A WAV's length (its frames over its rate)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            return round(float(w.getnframes()) / float(w.getframerate()), 3)
    except (wave.Error, EOFError):
        return None


def output_meta(kind: str, effective: Mapping[str, Any], file_inputs: Mapping[str, str], *,
                width: int, height: int, seconds: float | None, fps: int, sample_rate: int = 16000,
                is_music: bool = False) -> dict[str, Any]:
    """``output_meta`` of a completed task: what it consumed (its text and each file input,
    by media kind) and what it made. ``effective`` is the input with the schema's defaults;
    ``file_inputs`` maps each file input given to its kind (image, video, audio)."""
    text = str(effective.get("prompt") or effective.get("text") or "")
    inputs: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    inputs += [{"type": k} for k in file_inputs.values()]
    megapixels = round(width * height / 1_000_000, 4)
    item: dict[str, Any]
    if kind == "video":
        resolution = effective.get("resolution") or ("720p" if effective.get("mode") == "std" else "1080p")
        sound = bool(effective.get("sound", effective.get("generate_audio", True)))
        item = {"type": "video", "width": width, "height": height, "resolution_mp": megapixels,
                "resolution": str(resolution).lower(), "seconds": seconds or 0.0, "fps": fps,
                "extra": {"sound": sound}}
    elif kind == "image":
        count = effective.get("n") if isinstance(effective.get("n"), int) else 1
        item = {"type": "image", "width": width, "height": height, "resolution_mp": megapixels,
                "count": count, "extra": {k: effective[k] for k in ("resolution", "mode") if k in effective}}
    else:
        extra: dict[str, Any] = {"model": effective["model"]} if "model" in effective else {}
        if not is_music:
            extra["characters"] = len(text)
        item = {"type": "audio", "seconds": seconds or 0.0, "sample_rate": sample_rate, "extra": extra}
    return {"inputs": inputs, "outputs": [item]}
