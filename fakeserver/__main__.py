"""Run the fake inference.sh in a process of its own (benchmarks: keeps its work off
the measured process's interpreter lock).

    python -m fakeserver --key KEY [--latency 1.0] [--short-side 360]

Prints the base URL on its first line of stdout, then serves until stdin closes; on
exit it prints one JSON line: the number of paid submissions, max in flight, each
task's creation time and when its output's last byte went out (``time.monotonic``:
the same clock in every process). ``--download-rate`` paces output files (bytes/s);
``--app-delay`` gives each app read some server time; ``--latency-range LOW HIGH``
draws each task's latency (``--seed``), ``--rate-limit RUNS SECONDS`` limits runs per API
key (429 with Retry-After; the exit line counts them as ``rate_limited``).
"""

from __future__ import annotations

import argparse
import json
import sys

from fakeserver import FakeInference


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--short-side", type=int, default=90)
    ap.add_argument("--heartbeat", type=float, default=0.05)
    ap.add_argument("--reuse-clips", action="store_true", help="one clip per parameter set")
    ap.add_argument("--download-rate", type=float, default=None, help="output files at this many bytes/s")
    ap.add_argument("--app-delay", type=float, default=0.0, help="seconds of server time per GET /apps/..")
    ap.add_argument("--latency-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"))
    ap.add_argument("--seed", type=int, default=0, help="the seed of --latency-range")
    ap.add_argument("--rate-limit", type=float, nargs=2, default=None, metavar=("RUNS", "SECONDS"))
    args = ap.parse_args()
    with FakeInference(
        api_key=args.key,
        latency=args.latency,
        short_side=args.short_side,
        heartbeat_interval=args.heartbeat,
        match_first_frame=not args.reuse_clips,
    ) as fake:
        fake.download_rate = args.download_rate
        fake.delays["app"] = args.app_delay
        if args.latency_range:
            fake.latency_range, fake.latency_seed = (args.latency_range[0], args.latency_range[1]), args.seed
        if args.rate_limit:
            fake.rate_limit = (int(args.rate_limit[0]), args.rate_limit[1])
        print(fake.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        print(
            json.dumps({
                "submissions": len(fake.submissions),
                "max_in_flight": fake.max_in_flight,
                # each task's start on the machine-wide monotonic clock: the hand-off
                # from a parent's end to its child's start, as the service sees it
                "created": {t.id: t.created for t in fake.submissions},
                "latency": {t.id: t.latency for t in fake.submissions},
                "downloaded": dict(fake.downloaded),
                "prompts": {t.id: str(t.input.get("prompt", "")) for t in fake.submissions},
                "rate_limited": fake.rate_limited,
            }),
            flush=True,
        )


if __name__ == "__main__":
    main()
