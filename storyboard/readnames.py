"""The names prompt templates read: recorded while rendering (every name a template
resolves, in the prompt, a template it includes or a macro it imports, and each key read
from ``vars``), and, without rendering, the ``vars`` keys a template's text reads. So a
``--set`` key no prompt reads is warned of (with a did-you-mean). Part of the prompts
part: imports only jinja2.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import jinja2.runtime
from jinja2 import nodes

__all__ = ["EVERY_VAR", "RecordingContext", "keys_read_from_vars", "note", "recorded", "recording"]

EVERY_VAR = "*"  # recorded when a template reads ``vars`` as a whole (iterates it, or lists it)
_READ: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("storyboard_names_read", default=None)


@contextmanager
def recording() -> Iterator[set[str]]:
    """Record every top-level name (and ``vars`` key) the templates rendered inside the
    block read, in whatever template it is read: the prompt, a template it includes, a
    macro it imports. :data:`EVERY_VAR` among them: some template read ``vars`` whole."""
    names: set[str] = set()
    token = _READ.set(names)
    try:
        yield names
    finally:
        _READ.reset(token)


def note(name: str) -> None:
    """Record ``name`` as read, when recording."""
    names = _READ.get()
    if names is not None:
        names.add(name)


class RecordingContext(jinja2.runtime.Context):
    """Jinja's context, noting each name a template resolves (macros' frames included)."""

    def resolve_or_missing(self, key: str) -> Any:
        """Note ``key``, then resolve it as Jinja does."""
        note(key)
        return super().resolve_or_missing(key)


class _ReadDict(dict[str, Any]):
    """``vars`` while recording: each key read is noted; reading it whole notes them all."""

    def __getitem__(self, key: str) -> Any:
        note(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """Note ``key``; then dict.get."""
        note(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        note(str(key))
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        note(EVERY_VAR)
        return super().__iter__()

    def keys(self) -> Any:
        """Note every var; then dict.keys."""
        note(EVERY_VAR)
        return super().keys()

    def values(self) -> Any:
        """Note every var; then dict.values."""
        note(EVERY_VAR)
        return super().values()

    def items(self) -> Any:
        """Note every var; then dict.items."""
        note(EVERY_VAR)
        return super().items()


def recorded(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """``context`` with ``vars`` noting its reads, when names are being recorded."""
    if _READ.get() is None or not isinstance(context.get("vars"), dict) or isinstance(context["vars"], _ReadDict):
        return context
    return {**context, "vars": _ReadDict(context["vars"])}



_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


def keys_read_from_vars(ast: nodes.Template) -> set[str] | None:
    """The keys a template reads as ``vars.KEY`` / ``vars['KEY']``; None when it uses
    ``vars`` in any other way (then any key may be read)."""
    keys: set[str] = set()
    reads = 0
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, (nodes.Getattr, nodes.Getitem))
        if not (isinstance(node.node, nodes.Name) and node.node.name == "vars"):
            continue
        if isinstance(node, nodes.Getattr) and node.attr not in _DICT_METHODS:
            keys.add(node.attr)
            reads += 1
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.add(node.arg.value)
            reads += 1
    loads = sum(1 for n in ast.find_all(nodes.Name) if n.name == "vars" and n.ctx == "load")
    return keys if loads == reads else None
