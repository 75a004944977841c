"""YAML with positions: read a storyboard file, compose it with PyYAML, and build plain
Python values while recording the line and column of every value and mapping key, so
each error can say where it is.

Bounded: a huge file, deep nesting and alias bombs are refused, not expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from storyboard.errors import Problem, SpecError
from storyboard.spec.yamlwords import explain

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NESTING = 64  # YAML nesting depth (deeper input crashes recursive parsers)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the storyboard file."""

    line: int
    column: int


@dataclass
class SourceMap:
    """Line and column of each value (and each mapping key) by its path in the file."""

    file: str
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def locate(self, path: Path_, *, key: bool = False) -> Position | None:
        """Where ``path`` is written (its key with ``key=True``), or its nearest parent."""
        p = tuple(path)
        while True:
            if key and p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            if not p:
                return None
            p = p[:-1]

    def problem(self, message: str, path: Path_ = (), *, key: bool = False) -> Problem:
        """A Problem located at ``path`` (see :meth:`locate`)."""
        pos = self.locate(path, key=key)
        return Problem(message, self.file, pos.line if pos else None, pos.column if pos else None)


def read_text(path: Path) -> str:
    """Read a storyboard file as UTF-8, refusing huge or undecodable files clearly."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError("no such file", file=name) from None
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}", file=name) from None
    if path.is_dir():
        raise SpecError("is a folder, not a storyboard file", file=name)
    if size > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {size / 1e6:.1f} MB; a storyboard may be at most {MAX_FILE_BYTES // (1024 * 1024)} MB",
            file=name,
        )
    try:
        with path.open("rb") as f:  # bounded: a device or pipe (/dev/zero) has no size to stat
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}", file=name) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; a storyboard may be at most "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB",
            file=name,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the storyboard as UTF-8",
            file=name,
            line=line,
            column=col,
        ) from None


def _check_nesting(text: str, name: str, loader_cls: Any) -> None:
    """Refuse very deep nesting before composing: the composers recurse (libyaml's
    crashes the process on a deep enough "[[[[…" file), and so does the builder below."""
    depth = 0
    for event in yaml.parse(text, Loader=loader_cls):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                raise SpecError(
                    f"the file nests lists/mappings more than {MAX_NESTING} levels deep; refusing to read it",
                    file=name, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _compose(text: str, name: str) -> yaml.Node | None:
    loader_cls: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_nesting(text, name, loader_cls)
        node: yaml.Node | None = yaml.compose(text, Loader=loader_cls)
        return node
    except yaml.MarkedYAMLError as e:
        if "nesting depth" in (e.problem or ""):  # PyYAML >= 6.0.4 stops deep nesting itself
            mark = e.problem_mark or e.context_mark
            msg = f"the file nests lists/mappings more than {MAX_NESTING} levels deep; refusing to read it"
        else:
            said = explain(e, text)
            mark, msg = said.mark, f"YAML syntax: {said.message}"
        raise SpecError(
            msg, file=name, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None
        ) from None
    except yaml.reader.ReaderError as e:  # e.g. a NUL byte: locate it
        pos = e.position if isinstance(e.position, int) else 0
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        ch = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        raise SpecError(f"YAML: the character U+{ch:04X} is not allowed ({e.reason})", file=name, line=line,
                        column=column) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML: {e}", file=name) from None


def _count_unique(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
    return len(seen)


class _Builder:
    """Turn composed YAML nodes into plain Python, recording positions, with a budget
    on alias expansion (a "billion laughs" file is refused, not expanded)."""

    def __init__(self, source: SourceMap, budget: int) -> None:
        self.source = source
        self.budget = budget
        self.problems: list[Problem] = []
        self._scalars = yaml.constructor.SafeConstructor()

    def _spend(self, node: yaml.Node) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise SpecError(
                "the file expands to too many values (YAML aliases nested too deep?); refusing to expand it",
                file=self.source.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self._spend(node)
        self.source.values.setdefault(path, Position(node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._scalars.construct_object(node)
            except yaml.YAMLError as e:
                self.problems.append(self._at(node, f"unsupported YAML value: {getattr(e, 'problem', e)}"))
                return None
            except (ValueError, OverflowError) as e:  # e.g. an integer of thousands of digits
                self.problems.append(self._at(node, f"unsupported YAML value: {str(e).split(';')[0]}"))
                return None
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.problems.append(self._at(node, f"unsupported YAML tag {node.tag}"))
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag not in ("tag:yaml.org,2002:map",):
                self.problems.append(self._at(node, f"unsupported YAML tag {node.tag}"))
            try:
                self._scalars.flatten_mapping(node)
            except yaml.YAMLError as e:
                self.problems.append(self._at(node, f"YAML merge: {getattr(e, 'problem', e)}"))
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                self._spend(key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(self._at(key_node, "mapping keys must be plain names"))
                    continue
                try:
                    key = self._scalars.construct_object(key_node)
                except (yaml.YAMLError, ValueError, OverflowError):
                    self.problems.append(self._at(key_node, "mapping keys must be plain names"))
                    continue
                if not isinstance(key, str):
                    key = str(key)
                if key in out:
                    self.problems.append(self._at(key_node, f"duplicate key '{key}'"))
                    continue
                self.source.keys[(*path, key)] = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, (*path, key))
            return out
        raise SpecError("unexpected YAML node", file=self.source.file)  # pragma: no cover

    def _at(self, node: yaml.Node, message: str) -> Problem:
        return Problem(message, self.source.file, node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(text: str, name: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python plus a SourceMap of positions."""
    source = SourceMap(name)
    root = _compose(text, name)
    if root is None:
        raise SpecError("the file is empty; a storyboard starts with 'storyboard: 1' and lists 'shots:'", file=name, line=1, column=1)
    builder = _Builder(source, budget=4 * _count_unique(root) + 100_000)
    data = builder.build(root, ())
    if builder.problems:
        raise SpecError(builder.problems)
    return data, source

