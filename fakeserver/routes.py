"""The fake server's HTTP side: routes, envelopes, problem+json, the NDJSON stream, faults."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from fakeserver.apprules import image_info
from fakeserver.records import CANCELLED, COMPLETED, TERMINAL, Call, FakeFile, FakeTask, now_iso

if TYPE_CHECKING:
    from fakeserver.server import FakeInference

__all__ = ["HttpServer"]


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 2048  # a real service's backlog: a burst of connections is not refused

    def __init__(self, addr: tuple[str, int], fake: FakeInference, role: str) -> None:
        self.fake = fake
        self.role = role
        super().__init__(addr, _Handler, bind_and_activate=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on idle keep-alive connections and on streams: not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HttpServer
    timeout = 120  # an idle keep-alive connection is closed after this (above the client's 30 s expiry)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the
        # second until the client's delayed ACK (~40 ms), which would dwarf loopback timings.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        messages = list(self.fake.messages)
        body = {"data": payload, "messages": messages} if self.fake.envelope else payload
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
        sent = self.headers.get("Authorization") or ""
        if sent in (f"Bearer {key}" for key in (self.fake.api_key, *self.fake.extra_keys)):
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
            if method == "GET" and parts[:1] == ["apps"] and len(parts) in (3, 4):
                return self._app([unquote(p) for p in parts[1:]])
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
                    "created_at": now_iso(),
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
        if self.fake._take("upload_errors"):  # the bytes arrived, the answer says otherwise
            return self._problem(500, "Internal Server Error", "upload failed")
        self._send(200, b"", "text/plain")
        if (record.content_type or "").startswith("image/"):
            image_info(data)  # checked once, as it arrives (a run that uses it reads the verdict)

    def _app(self, parts: list[str]) -> None:
        """``GET /apps/{ns}/{name}[@version]`` or ``GET /apps/{app id}/versions/{version}``."""
        fake = self.fake
        fake._delay("app")
        if fake._take("app_failures"):
            extra = {"Retry-After": fake.retry_after} if fake.retry_after is not None else None
            return self._problem(503, "Service Unavailable", "try again later", extra)
        if len(parts) == 2:
            ref = "/".join(parts)
        else:
            app = fake.catalog.by_app_id(parts[0]) if parts[1] == "versions" else None
            if app is None:
                return self._problem(404, "Not Found", f"app {parts[0]!r} not found")
            ref = f"{app}@{parts[2]}"
        version = fake.app_version(ref)
        if version is None:
            return self._problem(404, "Not Found", f"app {ref!r} not found")
        self._json(200, version.app_object())
        if fake.after_app_read is not None:
            fake.after_app_read()

    def _run(self) -> None:
        fake = self.fake
        if fake._take("refuse_runs"):
            extra = {"Retry-After": fake.retry_after} if fake.retry_after is not None else None
            title = "Too Many Requests" if fake.refuse_status == 429 else "Service Unavailable"
            return self._problem(fake.refuse_status, title, "try again later", extra)
        wait = fake._rate_wait(self.headers.get("Authorization") or "")
        if wait is not None:
            return self._problem(429, "Too Many Requests", "rate limit of this API key", {"Retry-After": str(wait)})
        if fake.payment_required:
            return self._problem(402, "Payment Required", "insufficient balance")
        with fake._lock:
            service_error = fake.run_errors.pop(0) if fake.run_errors else None
        if service_error is not None:
            status, code, meta = service_error
            body = {"type": "about:blank", "title": code.replace("_", " "), "status": status,
                    "detail": f"{code} (fake)", "code": code, "meta": meta}
            return self._send(status, json.dumps(body).encode(), "application/problem+json")
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
        task = fake.tasks.get(name.rsplit(".", 1)[0])
        if task is None or task.clip is None or fake.status_of(task) != COMPLETED:
            return self._problem(404, "Not Found", "no such object")
        if fake._take("output_404"):
            return self._problem(404, "Not Found", "no such object (yet)")
        data = task.clip.result(timeout=60)
        mime = {"video": "video/mp4", "image": "image/png", "audio": "audio/wav"}[task.kind]
        if not fake.match_first_frame and task.kind == "video":
            # a shared clip, made unique per task by a trailing ISO-BMFF 'free' box, so that
            # clients still see one distinct clip (hash, frames) per task, as from a model
            tag = task.id.encode()
            data = data + (8 + len(tag)).to_bytes(4, "big") + b"free" + tag
        if fake._take("truncate_downloads"):
            self._call.status = 200
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self._cut()
        if fake._take("corrupt_downloads"):
            self._call.status = 200
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        if fake.download_rate:
            self._paced(data, mime, fake.download_rate)
        else:
            self._send(200, data, mime)
        with fake._lock:
            fake.downloaded[task.id] = time.monotonic()

    def _paced(self, data: bytes, mime: str, rate: float) -> None:
        """Send ``data`` at ``rate`` bytes a second, 16 KiB at a time (a link, not loopback)."""
        self._call.status = 200
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        start = time.monotonic()
        for at in range(0, len(data), 16384):
            self.wfile.write(data[at:at + 16384])
            self.wfile.flush()
            ahead = start + (at + 16384) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

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
                if mode == "end":  # ends before the last word, however soon the task ended
                    break
                if fake.terminal_partial:
                    # The error rides along in data without being listed in fields.
                    data = {"id": task.id, "status": snap["status"]}
                    if snap["error"]:
                        data["error"] = snap["error"]
                    self._chunk({"data": data, "fields": ["status"]})
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
            # until the next status change (a cancel is seen within 10 ms), never past a heartbeat
            now = time.monotonic()
            change = fake.next_change(task, now)
            pause = min(0.01, fake.heartbeat_interval, max(0.0, (change or now + 1) - now))
            time.sleep(pause)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
