"""Everything that touches ffmpeg: probing, frames, images, the animatic and assembly.

This package is the only place in storyboard that runs ffmpeg.
"""

from storyboard.media._animatic import animatic_clip, still_card
from storyboard.media._assemble import AssemblyResult, assemble
from storyboard.media._ffmpeg import build_command, ffmpeg_path, run_ffmpeg
from storyboard.media._frames import extract_frame
from storyboard.media._graphs import MixTrack
from storyboard.media._images import PreparedImage, frame_size, prepare_image
from storyboard.media._probe import AudioInfo, ClipInfo, probe, probe_audio
from storyboard.media._timeline import CutClip

__all__ = [
    "AssemblyResult",
    "AudioInfo",
    "ClipInfo",
    "CutClip",
    "MixTrack",
    "PreparedImage",
    "animatic_clip",
    "assemble",
    "build_command",
    "extract_frame",
    "ffmpeg_path",
    "frame_size",
    "prepare_image",
    "probe",
    "probe_audio",
    "run_ffmpeg",
    "still_card",
]
