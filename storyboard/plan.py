"""The plan: each node's request, cache key, status and cost, made from a loaded board.
Pure: no I/O. The plan's types are :mod:`storyboard.planned`'s (re-exported here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from storyboard.planned import (
    PAID_STATUSES,
    CacheView,
    Plan,
    PlannedAudio,
    PlannedShot,
    PlannedTake,
    Status,
    sum_costs,
)
from storyboard.request import FrameRef, ShotRequest, cache_key, digest, image_identity, source_text
from storyboard.spec import ResolvedShot
from storyboard.titles import title_request

if TYPE_CHECKING:
    from storyboard.board import Board

__all__ = ["PAID_STATUSES", "CacheView", "Plan", "PlannedAudio", "PlannedShot", "PlannedTake", "Status", "app_notes",
           "make_plan", "plan_audio", "plan_judges", "request_for", "sum_costs", "take_request", "text_over"]


def text_over(board: Board, shot_id: str) -> tuple[str, ...]:
    """Where the film gets storyboard's own text over a shot: "captions" (narration burned
    in, at the bottom) and its overlay's position. Pure."""
    over = board.overlays.get(shot_id)
    return ((("captions",) if board.spec.model.captions == "burn" and shot_id in board.lines else ())
            + ((over.position,) if over is not None else ()))


def request_for(board: Board, shot: ResolvedShot) -> ShotRequest:
    """The ShotRequest of a shot (images not prepared yet: ``image`` is None). ``extra``
    says where the film draws text over it (:func:`text_over`), for a backend that writes
    its own caption into the clip (the animatic) to keep clear of it."""
    resolved = board.inputs.get(shot.id)
    drawn = text_over(board, shot.id)
    refs_input = resolved.files.get("references") if resolved and shot.references else None
    return ShotRequest(
        shot_id=shot.id,
        prompt=board.prompts[shot.id],
        app=resolved.app if resolved else shot.app,  # one written form: no "app/", no "@latest"
        version=resolved.version_id if resolved else None,
        mode=shot.mode,
        resolution=shot.resolution,
        aspect_ratio=shot.aspect_ratio,
        duration=shot.duration,
        sound=shot.sound,
        multi_shot=shot.multi_shot,
        negative_prompt=shot.negative_prompt,
        inputs=dict(resolved.inputs) if resolved else None,
        image_input=resolved.files.get("start_frame") if resolved else "image",
        end_image_input=resolved.files.get("end_frame") if resolved else "end_image",
        image_source=_source(board, shot.image),
        end_image_source=_source(board, shot.end_image),
        kind=shot.kind,
        references_input=refs_input,
        reference_sources=tuple(t for t in (source_text(r) for r in shot.references) if t) if refs_input else (),
        keyframes_input=resolved.files.get("keyframes") if resolved and shot.keyframes else None,
        keyframe_sources=tuple((at, _source(board, src) or "") for at, src in shot.keyframes),
        extra={"text_over": list(drawn)} if drawn else {},
    )


def take_request(board: Board, shot: ResolvedShot, request: ShotRequest, take: int) -> ShotRequest:
    """The request of one take of a shot: its number and, where the app has a ``seed``
    input that the file leaves unset, the take's recorded seed (storyboard.takes)."""
    if shot.takes == 1 and take == 1:  # a reroll of a one-take shot is take 2, with its seed
        return request
    from storyboard import apps
    from storyboard.takes import take_seed

    inputs = dict(request.inputs or {})
    profile = apps.profile(apps.app_name(shot.app))
    version = profile.version(request.version) if profile is not None else None
    name = profile.input_name("seed", version) if profile is not None and version is not None else None
    if name is not None and name not in shot.inputs:
        inputs[name] = take_seed(shot.id, take)
    return replace(request, take=take, takes=shot.takes,
                   inputs=inputs if request.inputs is not None or name else request.inputs)


def _source(board: Board, src: Any) -> str | None:
    """How an image source reads; a still is named as written (``@ID``): it has one image."""
    if isinstance(src, FrameRef) and board.spec.shot(src.shot).is_still:
        return f"@{src.shot}"
    return source_text(src)


