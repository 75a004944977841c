"""A shot's ``keyframes:`` resolved: each ``{at: seconds, image: still or file}`` checked
(the time within the shot, the image a still ``@ID`` or a readable image file), located."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard.request import FrameRef, parse_frame_ref
from storyboard.spec.images import check_image_file
from storyboard.spec.messages import did_you_mean

if TYPE_CHECKING:
    from storyboard.spec.images import ImageChecks
    from storyboard.spec.models import StoryboardModel
    from storyboard.spec.resolved import ImageSource

Path_ = tuple[str | int, ...]

__all__ = ["shot_keyframes"]


def shot_keyframes(model: StoryboardModel, i: int, stills: Mapping[str, int], shots: Mapping[str, int],
                   duration: float, folder: Path, checked: ImageChecks, flaws: list[tuple[str, Path_]]
                   ) -> tuple[tuple[float, ImageSource], ...]:
    """The shot's keyframes in time order; a time outside the shot or an image that is not a
    still or a file is a flaw (message, location at ``shots[i].keyframes[j]``) in ``flaws``."""
    shot = model.shots[i]
    out: list[tuple[float, ImageSource]] = []
    seen: dict[float, int] = {}
    for j, frame in enumerate(shot.keyframes):
        loc = ("shots", i, "keyframes", j)
        if frame.at > duration:
            flaws.append((f"shot '{shot.id}': keyframe at {frame.at:g} s is outside the shot's {duration:g} s; "
                              f"'at' is seconds from its start, 0..{duration:g}", (*loc, "at")))
            continue
        if frame.at in seen:
            flaws.append((f"shot '{shot.id}': two keyframes at {frame.at:g} s (keyframes[{seen[frame.at]}] and "
                              f"keyframes[{j}]); give each its own time", (*loc, "at")))
            continue
        seen[frame.at] = j
        try:
            ref = parse_frame_ref(frame.image)
        except ValueError as e:
            flaws.append((f"shot '{shot.id}': keyframe image: {e}", (*loc, "image")))
            continue
        if ref is None:
            if frame.image not in checked:
                checked[frame.image] = check_image_file(folder, frame.image)
            img, why = checked[frame.image]
            if img is None:
                flaws.append((f"shot '{shot.id}': keyframe image: {why}", (*loc, "image")))
            else:
                out.append((frame.at, img))
        elif ref.shot in stills and not isinstance(ref.selector, float):
            out.append((frame.at, FrameRef(ref.shot, "last")))
        elif ref.shot in stills or ref.shot in shots:
            what = f"'{ref.shot}' is a still (one image); write '@{ref.shot}'" if ref.shot in stills else (
                f"'@{ref.shot}' names a shot; a keyframe is a still or an image file")
            flaws.append((f"shot '{shot.id}': keyframe image {what}", (*loc, "image")))
        else:
            flaws.append((f"shot '{shot.id}': keyframe image names unknown still '{ref.shot}'"
                              f"{did_you_mean(ref.shot, list(stills))}", (*loc, "image")))
    return tuple(sorted(out, key=lambda kf: kf[0]))
