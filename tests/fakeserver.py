"""A real HTTP server on loopback that plays inference.sh (the task API) for tests.

It speaks the protocol of the official ``inferencesh`` SDK (0.36.0): ``{"data": ...}``
envelopes, problem+json errors, ``POST /files`` + ``PUT upload_url``, ``POST /apps/run``,
``GET /tasks/{id}``, NDJSON ``GET /tasks/{id}/stream`` (task snapshots, heartbeats and
``{"data":..,"fields":[..]}`` partial updates), ``POST /tasks/{id}/cancel`` and the
output file. ``tests/test_fakeserver_contract.py`` runs the official SDK against it:
where the SDK and this file disagree, this file is wrong.

It plays ``klingai/video-v3``: the input is validated like the app page says (422 with
a ``detail``), and a completed task's ``output.video`` is a real, small mp4 made with
ffmpeg — the aspect ratio at ``short_side`` px, ``fps`` frames a second, the requested
duration, an AAC tone when ``sound`` is true — whose first frame is the uploaded start
image (scaled and centre-cropped), fading to the end image when one is given.

Usage::

    with FakeInference(latency=0.5) as fake:
        backend = InferenceBackend(api_key=fake.api_key, base_url=fake.url)
        ...
        assert len(fake.submissions) == 1

Faults are public attributes (set them before or while the server runs); the
count-based ones are consumed one per request of that kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import imageio_ffmpeg
from PIL import Image

__all__ = [
    "ASPECT_RATIOS",
    "STATUS_NAMES",
    "Call",
    "FakeInference",
    "FakeTask",
    "clip_size",
    "make_clip",
]

STATUS_NAMES = {
    0: "unknown",
    1: "received",
    2: "queued",
    3: "dispatched",
    4: "preparing",
    5: "serving",
    6: "setting_up",
    7: "running",
    8: "cancelling",
    9: "uploading",
    10: "completed",
    11: "failed",
    12: "cancelled",
    13: "rejected",
}
COMPLETED, FAILED, CANCELLED, REJECTED = 10, 11, 12, 13
TERMINAL = {COMPLETED, FAILED, CANCELLED, REJECTED}

# Fraction of the task latency at which each non-terminal status begins.
_TIMELINE = ((0.0, 1), (0.1, 2), (0.25, 4), (0.4, 7), (0.9, 9))

ASPECT_RATIOS = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "21:9": (21, 9),
}
KLING_APP = "klingai/video-v3"
KLING_FIELDS = {
    "prompt",
    "negative_prompt",
    "image",
    "end_image",
    "mode",
    "sound",
    "aspect_ratio",
    "duration",
    "resolution",  # interim: today's schema (the fake server is being rebuilt on the app snapshots)
    "multi_shot",
}
MAX_IMAGE_BYTES = 10 * 1024 * 1024


def clip_size(aspect_ratio: str, short_side: int = 90) -> tuple[int, int]:
    """Width and height of a clip: the ratio at ``short_side``, both even (yuv420p)."""
    w, h = ASPECT_RATIOS[aspect_ratio]

    def even(x: float) -> int:
        return max(2, round(x / 2) * 2)

    if w >= h:
        return even(short_side * w / h), even(short_side)
    return even(short_side), even(short_side * h / w)


# ---------------------------------------------------------------- clips (ffmpeg)

_CLIP_CACHE: dict[tuple[Any, ...], bytes] = {}
_CLIP_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}
_CLIP_GUARD = threading.Lock()


def make_clip(
    *,
    width: int,
    height: int,
    duration: float,
    fps: int,
    sound: bool,
    image: bytes | None = None,
    end_image: bytes | None = None,
) -> bytes:
    """A small H.264 mp4 (cached by its parameters for the life of the process)."""
    key = (
        width,
        height,
        duration,
        fps,
        sound,
        hashlib.sha256(image).hexdigest() if image else None,
        hashlib.sha256(end_image).hexdigest() if end_image else None,
    )
    with _CLIP_GUARD:
        if key in _CLIP_CACHE:
            return _CLIP_CACHE[key]
        lock = _CLIP_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key in _CLIP_CACHE:
            return _CLIP_CACHE[key]
        data = _render_clip(width, height, duration, fps, sound, image, end_image)
        with _CLIP_GUARD:
            _CLIP_CACHE[key] = data
        return data


def _render_clip(
    width: int,
    height: int,
    duration: float,
    fps: int,
    sound: bool,
    image: bytes | None,
    end_image: bytes | None,
) -> bytes:
    fit = (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop={width}:{height},setsar=1,fps={fps},format=yuv420p"
    )
    with tempfile.TemporaryDirectory(prefix="fakeinference-") as tmp:
        args = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        inputs = 0
        if image is not None:
            start = os.path.join(tmp, "start.img")
            with open(start, "wb") as f:
                f.write(image)
            args += ["-loop", "1", "-framerate", str(fps), "-t", f"{duration}", "-i", start]
            inputs += 1
            if end_image is not None:
                fade = min(1.0, duration / 2)
                end = os.path.join(tmp, "end.img")
                with open(end, "wb") as f:
                    f.write(end_image)
                args += ["-loop", "1", "-framerate", str(fps), "-t", f"{fade + 1}", "-i", end]
                inputs += 1
                graph = (
                    f"[0:v]{fit}[a];[1:v]{fit}[b];"
                    f"[a][b]xfade=transition=fade:duration={fade}:offset={duration - fade}[v]"
                )
            else:
                graph = f"[0:v]{fit}[v]"
        else:
            args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
            inputs += 1
            graph = f"[0:v]{fit}[v]"
        if sound:
            args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
        args += ["-filter_complex", graph, "-map", "[v]"]
        if sound:
            args += ["-map", f"{inputs}:a", "-c:a", "aac", "-b:a", "48k"]
        else:
            args += ["-an"]
        out = os.path.join(tmp, "clip.mp4")
        args += [
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "10", "-pix_fmt", "yuv420p",
            "-r", str(fps), "-t", f"{duration}", "-movflags", "+faststart", out,
        ]  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"fake server: ffmpeg failed: {proc.stderr[-2000:]}")
        with open(out, "rb") as f:
            return f.read()


# ---------------------------------------------------------------- state


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str  # with the query string
    server: str  # "api" or "files"
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeFile:
    id: str
    uri: str
    upload_url: str
    filename: str | None
    content_type: str | None
    size: int
    data: bytes | None = None


@dataclass
class FakeTask:
    id: str
    app: str
    input: dict[str, Any]
    created: float  # monotonic
    created_at: str
    latency: float
    fail_error: str | None = None
    final: int | None = None  # set status (rejected / cancelled)
    final_at: float | None = None
    error: str | None = None
    clip: Future[bytes] | None = None
    size: tuple[int, int] = (160, 90)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], fake: FakeInference, role: str) -> None:
        self.fake = fake
        self.role = role
        super().__init__(addr, _Handler, bind_and_activate=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on idle keep-alive connections and on streams: not an error.
        pass


class FakeInference:
    """inference.sh on 127.0.0.1, with fault knobs.

    ``files_host`` (e.g. ``"127.0.0.2"``) serves upload URLs and output files from a
    second server on another loopback address, as a storage host would; requests
    there must not carry the API key.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-0123456789abcdef",
        host: str = "127.0.0.1",
        files_host: str | None = None,
        latency: float = 0.3,
        statuses: str = "int",  # "int" or "string"
        envelope: bool = True,
        heartbeat_interval: float = 0.05,
        partial_updates: bool = True,
        short_side: int = 90,
        fps: int = 8,
        listen_after: float = 0.0,
        redirect_outputs: bool = False,
        video_as_object: bool = False,
        match_first_frame: bool = True,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.files_host = files_host
        self.latency = latency
        self.statuses = statuses
        self.envelope = envelope
        self.heartbeat_interval = heartbeat_interval
        self.partial_updates = partial_updates
        self.short_side = short_side
        self.fps = fps
        self.listen_after = listen_after
        self.redirect_outputs = redirect_outputs
        self.video_as_object = video_as_object
        # False: one clip per parameter set, whatever the images, each download made
        # unique by a trailing box (benchmarks: keeps the fake's ffmpeg work off the
        # machine that measures the client, while every clip still hashes differently)
        self.match_first_frame = match_first_frame

        # --- fault knobs -------------------------------------------------
        self.refuse_runs = 0  # first N POST /apps/run answered refuse_status
        self.refuse_status = 503  # or 429
        self.retry_after: str | None = "0"  # seconds or an HTTP-date; None: no header
        self.payment_required = False  # POST /apps/run -> 402
        self.reject = False  # tasks are created REJECTED (no balance; never ran)
        self.fail_prompt: str | None = None  # tasks whose prompt contains it FAIL
        self.fail_error = "content policy: the model refused this prompt"
        self.drop_run_responses = 0  # accept the task, then cut the connection unanswered
        self.drop_streams = 0  # streams cut (no final chunk) after the first snapshot
        self.end_streams = 0  # streams ended cleanly after the first snapshot
        self.heartbeat_streams = 0  # streams that only ever send heartbeats
        self.terminal_partial = False  # the final event is a partial update without output
        self.output_404 = 0  # output downloads answered 404
        self.truncate_downloads = 0  # downloads cut short of their Content-Length
        self.corrupt_downloads = 0  # downloads of half the file, no Content-Length
        self.delays: dict[str, float] = {}  # endpoint -> seconds before answering, always
        self._delay_queue: dict[str, list[float]] = {}
        # endpoints: files, upload, run, task, stream, cancel, download

        # --- records -----------------------------------------------------
        self.calls: list[Call] = []
        self.submissions: list[FakeTask] = []  # accepted (paid) POST /apps/run
        self.tasks: dict[str, FakeTask] = {}
        self.files: dict[str, FakeFile] = {}
        self.streams_opened = 0

        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fake-clip")
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._serving: list[_Server] = []
        self._stopped = False
        self.url = ""
        self.files_url = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeInference:
        api = _Server((self.host, 0), self, "api")
        api.server_bind()
        self._servers.append(api)
        self.url = f"http://{self.host}:{api.server_address[1]}"
        self.files_url = self.url
        if self.files_host:
            files = _Server((self.files_host, 0), self, "files")
            files.server_bind()
            files.server_activate()
            self._servers.append(files)
            self.files_url = f"http://{self.files_host}:{files.server_address[1]}"
            self._serve(files)
        if self.listen_after > 0:
            # Bound but not listening: connections are refused until then.
            def later() -> None:
                time.sleep(self.listen_after)
                with self._lock:
                    if not self._stopped:
                        api.server_activate()
                        self._serve(api)

            threading.Thread(target=later, daemon=True).start()
        else:
            api.server_activate()
            self._serve(api)
        return self

    def _serve(self, server: _Server) -> None:
        self._serving.append(server)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            serving = list(self._serving)
        for server in self._servers:
            if server in serving:
                server.shutdown()
            server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> FakeInference:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- helpers for tests

    def slow(self, endpoint: str, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` requests to ``endpoint`` by ``seconds``."""
        with self._lock:
            self._delay_queue.setdefault(endpoint, []).extend([seconds] * times)

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    @property
    def max_in_flight(self) -> int:
        """The most tasks that were running (submitted, not yet ended) at one time."""
        with self._lock:
            events: list[tuple[float, int]] = []
            for t in self.submissions:
                end = t.final_at if t.final_at is not None else t.created + t.latency
                events += [(t.created, 1), (end, -1)]
        peak = current = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            current += step
            peak = max(peak, current)
        return peak

    def status_of(self, task: FakeTask, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        if task.final is not None:
            return task.final
        elapsed = now - task.created
        if elapsed >= task.latency:
            return FAILED if task.fail_error else COMPLETED
        status = 1
        for start, code in _TIMELINE:
            if elapsed >= start * task.latency:
                status = code
        return status

    def _status_value(self, code: int) -> int | str:
        return STATUS_NAMES[code] if self.statuses == "string" else code

    def snapshot(self, task: FakeTask, code: int | None = None) -> dict[str, Any]:
        code = self.status_of(task) if code is None else code
        output: dict[str, Any] | None = None
        error = task.error
        if code == COMPLETED:
            url = (
                f"{self.url}/redirect/{task.id}.mp4"
                if self.redirect_outputs
                else f"{self.files_url}/outputs/{task.id}.mp4"
            )
            seconds = task.input.get("duration", 5)
            output = {
                "video": {"uri": url, "content_type": "video/mp4"} if self.video_as_object else url,
                "output_meta": {
                    "inputs": [{"type": "text"}]
                    + [{"type": "image"} for k in ("image", "end_image") if k in task.input],
                    "outputs": [
                        {
                            "type": "video",
                            "seconds": float(seconds),
                            "resolution": "1080p"
                            if task.input.get("mode", "pro") == "pro"
                            else "720p",
                            "fps": 24,
                            "extra": {"sound": bool(task.input.get("sound", True))},
                        }
                    ],
                },
            }
        elif code == FAILED:
            error = task.fail_error
        return {
            "id": task.id,
            "app": task.app,
            "status": self._status_value(code),
            "input": task.input,
            "output": output,
            "error": error,
            "logs": [],
            "created_at": task.created_at,
            "updated_at": _now_iso(),
        }

    def _take(self, knob: str) -> bool:
        """Consume one unit of a count-based fault."""
        with self._lock:
            left = int(getattr(self, knob))
            if left > 0:
                setattr(self, knob, left - 1)
                return True
            return False

    def _delay(self, endpoint: str) -> None:
        with self._lock:
            queue = self._delay_queue.get(endpoint)
            seconds = queue.pop(0) if queue else self.delays.get(endpoint, 0.0)
        if seconds > 0:
            time.sleep(seconds)

    # ---------------------------------------------------------------- validation

    def validate_run(self, body: Any) -> tuple[int, str] | None:
        """(HTTP status, detail) when POST /apps/run must be refused, else None."""
        if not isinstance(body, dict):
            return 400, "body must be a JSON object"
        app = body.get("app")
        if not isinstance(app, str) or app.split("@", 1)[0] != KLING_APP:
            return 404, f"app not found: {app!r}"
        inp = body.get("input")
        if not isinstance(inp, dict):
            return 422, "input must be an object"
        unknown = sorted(set(inp) - KLING_FIELDS)
        if unknown:
            return 422, f"input: unknown field(s) {', '.join(unknown)}"
        prompt = inp.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return 422, "input.prompt: required string"
        if len(prompt) > 2500:
            return 422, "input.prompt: at most 2500 characters"
        neg = inp.get("negative_prompt")
        if neg is not None and (not isinstance(neg, str) or len(neg) > 2500):
            return 422, "input.negative_prompt: a string of at most 2500 characters"
        if "mode" in inp and inp["mode"] not in ("std", "pro"):
            return 422, "input.mode: must be one of std, pro"
        if "sound" in inp and not isinstance(inp["sound"], bool):
            return 422, "input.sound: must be a boolean"
        if "aspect_ratio" in inp and inp["aspect_ratio"] not in ASPECT_RATIOS:
            return 422, f"input.aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)}"
        if "duration" in inp:
            d = inp["duration"]
            if isinstance(d, bool) or not isinstance(d, int) or not 3 <= d <= 15:
                return 422, "input.duration: an integer from 3 to 15"
        if "end_image" in inp and "image" not in inp:
            return 422, "input.end_image: requires input.image"
        for key in ("image", "end_image"):
            if key in inp:
                problem = self._check_image(key, inp[key])
                if problem:
                    return 422, problem
        return None

    def _check_image(self, key: str, uri: Any) -> str | None:
        if not isinstance(uri, str):
            return f"input.{key}: must be a file URI"
        with self._lock:
            record = next((f for f in self.files.values() if f.uri == uri), None)
        if record is None or record.data is None:
            return f"input.{key}: {uri} is not an uploaded file"
        if len(record.data) > MAX_IMAGE_BYTES:
            return f"input.{key}: larger than 10 MB"
        try:
            with Image.open(io.BytesIO(record.data)) as im:
                fmt = im.format
                w, h = im.size
                im.load()
        except Exception:
            return f"input.{key}: not an image"
        if fmt not in ("JPEG", "PNG"):
            return f"input.{key}: must be jpg, jpeg or png (got {fmt})"
        if min(w, h) < 300:
            return f"input.{key}: at least 300 px on each side (got {w}x{h})"
        return None

    def _file_bytes(self, uri: str | None) -> bytes | None:
        if uri is None:
            return None
        with self._lock:
            for f in self.files.values():
                if f.uri == uri:
                    return f.data
        return None

    def create_task(self, body: dict[str, Any]) -> FakeTask:
        inp = body["input"]
        prompt = inp["prompt"]
        task = FakeTask(
            id=f"task_{next(self._ids):04d}_{uuid.uuid4().hex[:8]}",
            app=body["app"],
            input=inp,
            created=time.monotonic(),
            created_at=_now_iso(),
            latency=self.latency,
            size=clip_size(inp.get("aspect_ratio", "16:9"), self.short_side),
        )
        if self.reject:
            task.final, task.final_at = REJECTED, task.created
            task.error = "insufficient balance"
        elif self.fail_prompt is not None and self.fail_prompt in prompt:
            task.fail_error = self.fail_error
        else:
            w, h = task.size
            task.clip = self._pool.submit(
                make_clip,
                width=w,
                height=h,
                duration=float(inp.get("duration", 5)),
                fps=self.fps,
                sound=bool(inp.get("sound", True)),
                image=self._file_bytes(inp.get("image")) if self.match_first_frame else None,
                end_image=self._file_bytes(inp.get("end_image")) if self.match_first_frame else None,
            )
        with self._lock:
            self.tasks[task.id] = task
            if task.final != REJECTED:
                self.submissions.append(task)
        return task


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def fake(self) -> FakeInference:
        return self.server.fake

    # ---------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self) -> Call:
        call = Call(
            method=self.command,
            path=self.path,
            server=self.server.role,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        with self.fake._lock:
            self.fake.calls.append(call)
        self._call = call
        return call

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self._call.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = {"data": payload, "messages": []} if self.fake.envelope else payload
        self._send(status, json.dumps(body).encode(), "application/json")

    def _problem(
        self, status: int, title: str, detail: str, extra: dict[str, str] | None = None
    ) -> None:
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        self._send(status, json.dumps(body).encode(), "application/problem+json", extra)

    def _no_content(self) -> None:
        self._call.status = 204
        self.send_response(204)
        self.end_headers()

    def _cut(self) -> None:
        """Close the connection abruptly."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.fake.api_key}":
            return True
        self._problem(401, "Unauthorized", "invalid or missing API key")
        return False

    # ---------------------------------------------------------------- routing

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._record()
        path = urlsplit(self.path).path
        parts = [p for p in path.split("/") if p]
        method = self.command
        try:
            # Storage-like endpoints: signed URLs, no API key.
            if method == "PUT" and len(parts) == 2 and parts[0] == "upload":
                return self._upload(parts[1])
            if method == "GET" and len(parts) == 2 and parts[0] == "outputs":
                return self._download(parts[1])
            if self.server.role != "api":
                return self._problem(404, "Not Found", f"no such object: {path}")
            if method == "GET" and len(parts) == 2 and parts[0] == "redirect":
                self._call.status = 302
                self.send_response(302)
                self.send_header("Location", f"{self.fake.files_url}/outputs/{parts[1]}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if not self._authorized():
                return None
            if method == "POST" and parts == ["files"]:
                return self._create_files()
            if method == "POST" and parts == ["apps", "run"]:
                return self._run()
            if len(parts) >= 2 and parts[0] == "tasks":
                task = self.fake.tasks.get(parts[1])
                if task is None:
                    return self._problem(404, "Not Found", f"task {parts[1]} not found")
                if method == "GET" and len(parts) == 2:
                    self.fake._delay("task")
                    return self._json(200, self.fake.snapshot(task))
                if method == "GET" and parts[2:] == ["stream"]:
                    return self._stream(task)
                if method == "POST" and parts[2:] == ["cancel"]:
                    return self._cancel(task)
            return self._problem(404, "Not Found", f"no route for {method} {path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return None

    # ---------------------------------------------------------------- endpoints

    def _create_files(self) -> None:
        self.fake._delay("files")
        body = self._call.json
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list) or not files:
            return self._problem(422, "Unprocessable Entity", "files: a non-empty list is required")
        created = []
        for spec in files:
            if not isinstance(spec, dict) or not isinstance(spec.get("size"), int):
                return self._problem(
                    422, "Unprocessable Entity", "files[].size: an integer is required"
                )
            fid = uuid.uuid4().hex[:12]
            name = spec.get("filename") or "upload.bin"
            record = FakeFile(
                id=fid,
                uri=f"{self.fake.files_url}/files/{fid}/{name}",
                upload_url=f"{self.fake.files_url}/upload/{fid}?sig={uuid.uuid4().hex}",
                filename=spec.get("filename"),
                content_type=spec.get("content_type"),
                size=spec["size"],
            )
            with self.fake._lock:
                self.fake.files[fid] = record
            created.append(
                {
                    "id": fid,
                    "uri": record.uri,
                    "upload_url": record.upload_url,
                    "filename": record.filename,
                    "content_type": record.content_type,
                    "size": record.size,
                    "created_at": _now_iso(),
                }
            )
        self._json(200, created)

    def _upload(self, fid: str) -> None:
        self.fake._delay("upload")
        record = self.fake.files.get(fid)
        if record is None:
            return self._problem(404, "Not Found", "unknown upload URL")
        data = self._call.body
        if len(data) != record.size:
            return self._problem(
                400, "Bad Request", f"declared size {record.size}, received {len(data)}"
            )
        record.data = data
        self._send(200, b"", "text/plain")

    def _run(self) -> None:
        fake = self.fake
        if fake._take("refuse_runs"):
            extra = {"Retry-After": fake.retry_after} if fake.retry_after is not None else None
            title = "Too Many Requests" if fake.refuse_status == 429 else "Service Unavailable"
            return self._problem(fake.refuse_status, title, "try again later", extra)
        if fake.payment_required:
            return self._problem(402, "Payment Required", "insufficient balance")
        body = self._call.json
        problem = fake.validate_run(body)
        if problem:
            status, detail = problem
            return self._problem(
                status, "Unprocessable Entity" if status == 422 else "Error", detail
            )
        task = fake.create_task(body)
        fake._delay("run")
        if fake._take("drop_run_responses"):
            return self._cut()
        self._json(200, fake.snapshot(task))

    def _cancel(self, task: FakeTask) -> None:
        self.fake._delay("cancel")
        with self.fake._lock:
            if self.fake.status_of(task) not in TERMINAL:
                task.final, task.final_at = CANCELLED, time.monotonic()
        self._no_content()

    def _download(self, name: str) -> None:
        fake = self.fake
        fake._delay("download")
        task = fake.tasks.get(name.removesuffix(".mp4"))
        if task is None or task.clip is None or fake.status_of(task) != COMPLETED:
            return self._problem(404, "Not Found", "no such object")
        if fake._take("output_404"):
            return self._problem(404, "Not Found", "no such object (yet)")
        data = task.clip.result(timeout=60)
        if not fake.match_first_frame:
            # a shared clip, made unique per task by a trailing ISO-BMFF 'free' box, so that
            # clients still see one distinct clip (hash, frames) per task, as from a model
            tag = task.id.encode()
            data = data + (8 + len(tag)).to_bytes(4, "big") + b"free" + tag
        if fake._take("truncate_downloads"):
            self._call.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self._cut()
        if fake._take("corrupt_downloads"):
            self._call.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        self._send(200, data, "video/mp4")

    # ---------------------------------------------------------------- the NDJSON stream

    def _chunk(self, obj: Any) -> None:
        line = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()

    def _stream(self, task: FakeTask) -> None:
        fake = self.fake
        fake._delay("stream")
        with fake._lock:
            fake.streams_opened += 1
        mode = "normal"
        for knob, name in (
            ("drop_streams", "drop"),
            ("end_streams", "end"),
            ("heartbeat_streams", "heartbeat"),
        ):
            if fake._take(knob):
                mode = name
                break
        self._call.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for _ in self._events(task, mode):
                pass
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _events(self, task: FakeTask, mode: str) -> Iterator[None]:
        fake = self.fake
        heartbeat = {"type": "heartbeat"}
        if mode == "heartbeat":
            until = time.monotonic() + 30
            while time.monotonic() < until:
                self._chunk(heartbeat)
                yield
                time.sleep(fake.heartbeat_interval)
            self.wfile.write(b"0\r\n\r\n")
            return
        last: int | None = None
        last_beat = time.monotonic()
        until = time.monotonic() + 120
        while time.monotonic() < until:
            code = fake.status_of(task)
            snap = fake.snapshot(task, code)  # one instant: status and output agree
            if code in TERMINAL:
                if fake.terminal_partial:
                    self._chunk(
                        {"data": {"id": task.id, "status": snap["status"]}, "fields": ["status"]}
                    )
                else:
                    self._chunk(snap)
                break
            if last is None:
                self._chunk(snap)
                if mode == "drop":
                    self._chunk(heartbeat)
                    self._cut()
                    return
                if mode == "end":
                    break
            elif code != last:
                if fake.partial_updates:
                    fields = ["status", "updated_at"]
                    self._chunk(
                        {"data": {"id": task.id, **{f: snap[f] for f in fields}}, "fields": fields}
                    )
                else:
                    self._chunk(snap)
            elif time.monotonic() - last_beat >= fake.heartbeat_interval:
                self._chunk(heartbeat)
                last_beat = time.monotonic()
            last = code
            yield
            time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def gradient_image(
    path: str | os.PathLike[str], width: int = 640, height: int = 360, seed: int = 0
) -> None:
    """A smooth test picture (PNG or JPEG by suffix): gradients survive scaling and H.264."""
    x = [i / max(1, width - 1) for i in range(width)]
    im = Image.new("RGB", (width, height))
    px = im.load()
    assert px is not None
    a, b, c = (40 + 60 * seed) % 200, (90 + 37 * seed) % 200, (150 + 23 * seed) % 200
    for j in range(height):
        y = j / max(1, height - 1)
        for i in range(width):
            px[i, j] = (
                int(a + 55 * x[i]),
                int(b + 55 * y),
                int(c + 40 * (x[i] + y) / 2),
            )
    im.save(path)
