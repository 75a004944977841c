"""The fake inference.sh: a real server on loopback, its state, apps, tasks and fault knobs.

:mod:`fakeserver.routes` answers the requests. It speaks the protocol of the official
``inferencesh`` SDK (0.36.0): ``{"data": ...}`` envelopes, problem+json errors,
``POST /files`` + ``PUT upload_url``, ``GET /apps/..``, ``POST /apps/run``,
``GET /tasks/{id}``, NDJSON ``GET /tasks/{id}/stream`` (task snapshots, heartbeats and
``{"data":..,"fields":[..]}`` partial updates), ``POST /tasks/{id}/cancel`` and the
output file. ``tests/test_fakeserver_contract.py`` runs the official SDK against it:
where the SDK and this file disagree, this file is wrong.

It plays every bundled app snapshot (:mod:`fakeserver.rules`): ``GET /apps/{namespace}/
{name}`` (also ``@version``) and ``GET /apps/{app id}/versions/{version id}`` answer the
app object; ``POST /apps/run`` judges the input by the version's schema (unpinned: the
live one, ``live_version`` or the newest, changed by ``drift`` when set). A completed
task's output follows the app's output schema: a real mp4 (:mod:`fakeserver.clips`) plus
``output_meta`` for video apps, a PNG for image apps, a WAV tone for audio apps (a TTS
app's as long as its text, a music app's ``music_seconds``); an app in ``no_output_apps``
completes with no output file.

Usage::

    with FakeInference(latency=0.5) as fake:
        backend = InferenceBackend(api_key=fake.api_key, base_url=fake.url)
        ...
        assert len(fake.submissions) == 1

Faults are public attributes (set them before or while the server runs); the
count-based ones are consumed one per request of that kind.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from fakeserver.apprules import file_rules
from fakeserver.clips import ASPECT_RATIOS, clip_seconds, clip_size, make_clip, make_png, make_wav
from fakeserver.knobs import FaultKnobs
from fakeserver.meta import output_meta
from fakeserver.records import (
    COMPLETED,
    FAILED,
    REJECTED,
    STATUS_NAMES,
    Call,
    FakeFile,
    FakeTask,
    next_change_at,
    now_iso,
    status_at,
)
from fakeserver.routes import HttpServer
from fakeserver.rules import (
    AppVersion,
    Catalog,
    drift_schema,
    effective_inputs,
    input_problem,
    parse_ref,
)
from fakeserver.text import text_output

__all__ = ["FakeInference"]



class FakeInference(FaultKnobs):
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
        unknown: str = "permissive",
        live_version: str | None = None,
        drift: dict[str, dict[str, Any] | None] | None = None,
    ) -> None:
        super().__init__()  # the fault knobs (fakeserver.knobs)
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
        # --- the apps ----------------------------------------------------
        self.catalog = Catalog()
        self.unknown = unknown  # "permissive" (ignored, as the real service) or "strict" (422)
        self.live_version = live_version  # what an unpinned app ref runs; None: the newest
        self.drift = drift  # changes to the live input schema, e.g. {"duration": {"maximum": 10}}
        self.drift_version_id = "snapshot-live-drift"  # the live version id while drifted
        # called after each GET /apps/.. is answered: e.g. a deploy right after a live check
        self.after_app_read: Callable[[], None] | None = None

        # --- records -----------------------------------------------------
        self.calls: list[Call] = []
        self.submissions: list[FakeTask] = []  # accepted (paid) POST /apps/run
        self.tasks: dict[str, FakeTask] = {}
        self.files: dict[str, FakeFile] = {}
        self.streams_opened = 0

        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fake-clip")
        self._servers: list[HttpServer] = []
        self._threads: list[threading.Thread] = []
        self._serving: list[HttpServer] = []
        self._stopped = False
        self.url = ""
        self.files_url = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeInference:
        api = HttpServer((self.host, 0), self, "api")
        api.server_bind()
        self._servers.append(api)
        self.url = f"http://{self.host}:{api.server_address[1]}"
        self.files_url = self.url
        if self.files_host:
            files = HttpServer((self.files_host, 0), self, "files")
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

    def _serve(self, server: HttpServer) -> None:
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
        return status_at(task, time.monotonic() if now is None else now)

    def next_change(self, task: FakeTask, now: float | None = None) -> float | None:
        """When the task's status next changes on its own (a stream sleeps until then)."""
        return next_change_at(task, time.monotonic() if now is None else now)

    def _status_value(self, code: int) -> int | str:
        return STATUS_NAMES[code] if self.statuses == "string" else code

    def snapshot(self, task: FakeTask, code: int | None = None) -> dict[str, Any]:
        code = self.status_of(task) if code is None else code
        output: dict[str, Any] | None = None
        error = task.error
        if code == COMPLETED:
            output = self._output(task)
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
            "updated_at": now_iso(),
        }

    def _output(self, task: FakeTask) -> dict[str, Any]:
        """A completed task's output, shaped by the app's output schema, with the pricing
        metadata the real apps report (:func:`fakeserver.meta.output_meta`)."""
        if task.kind == "text":  # a text app answers JSON (fakeserver.text), no file
            return task.answer
        name = f"{task.id}.{task.extension}"
        url = (
            f"{self.url}/redirect/{name}"
            if self.redirect_outputs
            else f"{self.files_url}/outputs/{name}"
        )
        if parse_ref(task.app)[0] in self.no_output_apps:
            return {"output_meta": {"inputs": [{"type": "text"}], "outputs": []}}
        width, height = task.size
        meta = output_meta(task.kind, task.effective, task.file_kinds, width=width, height=height,
                           seconds=task.seconds, fps=self.fps, is_music=task.music)
        if task.kind != "video":
            return {task.kind: url, "output_meta": meta}
        video: Any = {"uri": url, "content_type": "video/mp4"} if self.video_as_object else url
        return {"video": video, "output_meta": meta}

    def _file_bytes(self, uri: str | None) -> bytes | None:
        if uri is None:
            return None
        with self._lock:
            for f in self.files.values():
                if f.uri == uri:
                    return f.data
        return None

    # ---------------------------------------------------------------- apps

    def app_version(self, ref: str) -> AppVersion | None:
        """The version an app reference runs: ``ns/name`` (live) or ``ns/name@version``."""
        app, pinned = parse_ref(ref)
        if pinned and pinned == self.drift_version_id and self.drift is not None:
            pinned = ""
        version = self.catalog.find(app, pinned or self.live_version)
        if version is None or pinned or self.drift is None:
            return version
        return AppVersion(
            app=version.app,
            version_id=self.drift_version_id,
            input_schema=drift_schema(version.input_schema, self.drift),
            output_schema=version.output_schema,
            profile=version.profile,
        )

    @property
    def inputs_sent(self) -> list[dict[str, Any]]:
        """The input of every accepted (paid) ``POST /apps/run``, exactly as sent."""
        with self._lock:
            return [t.input for t in self.submissions]

    def validate_run(self, body: Any) -> tuple[int, str] | None:
        """(HTTP status, detail) when POST /apps/run must be refused, else None."""
        if not isinstance(body, dict):
            return 400, "body must be a JSON object"
        ref = body.get("app")
        version = self.app_version(ref) if isinstance(ref, str) else None
        if version is None:
            return 404, f"app not found: {ref!r}"
        problem = input_problem(
            version, body.get("input"), unknown=self.unknown, file_bytes=self._file_bytes
        )
        return (422, problem) if problem else None

    def audio_seconds(self, version: AppVersion, inputs: dict[str, Any]) -> float:
        """How long an audio app's answer lasts: a music app's ``music_seconds``; a TTS app's
        text at ``speech_chars_per_second``."""
        if "lyrics" in version.known or "is_instrumental" in version.known:
            return self.music_seconds
        text = str(inputs.get("text") or inputs.get("prompt") or "")
        return max(0.5, round(len(text) / self.speech_chars_per_second, 3))

    @property
    def makers(self) -> dict[str, Callable[[FakeTask, AppVersion], Future[bytes] | None]]:
        """What makes a task's output, by the app's kind (``AppVersion.kind``): a new kind
        of app is one more entry here and one more branch in ``_output``."""
        return {"image": self._make_image, "audio": self._make_audio, "video": self._make_video,
                "text": self._make_text}

    def _make_text(self, task: FakeTask, version: AppVersion) -> None:
        """A text app's answer, now (a scripted one is popped: atomic under the GIL)."""
        task.answer = text_output(task.input, self.text_script)

    def _make_image(self, task: FakeTask, version: AppVersion) -> Future[bytes]:
        return self._pool.submit(make_png, *task.size)

    def _make_audio(self, task: FakeTask, version: AppVersion) -> Future[bytes]:
        seconds = self.audio_seconds(version, task.effective)
        task.seconds = round(max(1, int(seconds * 16000)) / 16000, 3)  # make_wav's samples at its rate
        # music at 220 Hz, speech at 440 Hz: a test can tell the two apart in the mix
        return self._pool.submit(make_wav, seconds, 16000, 220.0 if task.music else 440.0)

    def _make_video(self, task: FakeTask, version: AppVersion) -> Future[bytes]:
        """A clip whose first frame is the app's start frame input (its profile names it),
        fading to its end frame."""
        concepts = version.profile.get("concepts") or {}
        eff, frames = task.effective, self.match_first_frame
        w, h = task.size
        duration = clip_seconds(eff.get("duration"))
        task.seconds = round(round(duration * self.fps) / self.fps, 3)  # whole frames, as the clip has
        return self._pool.submit(
            make_clip, width=w, height=h, duration=duration, fps=self.fps,
            sound=bool(eff.get("sound", eff.get("generate_audio", True))),
            image=self._file_bytes(task.input.get(concepts.get("start_frame", "image"))) if frames else None,
            end_image=self._file_bytes(task.input.get(concepts.get("end_frame", "end_image"))) if frames else None,
        )

    def create_task(self, body: dict[str, Any]) -> FakeTask:
        """Start a task for an accepted ``POST /apps/run`` body."""
        inp = body["input"]
        version = self.app_version(body["app"])
        assert version is not None  # validate_run came first
        eff = effective_inputs(version, inp)
        ratio = eff.get("aspect_ratio")
        task = FakeTask(
            id=f"task_{next(self._ids):04d}_{uuid.uuid4().hex[:8]}",
            app=body["app"],
            input=inp,
            created=time.monotonic(),
            created_at=now_iso(),
            latency=self._task_latency(self.latency),
            size=clip_size(ratio if ratio in ASPECT_RATIOS else "16:9", self.short_side),
            version_id=version.version_id,
            kind=version.kind,
            effective=eff,
            music="lyrics" in version.known or "is_instrumental" in version.known,
        )
        rules = file_rules(version.input_schema.get("properties") or {}, version.profile, version.version_id)
        task.file_kinds = {n: r.kind for n, r in rules.items() if inp.get(n) not in (None, [], "")}
        prompt = str(eff.get("prompt") or eff.get("text") or "")
        if self.reject:
            task.final, task.final_at = REJECTED, task.created
            task.error = "insufficient balance"
        elif self._take("fail_tasks") or (self.fail_prompt is not None and self.fail_prompt in prompt):
            task.fail_error = self.fail_error
        else:
            task.clip = self.makers[task.kind](task, version)
        with self._lock:
            self.tasks[task.id] = task
            if task.final != REJECTED:
                self.submissions.append(task)
        return task
