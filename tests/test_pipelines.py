"""pipelines/: one film per CSV row (matrix) and one per aspect ratio/mode (variants),
on the public API, with one shared cache and a budget over the whole batch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fakeserver import FakeInference
from pipelines import matrix, variants
from storyboard import BudgetError, read_rows
from storyboard.backends.animatic import AnimaticBackend
from storyboard.backends.base import ShotContext
from storyboard.events import WAITING_FOR_ANOTHER_RENDER
from storyboard.media import probe
from storyboard.request import ShotRequest

ROOT = Path(__file__).resolve().parent.parent

BOARD = """
storyboard: 1
defaults: {mode: std, duration: 3}
shots:
  - id: hero
    image: start.png
    prompt: "{{ product }} on a table"
  - id: detail
    prompt: "Close-up of {{ product }}, {{ mood }}"
"""

ROWS = [
    {"name": "a", "product": "a red mug", "mood": "calm"},
    {"name": "b", "product": "a blue mug", "mood": "calm"},
    {"name": "c", "product": "a green mug", "mood": "busy"},
    {"name": "d", "product": "a blue mug", "mood": "calm"},  # the same vars as b: every shot shared
    {"name": "e", "product": "a red mug", "mood": "bright"},  # shares only `hero` with a
]


class CountingBackend(AnimaticBackend):
    """The animatic, counting what it is asked to generate."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def generate(self, request: ShotRequest, ctx: ShotContext) -> Path:
        self.calls.append((request.shot_id, request.prompt))
        return await super().generate(request, ctx)


class PricedBackend(CountingBackend):
    """The animatic, priced and paid like Kling V3.0 (from the price list)."""

    name = "priced-animatic"
    paid = True

    def price(self, request: ShotRequest) -> Decimal | None:
        from storyboard.request import estimate

        return estimate(request)


