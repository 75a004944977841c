"""Assembly speed and memory against plain ffmpeg.

    python benchmarks/assemble.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.frames import print_table
from storyboard.media import CutClip, MixTrack, assemble, ffmpeg_path, finish_loudness

ROOT = Path(__file__).resolve().parent.parent
PAGE_KIB = resource.getpagesize() // 1024
SCORE = ROOT / "examples" / "assets" / "score.m4a"


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args], check=True)


def _make(path: Path, seconds: float, size: str, freq: int) -> Path:
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000:duration={seconds}",
        "-af", "volume=0.3,aformat=channel_layouts=stereo",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path),
    )  # fmt: skip
    return path


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def _row(measure: str, ours: float, base: float, target: float, digits: int = 3) -> dict[str, object]:
    ratio = ours / base
    return {
        "measure": measure, "storyboard": round(ours, digits), "baseline": round(base, digits),
        "ratio": round(ratio, 3), "target": f"<= {target}", "passed": ratio <= target,
    }  # fmt: skip


def _cuts(tmp: Path, clips: list[Path]) -> dict[str, object]:
    listing = tmp / "raw.txt"
    listing.write_text("".join(f"file '{c}'\n" for c in clips))
    base = min(_timed(lambda: _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(tmp / "raw.mp4"))) for _ in range(3))
    ours = min(_timed(lambda: asyncio.run(assemble([CutClip(c) for c in clips], tmp / "ours.mp4"))) for _ in range(3))
    return _row(f"{len(clips)} cuts, stream copy (s)", ours, base, 1.5)


def _moviepy(tmp: Path, clips: list[Path]) -> dict[str, object] | None:
    """The same cut with moviepy, the library users reach for today (optional)."""
    try:
        from moviepy import VideoFileClip, concatenate_videoclips
    except ImportError:
        return {"measure": f"{len(clips)} cuts vs moviepy", "passed": None, "skipped": "moviepy is not installed"}

    def cut() -> None:
        parts = [VideoFileClip(str(c)) for c in clips]
        try:
            concatenate_videoclips(parts).write_videofile(str(tmp / "moviepy.mp4"), logger=None)
        finally:
            for p in parts:
                p.close()

    base = _timed(cut)
    ours = min(_timed(lambda: asyncio.run(assemble([CutClip(c) for c in clips], tmp / "ours.mp4"))) for _ in range(3))
    row = _row(f"{len(clips)} cuts, storyboard vs moviepy concatenate (s)", ours, base, 1.0)
    row["target"] = "report"
    row["passed"] = None
    return row


def _handwritten(clips: list[Path], seconds: float, fade: float, out: Path, loudnorm: str = "") -> list[str]:
    n, measuring = len(clips), str(out) == "-"  # a measuring pass: sound only
    graph, v, a, length = [], "0:v", "0:a", seconds
    for i in range(1, n):
        if not measuring:
            graph.append(f"[{v}][{i}:v]xfade=transition=dissolve:duration={fade}:offset={length - fade}[v{i}]")
        graph.append(f"[{a}][{i}:a]acrossfade=d={fade}[a{i}]")
        v, a, length = f"v{i}", f"a{i}", length * 1 + seconds - fade
    graph.append(f"[{n}:a]volume=0.4,atrim=duration={length}[m]")
    graph.append(f"[{a}]asplit[s][k]")
    graph.append("[m][k]sidechaincompress=threshold=0.03:ratio=6:attack=20:release=400[md]")
    graph.append(f"[s][md]amix=inputs=2:duration=first:normalize=0{',' + loudnorm if loudnorm else ''}[aout]")
    inputs = [x for c in clips for x in ("-i", str(c))] + ["-stream_loop", "-1", "-i", str(SCORE)]
    if measuring:
        return [*inputs, "-filter_complex", ";".join(graph), "-map", "[aout]", "-f", "null", "-"]
    return [*inputs, "-filter_complex", ";".join(graph), "-map", f"[{v}]", "-map", "[aout]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", str(out)]  # fmt: skip


def _measured_lufs(film: Path) -> float:
    """The film's integrated loudness as ffmpeg's ebur128 measures it (not storyboard's code)."""
    done = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-i", str(film), "-map", "0:a",
                           "-af", "ebur128=framelog=quiet", "-f", "null", "-"],
                          capture_output=True, text=True, check=True)
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", done.stderr)[-1])


def _handwritten_two_pass(clips: list[Path], seconds: float, fade: float, out: Path, target: float) -> None:
    """Plain ffmpeg's two-pass loudnorm over the hand-written graph (the loudness row's
    baseline): a sound-only measuring pass, then the film."""
    done = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", *_handwritten(
        clips, seconds, fade, Path("-"), f"loudnorm=I={target}:TP=-1.5:LRA=11:print_format=json")],
        capture_output=True, text=True, check=True)
    m = json.loads(done.stderr[done.stderr.rindex("{"):done.stderr.rindex("}") + 1])
    second = (f"loudnorm=I={target}:TP=-1.5:LRA=11:measured_I={m['input_i']}:measured_TP={m['input_tp']}:"
              f"measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:offset={m['target_offset']}")
    _ffmpeg(*_handwritten(clips, seconds, fade, out, second))


