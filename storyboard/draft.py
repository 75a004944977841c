"""`storyboard draft`: a storyboard written from an idea by a text app, or split offline
from a narration script.

From an idea, the model answers through a tool whose parameters are the file format's
JSON Schema (``storyboard.schema.json``), with the video app's limits in the system
prompt. The answer is checked by storyboard's own loader; its located problems go back
to the model at most ``REPAIRS`` times. The file is written with a header saying how it
was made, or nothing is written and the remaining problems are the error. Every call is
a text node's call (:func:`storyboard.runner._text.ask`): cached by its key, so the same
idea and options give the same file for $0.

``--from-script FILE`` splits a narration script into shots (one sentence, or a few, up
to ``--max-shot`` seconds of estimated speech), each with the sentence as its ``say:``
line and a prompt built from it and the board's ``style``: offline and free. With
``--backend inference`` the model writes the visual prompts for those same lines.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = ["DraftOptions", "draft_command", "draft_from_idea", "draft_from_script", "split_script"]

DRAFT_TOOL = "write_storyboard"
PROMPTS_TOOL = "write_prompts"
DEFAULT_TEXT_APP = "anthropic/claude-sonnet-4-6"
DEFAULT_VIDEO_APP = "klingai/video-v3"
REPAIRS = 2  # located problems sent back to the model at most this many times
DRAFT_MAX_TOKENS = 16000
DEFAULT_STYLE = "cinematic, natural light, 35mm film grain"
SENTENCE = re.compile(r"(?<=[.!?…])[\"”’)]*\s+")


@dataclass(frozen=True)
class DraftOptions:
    """What a draft is asked for."""

    shots: int = 6
    aspect: str = "16:9"
    narrate: bool = False
    text_app: str = DEFAULT_TEXT_APP
    video_app: str = DEFAULT_VIDEO_APP
    style: str = DEFAULT_STYLE
    max_shot: float = 8.0


def _limits(video_app: str) -> tuple[int, int, list[str], str]:
    """The video app's (shortest, longest) shot in seconds, its aspect ratios, and its
    limits in words for the system prompt."""
    from storyboard import apps

    prof = apps.profile(video_app.partition("@")[0])
    version = prof.version() if prof is not None else None
    if prof is None or version is None:
        return 3, 10, [], f"{video_app}: no profile known; keep shots 3-10 s"
    props = version.properties
    name = prof.concepts.get("duration", "")
    dur = props.get(name, {})
    values = [int(v) for v in dur.get("enum", []) if str(v).isdigit()]
    ranged = dict(prof.rule(version.version_id, "ranges", {}) or {}).get(name)  # the profile's own range
    low, high = (min(values), max(values)) if values else (int(dur.get("minimum", 3)), int(dur.get("maximum", 10)))
    if ranged:
        low, high = int(ranged[0]), int(ranged[1])
    ratios = [str(r) for r in props.get(prof.concepts.get("aspect_ratio", ""), {}).get("enum", [])]
    refs = ("it takes reference images of characters: give each character a still (`stills:`, an id and a "
            "prompt of their look) and list it in the character's `references: [\"@ID\"]`"
            if prof.concepts.get("references") else "it takes no reference images: describe each character in words")
    if prof.excludes.get(prof.concepts.get("references", "")):
        refs += "; a shot given references must say `image: null` (the app takes them without a start frame)"
    chars = prof.rule(prof.current, "prompt_chars")
    words = (f"{video_app}: shots of {low} to {high} seconds (whole seconds); aspect ratios "
             f"{', '.join(ratios) or 'any'}; {refs}" + (f"; prompts of at most {chars} characters" if chars else ""))
    return low, high, ratios, words


def system_prompt(opts: DraftOptions) -> str:
    """What the model is told: the format, the app's limits, what to write."""
    _low, _high, _ratios, limits = _limits(opts.video_app)
    narrate = ("Give every shot a `say:` narration line that fits its duration (about 2.5 words a second). "
               if opts.narrate else "")
    return (
        "You write storyboards for `storyboard`, a tool that renders a YAML storyboard into a multi-shot film. "
        f"Answer only by calling the tool {DRAFT_TOOL} with the whole storyboard as its arguments; they must "
        "satisfy its JSON Schema. Write `storyboard: 1`, a `title`, "
        f"`defaults: {{aspect_ratio: '{opts.aspect}', app: {opts.video_app}}}` and exactly {opts.shots} shots, "
        "each with a lowercase `id` and a vivid, concrete visual `prompt` (subject, action, camera, light). "
        "A shot starts on the previous shot's last frame unless it says `image: null`. Put anyone who appears "
        "in two shots or more under `characters:` with a `description`, and list them in those shots' "
        "`characters:`. " + narrate + f"The video app's limits: {limits}."
    )


