"""The render report (``<film>.render.json``): what a render made, paid and measured,
written by the pipeline; read back through :mod:`storyboard.reportdata`."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from storyboard.events import RenderResult
from storyboard.runner._scheduler import take_id

if TYPE_CHECKING:
    from storyboard.runner._pipeline import Pipeline

__all__ = ["actual_cost", "report_data", "takes_of"]


def takes_of(result: RenderResult, shot_id: str, picked: int, others: list[int]) -> list[dict[str, Any]]:
    """Every take of a shot for the report (empty for a shot with one take)."""
    if not others:
        return []
    out = []
    for n in sorted([picked, *others]):
        r = result.shots.get(shot_id if n == picked else take_id(shot_id, n))
        out.append({"take": n, "picked": n == picked, "status": r.status if r else None,
                    "clip": str(r.clip) if r and r.clip else None, "key": r.key if r else None})
    return out


def actual_cost(pipeline: Pipeline, result: RenderResult) -> Decimal:
    """What this render paid: each generated node's reported cost, else its estimate."""
    made = [r for r in result.shots.values() if r.status == "generated"]
    return sum((Decimal(str(r.facts["billed_cost"])) if r.facts.get("billed_cost") is not None
                else r.cost or Decimal(0) for r in made), Decimal(0)) + (
        pipeline.audio.cost if pipeline.audio is not None else Decimal(0))


def report_data(pipeline: Pipeline, result: RenderResult) -> dict[str, Any]:
    """The report of a finished (or failed) render, as JSON-ready data."""
    return {
        "storyboard": str(pipeline.board.path),
        "title": pipeline.board.title,
        "backend": pipeline.backend.name,
        "film": str(result.film) if result.film else None,
        "duration": result.duration,
        "assembly": result.method,
        "film_key": result.film_key,
        "film_size": result.film.stat().st_size if result.film and result.film.exists() else None,
        "film_mtime_ns": result.film.stat().st_mtime_ns if result.film and result.film.exists() else None,
        "cost": str(result.cost),
        "estimate": None if result.plan.cost is None else str(result.plan.cost),
        "actual_cost": str(actual_cost(pipeline, result)),  # what the tasks reported, else their estimates
        "seconds": round(result.seconds, 3),
        "loudness": pipeline.loudness,
        "board_hash": result.plan.board_hash,
        "captions": [str(p) for p in result.captions],
        "narration": [{"shot": p.shot, "text": p.text, "start": p.start, "seconds": p.seconds}
                      for p in result.narration],
        "apps": {ref: resolved.version_id for ref, resolved in
                 {pipeline.board.inputs[s.id].app: pipeline.board.inputs[s.id] for s in pipeline.board.shots
                  if s.id in pipeline.board.inputs}.items()},
        "cut": list(pipeline.board.cut),
        "audio": pipeline.audio.report() if pipeline.audio is not None else [],
        "texts": [{"id": n.id, "app": n.spec.app, "prompt": n.prompt, "value": n.value} for n in pipeline.board.texts],
        "shots": [
            {**result.shots[s.id].to_dict(), "prompt": s.request.prompt, "duration": s.request.duration,
             "image": s.request.image_source, "end_image": s.request.end_image_source,
             "in_cut": s.in_cut, "mode": s.request.mode, "sound": s.request.sound,
             "app": s.request.app, "version": s.request.version, "inputs": s.request.inputs,
             "tier": s.tier, "rate": None if s.rate is None else str(s.rate), "kind": s.request.kind,
             "estimate": None if s.price is None else str(s.price),
             "actual_cost": result.shots[s.id].facts.get("billed_cost"),
             "references": list(s.request.reference_sources), "note": s.note,
             "handoff": result.shots[s.id].facts.get("handoff"), "take": s.take,
             "takes": takes_of(result, s.id, s.take, [t.take for t in s.takes]),
             "seam": result.shots[s.id].facts.get("seam"), "rerolls": result.shots[s.id].facts.get("rerolls")}
            for s in result.plan.shots
        ],
    }
