"""A loaded storyboard: the validated file, its shot graph and its rendered prompts.

Pure: reads the storyboard, its images (to check and hash them) and its templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard import apps
from storyboard.errors import Problem, PromptError, SpecError, TemplateError
from storyboard.graph import ShotGraph
from storyboard.judging import check_judging
from storyboard.music import MusicTrack, render_music
from storyboard.narration import Line, OverlayText, render_lines, render_overlays
from storyboard.plan import CacheView, Plan, make_plan
from storyboard.prompts import PromptRenderer, ShotsSoFar, library_dir
from storyboard.readnames import EVERY_VAR, recording
from storyboard.request import FrameRef
from storyboard.shotcontext import template_context
from storyboard.shotinputs import ShotInputs, allowed_values, resolve_inputs
from storyboard.spec import OVERRIDABLE, ResolvedShot, Spec, load_spec, near
from storyboard.stills import reference_labels
from storyboard.takes import Lock, read_lock
from storyboard.textnodes import TextNode, render_texts, text_specs

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal

    from storyboard.apps import AppVersion
    from storyboard.backends.base import Backend
    from storyboard.request import ShotRequest


@dataclass(frozen=True)
class Board:
    """A storyboard ready to plan and render."""

    spec: Spec
    graph: ShotGraph
    prompts: Mapping[str, str]
    vars: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, ShotInputs] = field(default_factory=dict)
    lines: Mapping[str, Line] = field(default_factory=dict)  # narration, by shot id
    overlays: Mapping[str, OverlayText] = field(default_factory=dict)  # text over shots, by shot id
    music: tuple[MusicTrack, ...] = ()  # generated `audio:` tracks (storyboard.music)
    audio_versions: Mapping[str, str] = field(default_factory=dict)  # voice/music app → version read live
    overrides: Mapping[str, Any] = field(default_factory=dict)
    lock: Lock | None = None  # the picked takes (storyboard.takes), read beside the file
    notes: tuple[str, ...] = ()  # what adapting the board changed, said once (a draft's moved durations)
    names_read: frozenset[str] | None = None  # every name the templates read while loading (readnames)
    texts: tuple[TextNode, ...] = ()  # `vars:` written by a text app (storyboard.textnodes), in order

    @property
    def path(self) -> Path:
        """The storyboard file."""
        return self.spec.path

    @property
    def title(self) -> str:
        """The film's title: the file's ``title``, else its stem."""
        return self.spec.model.title or self.spec.path.stem

    @property
    def shots(self) -> tuple[ResolvedShot, ...]:
        """The shots, in file order."""
        return self.spec.shots

    @property
    def cut(self) -> tuple[str, ...]:
        """The shot ids of the film, in order."""
        return self.spec.cut

    @property
    def variant_name(self) -> str:
        """The overrides as a file-name part (``9x16-pro``); empty when there are none."""
        parts = [str(self.overrides[k]).replace(":", "x").replace("/", "_").replace("@", "-")
                 for k in OVERRIDABLE if k in self.overrides]
        return "-".join(parts)

    @property
    def output(self) -> Path:
        """Where the film goes; a variant (``overrides``) never overwrites the film itself."""
        out = self.spec.output
        name = self.variant_name
        return out.with_name(f"{out.stem}.{name}{out.suffix}") if name else out

    def unused_vars(self, names: Iterable[str]) -> list[tuple[str, str | None]]:
        """Which of ``names`` (e.g. ``--set`` keys) no prompt reads, each with the nearest
        name that one does read (or None). Empty when a prompt's variables cannot be told
        from its text (see :meth:`PromptRenderer.names_used`)."""
        names = list(names)
        if not names:  # nothing to check: no need to parse every template
            return []
        used = self.names_read if self.names_read is not None else names_used(self.spec)
        if used is None or EVERY_VAR in used:
            return []
        known = sorted(used - CONTEXT_NAMES)
        return [(n, near(n, known)) for n in names if n not in used]

    def plan(self, *, backend: str | Backend | None = None, cache: CacheView | None = None, variant: str = "",
             force: frozenset[str] = frozenset(),
             price: Callable[[ShotRequest], Decimal | None] | None = None, speaker: str | None = None) -> Plan:
        """The plan (pure). Pass ``cache`` (e.g. ``open_cache(path, create=False)``) to
        see cache hits; without it every shot is to be generated.

        ``backend`` is a backend object (its name, ``variant`` and ``price`` are used) or a
        name; with a name, ``variant`` and ``price`` are the caller's, and costs default to
        the apps' own price estimates. Planning never loads a backend itself. ``speaker``
        names the offline voice when the backend does not voice `say:` lines with the app.
        """
        if backend is not None and not isinstance(backend, str):
            variant = variant or str(getattr(backend, "variant", "") or "")
            price = price or backend.price
            speaker = speaker or getattr(backend, "speaker", None)
            backend = backend.name
        name = backend or self.spec.model.backend
        return make_plan(self, backend=name, cache=cache, variant=variant, force=force, price=price,
                         speaker=speaker)

    def with_live_apps(self, live: Mapping[str, AppVersion]) -> Board:
        """This board with every shot's inputs checked against the app versions read live
        (app reference as written → version). Raises SpecError naming what changed."""
        return replace(self, inputs=resolve_inputs(self.spec, self.prompts, live))

    def unused_characters(self) -> list[str]:
        """Characters that no shot lists (worth a warning, not an error)."""
        from storyboard.spec.stills import unused_characters

        return unused_characters(self.spec.model)

    def apps_used(self) -> list[str]:
        """Each app reference the shots and stills use, as written, in file order (a title
        card is drawn here: it uses none)."""
        return list(dict.fromkeys(s.app for s in self.spec.shots if s.kind != "title"))


def build_graph(spec: Spec) -> ShotGraph:
    """The shot graph of a spec; raises GraphError (located) on a cycle."""
    edges: list[tuple[str, str, str]] = []
    for shot in spec.shots:
        for role, ref in shot.parents():
            edges.append((ref.shot, shot.id, ref.selector_text if role == "image" else f"end:{ref.selector_text}"))
    graph = ShotGraph((s.id for s in spec.shots), edges, {s.id: float(s.duration) for s in spec.shots})

    def locate(parent: str, child: str, message: str) -> Problem | None:
        # the image/end_image value of `child` that names `parent`, if it is written
        for role, ref in spec.shot(child).parents():
            path = spec.shot_path(child, role)
            if ref.shot == parent and path in spec.source.values:
                return spec.source.problem(message, path)
        return None

    graph.check(str(spec.path), locate)
    return graph


# names every prompt's context has besides the storyboard's vars (never a --set suggestion)
CONTEXT_NAMES = frozenset({"vars", "shot", "shots", "characters", "range", "template_error"})


def render_prompts(spec: Spec, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Render every shot's prompt in file order. Collects every problem."""
    renderer = PromptRenderer(spec.template_dirs)
    base = {**spec.model.vars, **(overrides or {})}
    problems: list[Problem] = []
    rendered: dict[str, str] = {}
    shots_ctx = ShotsSoFar()
    for shot in spec.shots:
        people = {n: spec.model.characters[n].description for n in shot.characters}
        labels = reference_labels(spec, shot)  # how the app names each character's images (``@image_1``)
        context = {**template_context(base, shot), "shots": shots_ctx, "characters": people,
                   "references": {n: labels.get(n, "") for n in people}}
        fld = "prompt" if shot.prompt is not None else "template"
        try:
            text = renderer.render(inline=shot.prompt, template=shot.template, context=context)
            text = with_characters(renderer, shot, text, people, labels)
        except PromptError as e:
            shots_ctx.failed.add(shot.id)
            problems.append(_prompt_problem(spec, shot, fld, e))
            continue
        if not text:
            problems.append(spec.source.problem(
                f"shot '{shot.id}': the prompt renders to nothing; every shot needs a prompt", spec.shot_path(shot.id, fld)))
            shots_ctx.failed.add(shot.id)
            continue
        rendered[shot.id] = text
        shots_ctx[shot.id] = {"id": shot.id, "index": shot.index, "prompt": text, "duration": shot.duration}
    if problems:
        raise TemplateError(problems)
    return rendered, base