def _note(board: Board, shot: ResolvedShot) -> str | None:
    if not shot.references:
        return None
    from storyboard import apps
    from storyboard.stills import references_note

    resolved = board.inputs.get(shot.id)
    profile = apps.profile(resolved.name) if resolved else None
    version = profile.version(resolved.version_id) if profile and resolved else None
    return references_note(shot, profile, version)


@dataclass
class _Planner:
    """Planning one board, node by node in graph order: what each node's key and recipe
    need from the nodes before it (their recipes, their cached clips), and the caller's
    backend, cache, forced shots and prices."""

    board: Board
    backend: str
    cache: CacheView | None
    variant: str
    force: frozenset[str]
    price: Callable[[ShotRequest], Decimal | None] | None
    needed: set[str]
    recipes: dict[str, str] = field(default_factory=dict)
    clips: dict[str, str | None] = field(default_factory=dict)  # node → its cached clip's hash (None: to make)
    handoffs: dict[str, str | None] = field(default_factory=dict)  # node → its handoff rule (``best:0.5``)

    def request(self, shot: ResolvedShot) -> ShotRequest:
        """The node's base request, by its kind (a title card is drawn here: no app)."""
        if shot.kind == "title":
            return title_request(shot, self.board.prompts[shot.id])
        return request_for(self.board, shot)

    def images(self, shot: ResolvedShot, sent: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """What the node's images give its key (the parents' clips, once known) and its
        recipe (the parents' recipes: known before any clip), and the parents still to make."""
        key: dict[str, Any] = {}
        recipe: dict[str, Any] = {}
        after: list[str] = []
        for role, src in (("image", shot.image), ("end_image", shot.end_image)):
            key[role] = recipe[role] = image_identity(src, self.clips, self.handoffs)
            if isinstance(src, FrameRef):
                recipe[role] = {k: v for k, v in (key[role] or {}).items() if k != "clip"}
                recipe[role]["recipe"] = self.recipes[src.shot]
                if self.clips.get(src.shot) is None:
                    after.append(src.shot)
        if sent:
            key["references"] = [image_identity(src, self.clips) for src in sent]
            recipe["references"] = [{"recipe": self.recipes[src.shot]} if isinstance(src, FrameRef)
                                    else image_identity(src, self.clips) for src in sent]
            after += [src.shot for src in sent if isinstance(src, FrameRef) and self.clips.get(src.shot) is None]
        if shot.keyframes:  # (seconds, image) pairs, keyed like references
            key["keyframes"] = [[at, image_identity(src, self.clips)] for at, src in shot.keyframes]
            recipe["keyframes"] = [[at, {"recipe": self.recipes[src.shot]} if isinstance(src, FrameRef)
                                    else image_identity(src, self.clips)] for at, src in shot.keyframes]
            after += [src.shot for _, src in shot.keyframes if isinstance(src, FrameRef) and not self.clips.get(src.shot)]
        return key, recipe, after

    def key(self, req: ShotRequest, images: Mapping[str, Any]) -> str:
        """The node's cache key on this backend (a title's names no backend: request.cache_key).
        A backend with a variant (the animatic) writes its caption clear of the film's text,
        so where that text is joins the variant."""
        drawn = req.extra.get("text_over") if self.variant else None
        variant = f"{self.variant}+{'+'.join(drawn)}" if drawn else self.variant
        return cache_key(req, backend=self.backend, variant=variant, images=images)

    def hit(self, key: str | None) -> str | None:
        """The hash of the clip cached under ``key``, if any."""
        return self.cache.clip_hash(key) if (self.cache is not None and key is not None) else None

    def status(self, shot_id: str, after: list[str], hit: str | None) -> Status:
        """Whether the node is made, and when: unused, forced, after its parents, cached or now."""
        if shot_id not in self.needed:
            return "unused"
        if shot_id in self.force:
            return "forced"
        return "after" if after else "cached" if hit is not None else "generate"

    def reference(self, shot: ResolvedShot) -> Decimal | None:
        """What the node costs on its app at list price; a title card is free everywhere."""
        if shot.kind == "title":
            return Decimal(0)
        resolved = self.board.inputs.get(shot.id)
        return resolved.price if resolved else None

    def cost(self, shot: ResolvedShot, req: ShotRequest) -> Decimal | None:
        """What making the node costs on this backend, priced by its own kind."""
        if shot.kind == "title" or self.price is None:
            return self.reference(shot)
        return self.price(req)

    def takes(self, shot: ResolvedShot, base: ShotRequest, picked: int, st: Status, after: list[str],
              images: Mapping[str, Any]) -> tuple[PlannedTake, ...]:
        """The shot's takes other than the picked one: each its own request, key and cost."""
        out = []
        for n in range(1, shot.takes + 1):
            if n == picked:
                continue
            req = take_request(self.board, shot, base, n)
            key = None if after else self.key(req, images)
            hit = self.hit(key)
            tst: Status = (st if st in ("unused", "forced") else "after" if after
                           else "cached" if hit is not None else "generate")
            cost = self.cost(shot, req)
            out.append(PlannedTake(take=n, request=req, key=key, status=tst,
                                   cost=cost if tst in PAID_STATUSES else Decimal(0)))
        return tuple(out)

    def node(self, order: int, shot_id: str) -> PlannedShot:
        """One node of the plan: its request, recipe, key, status, takes and costs."""
        board = self.board
        shot = board.spec.shot(shot_id)
        picked = board.lock.take(shot_id) if board.lock is not None else 1
        base = self.request(shot)
        req = take_request(board, shot, base, picked)
        sent = shot.references if req.references_input else ()
        key_images, recipe_images, after = self.images(shot, tuple(sent))
        self.recipes[shot_id] = recipe = self.key(req, recipe_images)
        key = None if after else self.key(req, key_images)
        st = self.status(shot_id, after, hit := self.hit(key))
        self.clips[shot_id] = None if st == "forced" else hit
        p = self.cost(shot, req)
        resolved = board.inputs.get(shot_id)
        return PlannedShot(
            id=shot_id, order=order, request=req, recipe=recipe, key=key, status=st,
            after=tuple(dict.fromkeys(after)), cost=p if st in PAID_STATUSES else Decimal(0),
            price=p, reference_price=self.reference(shot), rate=resolved.rate if resolved else None,
            tier=resolved.tier if resolved else "", in_cut=shot_id in board.cut, image=shot.image,
            end_image=shot.end_image, take=picked, takes=self.takes(shot, base, picked, st, after, key_images),
            references=tuple(sent), note=_note(board, shot))


def make_plan(
    board: Board,
    *,
    backend: str,
    cache: CacheView | None = None,
    variant: str = "",
    force: frozenset[str] = frozenset(),
    price: Callable[[ShotRequest], Decimal | None] | None = None,
    speaker: str | None = None,
) -> Plan:
    """The plan: every shot's request, cache key, status and cost, then the narration lines
    and generated music (``speaker``: the offline voice, e.g. "espeak-ng", when this backend
    does not voice lines with the app; None: the `voice:` app voices them). Pure."""
    planner = _Planner(board=board, backend=backend, cache=cache, variant=variant, force=force, price=price,
                       needed=board.graph.needed_for(board.cut),
                       handoffs={s.id: s.handoff_rule for s in board.spec.shots})
    shots = tuple(planner.node(order, shot_id) for order, shot_id in enumerate(board.graph.order()))
    path, seconds = board.graph.critical_path()
    board_hash = digest({"cut": list(board.cut), "recipes": planner.recipes, "audio": [
        (str(p.relative_to(board.spec.folder)), t.model_dump()) for p, t in board.spec.audio
    ]})
    return Plan(backend=backend, shots=shots, critical_path=tuple(path), critical_seconds=seconds,
                board_hash=board_hash, audio=plan_audio(board, cache=cache, price=price, speaker=speaker)
                + plan_judges(board, shots, cache=cache, price=price, speaker=speaker),
                notes=(*board.notes, *app_notes(board)))


def plan_judges(board: Board, shots: tuple[PlannedShot, ...], *, cache: CacheView | None,
                price: Callable[[ShotRequest], Decimal | None] | None, speaker: str | None) -> tuple[PlannedAudio, ...]:
    """The judge's verdicts (storyboard.judging), priced by tokens (free offline) and looked up."""
    from storyboard.judging import verdict_rows
    from storyboard.request import estimate

    takes = {s.id: (s.request.prompt, [k for _, k in sorted([(s.take, s.key), *((t.take, t.key) for t in s.takes)])])
             for s in shots if s.status != "unused"}
    out = []
    for sid, req, key in verdict_rows(board.spec, takes, board.lock.picks if board.lock else {}, board.audio_versions):
        reference = estimate(req)
        cost = Decimal(0) if speaker is not None else price(req) if price is not None else reference
        hit = bool(key) and cache is not None and cache.clip_hash(key) is not None
        out.append(PlannedAudio(id=f"judge:{sid}", kind="judge", app="take 1 (offline)" if speaker else req.app,
                                text=req.prompt, request=req, key=key, status="cached" if hit else "generate",
                                cost=Decimal(0) if hit else cost, price=cost, reference_price=reference))
    return tuple(out)


def app_notes(board: Board) -> tuple[str, ...]:
    """One note per app whose shots leave out storyboard-wide defaults it has no input for."""
    by_app: dict[str, tuple[list[str], list[str]]] = {}
    for shot_id, resolved in board.inputs.items():
        if resolved.dropped:
            concepts, shots = by_app.setdefault(resolved.name, ([], []))
            concepts += [c for c in resolved.dropped if c not in concepts]
            shots.append(shot_id)
    return tuple(f"{app} has no input for {', '.join(concepts)}: the storyboard-wide "
                 f"value{'s are' if len(concepts) > 1 else ' is'} not sent for {_nodes(board, shots)}"
                 for app, (concepts, shots) in by_app.items())


def _nodes(board: Board, ids: list[str]) -> str:
    shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
    kind = "still" if all(board.spec.shot(i).is_still for i in ids) else "shot"
    return f"{kind}{'s' if len(ids) > 1 else ''} {shown}"


def plan_audio(board: Board, *, cache: CacheView | None, price: Callable[[ShotRequest], Decimal | None] | None,
               speaker: str | None) -> tuple[PlannedAudio, ...]:
    """The narration lines of the cut and the generated music tracks, each keyed, looked up
    (audio is cached like a clip) and priced: free offline (``speaker`` set), else by the app."""
    from storyboard.music import PLACEHOLDER_MAKER, planned_seconds
    from storyboard.narration import line_key, line_request, remote_line_key, voice_of
    from storyboard.request import estimate
    from storyboard.textnodes import text_key

    spec = board.spec
    out: list[PlannedAudio] = []

    def row(id_: str, kind: Literal["line", "music", "text", "judge"], maker: str, text: str, req: ShotRequest,
            key: str) -> PlannedAudio:
        reference = estimate(req)
        cost = Decimal(0) if speaker is not None else price(req) if price is not None else reference
        hit = cache is not None and cache.clip_hash(key) is not None
        return PlannedAudio(id=id_, kind=kind, app=maker, text=text, request=req, key=key,
                            status="cached" if hit else "generate", cost=Decimal(0) if hit else cost, price=cost,
                            reference_price=reference)

    voice = voice_of(spec)
    for sid in spec.cut:
        line = board.lines.get(sid)
        if line is None:
            continue
        req = line_request(spec, line, board.audio_versions)
        key = (line_key(speaker, "", voice.voice, line.text) if speaker is not None
               else remote_line_key(spec, line, board.audio_versions))
        out.append(row(req.shot_id, "line", speaker or voice.app, line.text, req, key))
    seconds = planned_seconds(spec) if board.music else 0.0
    for track in board.music:
        if "@" not in track.app and track.app in board.audio_versions:  # keyed by the version read live
            track = replace(track, version=board.audio_versions[track.app])
        key = track.key(PLACEHOLDER_MAKER, seconds) if speaker is not None else track.key()
        out.append(row(track.id, "music", PLACEHOLDER_MAKER if speaker is not None else track.app, track.prompt,
                       track.request(), key))
    for node in board.texts:  # text nodes (storyboard.textnodes): made first; offline a free placeholder
        req = replace(node.request, version=board.audio_versions.get(node.spec.app, node.request.version))
        out.append(row(node.id, "text", "placeholder" if speaker is not None else node.spec.app, node.prompt, req,
                       text_key(req, "placeholder" if speaker is not None else "app")))
    return tuple(out)
