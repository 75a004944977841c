"""The finished film's loudness: measured, corrected when it missed, and reported.

Assembly normalizes the mix before encoding (a measured gain, or loudnorm where a gain
would lift the true peak over :data:`TRUE_PEAK`). Loudnorm's dynamic mode misses on short
films (a narrated 14 s film came out at -15.9 LUFS against -14), and whatever comes after
(AAC, overlays) may move the figures. So the finished file is measured with ebur128 and,
when it sits more than :data:`CORRECT_BEYOND` LU from the target, corrected: the missing
gain under a true-peak limiter (4x oversampled, as the true peak is measured), the
picture copied. At most :data:`PASSES` corrections; what is measured last is what is
reported, and a film still more than :data:`TOLERANCE` LU off is flagged (not reached).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._graphs import AAC, TRUE_PEAK, loudnorm_measure, parse_ebur128
from storyboard.media._probe import probe

TOLERANCE = 1.0  # LU either side of the target that counts as reached
CORRECT_BEYOND = 0.5  # LU off the target that earns a correction pass
PASSES = 2  # correction passes at most
# Where the limiter holds the peaks: under TRUE_PEAK by the AAC encoder's overshoot.
LIMIT_DB = TRUE_PEAK - 1.0
OVERSAMPLED = 192000


@dataclass(frozen=True)
class Loudness:
    """What the finished film measures against its target (EBU R128, ffmpeg's ebur128)."""

    target: float  # LUFS asked for (`loudness:`)
    integrated: float  # LUFS measured on the finished film
    true_peak: float  # dBTP measured on the finished film
    corrections: int = 0  # correction passes run on the finished film
    true_peak_limit: float = TRUE_PEAK

    @property
    def reached(self) -> bool:
        """True when the film is within :data:`TOLERANCE` LU of the target."""
        return abs(self.integrated - self.target) <= TOLERANCE

    def to_dict(self) -> dict[str, float | int | bool]:
        """The figures for render.json."""
        return {**asdict(self), "reached": self.reached}

    def warning(self) -> str | None:
        """One line with both figures when the target was not reached; else None."""
        if self.reached:
            return None
        return (f"loudness: the film measures {self.integrated:.1f} LUFS integrated with a true peak of "
                f"{self.true_peak:.1f} dBTP; the target {self.target:g} LUFS cannot be reached under the "
                f"{self.true_peak_limit:g} dBTP true-peak limit")


def measure_args(film: Path) -> list[str]:
    """ffmpeg arguments measuring the film's sound (ebur128, true peak). Pure."""
    return ["-i", str(film), "-map", "0:a:0", "-vn", "-af", loudnorm_measure(), "-f", "null", "-"]


def correct_args(film: Path, gain: float, output: Path) -> list[str]:
    """ffmpeg arguments raising (or lowering) the film's sound by ``gain`` dB under a
    true-peak limiter at :data:`LIMIT_DB`; the picture is copied. Pure."""
    limit = 10 ** (LIMIT_DB / 20)
    chain = (f"aresample={OVERSAMPLED},volume={gain:.4f}dB,"
             f"alimiter=limit={limit:.4f}:level=false:attack=1:release=50:asc=false,aresample=48000")
    return ["-i", str(film), "-map", "0:v?", "-c:v", "copy", "-map", "0:a:0", "-af", chain, *AAC,
            "-movflags", "+faststart", "-f", "mp4", str(output)]


async def measure(film: Path) -> tuple[float, float] | None:
    """(integrated LUFS, true peak dBTP) of the film's sound; None when it is silent."""
    found = parse_ebur128(await run_ffmpeg(measure_args(film)))
    return None if found is None else (found["input_i"], found["input_tp"])


async def finish_loudness(film: Path, target: float,
                          progress: Callable[[float], None] | None = None) -> Loudness | None:
    """Measure the finished ``film``; correct it in place (atomically) while it is more
    than :data:`CORRECT_BEYOND` LU off ``target``, up to :data:`PASSES` times. The last
    measurement, or None for a film with no sound or a silent one."""
    found = await measure(film) if probe(film).has_audio else None
    passes = 0
    while found is not None and abs(found[0] - target) > CORRECT_BEYOND and passes < PASSES:
        tmp = film.with_name(f".{film.stem}.loudness.tmp.mp4")
        try:
            await run_ffmpeg(correct_args(film, target - found[0], tmp))
            os.replace(tmp, film)
        finally:
            tmp.unlink(missing_ok=True)
        passes += 1
        if progress is not None:
            progress(passes / PASSES)
        again = await measure(film)
        if again is None or abs(again[0] - target) >= abs(found[0] - target):
            found = again if again is not None else found
            break  # the limiter takes what the gain adds: more passes would not help
        found = again
    if progress is not None:
        progress(1.0)
    if found is None:
        return None
    return Loudness(target=target, integrated=found[0], true_peak=found[1], corrections=passes)
