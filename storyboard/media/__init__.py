"""Everything that touches ffmpeg: probing, frames, images, the animatic and assembly.

This package is the only place in storyboard that runs ffmpeg.
"""

from storyboard.media._animatic import animatic_clip, still_card
from storyboard.media._assemble import AssemblyResult, assemble
from storyboard.media._captions import BURN_STYLE, burn_captions, cut_times, write_captions
from storyboard.media._ffmpeg import build_command, ffmpeg_path, run_ffmpeg
from storyboard.media._frames import StreamedClip, extract_frame, save_frame
from storyboard.media._graphs import MixTrack
from storyboard.media._handoff import Handoff, SeamScore, handoff_frame, seam_continuity, seam_score
from storyboard.media._images import PreparedImage, frame_size, prepare_image
from storyboard.media._loudness import Loudness, finish_loudness
from storyboard.media._music import music_placeholder
from storyboard.media._probe import AudioInfo, ClipInfo, probe, probe_audio
from storyboard.media._steps import WeightedProgress
from storyboard.media._timeline import CutClip
from storyboard.media._titles import POSITIONS, OverlayCard, decorate, overlay_png, title_clip
from storyboard.media._voice import espeak_path, narration_track, speak_offline

__all__ = [
    "BURN_STYLE",
    "POSITIONS",
    "AssemblyResult",
    "AudioInfo",
    "ClipInfo",
    "CutClip",
    "Handoff",
    "Loudness",
    "MixTrack",
    "OverlayCard",
    "PreparedImage",
    "SeamScore",
    "StreamedClip",
    "WeightedProgress",
    "animatic_clip",
    "assemble",
    "build_command",
    "burn_captions",
    "cut_times",
    "decorate",
    "espeak_path",
    "extract_frame",
    "ffmpeg_path",
    "finish_loudness",
    "frame_size",
    "handoff_frame",
    "music_placeholder",
    "narration_track",
    "overlay_png",
    "prepare_image",
    "probe",
    "probe_audio",
    "run_ffmpeg",
    "save_frame",
    "seam_continuity",
    "seam_score",
    "speak_offline",
    "still_card",
    "title_clip",
    "write_captions",
]