def with_characters(renderer: PromptRenderer, shot: ResolvedShot, text: str, people: Mapping[str, str],
                    labels: Mapping[str, str] | None = None) -> str:
    """The prompt with its characters' descriptions appended, unless it places them itself
    (it reads ``characters``), so every app hears who is in the shot; ``labels`` name each
    character's reference images as the app reads them in a prompt (``@image_1``)."""
    if not people:
        return text
    names = renderer.names_used(inline=shot.prompt, template=shot.template)
    if names is not None and "characters" in names:
        return text
    named = {n: f" ({labels[n]})" if labels and n in labels else "" for n in people}
    said = " ".join(f"{name.capitalize()}{named[name]}: {desc.strip().rstrip('.')}." for name, desc in people.items())
    return f"{text.rstrip()} {said}" if text.strip() else text


def names_used(spec: Spec) -> set[str] | None:
    """Every top-level variable the storyboard's prompts read (inline prompts and template
    files); None when some prompt's variables cannot be told from its text."""
    renderer = PromptRenderer(spec.template_dirs)
    used: set[str] = set()
    for shot in spec.shots:
        names = renderer.names_used(inline=shot.prompt, template=shot.template)
        if names is None:
            return None
        used |= names
    return used


def _prompt_problem(spec: Spec, shot: ResolvedShot, fld: str, e: PromptError) -> Problem:
    where = f"shot '{shot.id}'"
    if e.depends_on is not None:
        return spec.source.problem(
            f"{where}: its prompt uses shot '{e.depends_on}', whose prompt failed (see above)",
            spec.shot_path(shot.id, fld))
    if e.file is not None and Path(e.file).is_relative_to(library_dir()):
        # an error raised inside the shipped library: the storyboard's line is the useful one
        e = PromptError(e.message, template=e.template)
    if e.file is not None:
        # the problem is inside a template file: point there
        return Problem(f"{where} (template {e.template}): {e.message}", e.file, e.line)
    pos = spec.source.locate(spec.shot_path(shot.id, fld))
    line_note = f" (line {e.line} of the template)" if e.line and e.line > 1 else ""
    tpl = f" (template {e.template})" if fld == "template" else ""
    return Problem(f"{where}{tpl}: {fld}: {e.message}{line_note}", spec.source.file,
                   pos.line if pos else None, pos.column if pos else None)


