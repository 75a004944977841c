"""The judge: `pick: auto` on a shot with takes, a vision app picks the take.

One request per shot to the `judge:` app (a text app that takes images): each take's
handoff (last) frame and its middle frame, the characters' references and the still the
shot starts from, and the shot's prompt; the model answers by a call of ``pick_take``
``{take, reason}`` (with ``--reroll-drifted``, ``take`` may be ``"none"``). Its verdict
is keyed by the app, the prompt and the takes' keys (:func:`verdict_key`), so the plan
knows it before any clip exists and a re-render asks nothing. A take picked by hand
(the lock file) always wins and is never sent. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from storyboard import apps
from storyboard.errors import AppError, Problem, SpecError
from storyboard.request import ShotRequest, cache_key
from storyboard.spec import Spec

__all__ = ["DEFAULT_JUDGE", "JUDGE_TOOL", "auto_shots", "check_judging", "judge_app", "parse_verdict",
           "reference_images", "verdict_key", "verdict_request", "verdict_rows"]

DEFAULT_JUDGE = "anthropic/claude-sonnet-4-6"
JUDGE_TOOL = "pick_take"
JUDGE_MAX_TOKENS = 1024
SYSTEM = ("You judge takes of one shot of a film. For each take you see its last frame (where the next shot "
          "starts) and its middle frame, in take order, then the characters' reference images and the still "
          "the shot starts from, if any. Pick the take that best follows the prompt and keeps every character "
          f"consistent with the references. Answer only by calling {JUDGE_TOOL}.")


def judge_app(spec: Spec) -> str:
    """The judge's app reference: the file's `judge:`, else the default."""
    return spec.model.judge or DEFAULT_JUDGE


def auto_shots(spec: Spec) -> list[str]:
    """The shots (not stills) the judge picks for: `pick: auto` (or in defaults) with takes."""
    default = spec.model.defaults.pick
    models = {s.id: s for s in spec.model.shots}
    return [s.id for s in spec.shots if not s.is_still and s.takes > 1 and s.id in models
            and (models[s.id].pick or default) == "auto"]


def check_judging(spec: Spec) -> None:
    """Raise SpecError (located) for `pick: auto` without takes, or a judge app that takes
    no images."""
    problems: list[Problem] = []
    takes = {s.id: s.takes for s in spec.shots}
    for shot in spec.model.shots:
        if shot.pick == "auto" and takes.get(shot.id, 1) < 2:
            problems.append(spec.source.problem(f"shot '{shot.id}': pick: auto needs takes: 2 or more "
                                                "(the judge picks among the takes)",
                                                spec.shot_path(shot.id, "pick")))
    if spec.model.defaults.pick == "auto" and not any(t > 1 for t in takes.values()):
        problems.append(spec.source.problem("defaults: pick: auto needs takes: 2 or more on some shot",
                                            ("defaults", "pick")))
    if auto_shots(spec) or spec.model.judge:
        ref = judge_app(spec)
        try:
            prof = apps.profile(apps.parse_app_ref(ref).name)
        except AppError as e:
            prof = None
            problems.append(spec.source.problem(f"judge: {e}", ("judge",)))
        else:
            if prof is None or prof.kind != "text" or "images" not in prof.concepts:
                problems.append(spec.source.problem(
                    f"judge: app '{ref}' takes no images; the judge must see the takes: use a vision app "
                    f"such as {DEFAULT_JUDGE}", ("judge",)))
    if problems:
        raise SpecError(problems)


def _tool(takes: int, allow_none: bool) -> dict[str, Any]:
    take: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": takes, "description": "the take picked"}
    if allow_none:
        take = {"anyOf": [take, {"type": "string", "enum": ["none"],
                                 "description": "none: no take is acceptable (the shot is generated again)"}]}
    return {"type": "function", "function": {
        "name": JUDGE_TOOL, "description": "Pick the best take of the shot.",
        "parameters": {"type": "object", "required": ["take", "reason"],
                       "properties": {"take": take, "reason": {"type": "string", "description": "one sentence"}}}}}


def verdict_request(app: str, shot_id: str, prompt: str, takes: int, *, allow_none: bool = False,
                    images: Sequence[Any] = (), extra_images: int = 0, version: str | None = None) -> ShotRequest:
    """The judge's request for one shot: its prompt, the tool, and the images (local files
    in ``images``; their count alone, ``2 * takes + extra_images``, when planning)."""
    text = (f"The shot's prompt: {prompt}\nThere are {takes} takes; the images come 2 per take (last frame, "
            f"middle frame) in take order, then the references.")
    if allow_none:
        text += ' Answer take "none" if no take is acceptable.'
    inputs: dict[str, Any] = {"text": text, "system_prompt": SYSTEM, "tools": [_tool(takes, allow_none)],
                              "max_tokens": JUDGE_MAX_TOKENS, "temperature": 0.0, "stream": False}
    if not images:
        inputs["images"] = [f"image {i + 1}" for i in range(2 * takes + extra_images)]  # priced, never sent
    return ShotRequest(shot_id=f"judge:{shot_id}", prompt=prompt, app=app, version=version, kind="text",
                       inputs=inputs, image_input=None, end_image_input=None, references=tuple(images),
                       references_input="images" if images else None)


def verdict_key(request: ShotRequest, take_keys: Sequence[str], attempt: int = 1) -> str:
    """The verdict's cache key: the judge's app and version, the shot's prompt, what the
    judge is told and the takes' keys (not the images: they are functions of the takes,
    so the plan knows the key before any clip exists); ``attempt`` 2 is the one retry."""
    inputs = {k: v for k, v in (request.inputs or {}).items() if k in ("system_prompt", "max_tokens", "temperature")}
    bare = ShotRequest(shot_id=request.shot_id, prompt=request.prompt, app=request.app, version=request.version,
                       kind="text", inputs={**inputs, "prompt": request.prompt})
    return cache_key(bare, backend="app", images={"takes": list(take_keys), **({"attempt": attempt} if attempt > 1 else {})})


def verdict_rows(spec: Spec, takes: Mapping[str, tuple[str, Sequence[str | None]]], picks: Mapping[str, int],
                 versions: Mapping[str, str]) -> list[tuple[str, ShotRequest, str]]:
    """(shot, request, key) of each verdict a plan lists: the `pick: auto` shots used
    (``takes``: shot → its prompt and its takes' keys, in take order) not picked by hand;
    the key is "" while a take's key waits on a parent's clip."""
    app = judge_app(spec)
    out = []
    for sid in auto_shots(spec):
        if sid not in takes or sid in picks:
            continue
        prompt, keys = takes[sid]
        req = verdict_request(app, sid, prompt, len(keys), version=versions.get(app),
                              extra_images=len(reference_images(spec, sid)))
        out.append((sid, req, verdict_key(req, [str(k) for k in keys]) if all(keys) else ""))
    return out


def parse_verdict(answer: Mapping[str, Any], takes: int, allow_none: bool) -> tuple[int | None, str] | None:
    """(take, reason) from the judge's answer (``None`` take: "none"), or None when it
    answered nothing usable (no call of the tool and no JSON object in its text)."""
    args: Any = None
    for call in answer.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("name") == JUDGE_TOOL:
            try:
                args = json.loads(fn["arguments"]) if isinstance(fn.get("arguments"), str) else fn.get("arguments")
            except json.JSONDecodeError:
                args = None
    if not isinstance(args, Mapping):
        text = str(answer.get("response") or "")
        start, end = text.find("{"), text.rfind("}")
        try:
            args = json.loads(text[start:end + 1]) if 0 <= start < end else None
        except json.JSONDecodeError:
            args = None
    if not isinstance(args, Mapping):
        return None
    take, reason = args.get("take"), str(args.get("reason") or "").strip()
    if take == "none" and allow_none:
        return None, reason
    if isinstance(take, str) and take.isdigit():
        take = int(take)
    if isinstance(take, int) and not isinstance(take, bool) and 1 <= take <= takes:
        return take, reason
    return None if not allow_none else (None, reason or "no valid take named")


def reference_images(spec: Spec, shot_id: str) -> list[Any]:
    """The shot's characters' reference images and its start still, as sources: image
    files, or frame references to stills (made by the render)."""
    from storyboard.request import FrameRef

    shot = spec.shot(shot_id)
    out: list[Any] = list(shot.references)
    if isinstance(shot.image, FrameRef) and spec.shot(shot.image.shot).is_still:
        out.append(shot.image)
    return out
