"""What a film costs a shared S3 cache in requests (issue 29), counted on the wire: a
moto server in a process of its own behind a counting layer (``benchmarks._s3count``),
the fake service, and storyboard's real runner (``benchmarks.workers.measure``, one film
on one worker: no claim is contended, no lease renewed)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.workers import SHOTS, measure


def test_a_film_on_s3_costs_twelve_requests_a_generated_shot(tmp_path: Path) -> None:
    size = measure(1, tmp_path, workers=1)
    assert size.failed == 0 and size.paid == SHOTS
    by = {k: v for k, v in size.s3_by.items() if not k.endswith(" other")}  # the bucket's own set-up
    per_shot = {
        "GET index": 2,  # the plan's look (once however often it plans), the look once claimed
        "GET claims": 1,  # the claim folder, listed once (s3fs's ls listed its parent too)
        "PUT claims": 1,  # the create-only claim
        "GET journal": 1,  # read once when claimed, then kept (it was read six times)
        "PUT journal": 2,  # the submitting mark, the task id
        "HEAD clips": 1,  # the clip's existence (s3fs's exists also listed its folder)
        "PUT clips": 1,
        "PUT index": 1,
        "DELETE journal": 1,
        "DELETE claims": 1,
    }
    assert by == {k: n * SHOTS for k, n in per_shot.items()}
