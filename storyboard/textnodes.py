"""Text nodes: a `vars:` entry written by a text app instead of by hand.

    vars:
      product: teal bottle
      tagline: {app: anthropic/claude-haiku-4-5, max_tokens: 60,
                prompt: "A six-word tagline for a {{ product }}"}

Each is a node made before any shot (like a narration line): its prompt is rendered
with the board's variables (and the text nodes it reads, made first), it is keyed by
app, version, rendered prompt and options (:func:`text_key`), priced by tokens, and its
answer becomes the variable every prompt reads. Offline, or before it is made, the
value is a visible placeholder, ``[tagline: A six-word tagline for a teal bottle]``.

A text node may read variables and other text nodes, never itself and never a shot
(shots are made after it): either is a cycle, one located line. Pure.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from storyboard import apps
from storyboard.errors import AppError, Problem, PromptError, SpecError
from storyboard.prompts import PromptRenderer
from storyboard.request import ShotRequest, cache_key
from storyboard.spec import Spec

__all__ = ["DEFAULT_MAX_TOKENS", "OPTIONS", "TextNode", "TextSpec", "is_text_var", "render_texts", "text_key",
           "text_request", "text_specs"]

DEFAULT_MAX_TOKENS = 1024  # what a text node may write when it does not say
OPTIONS = ("app", "prompt", "max_tokens", "system", "temperature")


@dataclass(frozen=True)
class TextSpec:
    """A text node as written under `vars:`."""

    name: str
    app: str  # the app reference as written
    prompt: str  # a template
    max_tokens: int = DEFAULT_MAX_TOKENS
    system: str | None = None
    temperature: float | None = None
    reads: tuple[str, ...] = ()  # the other text nodes its prompt reads


@dataclass(frozen=True)
class TextNode:
    """A text node with its prompt rendered: its request, and its value (the answer, or
    the placeholder while it is not made)."""

    spec: TextSpec
    prompt: str
    request: ShotRequest
    value: str
    made: bool  # whether ``value`` is the app's answer (else the placeholder)

    @property
    def name(self) -> str:
        """The variable it sets."""
        return self.spec.name

    @property
    def id(self) -> str:
        """Its id in plans, journals and reports: ``text:NAME``."""
        return f"text:{self.spec.name}"

    @property
    def placeholder(self) -> str:
        """What stands for it offline: ``[name: rendered prompt]``."""
        return f"[{self.spec.name}: {self.prompt}]"


def is_text_var(value: Any) -> bool:
    """Whether a `vars:` value is a text node (a mapping with ``app``)."""
    return isinstance(value, Mapping) and "app" in value


def _parse(spec: Spec, name: str, raw: Mapping[str, Any], problems: list[Problem]) -> TextSpec | None:
    where = ("vars", name)
    for key in raw:
        if key not in OPTIONS:
            problems.append(spec.source.problem(f"vars.{name}: unknown text-node option '{key}'; allowed: "
                                                f"{', '.join(OPTIONS)}", (*where, key)))
    app, prompt = raw.get("app"), raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(spec.source.problem(f"vars.{name}: a text node needs a prompt (text)", where))
        return None
    try:
        ref = apps.parse_app_ref(str(app))
    except AppError as e:
        problems.append(spec.source.problem(f"vars.{name}: {e}", (*where, "app")))
        return None
    prof = apps.profile(ref.name)
    if prof is None or prof.kind != "text":
        texts = [a for a in apps.known_apps() if (p := apps.profile(a)) is not None and p.kind == "text"]
        problems.append(spec.source.problem(f"vars.{name}: app '{app}' is not a text app; text nodes use one of: "
                                            f"{', '.join(texts)}", (*where, "app")))
        return None
    limit = int(prof.rule(prof.current, "max_tokens", 64000))
    tokens = raw.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= limit:
        problems.append(spec.source.problem(f"vars.{name}: max_tokens {tokens!r} is over what {ref.name} allows: "
                                            f"a whole number from 1 to {limit}", (*where, "max_tokens")))
        return None
    temp = raw.get("temperature")
    if temp is not None and (isinstance(temp, bool) or not isinstance(temp, int | float) or not 0 <= temp <= 1):
        problems.append(spec.source.problem(f"vars.{name}: temperature must be a number from 0 to 1",
                                            (*where, "temperature")))
        return None
    system = raw.get("system")
    return TextSpec(name, str(app), prompt, tokens, None if system is None else str(system),
                    None if temp is None else float(temp))


def text_specs(spec: Spec, given: Mapping[str, Any] | None = None) -> list[TextSpec]:
    """The storyboard's text nodes in the order they are made (a node after those it
    reads); a name set by ``given`` (``--set``) is a plain variable. Raises SpecError
    (located) for a bad option, a non-text app, ``max_tokens`` over the app's limit, or
    a cycle: a node reading itself, a shot, or a node that reads it back."""
    raw = {n: v for n, v in spec.model.vars.items() if is_text_var(v) and n not in (given or {})}
    if not raw:
        return []
    problems: list[Problem] = []
    parsed = {n: s for n, v in raw.items() if (s := _parse(spec, n, v, problems)) is not None}
    renderer = PromptRenderer(spec.template_dirs)
    for name, ts in list(parsed.items()):
        used = renderer.names_used(inline=ts.prompt) or set()
        if name in used:
            problems.append(spec.source.problem(f"vars.{name}: its prompt reads '{name}' itself, a cycle; a text "
                                                "node may read other variables only", ("vars", name, "prompt")))
        elif used & {"shot", "shots"}:
            problems.append(spec.source.problem(f"vars.{name}: its prompt reads a shot, a cycle (text nodes are made "
                                                "before any shot); read variables only", ("vars", name, "prompt")))
        parsed[name] = replace(ts, reads=tuple(sorted(used & set(raw) - {name})))
    if problems:
        raise SpecError(problems)
    try:
        order = list(graphlib.TopologicalSorter({n: s.reads for n, s in parsed.items()}).static_order())
    except graphlib.CycleError as e:
        cycle = list(e.args[1])
        raise SpecError([spec.source.problem(f"vars.{cycle[0]}: text nodes read each other in a cycle: "
                                             f"{' -> '.join(cycle)}", ("vars", cycle[0], "prompt"))]) from None
    return [parsed[n] for n in order]


def text_request(ts: TextSpec, prompt: str, version: str | None = None) -> ShotRequest:
    """The request a text node sends: its rendered prompt and options, the app's names."""
    inputs: dict[str, Any] = {"text": prompt, "max_tokens": ts.max_tokens, "stream": False}
    if ts.system is not None:
        inputs["system_prompt"] = ts.system
    if ts.temperature is not None:
        inputs["temperature"] = ts.temperature
    return ShotRequest(shot_id=f"text:{ts.name}", prompt=prompt, app=ts.app, version=version, kind="text",
                       inputs=inputs, image_input=None, end_image_input=None)