def _tool(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": dict(parameters)}}


def parse_answer(answer: Mapping[str, Any], tool: str) -> dict[str, Any] | None:
    """The tool call's arguments, else a JSON object in the text (the app has no
    ``tool_choice``: a model may answer in text), else None."""
    for call in answer.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("name") == tool:
            args = fn.get("arguments")
            try:
                got = json.loads(args) if isinstance(args, str) else args
            except json.JSONDecodeError:
                continue
            if isinstance(got, dict):
                return got
    text = str(answer.get("response") or "")
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, re.S)
    start, end = text.find("{"), text.rfind("}")
    for candidate in [*fenced, text[start:end + 1] if 0 <= start < end else ""]:
        try:
            got = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(got, dict):
            return got
    return None


def header(app: str, version: str, origin: str) -> str:
    """The comment a drafted file starts with: how it was made."""
    return f"# drafted by `storyboard draft` with {app} (version {version}) from {origin}\n"


def check_text(text: str, out: Path) -> list[str]:
    """The located problems storyboard's own loader finds in ``text`` (as ``out``)."""
    from storyboard.board import load
    from storyboard.errors import SpecError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / out.name
        path.write_text(text, encoding="utf-8")
        try:
            load(path)
        except SpecError as e:
            return [str(p).replace(str(path), out.name) for p in e.problems]
    return []


def _yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=100)


Ask = Callable[[str, str, list[dict[str, Any]]], dict[str, Any]]


def converse(ask: Ask, system: str, text: str, tool: dict[str, Any],
             build: Callable[[dict[str, Any]], tuple[str, list[str]]]) -> str:
    """Ask until ``build`` (arguments → file text, problems) finds no problem: one retry
    for an answer with no tool call and no JSON, at most ``REPAIRS`` rounds of problems
    sent back. Returns the file text; raises StoryboardError with the remaining problems."""
    from storyboard.errors import BackendError, StoryboardError

    name = tool["function"]["name"]
    message, retried, repairs = text, False, 0
    while True:
        args = parse_answer(ask(system, message, [tool]), name)
        if args is None:
            if retried:
                raise BackendError(f"the text app answered twice with no call of {name} and no JSON object; "
                                   "nothing was written (try again, or another --text-app)")
            retried = True
            message = f"{text}\n\nAnswer only by calling the tool {name} with the whole answer as its arguments."
            continue
        body, problems = build(args)
        if not problems:
            return body
        if repairs == REPAIRS:
            raise StoryboardError(f"the draft is still invalid after {REPAIRS} repairs; nothing was written:\n"
                            + "\n".join(f"  {p}" for p in problems))
        repairs += 1
        message = (f"{text}\n\nYour last answer:\n```yaml\n{body}```\nstoryboard's loader found these problems; "
                   f"fix them and call {name} again with the whole corrected answer:\n"
                   + "\n".join(f"- {p}" for p in problems))


def draft_from_idea(idea: str, out: Path, opts: DraftOptions, ask: Ask, version: str) -> str:
    """The drafted file's text for ``idea`` (validated), written by the model through ``ask``."""
    from storyboard.spec.models import json_schema

    head = header(opts.text_app, version, f"the idea: {json.dumps(idea, ensure_ascii=False)}")
    tool = _tool(DRAFT_TOOL, "Write the whole storyboard.", json_schema())

    def build(args: dict[str, Any]) -> tuple[str, list[str]]:
        body = head + _yaml(args)
        problems = check_text(body, out)
        shots = args.get("shots")
        if not problems and isinstance(shots, list) and len(shots) != opts.shots:
            problems.append(f"{out.name}: the storyboard has {len(shots)} shots; exactly {opts.shots} are asked for")
        if not problems and opts.narrate:
            problems += [f"{out.name}: shot '{s.get('id')}' has no say: line (--narrate)" for s in shots or []
                         if isinstance(s, dict) and not s.get("say")]
        return body, problems

    text = (f"Idea: {idea}\nShots: {opts.shots}. Aspect ratio: {opts.aspect}."
            + (" Narrated (say: lines)." if opts.narrate else ""))
    return converse(ask, system_prompt(opts), text, tool, build)


