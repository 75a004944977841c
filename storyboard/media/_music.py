"""Generated music offline: a soft placeholder chord, free, as long as it is asked to be.
(Music made by an app is a file like any other once downloaded; the mix is ``_graphs``'.)"""

from __future__ import annotations

from pathlib import Path

from storyboard.media._ffmpeg import run_ffmpeg
from storyboard.media._timeline import SAMPLE_RATE

# A minor (A3, C4, E4), quiet, with a slow swell so that the bed is plainly not silence
# and plainly not music anyone chose.
CHORD_HZ = (220.0, 261.63, 329.63)
CHORD_AMPLITUDE = 0.06


def placeholder_chord_expr() -> str:
    """The aevalsrc expression of the chord. Pure."""
    tones = "+".join(f"sin(2*PI*{f}*t)" for f in CHORD_HZ)
    return f"{CHORD_AMPLITUDE}*(0.8+0.2*sin(2*PI*0.25*t))*({tones})/{len(CHORD_HZ)}"


async def music_placeholder(output: Path, seconds: float) -> Path:
    """Write the placeholder bed (stereo WAV, ``seconds`` long) to ``output``."""
    await run_ffmpeg([
        "-f", "lavfi", "-i", f"aevalsrc={placeholder_chord_expr()}:s={SAMPLE_RATE}:c=stereo",
        "-t", f"{seconds:.3f}", "-c:a", "pcm_s16le", "-f", "wav", str(output),
    ])  # fmt: skip
    return output
