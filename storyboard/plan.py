"""The plan: each shot's request, cache key, status and cost. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from storyboard.narration import TITLE_BACKEND, is_title
from storyboard.request import FrameRef, ShotRequest, cache_key, digest, image_identity, source_text
from storyboard.spec import ResolvedShot

if TYPE_CHECKING:
    from storyboard.board import Board


# --------------------------------------------------------------------------- the plan


class CacheView(Protocol):
    """What the plan may ask of the cache (read-only)."""

    def clip_hash(self, key: str) -> str | None:
        """Content hash of the clip cached under shot key ``key``, or None."""


Status = Literal["cached", "generate", "after", "forced", "unused"]


@dataclass(frozen=True)
class PlannedShot:
    """One shot of the plan."""

    id: str
    order: int
    request: ShotRequest
    recipe: str  # hash of the shot's inputs, with parents' recipes (known without a cache)
    key: str | None  # cache key: known when every parent clip is known
    status: Status
    after: tuple[str, ...]  # parents still to be generated
    cost: Decimal | None  # what generating it costs on this backend (0 when cached)
    price: Decimal | None  # what it costs on this backend when generated
    reference_price: Decimal | None  # what it would cost on the paid model
    rate: Decimal | None  # the paid model's USD per second for this shot's inputs (an estimate)
    tier: str  # the inputs that set that rate ("resolution 1080p, sound true")
    in_cut: bool
    image: Any = None  # ImageSource | None
    end_image: Any = None
    references: tuple[Any, ...] = ()  # ImageSource of each reference image sent (none if the app takes none)
    note: str | None = None  # e.g. the app takes no reference images, so they are unused

    @property
    def is_still(self) -> bool:
        """Whether this node makes a still (an image), not a clip."""
        return self.request.kind == "still"

    take: int = 1  # the picked take: the one its descendants chain from
    takes: tuple[PlannedTake, ...] = ()  # the shot's other takes

    @property
    def to_generate(self) -> bool:
        """Whether the picked take will be generated."""
        return self.status in ("generate", "after", "forced")

    @property
    def all_costs(self) -> list[Decimal | None]:
        """What generating this shot costs, every take counted."""
        return [self.cost, *(t.cost for t in self.takes)]


@dataclass(frozen=True)
class PlannedTake:
    """One more take of a shot: its own request (take number, seed) and cache key."""

    take: int
    request: ShotRequest
    key: str | None
    status: Status
    cost: Decimal | None

    @property
    def to_generate(self) -> bool:
        """Whether this shot will be generated."""
        return self.status in ("generate", "after", "forced")


@dataclass(frozen=True)
class PlannedAudio:
    """A narration line or a generated music track: a node voiced or made before the shots."""

    id: str  # "say:SHOT", "audio[N]", "text:NAME" or "judge:SHOT"
    kind: Literal["line", "music", "text", "judge"]
    app: str  # the app that makes it, or the offline maker ("espeak-ng", "placeholder"…)
    text: str  # the line, or the music's prompt
    request: ShotRequest
    key: str
    status: Literal["cached", "generate"]
    cost: Decimal | None  # what making it costs on this backend (0 when cached)
    price: Decimal | None  # what it costs on this backend when made
    reference_price: Decimal | None  # what it would cost on the app (inference.sh)

    @property
    def to_generate(self) -> bool:
        """Whether it will be voiced or made."""
        return self.status == "generate"


@dataclass(frozen=True)
class Plan:
    """What a render would do: each shot's status and cost."""

    backend: str
    shots: tuple[PlannedShot, ...]
    critical_path: tuple[str, ...]
    critical_seconds: float
    board_hash: str
    audio: tuple[PlannedAudio, ...] = ()  # narration lines and generated music (made first)

    def __getitem__(self, shot_id: str) -> PlannedShot:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise KeyError(shot_id)

    @property
    def by_id(self) -> dict[str, PlannedShot]:
        """The planned shots by id."""
        return {s.id: s for s in self.shots}

    @property
    def pending(self) -> list[PlannedShot]:
        """The shots still to generate."""
        return [s for s in self.shots if s.to_generate]

    @property
    def pending_takes(self) -> list[PlannedTake]:
        """The other takes still to generate (of used shots)."""
        return [t for s in self.shots if s.status != "unused" for t in s.takes if t.to_generate]

    @property
    def seconds_to_generate(self) -> int:
        """Seconds of video still to generate, every take counted."""
        return (sum(s.request.duration for s in self.pending)
                + sum(t.request.duration for t in self.pending_takes))

    @property
    def pending_audio(self) -> list[PlannedAudio]:
        """The narration lines and music tracks still to make."""
        return [a for a in self.audio if a.to_generate]

    @property
    def cost(self) -> Decimal | None:
        """What the shots (every take) still to generate, the lines still to voice and the music
        still to make will cost; None if any price is unknown."""
        return _sum([*(c for s in self.shots if s.status != "unused" for c in s.all_costs),
                     *(a.cost for a in self.audio)])

    @property
    def reference_cost(self) -> Decimal | None:
        """What the shots (every take) still to generate would cost on the paid model."""
        return _sum([*(s.reference_price for s in self.pending),
                     *(s.reference_price for s in self.shots if s.status != "unused"
                       for t in s.takes if t.to_generate),
                     *(a.reference_price for a in self.pending_audio)])

    @property
    def full_cost(self) -> Decimal | None:
        """What every used shot (every take) costs when nothing is cached."""
        return _sum([*(s.price for s in self.shots if s.status != "unused" for _ in range(1 + len(s.takes))),
                     *(a.price for a in self.audio)])

    def audio_summary(self) -> list[str]:
        """The narration (one line for all) and each generated music track, with costs."""
        from storyboard.facts import usd

        lines = [a for a in self.audio if a.kind == "line"]
        out = []
        if lines:
            todo = sum(1 for a in lines if a.to_generate)
            out.append(f"narration: {len(lines)} line{'s' if len(lines) != 1 else ''} ({todo} to voice) with "
                       f"{lines[0].app}, {usd(_sum(a.cost for a in lines))}")
        out += [f"music: {a.id} {a.app}, {'to make' if a.to_generate else 'cached'}, {usd(a.cost)}"
                for a in self.audio if a.kind == "music"]
        out += [f"{a.kind}: {a.id} {a.app}, {'to make' if a.to_generate else 'cached'}, "
                f"{'<$0.001' if a.cost and a.cost < Decimal('0.001') else usd(a.cost)}"  # a few tokens: never "$0"
                for a in self.audio if a.kind in ("text", "judge")]
        return out

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data."""
        def money(d: Decimal | None) -> str | None:
            return None if d is None else str(d)

        return {
            "backend": self.backend,
            "board_hash": self.board_hash,
            "shots": [
                {
                    "order": s.order,
                    "id": s.id,
                    "status": s.status,
                    "after": list(s.after),
                    "key": s.key,
                    "recipe": s.recipe,
                    "image": s.request.image_source,
                    "end_image": s.request.end_image_source,
                    "duration": s.request.duration,
                    "mode": s.request.mode,
                    "aspect_ratio": s.request.aspect_ratio,
                    "sound": s.request.sound,
                    "prompt": s.request.prompt,
                    "in_cut": s.in_cut,
                    "take": s.take,
                    "takes": 1 + len(s.takes),
                    "kind": s.request.kind,
                    "references": list(s.request.reference_sources),
                    "note": s.note,
                    "cost": money(_sum(s.all_costs)),
                    "price": money(s.price),
                }
                for s in self.shots
            ],
            "audio": [
                {"id": a.id, "kind": a.kind, "app": a.app, "text": a.text, "key": a.key, "status": a.status,
                 "cost": money(a.cost), "price": money(a.price)}
                for a in self.audio
            ],
            "totals": {
                "shots": len(self.shots),
                "audio_to_make": len(self.pending_audio),
                "to_generate": len(self.pending),
                "takes_to_generate": len(self.pending) + len(self.pending_takes),
                "seconds_to_generate": self.seconds_to_generate,
                "cost": money(self.cost),
                "full_cost": money(self.full_cost),
                "reference_cost": money(self.reference_cost),
                "critical_path": list(self.critical_path),
                "critical_seconds": self.critical_seconds,
            },
        }


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for v in values:
        if v is None:
            return None
        total += v
    return total


def request_for(board: Board, shot: ResolvedShot) -> ShotRequest:
    """The ShotRequest of a shot (images not prepared yet: ``image`` is None)."""
    resolved = board.inputs.get(shot.id)
    refs_input = resolved.files.get("references") if resolved and shot.references else None
    return ShotRequest(
        shot_id=shot.id,
        prompt=board.prompts[shot.id],
        app=shot.app,
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
    )


def take_request(board: Board, shot: ResolvedShot, request: ShotRequest, take: int) -> ShotRequest:
    """The request of one take of a shot: its number and, where the app has a ``seed``
    input that the file leaves unset, the take's recorded seed (storyboard.takes)."""
    if shot.takes == 1 and take == 1:  # a reroll of a one-take shot is take 2, with its seed
        return request
    from storyboard import apps
    from storyboard.takes import take_seed

    inputs = dict(request.inputs or {})
    profile = apps.profile(shot.app.split("@", 1)[0])
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
    def reference(shot_id: str) -> Decimal | None:
        resolved = board.inputs.get(shot_id)
        return resolved.price if resolved else None

    needed = board.graph.needed_for(board.cut)
    in_cut = set(board.cut)
    recipes: dict[str, str] = {}
    keys: dict[str, str | None] = {}
    clip_hashes: dict[str, str | None] = {}
    status: dict[str, Status] = {}
    out: list[PlannedShot] = []
    handoffs = {s.id: s.handoff_rule for s in board.spec.shots}
    for order, shot_id in enumerate(board.graph.order()):
        shot = board.spec.shot(shot_id)
        picked = board.lock.take(shot_id) if board.lock is not None else 1
        base = request_for(board, shot)
        req = take_request(board, shot, base, picked)
        recipe_images: dict[str, Any] = {}
        key_images: dict[str, Any] = {}
        after: list[str] = []
        for role, src in (("image", shot.image), ("end_image", shot.end_image)):
            key_images[role] = image_identity(src, clip_hashes, handoffs)
            recipe_images[role] = key_images[role]
            if isinstance(src, FrameRef):
                # the recipe is known before any clip: the parent's recipe stands for its clip
                recipe_images[role] = {k: v for k, v in (key_images[role] or {}).items() if k != "clip"}
                recipe_images[role]["recipe"] = recipes[src.shot]
                if clip_hashes.get(src.shot) is None:
                    after.append(src.shot)
        sent = shot.references if req.references_input else ()
        if sent:
            key_images["references"] = [image_identity(src, clip_hashes) for src in sent]
            recipe_images["references"] = [
                {"recipe": recipes[src.shot]} if isinstance(src, FrameRef) else image_identity(src, clip_hashes)
                for src in sent]
            after += [src.shot for src in sent if isinstance(src, FrameRef) and clip_hashes.get(src.shot) is None]
        title = is_title(board.spec, shot_id)  # a text card: made locally whatever the backend
        maker = TITLE_BACKEND if title else backend
        recipe = cache_key(req, backend=maker, variant=variant, images=recipe_images)
        recipes[shot_id] = recipe
        key = None if after else cache_key(req, backend=maker, variant=variant, images=key_images)
        keys[shot_id] = key
        hit = cache.clip_hash(key) if (cache is not None and key is not None) else None
        st: Status
        if shot_id not in needed:
            st = "unused"
        elif shot_id in force:
            st, hit = "forced", None
        elif after:
            st = "after"
        elif hit is not None:
            st = "cached"
        else:
            st = "generate"
        clip_hashes[shot_id] = hit
        status[shot_id] = st
        p = Decimal(0) if title else price(req) if price is not None else reference(shot_id)
        others = []
        for n in range(1, shot.takes + 1):
            if n == picked:
                continue
            treq = take_request(board, shot, base, n)
            tkey = None if after else cache_key(treq, backend=backend, variant=variant, images=key_images)
            thit = cache.clip_hash(tkey) if (cache is not None and tkey is not None) else None
            tst: Status = ("unused" if st == "unused" else "forced" if st == "forced" else "after" if after
                           else "cached" if thit is not None else "generate")
            tp = Decimal(0) if title else price(treq) if price is not None else reference(shot_id)
            others.append(PlannedTake(take=n, request=treq, key=tkey, status=tst,
                                      cost=tp if tst in ("generate", "after", "forced") else Decimal(0)))
        resolved = board.inputs.get(shot_id)
        out.append(
            PlannedShot(
                id=shot_id,
                order=order,
                request=req,
                recipe=recipe,
                key=key,
                status=st,
                after=tuple(dict.fromkeys(after)),
                cost=(p if st in ("generate", "after", "forced") else Decimal(0)),
                price=p,
                reference_price=Decimal(0) if title else reference(shot_id),
                rate=resolved.rate if resolved else None,
                tier=resolved.tier if resolved else "",
                in_cut=shot_id in in_cut,
                image=shot.image,
                end_image=shot.end_image,
                take=picked,
                takes=tuple(others),
                references=tuple(sent),
                note=_note(board, shot),
            )
        )
    path, seconds = board.graph.critical_path()
    board_hash = digest({"cut": list(board.cut), "recipes": recipes, "audio": [
        (str(p.relative_to(board.spec.folder)), t.model_dump()) for p, t in board.spec.audio
    ]})
    return Plan(backend=backend, shots=tuple(out), critical_path=tuple(path), critical_seconds=seconds,
                board_hash=board_hash, audio=plan_audio(board, cache=cache, price=price, speaker=speaker)
                + plan_judges(board, out, cache=cache, price=price, speaker=speaker))


def plan_judges(board: Board, shots: list[PlannedShot], *, cache: CacheView | None,
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
