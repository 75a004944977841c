"""The one place that runs ffmpeg: locating the binary, building and executing commands."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shlex
import shutil
from collections.abc import AsyncIterator, Callable, Sequence

from storyboard.errors import MediaError

_SAFE_FLAGS = ("-hide_banner", "-nostdin", "-y")
_STDERR_LIMIT = 256 * 1024  # keep the tail; loudnorm's JSON sits at the very end


@functools.cache
def ffmpeg_path() -> str:
    """The ffmpeg binary: ``$STORYBOARD_FFMPEG``, else ``ffmpeg`` on PATH, else imageio-ffmpeg's."""
    env = os.environ.get("STORYBOARD_FFMPEG")
    if env:
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


log = logging.getLogger("storyboard.media")


def build_command(
    args: Sequence[str], *, progress: bool = False, binary: str | None = None, stdin: bool = False
) -> list[str]:
    """The full argv for ``args``: binary, safe flags (no banner, no prompts, overwrite) and,
    when asked, machine-readable progress on stdout. Pure."""
    command = [binary or ffmpeg_path()]
    for flag in _SAFE_FLAGS:
        if flag == "-nostdin" and stdin:
            continue
        if flag not in args:
            command.append(flag)
    if progress and "-progress" not in args:
        command += ["-progress", "pipe:1", "-nostats"]
    command += list(args)
    return command


def parse_progress_line(line: str, total_seconds: float) -> float | None:
    """The completed fraction a ``-progress`` line reports, or None. Pure."""
    key, _, value = line.strip().partition("=")
    if key == "progress" and value == "end":
        return 1.0
    if key not in ("out_time_us", "out_time_ms") or total_seconds <= 0:
        return None
    try:
        micros = int(value)
    except ValueError:
        return None
    return min(1.0, max(0.0, micros / 1e6 / total_seconds))


def format_command(command: Sequence[str]) -> str:
    """A shell-quoted rendering of ``command``, for error messages and logs."""
    return " ".join(shlex.quote(part) for part in command)


async def _read_all(stream: asyncio.StreamReader | None, limit: int = _STDERR_LIMIT) -> str:
    if stream is None:
        return ""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        while size > limit and len(chunks) > 1:
            size -= len(chunks.pop(0))
    return b"".join(chunks).decode("utf-8", "replace")


async def _read_progress(
    stream: asyncio.StreamReader | None,
    progress: Callable[[float], None] | None,
    total_seconds: float | None,
) -> None:
    if stream is None:
        return
    last = -1.0
    while True:
        line = await stream.readline()
        if not line:
            break
        if progress is None or not total_seconds:
            continue
        fraction = parse_progress_line(line.decode("ascii", "replace"), total_seconds)
        if fraction is not None and fraction > last:
            last = fraction
            progress(fraction)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())


async def run_ffmpeg(
    args: Sequence[str],
    *,
    progress: Callable[[float], None] | None = None,
    total_seconds: float | None = None,
    stdin_chunks: AsyncIterator[bytes] | None = None,
) -> str:
    """Run ffmpeg with ``args`` (without the binary) and return its stderr.

    A non-zero exit raises :class:`MediaError` with the command and the tail of stderr.
    Cancelling the coroutine kills the child. ``stdin_chunks`` (when given) is written
    to ffmpeg's stdin, for raw frames made in Python.
    """
    command = build_command(args, progress=progress is not None, stdin=stdin_chunks is not None)
    log.debug("ffmpeg: %s", shlex.join(command))
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE if stdin_chunks is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise MediaError(f"cannot run ffmpeg ({command[0]}): {exc}", command=command) from exc

    async def feed() -> None:
        assert proc.stdin is not None and stdin_chunks is not None
        try:
            async for chunk in stdin_chunks:
                proc.stdin.write(chunk)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg stopped reading: its exit status and stderr say why
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.close()
                await proc.stdin.wait_closed()

    try:
        reading = asyncio.ensure_future(_read_all(proc.stderr))
        watching = asyncio.ensure_future(_read_progress(proc.stdout, progress, total_seconds))
        if stdin_chunks is not None:
            await asyncio.gather(reading, watching, feed())
        else:
            await asyncio.gather(reading, watching)
        stderr = reading.result()
        returncode = await proc.wait()
    except BaseException:
        await _kill(proc)
        raise
    if returncode != 0:
        raise MediaError(
            f"ffmpeg failed (exit {returncode}): {format_command(command)}",
            command=command,
            stderr=stderr,
        )
    return stderr
