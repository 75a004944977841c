"""Measure one command's wall time and peak RSS, honestly.

On Linux a forked child inherits its parent's RSS high-water mark, and exec keeps it,
so a big benchmark process sees inflated ``ru_maxrss`` for every child it starts. This
launcher is started first (it inherits the inflated figure itself, which is ignored);
the command it forks then starts from the launcher's small footprint.

    python -m benchmarks._measure RESULT.json -- CMD ARGS...   (stdio passed through)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def measure(argv: Sequence[str], env: Mapping[str, str] | None = None, *, stdout: int | None = subprocess.DEVNULL,
            stderr: int | None = subprocess.DEVNULL,
            cwd: str | Path | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB of the command and its waited-for children, exit code)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        root = Path(__file__).resolve().parents[1]
        env_ = {**(env or os.environ)}
        env_["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env_.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-m", "benchmarks._measure", str(result), "--", *argv],
                       env=env_, stdout=stdout, stderr=stderr, cwd=cwd, check=False)
        data = json.loads(result.read_text())
    return data["seconds"], data["maxrss_mb"], data["returncode"]


def main() -> int:
    result, sep, *argv = sys.argv[1:]
    assert sep == "--" and argv, __doc__
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    Path(result).write_text(json.dumps({"seconds": seconds, "maxrss_mb": usage.ru_maxrss / 1024, "returncode": code}))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