def split_script(script: str, max_shot: float) -> list[str]:
    """A narration script as shot lines: one sentence, or a few while their estimated speech
    stays within ``max_shot`` seconds (a longer sentence is a shot of its own)."""
    from storyboard.narration import estimate_seconds

    lines: list[str] = []
    for sentence in (s.strip() for s in SENTENCE.split(" ".join(script.split())) if s.strip()):
        joined = f"{lines[-1]} {sentence}" if lines else sentence
        if lines and estimate_seconds(joined) <= max_shot:
            lines[-1] = joined
        else:
            lines.append(sentence)
    return lines


def draft_from_script(script: str, out: Path, opts: DraftOptions, ask: Ask | None, version: str = "") -> str:
    """A narrated board from a script: a shot per line with its ``say:``; the prompts built
    from the lines and ``style`` (offline), or written by the model (``ask``)."""
    from storyboard.narration import estimate_seconds

    low, high, _ratios, _limits_text = _limits(opts.video_app)
    lines = split_script(script, opts.max_shot)
    if not lines:
        from storyboard.errors import StoryboardError

        raise StoryboardError("the script has no sentence to make a shot of")

    def shot(i: int, line: str, prompt: str) -> dict[str, Any]:
        need = math.ceil(estimate_seconds(line) + 0.5)
        out = {"id": f"s{i + 1}", "prompt": f"{prompt.rstrip(' .!?')}. {{{{ style }}}}", "say": line,
               "duration": min(high, max(low, need))}
        return {**out, "fit": "extend"} if need > high else out  # a line longer than the app's longest shot

    def board(prompts: list[str]) -> dict[str, Any]:
        shots = [shot(i, line, p) for i, (line, p) in enumerate(zip(lines, prompts, strict=True))]
        return {"storyboard": 1, "title": out.stem.replace("-", " ").replace("_", " ").capitalize(),
                "vars": {"style": opts.style}, "defaults": {"aspect_ratio": opts.aspect, "app": opts.video_app},
                "captions": "file", "shots": shots}

    if ask is None:
        head = f"# drafted offline by `storyboard draft --from-script` ({len(lines)} shots)\n"
        return head + _yaml(board(lines))
    head = header(opts.text_app, version, "a script: the model wrote the visual prompts")
    parameters = {"type": "object", "required": ["prompts"], "properties": {"prompts": {
        "type": "array", "items": {"type": "string", "minLength": 8}, "minItems": len(lines), "maxItems": len(lines),
        "description": "one visual prompt per narration line, in order"}}}
    tool = _tool(PROMPTS_TOOL, "Write one visual prompt per narration line.", parameters)

    def build(args: dict[str, Any]) -> tuple[str, list[str]]:
        prompts = args.get("prompts")
        if not isinstance(prompts, list) or len(prompts) != len(lines) or not all(isinstance(p, str) for p in prompts):
            return json.dumps(args), [f"prompts must be a list of exactly {len(lines)} texts, one per line"]
        body = head + _yaml(board([str(p) for p in prompts]))
        return body, check_text(body, out)

    system = (f"You write visual prompts for the shots of a narrated film (style: {opts.style}). Answer only by "
              f"calling {PROMPTS_TOOL}. The video app's limits: {_limits_text}.")
    numbered = "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))
    return converse(ask, system, f"Narration lines, one shot each:\n{numbered}", tool, build)