def text_key(request: ShotRequest, backend: str) -> str:
    """A text node's cache key: the one rule (:func:`storyboard.request.cache_key`) over its
    app, version, rendered prompt and options."""
    return cache_key(request, backend=backend, images={})


def render_texts(spec: Spec, specs: list[TextSpec], base: Mapping[str, Any],
                 made: Mapping[str, str] | None = None,
                 versions: Mapping[str, str] | None = None) -> tuple[list[TextNode], dict[str, str]]:
    """Each text node's prompt rendered in order with ``base`` and the nodes before it
    (their answers in ``made``, else their placeholders); returns the nodes and the
    variables they set. Raises SpecError (located) for a prompt that fails."""
    renderer = PromptRenderer(spec.template_dirs)
    plain = {k: v for k, v in base.items() if not is_text_var(v)}
    values: dict[str, str] = {}
    nodes: list[TextNode] = []
    for ts in specs:
        context = {**plain, **values, "vars": {**plain, **values}}
        try:
            prompt = renderer.render(inline=ts.prompt, context=context).strip()
        except PromptError as e:
            raise SpecError([spec.source.problem(f"vars.{ts.name}: prompt: {e.message}",
                                                 ("vars", ts.name, "prompt"))]) from None
        request = text_request(ts, prompt, (versions or {}).get(ts.app))
        node = TextNode(ts, prompt, request, "", made=ts.name in (made or {}))
        node = replace(node, value=(made or {}).get(ts.name, node.placeholder))
        nodes.append(node)
        values[ts.name] = node.value
    return nodes, values
