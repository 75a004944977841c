"""Command-line values shared by the ``storyboard`` command and the recipes in
``pipelines/``: ``--set KEY=VALUE`` and ``--budget USD``. A bad value raises
``click.BadParameter`` (exit 2, naming the option), as click's own checks do."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from storyboard.errors import UsageError

__all__ = ["parse_budget", "parse_sets", "read_rows"]


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as template variables (values parsed as bounded YAML scalars)."""
    from storyboard.errors import SpecError
    from storyboard.spec import parse_yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "a").replace("-", "a").isalnum():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. --set hero='a keeper')", param_hint="--set")
        try:  # the storyboard's own bounded parser: no alias bombs, no deep nesting
            parsed = parse_yaml(value, "--set")[0] if value.strip() else ""
        except SpecError as e:
            if _is_yaml(value):  # well-formed, so refused for its size: say so
                raise click.BadParameter(f"{key}: {e.problems[0].message}", param_hint="--set") from None
            parsed = value  # not YAML: the text as it is
        out[key] = parsed if isinstance(parsed, (str, int, float, bool, list, dict)) or parsed is None else value
    return out


def _is_yaml(text: str) -> bool:
    """Whether ``text`` is well-formed YAML. Reads parser events only: no alias expansion,
    no recursion, so it is safe on any input."""
    import yaml

    try:
        for _event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            pass
    except yaml.YAMLError:
        return False
    return True


def parse_budget(value: str | None) -> Decimal | None:
    """``--budget`` as USD (``5``, ``2.50``, ``$3``); a bad value is a usage error."""
    if value is None:
        return None
    try:
        d = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount in USD (e.g. --budget 5 or --budget 2.50)",
                                 param_hint="--budget") from None
    if not d.is_finite() or d < 0:
        raise click.BadParameter(f"{value!r} must be a non-negative amount in USD", param_hint="--budget")
    return d


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line (its columns: the vars), as dicts, empty
    rows skipped: one film per row for the matrix and the studio."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise UsageError(f"{path}: no header line; the first line names the columns (the vars)")
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except FileNotFoundError:
        raise UsageError(f"no such CSV file: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    return [r for r in rows if any(r.values())]
