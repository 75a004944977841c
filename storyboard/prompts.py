"""Prompt rendering: a sandboxed Jinja2 environment with strict undefined names,
bounded in time and output size.

Templates are looked up in the storyboard's ``templates:`` folders first, then in the
library shipped with the package (``storyboard.templates``).
"""

from __future__ import annotations

import ctypes
import difflib
import functools
import os
import re
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
from jinja2 import (
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from storyboard.errors import PromptError
from storyboard.readnames import RecordingContext, keys_read_from_vars, note, recorded

__all__ = [
    "MAX_RENDER_CHARS",
    "MAX_RENDER_SECONDS",
    "PromptError",
    "PromptRenderer",
    "ShotsSoFar",
    "library_dir",
]

MAX_RENDER_CHARS = 100_000  # a template producing more than this is stopped
MAX_RENDER_SECONDS = 2.0  # per prompt
MAX_RANGE = 10_000
MAX_REPEAT = 100_000
MAX_RENDER_MEMORY = 512 * 1024 * 1024  # address space one render may add (Linux)
MAX_TEMPLATE_BYTES = 1024 * 1024  # a template file


class RenderTimeout(Exception):
    """Raised inside a template that runs for too long."""


class _TemplateRaised(Exception):
    """Raised by the ``template_error(message)`` global a template may call."""


def _template_error(message: str) -> str:
    raise _TemplateRaised(str(message))


class _UsesFailedPrompt(Exception):
    """Raised when a template reads ``shots.X`` and shot X's prompt failed."""

    def __init__(self, shot: str) -> None:
        self.shot = shot
        super().__init__(shot)


class ShotsSoFar(dict[str, Any]):
    """The ``shots`` a template may read: the prompts rendered so far, by shot id.

    Reading a shot whose prompt failed stops the render with that cause, so one broken
    prompt is reported once, not again as "no attribute" by every prompt that uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: set[str] = set()

    def __missing__(self, key: str) -> Any:
        if key in self.failed:
            raise _UsesFailedPrompt(key)
        raise KeyError(key)


class _NamedUndefined(UndefinedError):
    """An undefined name, with where it was looked up (``owner``; ``missing`` for a
    top-level name), so the message can suggest a near name."""

    def __init__(self, message: str | None = None, *, name: object = None, owner: object = missing) -> None:
        super().__init__(message)
        self.name = name
        self.owner = owner


class _Undefined(StrictUndefined):
    """StrictUndefined whose error carries the name and its owner (not only a message)."""

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[jinja2.TemplateRuntimeError] = UndefinedError,
    ) -> None:
        if hint is None and isinstance(obj, ShotsSoFar) and isinstance(name, str):
            hint = f"no shot '{name}' above this one has a prompt to read (shots.ID reads earlier shots)"
        super().__init__(hint, obj, name, exc)
        if exc is UndefinedError:  # not the sandbox's SecurityError
            # jinja raises self._undefined_exception(message): hand it the name and owner too
            self._undefined_exception = functools.partial(  # type: ignore[assignment]
                _NamedUndefined, name=name, owner=obj
            )


def _near_name(error: UndefinedError, context: Mapping[str, Any]) -> str:
    """``"; did you mean 'mood'?"`` for an undefined name close to a defined one."""
    if not isinstance(error, _NamedUndefined) or not isinstance(error.name, str):
        return ""
    if error.owner is missing:
        choices = [str(k) for k in context]
    elif isinstance(error.owner, Mapping):
        choices = [str(k) for k in error.owner]
        if isinstance(error.owner, ShotsSoFar):
            choices += sorted(error.owner.failed)
    else:
        return ""
    match = difflib.get_close_matches(error.name, choices, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


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
    context_class = RecordingContext

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


class _ContainedLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that reads only files really inside its folders: a template
    that is a symlink to a file elsewhere (``/etc/passwd``, a key file) would otherwise be
    read and sent to the API as part of a prompt."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        for folder in self.searchpath:
            filename = os.path.join(folder, *pieces)
            if not os.path.isfile(filename):
                continue
            root, real = os.path.realpath(folder), os.path.realpath(filename)
            if os.path.commonpath([root, real]) != root:
                raise SecurityError(f"template '{template}' points outside its folder {folder} (a symlink?)")
            if os.path.getsize(real) > MAX_TEMPLATE_BYTES:
                raise SecurityError(f"template '{template}' is larger than {MAX_TEMPLATE_BYTES // 1024} KB")
            break
        return super().get_source(environment, template)


@contextmanager
def _memory_limit(extra: int) -> Iterator[None]:
    """Cap the process's address space at its current size plus ``extra`` while a
    template renders, so a template that builds a huge string (``'x'.ljust(10**10)``,
    ``'%0999999999d' % 1``, a string doubled in a loop) fails with MemoryError instead
    of exhausting the machine. Best effort: Linux only; restored afterwards."""
    previous: tuple[int, int] | None = None
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            limit = int(f.read().split()[0]) * resource.getpagesize() + extra
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
            previous = (soft, hard)
    except (ImportError, OSError, ValueError):
        previous = None
    try:
        yield
    finally:
        while previous is not None:
            try:
                resource.setrlimit(resource.RLIMIT_AS, previous)
                previous = None
            except RenderTimeout:  # the watchdog's interrupt may land here: restore anyway
                continue


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


_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_SIMPLE_EXPR = re.compile(r"\{\{ *(" + _NAME + r"(?:\." + _NAME + r")*) *\}\}")
_DICT_ATTRS = frozenset(dir(dict))


def _substitute(inline: str, context: Mapping[str, Any]) -> str | None:
    """Render a prompt made only of ``{{ name }}`` / ``{{ a.b }}`` over plain values without
    compiling it: compiling is most of the time of planning a long storyboard of distinct
    prompts. None (use Jinja) for anything else, so results and errors stay Jinja's."""
    parts: list[str] = []
    pos = 0
    for m in _SIMPLE_EXPR.finditer(inline):  # what Jinja would resolve, noted first
        top, _, rest = m.group(1).partition(".")
        note(top)
        if top == "vars" and rest:
            note(rest.partition(".")[0])
    for m in _SIMPLE_EXPR.finditer(inline):
        value: Any = context
        for i, name in enumerate(m.group(1).split(".")):
            # Jinja tries an attribute before an item: a dict method name would differ
            if not isinstance(value, dict) or name not in value or (i and name in _DICT_ATTRS):
                return None
            value = value[name]
        if not isinstance(value, (str, int, float)):  # bool is an int: str() gives Jinja's text
            return None
        parts += [inline[pos:m.start()], str(value)]
        pos = m.end()
    parts.append(inline[pos:])
    literal = _SIMPLE_EXPR.sub("", inline)
    text = "".join(parts)
    if any(tok in literal for tok in ("{{", "{%", "{#")) or len(text) > MAX_RENDER_CHARS:
        return None
    return text.strip()


class PromptRenderer:
    """Renders prompt templates for one storyboard."""

    def __init__(self, template_dirs: Sequence[Path] = ()) -> None:
        self.dirs = [*template_dirs, library_dir()]
        self.env = _Sandbox(
            loader=_ContainedLoader([str(d) for d in self.dirs], followlinks=False),
            undefined=_Undefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["range"] = _safe_range
        self.env.globals["template_error"] = _template_error
        self._compiled: dict[str, jinja2.Template] = {}

    def _known(self, filename: str) -> bool:
        if filename == "<template>":
            return True
        return any(filename.startswith(str(d)) for d in self.dirs)

    def render(self, *, inline: str | None = None, template: str | None = None, context: Mapping[str, Any]) -> str:
        """Render an inline template or a template file. Raises PromptError."""
        label = template or "prompt"
        context = recorded(context)
        try:
            if inline is not None and not any(tok in inline for tok in ("{{", "{%", "{#")):
                return inline.strip()
            if inline is not None and (plain := _substitute(inline, context)) is not None:
                return plain
            # Compiling is guarded too: Jinja folds constant expressions at compile time.
            with _RENDER_LOCK, _memory_limit(MAX_RENDER_MEMORY), _WATCHDOG.limit(MAX_RENDER_SECONDS):
                if inline is not None:
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
        except _UsesFailedPrompt as e:
            raise PromptError(f"uses shot '{e.shot}', whose prompt failed", template=label,
                              depends_on=e.shot) from None
        except UndefinedError as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(f"{e.message}{_near_name(e, context)}", template=label, file=w.file,
                              line=w.line) from None
        except _TemplateRaised as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(str(e), template=label, file=w.file, line=w.line) from None
        except SecurityError as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(f"not allowed in a template: {e}", template=label, file=w.file, line=w.line) from None
        except RenderTimeout as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(
                f"the template ran for more than {MAX_RENDER_SECONDS:g} s and was stopped", template=label,
                file=w.file, line=w.line,
            ) from None
        except MemoryError:
            raise PromptError(
                f"the template needs more than {MAX_RENDER_MEMORY // (1024 * 1024)} MB of memory and was stopped",
                template=label,
            ) from None
        except PromptError:
            raise
        except Exception as e:
            w = _template_frame(e.__traceback__, self._known)
            raise PromptError(f"{type(e).__name__}: {e}", template=label, file=w.file, line=w.line) from None

    def names_used(self, *, inline: str | None = None, template: str | None = None) -> set[str] | None:
        """The top-level variables a prompt reads, following the templates it includes,
        imports or extends; None when its text cannot tell (it reads ``vars`` as a whole,
        or names a template only at render time)."""
        try:
            if inline is not None:
                if not any(tok in inline for tok in ("{{", "{%", "{#")):
                    return set()
                return self._names_in(self.env.parse(inline), set())
            if template is not None:
                return self._names_in_template(template, set())
        except (jinja2.TemplateError, OSError, UnicodeError):
            return None
        return set()

    def _names_in_template(self, name: str, seen: set[str]) -> set[str] | None:
        if name in seen:
            return set()
        seen.add(name)
        assert self.env.loader is not None
        source, _, _ = self.env.loader.get_source(self.env, name)
        return self._names_in(self.env.parse(source), seen)

    def _names_in(self, ast: nodes.Template, seen: set[str]) -> set[str] | None:
        names = set(meta.find_undeclared_variables(ast))
        if "vars" in names:
            keys = keys_read_from_vars(ast)
            if keys is None:
                return None
            names |= keys
        for ref in meta.find_referenced_templates(ast):
            sub = None if ref is None else self._names_in_template(ref, seen)
            if sub is None:
                return None
            names |= sub
        return names

    def _generate(self, tpl: jinja2.Template, context: Mapping[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        for chunk in tpl.generate(dict(context)):
            size += len(chunk)
            if size > MAX_RENDER_CHARS:
                raise PromptError(f"the template renders more than {MAX_RENDER_CHARS} characters; stopped")
            parts.append(chunk)
        return "".join(parts)
