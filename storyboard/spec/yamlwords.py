"""PyYAML's syntax errors in plain words.

PyYAML (and libyaml, whose wording differs) describe the parser's state ("did not find
expected key", "expected <block end>, but found '-'"); a user needs to hear which line is
wrong and how. :func:`explain` reads the error's problem and context, the marks, and the
lines they point at, and says it in words, choosing the mark that shows the mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

__all__ = ["Explained", "explain"]


@dataclass(frozen=True)
class Explained:
    """What is wrong, in words, and the mark (0-based) to point at."""

    message: str
    mark: yaml.Mark | None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content_column(line: str) -> int:
    """Column of the first key or value on a line, after any ``- `` list markers."""
    i = _indent(line)
    while line[i : i + 1] == "-" and line[i + 1 : i + 2] in (" ", ""):
        i += 1
        while line[i : i + 1] == " ":
            i += 1
    return i


def _is_item(line: str) -> bool:
    stripped = line.lstrip(" ")
    return stripped == "-" or stripped.startswith("- ")


class _Text:
    """The file's lines, looked up by a mark."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, mark: yaml.Mark | None) -> str:
        if mark is None or mark.line >= len(self.lines):
            return ""
        return self.lines[mark.line]

    def char(self, mark: yaml.Mark | None) -> str:
        line = self.line(mark)
        return line[mark.column] if mark is not None and mark.column < len(line) else ""

    def above(self, mark: yaml.Mark | None) -> str | None:
        """The nearest line above the mark that holds YAML (not blank, not a comment)."""
        if mark is None:
            return None
        for n in range(min(mark.line, len(self.lines)) - 1, -1, -1):
            stripped = self.lines[n].strip()
            if stripped and not stripped.startswith("#"):
                return self.lines[n]
        return None


def explain(error: yaml.MarkedYAMLError, text: str) -> Explained:
    """Say what a YAML syntax error means, in plain words, and where."""
    problem = error.problem or ""
    context = error.context or ""
    pm, cm = error.problem_mark, error.context_mark
    lines = _Text(text)
    said = (
        _tab_or_token(problem, pm, lines)
        or _unclosed(problem, context, cm)
        or _mapping_value(problem, pm, lines)
        or _missing_colon(problem, cm)
        or _block_mapping(problem, context, pm, cm, lines)
        or _block_sequence(problem, context, pm, cm, lines)
    )
    if said is not None:
        return said
    mark = pm or cm
    if cm is not None and "end of stream" in problem:
        mark = cm  # where the unterminated thing starts, not the end of the file
    raw = f"{problem} ({context})" if problem and context else (problem or context)
    return Explained(raw, mark)


def _tab_or_token(problem: str, pm: yaml.Mark | None, lines: _Text) -> Explained | None:
    if "cannot start any token" not in problem and "tab character" not in problem:
        return None
    ch = lines.char(pm)
    if "'\\t'" in problem or "tab character" in problem or ch == "\t":
        return Explained("a tab character is not allowed for indentation; indent with spaces", pm)
    return Explained(f"a value cannot start with '{ch}'; put the value in quotes", pm)


def _unclosed(problem: str, context: str, cm: yaml.Mark | None) -> Explained | None:
    if cm is None:
        return None
    if "end of stream" in problem and "quoted scalar" in context:
        return Explained("this quoted value has no closing quote", cm)
    for kind, opening, closing in (("sequence", "[", "]"), ("mapping", "{", "}")):
        if f"flow {kind}" in context and f"',' or '{closing}'" in problem:
            return Explained(
                f"this '{opening}' is not closed: it needs a '{closing}', with ',' between its items",
                cm,
            )
    return None


def _mapping_value(problem: str, pm: yaml.Mark | None, lines: _Text) -> Explained | None:
    if not problem.startswith("mapping values are not allowed") or pm is None:
        return None
    line = lines.line(pm)
    if ": " in line[: pm.column] or line[: pm.column].rstrip().endswith(":"):
        return Explained(
            "a value here contains ': '; put the whole value in quotes "
            "(for example: prompt: \"dawn: a harbor\")",
            pm,
        )
    above = lines.above(pm)
    if above is not None and _indent(line) > _content_column(above):
        what = "the list item" if _is_item(above) else "the line"
        return Explained(
            f"this line is indented more than {what} above it; "
            "keys of one mapping need the same indentation",
            pm,
        )
    return Explained("a ':' here is not allowed; if it is part of a value, quote the value", pm)


def _missing_colon(problem: str, cm: yaml.Mark | None) -> Explained | None:
    if "could not find expected ':'" not in problem:
        return None
    return Explained(
        "this line needs a ':' after its key ('key: value'); if it continues the value "
        "above, indent it more or quote the value",
        cm,
    )


def _block_mapping(
    problem: str, context: str, pm: yaml.Mark | None, cm: yaml.Mark | None, lines: _Text
) -> Explained | None:
    if "block mapping" not in context or pm is None:
        return None
    if "did not find expected key" not in problem and not problem.startswith("expected <block end>"):
        return None
    if lines.char(pm) == "-":
        if cm is not None and pm.column == cm.column:
            return Explained(
                "a list item ('- ') cannot stand among 'key: value' lines; "
                "indent the list under its key",
                pm,
            )
        return Explained(
            "this list item is not lined up with the list items above it; "
            "the '-' of every item needs the same indentation",
            pm,
        )
    return Explained("a mapping key here needs the same indentation as the keys above it", pm)


def _block_sequence(
    problem: str, context: str, pm: yaml.Mark | None, cm: yaml.Mark | None, lines: _Text
) -> Explained | None:
    if "block collection" not in context or pm is None:
        return None
    if "expected '-' indicator" not in problem and not problem.startswith("expected <block end>"):
        return None
    if lines.char(pm) == "-":
        return Explained(
            "this list item is indented more than the list item above it; "
            "the '-' of every item needs the same indentation",
            pm,
        )
    if cm is not None and pm.column > cm.column:
        item = lines.line(cm)
        key = item[_content_column(item):].split(":", 1)[0].strip()
        hint = f" (under '{key}')" if key else ""
        return Explained(
            "this line is indented less than the list item above it; "
            f"line its key up with the item's keys{hint}",
            pm,
        )
    return Explained(
        "this line is lined up with the list's '-' items but is not one: start it with '- ', "
        "or indent it to belong to the item above",
        pm,
    )
