"""``storyboard init NAME``: a new storyboard folder that validates and renders offline.

    NAME/
      NAME.yaml                 the storyboard (first line points editors at the schema)
      storyboard.schema.json    the JSON Schema of the format, for yaml-language-server
      templates/opening.j2      a prompt template built on the library
      assets/start.png          a generated start frame
      .gitignore                out/ and .storyboard/ (films and the clip cache)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from storyboard.errors import UsageError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

STORYBOARD = """\
# yaml-language-server: $schema=storyboard.schema.json
# {comment}: made by `storyboard init`. Render it offline with the animatic backend:
#   storyboard render {name}/{name}.yaml
# then on Kling V3.0 (paid; set INFERENCE_API_KEY first, and cap what it may spend):
#   storyboard render {name}/{name}.yaml --backend inference --budget 5
storyboard: 1
title: {title}
backend: animatic
defaults:
  app: klingai/video-v3     # `storyboard apps show klingai/video-v3` lists its inputs
  resolution: 720p         # 720p | 1080p | 4k (priced per second by resolution and sound)
  aspect_ratio: "16:9"     # 16:9 | 9:16 | 1:1
  duration: 5              # seconds, 3..15
  sound: true
vars:
  subject: a paper boat
  place: a rain puddle on a city street at dusk
templates: [templates]     # opening.j2 lives there; the library (camera.j2, shots.j2…) is built in
shots:
  - id: opening
    image: assets/start.png          # the first frame
    template: opening.j2
  - id: closer
    # no `image:` key: starts on the last frame of the shot above
    prompt: >-
      {{% from 'shots.j2' import close_up %}}{{% from 'camera.j2' import dolly_in %}}
      {{{{ close_up(subject, detail='raindrops beading on its folds') }}}}.
      {{{{ dolly_in(speed='slow') }}}}.
  - id: away
    image: null                      # a fresh start: text to video
    transition: {{type: dissolve, duration: 0.5}}
    prompt: >-
      {{% from 'cinematic.j2' import establishing %}}
      {{{{ establishing(place, lighting='blue_hour') }}}}
cut: [opening, closer, away]
"""

TEMPLATE = """\
{#- The opening shot of the storyboard. `subject` and `place` come from its vars. -#}
{% from 'shots.j2' import wide %}
{% from 'camera.j2' import crane_down %}
{% from 'lighting.j2' import golden_hour %}
{{ wide(subject, setting=place) }}. {{ crane_down(speed='slow', to=subject) }}. {{ golden_hour(direction='side') }}.
"""

GITIGNORE = "out/\n.storyboard/\n"


@dataclass(frozen=True)
class Scaffold:
    """The files ``scaffold`` wrote."""

    folder: Path
    storyboard: Path
    schema: Path
    template: Path
    image: Path


def start_image(path: Path, size: tuple[int, int] = (1280, 720)) -> Path:
    """Draw a simple start frame (a dusk sky over a street, a small boat): something
    with shapes and colour for the animatic to move over."""
    from PIL import Image, ImageDraw

    w, h = size
    im = Image.new("RGB", size)
    draw = ImageDraw.Draw(im)
    horizon = int(h * 0.55)
    for y in range(horizon):
        t = y / horizon
        draw.line([(0, y), (w, y)], fill=(int(40 + 200 * t), int(50 + 90 * t), int(110 - 30 * t)))
    for y in range(horizon, h):
        t = (y - horizon) / (h - horizon)
        draw.line([(0, y), (w, y)], fill=(int(60 - 30 * t), int(62 - 30 * t), int(70 - 30 * t)))
    draw.ellipse([w * 0.3, h * 0.7, w * 0.7, h * 0.9], fill=(90, 110, 140))  # the puddle
    cx, cy = w // 2, int(h * 0.78)
    draw.polygon([(cx - 90, cy), (cx + 90, cy), (cx + 60, cy + 30), (cx - 60, cy + 30)], fill=(235, 232, 220))
    draw.polygon([(cx - 10, cy - 80), (cx - 10, cy), (cx + 60, cy)], fill=(250, 248, 240))  # sail
    for i in range(6):  # windows along the street
        x = int(w * (0.05 + i * 0.16))
        draw.rectangle([x, horizon - 120, x + 60, horizon - 40], fill=(250, 200, 110))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG", optimize=True)
    return path


def scaffold(name: str, parent: str | Path = ".", *, title: str | None = None) -> Scaffold:
    """Create ``parent/name/`` with a storyboard that validates and renders offline.

    Refuses (UsageError) a name that is not a plain folder name, or a folder that
    exists and is not empty."""
    if not NAME_PATTERN.match(name):
        raise UsageError(f"'{name}' is not a plain name; use letters, digits, '-' and '_' (e.g. storyboard init my-film)")
    folder = Path(parent) / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder} already exists and is not empty; choose another name")
    from storyboard.spec import json_schema

    title = title or name.replace("-", " ").replace("_", " ").strip().title()
    folder.mkdir(parents=True, exist_ok=True)
    board = folder / f"{name}.yaml"
    board.write_text(STORYBOARD.format(name=name, title=json.dumps(title), comment=title), encoding="utf-8")
    schema = folder / "storyboard.schema.json"
    schema.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    template = folder / "templates" / "opening.j2"
    template.parent.mkdir()
    template.write_text(TEMPLATE, encoding="utf-8")
    image = start_image(folder / "assets" / "start.png")
    (folder / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return Scaffold(folder=folder, storyboard=board, schema=schema, template=template, image=image)