def _latest_against_pins(spec: Spec, lock: Lock) -> list[Problem]:
    """``@latest`` (read live) on an app the lock file pins: one located line each."""
    out: dict[tuple[Any, ...], Problem] = {}
    for shot in spec.shots if lock.apps else ():
        ref = apps.parse_app_ref(shot.app)  # already checked by resolve_inputs
        if ref.latest and ref.name in lock.apps:
            part = "stills" if shot.is_still else "shots"
            model = getattr(spec.model, part)[shot.index]
            loc = (part, shot.index, "app") if "app" in model.model_fields_set else ("defaults", "app")
            out[loc] = spec.source.problem(
                f"app '{shot.app}' asks for the version live now, but {lock.app_lines[ref.name]} pins "
                f"{ref.name} to {lock.apps[ref.name]}: drop '@latest', or remove the pin", loc)
    return list(out.values())


def load(
    path: str | Path,
    vars: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
) -> Board:
    """Load and validate a storyboard: the file, its graph and its prompts.

    ``vars`` override the file's template variables; ``overrides`` set model inputs
    (app, mode, resolution, aspect_ratio, duration, sound, multi_shot, negative_prompt) on
    every shot — e.g. one variant of a film in 9:16. ``texts`` are the answers of text
    nodes already made (by name); the others read as placeholders. Raises SpecError
    (every problem found, each located).
    """
    spec = load_spec(path, dict(overrides) if overrides else None, allowed=allowed_values)
    graph = build_graph(spec)
    check_judging(spec)  # `pick: auto` needs takes, and a judge that sees images
    with recording() as read:  # the names every template reads: text nodes, prompts, lines, overlays, music
        nodes, text_values = render_texts(spec, text_specs(spec, vars), {**spec.model.vars, **(vars or {})}, texts)
        prompts, merged = render_prompts(spec, {**(vars or {}), **text_values})
        inputs = resolve_inputs(spec, prompts)
        lines = render_lines(spec, merged)
        overlays = render_overlays(spec, merged)
        music = render_music(spec, merged)
    lock = read_lock(spec.path, {s.id: s.takes for s in spec.shots})
    clashes = _latest_against_pins(spec, lock)
    if clashes:
        raise SpecError(clashes)
    return Board(spec=spec, graph=graph, prompts=prompts, vars=merged, inputs=inputs,
                 overrides=dict(overrides or {}), lines=lines, overlays=overlays, lock=lock,
                 music=music, names_read=frozenset(read), texts=tuple(nodes))


__all__ = ["Board", "FrameRef", "build_graph", "load", "names_used", "render_prompts"]