def _asker(backend: Any, out: Path, opts: DraftOptions, loop: asyncio.AbstractEventLoop) -> tuple[Ask, str]:
    """An ``ask`` through the backend (each call cached by its key, all on ``loop``), and
    the app's version."""
    from storyboard import apps
    from storyboard.cache import open_cache
    from storyboard.events import ShotResult
    from storyboard.runner import ask_text as ask_node
    from storyboard.textnodes import TextSpec, text_key, text_request

    backend.check_ready()
    ref = apps.parse_app_ref(opts.text_app)
    prof = apps.profile(ref.name)
    if prof is None or prof.kind != "text":
        from storyboard.errors import StoryboardError

        raise StoryboardError(f"--text-app {opts.text_app} is not a text app")
    payload = loop.run_until_complete(backend.get_app(opts.text_app))
    version = ref.version or apps.app_from_api(payload, ref.name).version_id
    cache = open_cache(out)
    ts = TextSpec("draft", opts.text_app, "", DRAFT_MAX_TOKENS)

    def ask(system: str, text: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
        base = text_request(ts, text, version if ref.version is None else None)
        inputs = {**dict(base.inputs or {}), "system_prompt": system, "tools": tools, "temperature": 0.0}
        request = type(base)(**{**base.__dict__, "inputs": inputs})
        key = text_key(request, "app")
        result = ShotResult(id="draft", key=key)
        return loop.run_until_complete(ask_node(request, key, "draft", backend, cache, lambda _e: None, out, result))

    return ask, version


def _check_options(opts: DraftOptions) -> None:
    """Refuse, before any call, an aspect ratio or a video app the board could not use."""
    from storyboard import apps
    from storyboard.errors import StoryboardError
    from storyboard.spec import ASPECT_RATIOS

    if apps.profile(opts.video_app.partition("@")[0]) is None:
        raise StoryboardError(f"--video-app {opts.video_app}: no such app; known: {', '.join(apps.known_apps())}")
    ratios = _limits(opts.video_app)[2] or list(ASPECT_RATIOS)
    if opts.aspect not in ratios:
        raise StoryboardError(f"--aspect {opts.aspect}: {opts.video_app} takes {', '.join(ratios)}")


@click.command("draft")
@click.argument("idea", required=False)
@click.option("--shots", type=click.IntRange(1, 100), default=6, show_default=True, help="How many shots.")
@click.option("--aspect", default="16:9", show_default=True, help="Aspect ratio of every shot.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The storyboard file to write.")
@click.option("--narrate", is_flag=True, help="Give every shot a say: narration line.")
@click.option("--text-app", default=DEFAULT_TEXT_APP, show_default=True, help="The text app that writes.")
@click.option("--video-app", default=DEFAULT_VIDEO_APP, show_default=True, help="The video app the board uses.")
@click.option("--style", default=DEFAULT_STYLE, show_default=True, help="The board's style variable (scripts).")
@click.option("--from-script", "script", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Split a narration script into shots instead (offline and free).")
@click.option("--max-shot", type=click.FloatRange(1, 60), default=8.0, show_default=True,
              help="Most seconds of estimated speech per shot (--from-script).")
@click.option("--backend", type=click.Choice(["inference", "animatic"]), default=None,
              help="inference: the text app writes (default for an idea); animatic: offline (scripts only).")
def draft_command(idea: str | None, shots: int, aspect: str, output: Path, narrate: bool, text_app: str,
                  video_app: str, style: str, script: Path | None, max_shot: float, backend: str | None) -> None:
    """Write a storyboard from an IDEA (a text app drafts it), or --from-script FILE."""
    from storyboard.backends import get_backend
    from storyboard.errors import StoryboardError

    opts = DraftOptions(shots=shots, aspect=aspect, narrate=narrate, text_app=text_app, video_app=video_app,
                        style=style, max_shot=max_shot)
    name = backend or ("animatic" if script is not None else "inference")
    loop = asyncio.new_event_loop()
    maker = get_backend(name)
    try:
        if script is None and not idea:
            raise StoryboardError("draft needs an IDEA (in quotes) or --from-script FILE")
        _check_options(opts)
        if script is None and name != "inference":
            raise StoryboardError("drafting from an idea needs a text app: --backend inference "
                                  "(offline, draft --from-script FILE)")
        ask, version = _asker(maker, output, opts, loop) if name == "inference" else (None, "")
        if script is not None:
            text = draft_from_script(script.read_text(encoding="utf-8"), output, opts, ask, version)
        else:
            assert ask is not None and idea is not None
            text = draft_from_idea(idea, output, opts, ask, version)
        problems = check_text(text, output)
        if problems:  # a script's board is checked like a model's
            raise StoryboardError("the draft is invalid; nothing was written:\n"
                                  + "\n".join(f"  {p}" for p in problems))
    except StoryboardError as e:
        click.echo(str(e) if "\n" in str(e) else f"error: {e}", err=True)
        sys.exit(e.exit_code)
    finally:
        loop.run_until_complete(maker.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    import yaml

    count = len(yaml.safe_load(text).get("shots") or [])
    click.echo(f"wrote {output} ({count} shots); next: storyboard plan {output}")
