"""`storyboard schema`: the JSON Schema editors use. It accepts every example, rejects
unknown keys (the models forbid extras), and the copy committed at the repo root is
current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from storyboard.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def as_json(path: Path) -> Any:
    # YAML → JSON data, the way yaml-language-server sees it
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8"))))


def test_committed_schema_is_current(schema: dict[str, Any]) -> None:
    committed = json.loads((ROOT / "storyboard.schema.json").read_text(encoding="utf-8"))
    assert committed == schema, "regenerate it: storyboard schema -o storyboard.schema.json"


def test_schema_output_to_a_file(tmp_path: Path, schema: dict[str, Any]) -> None:
    out = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["schema", "-o", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == schema


def test_schema_is_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_object_forbids_unknown_keys(schema: dict[str, Any]) -> None:
    assert schema.get("additionalProperties") is False
    for name, sub in schema.get("$defs", {}).items():
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False, name


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate(path: Path, validator: Draft202012Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(as_json(path))]
    assert not errors, errors


def test_scaffold_schema_matches(validator: Draft202012Validator, tmp_path: Path) -> None:
    from storyboard.scaffold import scaffold

    made = scaffold("demo", tmp_path)
    assert not list(validator.iter_errors(as_json(made.storyboard)))


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(shotz=d.pop("shots")), "shotz"),
        (lambda d: d["shots"][0].update(promt="x"), "promt"),
        (lambda d: d["defaults"].update(aspect="16:9"), "aspect"),
        (lambda d: d["audio"][0].update(volum=1), "volum"),
    ],
    ids=["top", "shot", "defaults", "audio"],
)
def test_a_typo_is_rejected(mutate: Any, where: str, validator: Draft202012Validator) -> None:
    data = as_json(ROOT / "examples" / "branches.yaml")
    mutate(data)
    messages = [e.message for e in validator.iter_errors(data)]
    assert messages, "the typo was accepted"
    assert any(where in m for m in messages), messages


def test_wrong_types_are_rejected(validator: Draft202012Validator) -> None:
    data = as_json(ROOT / "examples" / "harbor.yaml")
    data["defaults"]["aspect_ratio"] = "5:4"
    data["shots"][0]["duration"] = 2.5
    assert len(list(validator.iter_errors(data))) >= 2
