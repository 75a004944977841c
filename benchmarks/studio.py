"""The studio's edit preview: save one shot's prompt on a 10-shot animatic board, and time
until the new film is written and announced to the page (its server-sent event), against
a fresh whole render of the same board through the same studio (the baseline).
Target: the new film within 2 s of saving (issue 28).

    python benchmarks/studio.py [--quick]
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

TARGET_S = 2.0


def board(folder: Path, shots: int = 10) -> Path:
    lines = ["storyboard: 1", "title: Ten", "backend: animatic", "defaults:", "  app: klingai/video-v3",
             "  duration: 3", "vars:", "  style: golden hour", "shots:"]
    for i in range(shots):
        lines += [f"  - id: s{i}", f'    prompt: "Shot {i} of the harbor, {{{{ style }}}}"', "    image: null"]
    path = folder / "ten.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Studio:
    """A `storyboard studio` process and its event stream."""

    def __init__(self, path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", "from storyboard.cli import main; main()", "studio",
                                      str(path), "--no-browser"], stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().split(": ", 1)[1].strip()
        self.base, self.token = url.split("/?", 1)[0], url.split("token=", 1)[1]
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._listen, daemon=True).start()
        self.events.get(timeout=30)  # the stream is open

    def _listen(self) -> None:
        with httpx.stream("GET", f"{self.base}/events", params={"token": self.token}, timeout=None) as r:
            self.events.put({"event": "open"})
            for line in r.iter_lines():
                if line.startswith("data: "):
                    self.events.put(json.loads(line[6:]))

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.base + path, json=body, headers={"X-Studio-Token": self.token}, timeout=60)

    def until_end(self) -> dict[str, Any]:
        while True:
            e = self.events.get(timeout=300)
            if e.get("event") == "render_end":
                return e

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run(quick: bool = False) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        studio = Studio(board(Path(tmp)))
        try:
            t0 = time.perf_counter()
            assert studio.post("/api/render", {}).status_code == 202
            end = studio.until_end()
            whole = time.perf_counter() - t0
            assert end.get("ok"), end
            t0 = time.perf_counter()
            saved = studio.post("/api/edit", {"shot": "s4", "fields": {"prompt": "Shot four, the keeper waves"}})
            assert saved.status_code == 200, saved.text
            end = studio.until_end()
            edit = time.perf_counter() - t0
            assert end.get("ok") and end.get("kind") == "preview", end
        finally:
            studio.close()
    return [{
        "measure": "studio: save one prompt → new film, 10-shot animatic board (s) vs a fresh whole render",
        "storyboard": round(edit, 2), "baseline": round(whole, 2), "ratio": round(edit / whole, 3),
        "target": f"<= {TARGET_S:g} s", "passed": edit <= TARGET_S,
    }]  # fmt: skip


if __name__ == "__main__":
    from benchmarks.frames import print_table

    print_table(run(quick="--quick" in sys.argv))
