"""The soak's storyboard generator: two overlapping boards drawn from one ``random.Random``.

Every paid thing carries a tag in its prompt or text (``[s3]``, ``[still0]``, ``[line2]``,
``[text0]``) so that the checker can tell, from the fake's records alone, which unit of
work each task paid for; ``units`` says how many paid tasks each tag may take (a shot
with ``takes: 2`` is two units with one prompt). Shots shared by both boards are written
identically and depend only on shared shots, so that they have one cache key.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["TAG", "Boards", "draw_boards"]

TAG = re.compile(r"\[((?:s|b|still|line|text)\d+)\]")
VOICE = {"app": "falai/kokoro-tts", "voice": "af_heart"}
TEXT_APP = "anthropic/claude-haiku-4-5"


@dataclass
class Boards:
    """Two storyboards (YAML text) that share some shots, and what each tag may be paid."""

    a: str
    b: str
    shared: list[str]
    units: dict[str, int] = field(default_factory=dict)  # tag -> paid tasks it may take

    def describe(self) -> str:
        return f"board a:\n{self.a}\nboard b:\n{self.b}\nshared shots: {self.shared}"


def _shot(rng: random.Random, sid: str, earlier: list[str], stills: list[str], quick: bool) -> dict[str, Any]:
    shot: dict[str, Any] = {"id": sid, "prompt": f"soak shot [{sid}] {rng.choice(['harbor', 'storm', 'lamp', 'gull'])}"}
    roll = rng.random()
    if earlier and roll < 0.45:
        parent = rng.choice(earlier)
        shot["image"] = f"@{parent}" if rng.random() < 0.6 else f"@{parent}:first"
    elif stills and roll < 0.65:
        shot["image"] = f"@{rng.choice(stills)}"
    else:
        shot["image"] = None
    if rng.random() < (0.15 if quick else 0.2):
        shot["takes"] = 2
    return shot


def _board(shots: list[dict[str, Any]], stills: list[dict[str, Any]], texts: dict[str, Any]) -> str:
    doc: dict[str, Any] = {"storyboard": 1, "defaults": {"duration": 3, "sound": False}}
    used = {m for s in shots for m in re.findall(r"\{\{ (text\d+) \}\}", s["prompt"])}
    if used:
        doc["vars"] = {name: texts[name] for name in sorted(used)}
    if any("say" in s for s in shots):
        doc["voice"] = VOICE
    needed = {s["image"][1:].split(":")[0] for s in shots if isinstance(s.get("image"), str)}
    kept = [st for st in stills if st["id"] in needed]
    if kept:
        doc["stills"] = kept
    doc["shots"] = shots
    return yaml.safe_dump(doc, sort_keys=False)


def _closure(picked: set[str], shots: dict[str, dict[str, Any]]) -> set[str]:
    """The picked shots with every shot they start from (so a shared shot's key is one)."""
    todo, done = list(picked), set()
    while todo:
        sid = todo.pop()
        if sid in done or sid not in shots:
            continue
        done.add(sid)
        image = shots[sid].get("image")
        if isinstance(image, str):
            todo.append(image[1:].split(":")[0])
    return done


def draw_boards(rng: random.Random, *, quick: bool = False) -> Boards:
    """Board a (3–12 shots; quick: 3–4) and board b: some of a's shots and 1–3 of its own."""
    n = rng.randint(3, 4) if quick else rng.randint(3, 12)
    stills = [{"id": f"still{i}", "prompt": f"soak still [still{i}]"} for i in range(rng.randint(0, 1 if quick else 2))]
    still_ids = [s["id"] for s in stills]
    texts: dict[str, Any] = {}
    a_shots: list[dict[str, Any]] = []
    for i in range(n):
        a_shots.append(_shot(rng, f"s{i}", [s["id"] for s in a_shots], still_ids, quick))
    # one text node read by one shot, and one line spoken over a shot
    reader = rng.choice(a_shots)
    texts["text0"] = {"app": TEXT_APP, "prompt": "A four-word caption [text0]", "max_tokens": 20}
    reader["prompt"] += " {{ text0 }}"
    speaker = rng.choice(a_shots)
    speaker["say"] = "Soak [line0]."
    by_id = {s["id"]: s for s in a_shots}
    shared = sorted(_closure({rng.choice(list(by_id)) for _ in range(rng.randint(1, 3))}, by_id))
    b_shots = [dict(by_id[sid]) for sid in [s["id"] for s in a_shots] if sid in shared]
    for j in range(rng.randint(1, 2 if quick else 3)):
        b_shots.append(_shot(rng, f"b{j}", [s["id"] for s in b_shots], still_ids, quick))
    units: dict[str, int] = {}
    for shot in a_shots + b_shots:
        units[shot["id"]] = int(shot.get("takes", 1))
        if "say" in shot:
            units["line0"] = 1
    for board_shots in (a_shots, b_shots):
        for st in stills:
            if st["id"] in {s["image"][1:] for s in board_shots if isinstance(s.get("image"), str)}:
                units[st["id"]] = 1
        if any("{{ text0 }}" in s["prompt"] for s in board_shots):
            units["text0"] = 1
    return Boards(a=_board(a_shots, stills, texts), b=_board(b_shots, stills, texts), shared=shared, units=units)