@pytest.fixture
def board(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Path:
    make_image("start.png")
    return write_board(BOARD)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rows.csv", ROWS)
    assert read_rows(path) == ROWS


def test_shared_shots_are_generated_once(board: Path, tmp_path: Path) -> None:
    backend = CountingBackend()
    result = matrix.run_matrix(board, ROWS, name_column="name", output_dir=tmp_path / "films",
                               backend=backend, cache_dir=tmp_path / "cache")
    assert result.ok
    # 5 rows x 2 shots, less b's twin d (2 shots) and the hero e shares with a (1 shot)
    assert len(backend.calls) == 7
    assert len(set(backend.calls)) == 7, "a shot was generated twice"
    assert result.estimate.shots == 7 and result.estimate.shots_naive == 10
    films = {f.name: f for f in result.films}
    assert set(films) == {"a", "b", "c", "d", "e"}
    assert (films["d"].generated, films["d"].cached) == (0, 2)
    assert (films["e"].generated, films["e"].cached) == (1, 1)
    for f in films.values():
        assert f.film == tmp_path / "films" / f"{f.name}.mp4" and f.film.is_file()


def test_budget_counts_shared_shots_once(board: Path, tmp_path: Path) -> None:
    backend = PricedBackend()
    est = matrix.run_matrix(board, ROWS, name_column="name", output_dir=tmp_path / "films", backend=backend,
                            cache_dir=tmp_path / "cache", dry_run=True).estimate
    assert est.cost is not None and est.cost_naive is not None
    assert Decimal(0) < est.cost < est.cost_naive
    assert est.cost == est.cost_naive * 7 / 10  # every shot here costs the same (3 s, std)
    # exactly the deduplicated cost is within budget
    ok = matrix.run_matrix(board, ROWS, name_column="name", backend=backend, cache_dir=tmp_path / "cache",
                           budget=est.cost, dry_run=True)
    assert ok.estimate.cost == est.cost
    with pytest.raises(BudgetError, match="over budget"):
        matrix.run_matrix(board, ROWS, name_column="name", output_dir=tmp_path / "films", backend=backend,
                          cache_dir=tmp_path / "cache", budget=est.cost - Decimal("0.001"))
    assert backend.calls == [], "nothing may be generated when the matrix is over budget"
    assert not (tmp_path / "films").exists()


def test_matrix_command_refuses_over_budget(board: Path, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "rows.csv", ROWS)
    result = CliRunner().invoke(matrix.main, [str(board), str(csv_path), "--backend", "inference", "--budget", "0.01",
                                              "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 3, result.output
    assert "over budget" in result.output


def test_matrix_command_json(board: Path, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "rows.csv", ROWS[:2])
    result = CliRunner().invoke(matrix.main, [str(board), str(csv_path), "--name-column", "name", "--json",
                                              "--output-dir", str(tmp_path / "out"), "--cache-dir",
                                              str(tmp_path / "cache"), "-j", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [f["name"] for f in data["films"]] == ["a", "b"]
    assert data["generated"] == 4 and data["cost"] == "0"


def test_matrix_errors(board: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    csv_path = write_csv(tmp_path / "rows.csv", ROWS)
    r = runner.invoke(matrix.main, [str(board), str(csv_path), "--name-column", "nope", "--dry-run"])
    assert r.exit_code == 2 and "--name-column 'nope'" in r.output
    dup = write_csv(tmp_path / "dup.csv", [ROWS[0], ROWS[0]])
    r = runner.invoke(matrix.main, [str(board), str(dup), "--name-column", "name", "--dry-run"])
    assert r.exit_code == 2 and "same name" in r.output
    missing = write_csv(tmp_path / "missing.csv", [{"name": "x", "product": "a cup"}])  # no `mood`
    r = runner.invoke(matrix.main, [str(board), str(missing), "--dry-run"])
    assert r.exit_code == 1 and "row 1" in r.output and "mood" in r.output


def test_variants_in_two_aspect_ratios(board: Path, tmp_path: Path) -> None:
    result = variants.run_variants(board, aspects=["9:16", "1:1"], vars={"product": "a lamp", "mood": "dim"},
                                   output_dir=tmp_path / "v", cache_dir=tmp_path / "cache")
    assert result.ok
    shapes = {}
    for f in result.films:
        assert f.film is not None
        info = probe(f.film)
        shapes[f.name] = (info.width, info.height)
    w, h = shapes["film-9x16"]
    assert w < h
    w, h = shapes["film-1x1"]
    assert w == h


def test_variant_overrides_every_shot(write_board: Callable[..., Path], make_image: Callable[..., Any]) -> None:
    import storyboard

    make_image("start.png")
    path = write_board("""
        storyboard: 1
        defaults: {mode: std, aspect_ratio: "16:9"}
        shots:
          - id: a
            image: start.png
            prompt: "framed {{ shot.aspect_ratio }} in {{ shot.mode }}"
          - id: b
            aspect_ratio: "4:3"
            prompt: "b"
        """)
    board = storyboard.load(path, overrides=variants.variant_inputs(aspect_ratio="1:1", mode="pro"))
    assert {s.aspect_ratio for s in board.shots} == {"1:1"}
    assert {s.mode for s in board.shots} == {"pro"}
    assert board.prompts["a"] == "framed 1:1 in pro"
    plan = board.plan(backend="inference")
    assert {s.request.aspect_ratio for s in plan.shots} == {"1:1"}


def test_variants_budget_over_modes(board: Path, tmp_path: Path) -> None:
    sets = ["--set", "product=a lamp", "--set", "mood=dim"]
    r = CliRunner().invoke(variants.main, [str(board), *sets, "--mode", "std", "--mode", "pro", "--backend",
                                           "inference", "--budget", "0.5", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 3, r.output
    r = CliRunner().invoke(variants.main, [str(board), *sets, "--mode", "std", "--mode", "pro", "--backend",
                                           "inference", "--dry-run", "--json", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [f["name"] for f in data["films"]] == ["film-std", "film-pro"]
    assert Decimal(data["estimate"]["cost"]) > Decimal("0.5")
    r = CliRunner().invoke(variants.main, [str(board)])
    assert r.exit_code == 2 and "--aspect" in r.output


def test_runnable_as_modules() -> None:
    for mod in ("pipelines.matrix", "pipelines.variants"):
        out = subprocess.run([sys.executable, "-m", mod, "--help"], cwd=ROOT, capture_output=True, text=True,
                             check=True)
        assert "Usage:" in out.stdout


def test_example_data_renders_with_the_product_spot(tmp_path: Path) -> None:
    rows = read_rows(ROOT / "pipelines" / "data" / "products.csv")
    jobs = matrix.jobs_for(ROOT / "examples" / "product_spot.yaml", rows, name_column="name", output_dir=tmp_path)
    assert len(jobs) == len(rows) >= 3
    assert all(rows[i]["product"] in jobs[i].board.prompts["hero"] for i in range(len(rows)))


def test_variants_refuses_a_malformed_set_like_the_cli(board: Path) -> None:
    r = CliRunner().invoke(variants.main, [str(board), "--set", "novalue", "--aspect", "1:1", "--dry-run"])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    # values are typed as the CLI types them (YAML scalars), not left as strings
    r = CliRunner().invoke(variants.main, [str(board), "--set", "product=a lamp", "--set", "mood=dim",
                                           "--set", "count=3", "--aspect", "1:1", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------ films at once: shared shots paid once


def test_films_at_once_with_a_paid_backend_generate_shared_shots_once(board: Path, tmp_path: Path) -> None:
    backend = PricedBackend()  # paid: shots are claimed before they are generated
    events: list[tuple[str, Any]] = []
    result = matrix.run_matrix(board, ROWS, name_column="name", output_dir=tmp_path / "films", backend=backend,
                               cache_dir=tmp_path / "cache", films=5,
                               on_event=lambda name, e: events.append((name, e)))
    assert result.ok, [f.error for f in result.films]
    assert len(backend.calls) == 7 and len(set(backend.calls)) == 7, backend.calls
    assert sum(f.generated for f in result.films) == 7 and sum(f.cached for f in result.films) == 3
    waited = {(n, e.shot) for n, e in events if getattr(e, "status", None) == WAITING_FOR_ANOTHER_RENDER}
    assert waited, "no film waited on another film's claim"
    for f in result.films:
        assert f.film is not None and f.film.is_file()


def test_matrix_with_films_at_once_pays_each_shared_shot_once(board: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-matrix-3b9e"
    csv_path = write_csv(tmp_path / "rows.csv", ROWS)
    with FakeInference(api_key=key, latency=1.0) as fake:
        monkeypatch.setenv("INFERENCE_API_KEY", key)
        monkeypatch.setenv("INFERENCE_BASE_URL", fake.url)
        r = CliRunner().invoke(matrix.main, [str(board), str(csv_path), "--name-column", "name", "--json",
                                             "--backend", "inference", "--films", "5", "--output-dir",
                                             str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
        paid = sorted(t.input["prompt"] for t in fake.submissions)
    assert r.exit_code == 0, r.output
    assert len(paid) == 7 and len(set(paid)) == 7, paid  # 10 shots in 5 films, 7 distinct
    data = json.loads(r.output)
    assert data["generated"] == 7 and data["cached"] == 3
    assert all((tmp_path / "out" / f"{n}.mp4").is_file() for n in "abcde")


def test_pipelines_import_only_the_public_api() -> None:
    import ast

    for path in sorted((ROOT / "pipelines").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("storyboard."), f"{path.name} imports {name}"
