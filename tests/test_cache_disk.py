"""The cache and the disk under stress: damaged clips, a cache that cannot be written, a
full disk, and renders running at the same time. What was paid for is never lost, and
nothing is paid for twice.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.cache import Cache
from storyboard.cli import main
from storyboard.errors import RenderFailed
from storyboard.events import Event, Warning_
from tests.helpers import BOARD, KEY, SHOTS, backend_for, render
from tests.test_faults import board_path, fake

__all__ = ["board_path", "fake"]  # the fixtures, shared with the fault suite


def cli(board: Path, fake: FakeInference, *args: str) -> object:
    return CliRunner().invoke(main, ["render", str(board), "--backend", "inference", *args],
                              env={"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url})


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    """mount(8) over target for the test; skip when this machine does not allow it."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", *options, str(target)], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount here ({e}); needs privileges")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=20)


# ---------------------------------------------------------------- damaged clips


@pytest.mark.parametrize("damage", ["truncated", "garbage", "same_size_garbage", "deleted"])
def test_damaged_cached_clip_is_regenerated_paying_only_for_it(fake: FakeInference, board_path: Path,
                                                                damage: str) -> None:
    first = render(board_path, backend_for(fake))
    clip = first.shots["b"].clip  # b's clip is its own (a's and c's are identical bytes)
    assert clip is not None and len(fake.submissions) == SHOTS
    data = clip.read_bytes()
    if damage == "truncated":
        clip.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        clip.write_bytes(b"\x00garbage" * 100)
    elif damage == "same_size_garbage":
        clip.write_bytes(bytes(len(data)))
        st = clip.stat()
        os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    else:
        clip.unlink()
    first.film.unlink() if first.film else None
    events: list[Event] = []
    result = render(board_path, backend_for(fake), events)
    assert result.film is not None and result.film.exists()
    assert len(fake.submissions) == SHOTS + 1  # only b again
    assert fake.submissions[-1].input["prompt"] == "the keeper looks up"
    assert any(isinstance(e, Warning_) and "dropped cache entry" in e.message for e in events)


def test_broken_index_entry_is_regenerated(fake: FakeInference, board_path: Path) -> None:
    first = render(board_path, backend_for(fake))
    key = first.shots["b"].key
    assert key is not None
    (board_path.parent / ".storyboard" / "index" / key[:2] / f"{key}.json").write_text("{not json")
    render(board_path, backend_for(fake))
    assert len(fake.submissions) == SHOTS + 1 and fake.submissions[-1].input["prompt"] == "the keeper looks up"


# ---------------------------------------------------------------- a cache that cannot be written


def test_cache_path_is_a_file_clear_error(fake: FakeInference, board_path: Path) -> None:
    (board_path.parent / ".storyboard").write_text("not a folder")
    result = cli(board_path, fake)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    out = result.output  # type: ignore[attr-defined]
    assert "cache" in out and ".storyboard" in out and "--cache-dir" in out and "Traceback" not in out
    assert fake.calls == []


def test_read_only_cache_clear_error(fake: FakeInference, board_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    with mounted(cache, "--bind", str(cache)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(cache)], check=True, capture_output=True)
        result = cli(board_path, fake, "--cache-dir", str(cache))
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, out  # type: ignore[attr-defined]
    assert "read-only" in out and "--cache-dir" in out and "Traceback" not in out
    assert fake.calls == []


def test_disk_full_loses_nothing_paid_for(fake: FakeInference, board_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "small-cache"
    with mounted(cache, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        filler = cache / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            f.write(b"\0" * (1024 * 1024))
        free = os.statvfs(cache).f_bavail * os.statvfs(cache).f_frsize
        assert free < 64 * 1024
        with pytest.raises((RenderFailed, storyboard.StoryboardError)) as err:
            render(board_path, backend_for(fake), cache_dir=cache)
        text = str(err.value)
        assert "Traceback" not in text and "the disk is full" in text, text
        paid = len(fake.submissions)
        filler.unlink()
        result = render(board_path, backend_for(fake), cache_dir=cache)
        assert result.film is not None and result.film.exists()
        # tasks paid before the disk filled were re-attached, not paid again
        assert len(fake.submissions) == SHOTS, (paid, len(fake.submissions))


# ---------------------------------------------------------------- renders at the same time


def _start(board: Path, fake: FakeInference, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    return subprocess.Popen([sys.executable, "-m", "storyboard.cli", "render", str(board), "--backend", "inference",
                             "--json", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_render_of_the_same_storyboard_refuses(fake: FakeInference, board_path: Path) -> None:
    fake.latency = 30.0  # hold the first render while it waits
    first = _start(board_path, fake)
    try:
        deadline = time.monotonic() + 60
        while not fake.streams_opened and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert fake.streams_opened, "the first render never started waiting"
        second = cli(board_path, fake)
        out = second.output  # type: ignore[attr-defined]
        assert second.exit_code == 1, out  # type: ignore[attr-defined]
        assert "already rendering" in out and "Traceback" not in out
        runs_while_locked = len(fake.calls_to("POST", "/apps/run"))
        for task in fake.tasks.values():
            task.latency = 0.3
        fake.latency = 0.3
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert len(fake.submissions) == SHOTS and runs_while_locked <= SHOTS


def test_two_storyboards_sharing_a_cache_render_at_once(fake: FakeInference, tmp_path: Path,
                                                        write_board: Callable[..., Path],
                                                        make_image: Callable[..., Path]) -> None:
    boards = []
    for name in ("one", "two"):
        make_image(f"{name}/start.png")
        text = BOARD
        for shot in ("a harbor at dusk", "the keeper looks up", "a storm gathers"):
            text = text.replace(shot, f"{shot}, take {name}")
        boards.append(write_board(text, name=f"{name}/film.yaml"))
    cache = tmp_path / "shared-cache"
    fake.latency = 1.0
    procs = [_start(b, fake, "--cache-dir", str(cache)) for b in boards]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    for b in boards:
        assert (b.parent / "out" / "film.mp4").exists()
    assert len(fake.submissions) == 2 * SHOTS
    assert list(Cache(cache).journal_entries()) == []


def test_old_work_folders_are_swept_and_new_ones_kept(tmp_path: Path) -> None:
    import os
    import time as _time

    from storyboard.cache import Cache

    cache = Cache(tmp_path / "c")
    old = cache.tmp_dir("killed-")
    (old / "half.mp4").write_bytes(b"x")
    stale = _time.time() - 3 * 24 * 3600
    os.utime(old, (stale, stale))
    fresh = cache.tmp_dir("running-")
    assert cache.sweep_tmp() == 1
    assert not old.exists() and fresh.exists()
