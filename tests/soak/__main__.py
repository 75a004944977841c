"""``python -m tests.soak --runs N --seed S [--quick]`` and ``python -m tests.soak --replay SEED``.

Run i uses seed S + i. Prints one line per run, every failure with its seed and schedule,
and the invariant summary as JSON; exits 1 when any run broke an invariant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from tests.soak.runs import RunResult, soak_many, soak_run, summary
from tests.soak.s3 import moto_s3


def _show(result: RunResult, verbose: bool = False) -> None:
    o = result.outcome
    print(f"seed {result.seed}: {'FAIL' if o.failures else 'ok'} {result.seconds:.1f}s paid {o.paid} "
          f"window {o.window_payments} kills {o.kills} restarts {o.restarts} films {o.films}", flush=True)
    if o.failures:
        print(result.report(), flush=True)
    elif verbose:
        print(f"schedule: {result.schedule.describe()}\n{result.boards.describe()}\nlog: {result.notes}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", type=int, default=None, help="run this one seed again, verbosely")
    parser.add_argument("--quick", action="store_true", help="small boards, short latencies (CI)")
    parser.add_argument("--workers", type=int, default=1, help="runs at once (each with its own fake and cache)")
    parser.add_argument("--s3", action="store_true", help="one s3:// cache on a moto server (two machines)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the replayed run's folder here")
    args = parser.parse_args(argv)
    seeds = [args.replay] if args.replay is not None else list(range(args.seed, args.seed + args.runs))
    with moto_s3() if args.s3 else contextlib.nullcontext() as s3:
        if args.replay is not None:
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
            results = [soak_run(args.replay, quick=args.quick, keep=args.keep, s3=s3)]
            _show(results[0], verbose=True)
        else:
            results = soak_many(seeds, quick=args.quick, workers=args.workers, s3=s3, on_result=_show)
    total = summary(results)
    print(json.dumps({"soak_summary": total}, indent=1))
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
