"""The studio's render worker and its event hub.

A render is the CLI's: a :class:`storyboard.runner.Pipeline` (same cache, journal, claims,
budget), run in a thread on its own event loop so the page stays served. Its events go
to every open page as server-sent events (the hub): the runner's own event stream, passed
on as each event happens, with no polling. Cancel cancels the render's main task, exactly
what Ctrl-C does to ``asyncio.run`` in the CLI, so the journal it leaves is the same: a
paid task already submitted stays journalled and resumes on the next render.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from storyboard.errors import StoryboardError
from storyboard.events import Event, RenderResult

__all__ = ["Hub", "Worker"]

Message = dict[str, Any]


class Hub:
    """Every open page's queue of messages; a message goes to all of them."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[Message]] = set()

    def close(self) -> None:
        """End every page's stream (the studio is stopping)."""
        for q in self.queues:
            q.put_nowait({"event": "studio_stopped"})

    def publish(self, message: Message) -> None:
        """Send ``message`` to every page (call on the server's loop)."""
        for q in self.queues:
            q.put_nowait(message)

    async def stream(self) -> AsyncIterator[str]:
        """One page's server-sent events, until it goes away."""
        q: asyncio.Queue[Message] = asyncio.Queue()
        self.queues.add(q)
        try:
            yield "retry: 1000\n: connected\n\n"
            while True:
                message = await q.get()
                yield f"data: {json.dumps(message, default=str)}\n\n"
                if message.get("event") == "studio_stopped":
                    return
        finally:
            self.queues.discard(q)


class Worker:
    """One render at a time, in a thread; its events and its end reach the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_event: Callable[[Message], None],
                 on_end: Callable[[str, Message], None]) -> None:
        self.server_loop = loop
        self.on_event = on_event
        self.on_end = on_end
        self.kind: str | None = None  # "render" or "preview" while one runs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread: threading.Thread | None = None
        self.cancelled = False

    @property
    def busy(self) -> bool:
        """Whether a render is running."""
        return self.kind is not None

    def event(self, event: Event) -> None:
        """The pipeline's listener (in the render thread): hand the event to the server."""
        self.server_loop.call_soon_threadsafe(self.on_event, event.to_dict())

    def start(self, kind: str, make: Callable[[], Any]) -> None:
        """Run ``make()`` (a Pipeline) in the worker thread."""
        if self.busy:
            raise StoryboardError(f"a {self.kind} is already running; cancel it or wait")
        self.kind, self.cancelled = kind, False
        self._thread = threading.Thread(target=self._run, args=(kind, make), name=f"studio-{kind}", daemon=True)
        self._thread.start()

    def _run(self, kind: str, make: Callable[[], Any]) -> None:
        outcome: Message
        try:
            with asyncio.Runner() as runner:  # closes like asyncio.run: remaining tasks cancelled
                result: RenderResult = runner.run(self._main(make))
            outcome = {"ok": True, "film": str(result.film) if result.film else None, "cost": str(result.cost)}
        except asyncio.CancelledError:
            outcome = {"ok": False, "cancelled": True,
                       "error": "cancelled; every clip already made is cached, and journalled remote tasks "
                                "resume on the next render"}
        except StoryboardError as e:
            outcome = {"ok": False, "error": str(e)}
        except Exception as e:  # a bug: said in one line, never a traceback on the page
            outcome = {"ok": False, "error": f"internal error: {type(e).__name__}: {e}"}
        self._loop = self._task = None
        self.server_loop.call_soon_threadsafe(self._ended, kind, outcome)

    def _ended(self, kind: str, outcome: Message) -> None:
        self.kind = None
        self.on_end(kind, outcome)

    async def _main(self, make: Callable[[], Any]) -> RenderResult:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        if self.cancelled:
            raise asyncio.CancelledError
        pipeline = make()
        result: RenderResult = await pipeline.run()
        return result

    def cancel(self) -> bool:
        """Cancel the running render's main task (as Ctrl-C does); False when none runs."""
        if not self.busy:
            return False
        self.cancelled = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the render thread (at shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)
