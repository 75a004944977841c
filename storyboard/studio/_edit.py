"""Edits to the storyboard file, round-trip: ruamel.yaml keeps comments, order and
formatting; only the edited value changes. Every edit is checked by loading the new text
(the same ``storyboard.load`` the CLI uses) before the file is replaced, so a bad edit
writes nothing and comes back as a located error (FILE:LINE:COL: message)."""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from storyboard.board import Board, load
from storyboard.errors import SpecError, StoryboardError

__all__ = ["EDITABLE", "EditError", "check_text", "edit_text", "node_line", "replace_file"]

EDITABLE = ("prompt", "duration", "say")  # a shot's fields; vars are edited by name


class EditError(StoryboardError):
    """An edit that cannot be written: the located problems, one per line; nothing was written."""


def _indents(text: str) -> tuple[int, int, int]:
    """The file's own indentation (mapping, sequence, dash offset), so that a dump writes
    the lines it does not change exactly as they were."""
    mapping, offset = 2, 0
    lines = text.splitlines()
    for before, line in itertools.pairwise(lines):
        if re.match(r"^[^\s#][^:]*:\s*(#.*)?$", before):
            m = re.match(r"^( *)(- )?", line)
            if m and line.strip() and not line.lstrip().startswith("#"):
                if m.group(2):
                    offset = len(m.group(1))
                    break
                mapping = len(m.group(1)) or mapping
    return mapping, offset + 2, offset


def _yaml(text: str = "") -> YAML:
    y = YAML()  # round-trip
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long prompt
    mapping, sequence, offset = _indents(text)
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    y.representer.add_representer(type(None), _null)  # `image: null` stays written, not emptied
    return y


def _null(representer: Any, _data: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _parse(text: str, path: Path) -> Any:
    try:
        return _yaml().load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise EditError(f"{where}: not valid YAML: {e.problem or e.context}") from None


def _node(doc: Any, shot_id: str, path: Path) -> Any:
    """The mapping of shot (or still) ``shot_id`` in the parsed document."""
    for section in ("shots", "stills"):
        for item in (doc.get(section) or []) if isinstance(doc, Mapping) else []:
            if isinstance(item, Mapping) and str(item.get("id")) == shot_id:
                return item
    raise EditError(f"{path}: no shot '{shot_id}' in the storyboard")


def node_line(text: str, path: Path, shot_id: str) -> str:
    """``FILE:LINE:COL`` of shot ``shot_id``'s mapping (for errors about it)."""
    node = _node(_parse(text, path), shot_id, path)
    return f"{path}:{node.lc.line + 1}:{node.lc.col + 1}"


def _typed(field: str, value: str) -> Any:
    """The value as YAML would read it: a number for a duration that is one."""
    if field == "duration":
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text  # the schema check names what is allowed
    return value


def _styled(old: Any, value: str) -> Any:
    """A new text in the style of the old scalar (folded ``>-``, literal ``|``, quotes)."""
    if isinstance(old, str) and type(old) is not str:  # a ruamel scalar string: folded, literal, quoted
        return type(old)(value)
    if "\n" in value:
        return LiteralScalarString(value)
    return value


def edit_text(text: str, path: Path, *, shot: str | None = None, fields: Mapping[str, str] | None = None,
              vars: Mapping[str, str] | None = None) -> str:
    """The file's text with ``fields`` of ``shot`` and top-level ``vars`` set (an empty
    ``say`` removes the line); everything else byte for byte as it was."""
    doc = _parse(text, path)
    if shot is not None:
        node = _node(doc, shot, path)
        for field, value in (fields or {}).items():
            if field not in EDITABLE:
                raise EditError(f"{path}: shot '{shot}': '{field}' is not editable here "
                                f"(editable: {', '.join(EDITABLE)}, vars)")
            if field == "say" and not value.strip():
                node.pop("say", None)
            elif field == "prompt":
                node[field] = _styled(node.get(field), value)
            else:
                node[field] = _typed(field, value)
    for name, value in (vars or {}).items():
        if not isinstance(doc.get("vars"), Mapping):
            raise EditError(f"{path}: there is no 'vars:' mapping to edit")
        if name not in doc["vars"]:
            raise EditError(f"{path}: no var '{name}' (vars: {', '.join(map(str, doc['vars']))})")
        doc["vars"][name] = _styled(doc["vars"][name], value)
    out = io.StringIO()
    _yaml(text).dump(doc, out)
    return out.getvalue()


def check_text(text: str, path: Path, loader: Callable[[Path], Board] = load) -> Board:
    """Load ``text`` as if it were ``path`` (a hidden file beside it, so templates, images and
    output resolve the same); a problem is an EditError naming ``path``, and nothing is kept."""
    probe = path.with_name(f".{path.stem}.studio-check{path.suffix}")
    try:
        probe.write_text(text, encoding="utf-8")
        try:
            return loader(probe)
        except SpecError as e:
            raise EditError("\n".join(str(p).replace(str(probe), str(path)) for p in e.problems)) from None
        except StoryboardError as e:
            raise EditError(str(e).replace(str(probe), str(path))) from None
    finally:
        probe.unlink(missing_ok=True)


def replace_file(path: Path, text: str) -> int:
    """Write ``text`` over ``path`` atomically; the new file's mtime (ns)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.studio.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path.stat().st_mtime_ns
