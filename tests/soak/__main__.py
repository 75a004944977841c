"""``python -m tests.soak --runs N --seed S [--quick]`` and ``python -m tests.soak --replay SEED``.

Run i uses seed S + i. Prints one line per run, every failure with its seed and schedule,
and the invariant summary as JSON; exits 1 when any run broke an invariant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.soak.runs import soak_run, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", type=int, default=None, help="run this one seed again, verbosely")
    parser.add_argument("--quick", action="store_true", help="small boards, short latencies (CI)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the replayed run's folder here")
    args = parser.parse_args(argv)
    seeds = [args.replay] if args.replay is not None else list(range(args.seed, args.seed + args.runs))
    results = []
    for seed in seeds:
        keep = args.keep if args.replay is not None else None
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        result = soak_run(seed, quick=args.quick, keep=keep)
        results.append(result)
        o = result.outcome
        print(f"seed {seed}: {'FAIL' if o.failures else 'ok'} {result.seconds:.1f}s paid {o.paid} "
              f"window {o.window_payments} kills {o.kills} restarts {o.restarts} films {o.films}", flush=True)
        if o.failures or args.replay is not None:
            print(result.report() if o.failures else
                  f"schedule: {result.schedule.describe()}\n{result.boards.describe()}\nlog: {result.notes}",
                  flush=True)
    total = summary(results)
    print(json.dumps({"soak_summary": total}, indent=1))
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