def _normalized(cut: list[CutClip], music: list[MixTrack], out: Path, target: float) -> None:
    """Assembly with its loudness pass, then the finished film's check (as a render runs it)."""
    async def both() -> None:
        await assemble(cut, out, audio=music, loudness=target)
        await finish_loudness(out, target)

    asyncio.run(both())


def _dissolves(tmp: Path, clips: list[Path], seconds: float) -> list[dict[str, object]]:
    fade, target = 0.5, -14.0
    cut = [CutClip(clips[0])] + [CutClip(c, "dissolve", fade) for c in clips[1:]]
    music = [MixTrack(SCORE, volume=0.4, duck=True)]
    # best of two, interleaved: timings on a shared 2-core machine wander by ±20 %
    base, ours, base_norm, norm = float("inf"), float("inf"), float("inf"), float("inf")
    for _ in range(2):
        base = min(base, _timed(lambda: _ffmpeg(*_handwritten(clips, seconds, fade, tmp / "hand.mp4"))))
        ours = min(ours, _timed(lambda: asyncio.run(assemble(cut, tmp / "ours.mp4", audio=music, loudness=None))))
        base_norm = min(base_norm, _timed(lambda: _handwritten_two_pass(clips, seconds, fade, tmp / "hand-norm.mp4",
                                                                        target)))
        norm = min(norm, _timed(lambda: _normalized(cut, music, tmp / "norm.mp4", target)))
    lufs = _measured_lufs(tmp / "norm.mp4")
    return [
        _row(f"{len(clips) - 1} dissolves + ducked music (s)", ours, base, 1.1, 2),
        _row(f"  same + loudness to {target:g} LUFS vs ffmpeg two-pass loudnorm (s)", norm, base_norm, 1.2, 2),
        {"measure": "  its integrated loudness, measured by ebur128 (LUFS, vs the two-pass loudnorm's)",
         "storyboard": lufs, "baseline": _measured_lufs(tmp / "hand-norm.mp4"), "ratio": None,
         "target": f"within ±1 LU of {target:g}", "passed": abs(lufs - target) <= 1.0},
    ]  # fmt: skip


_RSS_SCRIPT = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from storyboard.media import CutClip, assemble
clips = [Path(p) for p in sys.argv[2:]]
mode = sys.argv[1]
cut = [CutClip(c, "cut" if mode == "copy" else "dissolve", 0.25) for c in clips]
result = asyncio.run(assemble(cut, Path({out!r}), loudness=None))
print(result.method)
"""


def _tree_rss(root: int) -> int:
    """Resident memory (KiB) of ``root`` and all its descendants right now."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as statm:
                rss[int(entry)] = int(statm.read().split()[1]) * PAGE_KIB
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def _peak_rss(tmp: Path, mode: str, clips: list[Path]) -> tuple[float, float, str]:
    """The whole assembly in a fresh Python, in MiB: (largest single process: wait4's
    ru_maxrss, which covers the child and every descendant it waited for; peak of the
    whole process tree at once, sampled every 2 ms, which adds up ffmpegs running side
    by side and the Python itself), and the method used."""
    script = _RSS_SCRIPT.format(root=str(ROOT), out=str(tmp / f"rss-{mode}.mp4"))
    result = tmp / f"rss-{mode}-{len(clips)}.json"
    # through the launcher: a child forked from this (large) process would inherit its
    # RSS high-water mark
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._measure", str(result), "--",
                             sys.executable, "-c", script, mode, *map(str, clips)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    assert proc.stdout is not None
    method = proc.stdout.read().strip()
    proc.wait()
    done.set()
    sampler.join()
    assert proc.returncode == 0, proc.returncode
    largest = json.loads(result.read_text())["maxrss_mb"]
    return largest, peak[0] / 1024, method


def _memory(tmp: Path, clip: Path, few: int, many: int) -> list[dict[str, object]]:
    rows = []
    for mode in ("copy", "dissolve"):
        small_max, small_sum, small_method = _peak_rss(tmp, mode, [clip] * few)
        large_max, large_sum, large_method = _peak_rss(tmp, mode, [clip] * many)
        how = small_method if small_method == large_method else f"{small_method}/{large_method}"
        rows.append(_row(f"peak RSS, largest process, {mode} ({how}): {many} vs {few} clips (MiB)",
                         large_max, small_max, 1.2, 1))  # fmt: skip
        rows.append(_row(f"peak RSS, whole tree at once, {mode}: {many} vs {few} clips (MiB)",
                         large_sum, small_sum, 1.2, 1))  # fmt: skip
    return rows


def run(quick: bool = False) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        size, seconds = ("640x360", 2.0) if quick else ("1920x1080", 5.0)
        big = [_make(tmp / f"c{i}.mp4", seconds, size, 300 + 40 * i) for i in range(6)]
        rows.append(_cuts(tmp, big))
        movie = _moviepy(tmp, big)
        if movie is not None:
            rows.append(movie)
        size, seconds = ("320x180", 2.0) if quick else ("1280x720", 3.0)
        mid = [_make(tmp / f"m{i}.mp4", seconds, size, 300 + 40 * i) for i in range(6)]
        rows += _dissolves(tmp, mid, seconds)
        small = _make(tmp / "s.mp4", 1.0, "320x180", 440)
        rows += _memory(tmp, small, 6, 20 if quick else 60)
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
