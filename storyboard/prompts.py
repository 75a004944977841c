"""Prompt rendering: a sandboxed Jinja2 environment with strict undefined names,
bounded in time and output size.

Templates are looked up in the storyboard's ``templates:`` folders first, then in the
library shipped with the package (``storyboard.templates``).
"""

from __future__ import annotations

import ctypes
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_RENDER_CHARS = 100_000  # a template producing more than this is stopped
MAX_RENDER_SECONDS = 2.0  # per prompt
MAX_RANGE = 10_000
MAX_REPEAT = 100_000


class RenderTimeout(Exception):
    """Raised inside a template that runs for too long."""


class PromptError(Exception):
    """A template could not be rendered. ``file``/``line`` point into the template file
    (``file`` is None for an inline prompt, ``line`` then counts from the prompt's start)."""

    def __init__(self, message: str, *, template: str | None = None, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.template = template
        self.file = file
        self.line = line
        super().__init__(message)


def library_dir() -> Path:
    """The folder of the template library shipped with the package."""
    try:
        root = resources.files("storyboard.templates")
        return Path(str(root))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - broken install
        return Path(__file__).resolve().parent.parent / "templates"


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range() of {len(rng)} items; templates may loop at most {MAX_RANGE} times")
    return rng


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                    raise SecurityError(f"a template may not build a value of more than {MAX_REPEAT} items")
            return left * right
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError("exponents above 64 are not allowed in templates")
            return left**right
        return super().call_binop(context, operator, left, right)  # pragma: no cover


class _Watchdog:
    """One daemon thread that interrupts a render running past its deadline.

    It raises RenderTimeout asynchronously in the rendering thread, which stops pure
    Python loops (what templates compile to) without any per-step cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._target: int | None = None
        self._started = False

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            with self._lock:
                if self._deadline is not None and self._target is not None and time.monotonic() > self._deadline:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self._target), ctypes.py_object(RenderTimeout)
                    )
                    self._deadline = None

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        with self._lock:
            if not self._started:
                threading.Thread(target=self._run, name="storyboard-template-watchdog", daemon=True).start()
                self._started = True
            self._deadline = time.monotonic() + seconds
            self._target = threading.get_ident()
        try:
            yield
        finally:
            with self._lock:
                self._deadline = None
                self._target = None


_WATCHDOG = _Watchdog()
_RENDER_LOCK = threading.Lock()  # one render at a time: the watchdog tracks one thread


@dataclass(frozen=True)
class _Where:
    file: str | None
    line: int | None


def _template_frame(tb: types.TracebackType | None, known: Callable[[str], bool]) -> _Where:
    where = _Where(None, None)
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if known(name):
            where = _Where(None if name == "<template>" else name, tb.tb_lineno)
        tb = tb.tb_next
    return where


class PromptRenderer:
    """Renders prompt templates for one storyboard."""

    def __init__(self, template_dirs: Sequence[Path] = ()) -> None:
        self.dirs = [*template_dirs, library_dir()]
        self.env = _Sandbox(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs], followlinks=False),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["range"] = _safe_range
        self._compiled: dict[str, jinja2.Template] = {}

    def _known(self, filename: str) -> bool:
        if filename == "<template>":
            return True
        return any(filename.startswith(str(d)) for d in self.dirs)

    def render(self, *, inline: str | None = None, template: str | None = None, context: Mapping[str, Any]) -> str:
        """Render an inline template or a template file. Raises PromptError."""
        label = template or "prompt"
        try:
            if inline is not None:
                if not any(tok in inline for tok in ("{{", "{%", "{#")):
                    return inline.strip()
                tpl = self._compiled.get(inline)
                if tpl is None:
                    tpl = self.env.from_string(inline)
                    self._compiled[inline] = tpl
            elif template is not None:
                tpl = self.env.get_template(template)
            else:  # pragma: no cover - the spec guarantees one of them
                raise PromptError("no prompt")
            return self._generate(tpl, context).strip()
        except TemplateSyntaxError as e:
            raise PromptError(
                f"template syntax error: {e.message}", template=e.name or label,
                file=e.filename if e.filename and e.filename != "<template>" else None, line=e.lineno,
            ) from None
        except TemplateNotFound as e:
            raise PromptError(
                f"template '{e.name}' not found (looked in: {', '.join(str(d) for d in self.dirs)})", template=label
            ) from None
        except UndefinedError as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(f"{e.message}", template=label, file=w.file, line=w.line) from None
        except SecurityError as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(f"not allowed in a template: {e}", template=label, file=w.file, line=w.line) from None
        except RenderTimeout as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(
                f"the template ran for more than {MAX_RENDER_SECONDS:g} s and was stopped", template=label,
                file=w.file, line=w.line,
            ) from None
        except PromptError:
            raise
        except Exception as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(f"{type(e).__name__}: {e}", template=label, file=w.file, line=w.line) from None

    def _generate(self, tpl: jinja2.Template, context: Mapping[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        with _RENDER_LOCK, _WATCHDOG.limit(MAX_RENDER_SECONDS):
            for chunk in tpl.generate(dict(context)):
                size += len(chunk)
                if size > MAX_RENDER_CHARS:
                    raise PromptError(f"the template renders more than {MAX_RENDER_CHARS} characters; stopped")
                parts.append(chunk)
        return "".join(parts)
