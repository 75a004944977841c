"""run_ffmpeg and the pure command builders."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from storyboard.errors import MediaError
from storyboard.media import build_command, ffmpeg_path, run_ffmpeg
from storyboard.media._ffmpeg import parse_progress_line


def test_build_command_adds_safe_flags_once() -> None:
    cmd = build_command(["-i", "a.mp4", "out.mp4"], binary="ffmpeg")
    assert cmd == ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-i", "a.mp4", "out.mp4"]
    cmd = build_command(["-y", "-i", "a.mp4", "o.mp4"], binary="ff", progress=True)
    assert cmd.count("-y") == 1
    assert cmd[cmd.index("-progress") + 1] == "pipe:1"


def test_build_command_keeps_stdin_when_feeding() -> None:
    assert "-nostdin" not in build_command(["-i", "pipe:0", "o.mp4"], binary="ff", stdin=True)


def test_parse_progress_line() -> None:
    assert parse_progress_line("out_time_us=2500000", 10.0) == 0.25
    assert parse_progress_line("out_time_us=N/A", 10.0) is None
    assert parse_progress_line("out_time_us=99000000", 10.0) == 1.0
    assert parse_progress_line("progress=end", 10.0) == 1.0
    assert parse_progress_line("frame=12", 10.0) is None


def test_ffmpeg_path_is_runnable() -> None:
    done = subprocess.run([ffmpeg_path(), "-hide_banner", "-version"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ffmpeg version"), done.stdout[:200]


async def test_run_ffmpeg_reports_progress(tmp_path: Path) -> None:
    seen: list[float] = []
    out = tmp_path / "x.mp4"
    await run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc=size=64x36:rate=10:duration=2", "-c:v", "libx264", str(out)],
        progress=seen.append,
        total_seconds=2.0,
    )
    assert out.exists()
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen)


async def test_run_ffmpeg_failure_names_command_and_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(MediaError) as info:
        await run_ffmpeg(["-i", str(missing), "-f", "null", "-"])
    assert str(missing) in str(info.value)
    assert info.value.command is not None and str(missing) in info.value.command
    assert "No such file" in info.value.stderr


async def test_cancel_kills_ffmpeg(tmp_path: Path) -> None:
    out = tmp_path / "long.mp4"
    task = asyncio.create_task(
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=10", "-t", "60", str(out)])
    )
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the child is gone: no ffmpeg is still writing this file
    size = out.stat().st_size if out.exists() else 0
    await asyncio.sleep(0.3)
    assert (out.stat().st_size if out.exists() else 0) == size
