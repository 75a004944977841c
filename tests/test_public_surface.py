"""The public surface (issue 26, item 12): every error a user can see is in the one tree
written in errors.py's docstring, under its real parent, and exported by the package; no
package imports another package's private module."""

from __future__ import annotations

import ast
import inspect
import re
from collections import defaultdict

import storyboard
from storyboard import errors
from tests.test_architecture import ROOT, _module_name, _sources, imports


def _tree() -> dict[str, str]:
    """name -> parent, read from the docstring's drawing."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^(\s*(?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)(?:\s|$)", line)
        if not m or not m.group(2).endswith(("Error", "Limited", "Failed", "Submitted")):
            continue
        depth = len(m.group(1)) // 4 + (1 if "──" in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[m.group(2)] = stack[-1][1] if stack else ""
        stack.append((depth, m.group(2)))
    return parents


def test_every_error_is_in_the_tree_under_its_parent_and_exported() -> None:
    classes = {name: cls for name, cls in vars(errors).items()
               if inspect.isclass(cls) and issubclass(cls, errors.StoryboardError)}
    tree = _tree()
    assert set(tree) == set(classes), set(classes) ^ set(tree)
    for name, cls in classes.items():
        parent = cls.__mro__[1].__name__
        assert tree[name] == ("" if cls is errors.StoryboardError else parent), name
        assert name in storyboard.__all__ and getattr(storyboard, name) is cls, name


# Private imports allowed for now, by file (none today: issue 26 removed the last).
KNOWN_PRIVATE_IMPORTS: dict[str, str] = {}


def test_no_package_imports_another_packages_private_module() -> None:
    bad = []
    for path in _sources():
        module = _module_name(path)
        for line, target in imports(path):
            parts = target.split(".")
            private = next((i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")), None)
            if private is None or not target.startswith("storyboard."):
                continue
            owner = ".".join(parts[:private])  # the package that owns the private module
            if module == owner or module.startswith(owner + "."):
                continue
            known = KNOWN_PRIVATE_IMPORTS.get(str(path.relative_to(ROOT)))
            if known is None or not (target == known or target.startswith(known + ".")):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert bad == []


def test_ci_type_checks_benchmarks_fakeserver_and_pipelines_strictly() -> None:
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    checked = {word for line in script if line.startswith("mypy --strict ") for word in line.split()[2:]}
    assert {"benchmarks", "fakeserver", "pipelines"} <= checked


# Declared packages that no code imports by that name, and why each is declared.
NOT_IMPORTED = {
    "pytest-asyncio": "pytest plugin", "pytest-timeout": "pytest plugin", "ruff": "tool", "mypy": "tool",
    "types-pyyaml": "stubs for mypy", "types-jsonschema": "stubs for mypy", "otio-fcp-adapter": "OTIO plugin",
    "otio-fcpx-xml-adapter": "OTIO plugin", "storyboard-film": "the project's own extras (dev installs [studio])",
    "otio-cmx3600-adapter": "OTIO plugin", "s3fs": "fsspec plugin (s3://)",
}
IMPORT_NAME = {"pillow": "PIL", "pyyaml": "yaml", "imageio-ffmpeg": "imageio_ffmpeg", "webvtt-py": "webvtt",
               "cel-python": "celpy", "dask": "distributed", "ruamel.yaml": "ruamel"}  # dask[distributed]: the code imports distributed


def _declared() -> list[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    return [re.split(r"[\[<>=!~ ]", n, maxsplit=1)[0].lower() for n in names]


def test_every_dependency_is_declared_once_per_list_and_used() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[\[<>=!~ ]", n, maxsplit=1)[0].lower() for n in project["dependencies"]}
    dev = [re.split(r"[\[<>=!~ ]", n, maxsplit=1)[0].lower() for n in project["optional-dependencies"]["dev"]]
    assert sorted(core & set(dev)) == [], "declared in dependencies and again in dev"
    assert len(dev) == len(set(dev))
    imported = set()
    for folder in ("storyboard", "tests", "benchmarks", "pipelines", "fakeserver"):
        for path in (ROOT / folder).rglob("*.py"):
            imported |= {target.split(".")[0] for _, target in imports(path)}
    unused = [name for name in sorted(set(_declared())) if name not in NOT_IMPORTED
              and IMPORT_NAME.get(name, name.replace("-", "_")) not in imported]
    assert unused == [], f"declared but never imported: {unused}"


def test_no_test_helper_is_copied_between_test_modules() -> None:
    """A helper class or function of four lines or more written twice with the same body
    belongs in conftest.py or a helpers module (tests/helpers.py, tests/media_helpers.py)."""
    bodies: dict[str, list[str]] = defaultdict(list)
    classes: dict[str, list[str]] = defaultdict(list)  # a class copied, then grown apart
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            # two different Recorder backends (reroll, takes) share a name, not a body
            if isinstance(node, ast.ClassDef) and node.name != "Recorder":
                classes[node.name].append(path.name)
            if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                    and not node.name.startswith("test_") and (node.end_lineno or 0) - node.lineno >= 3):
                bodies[ast.dump(ast.Module(body=node.body, type_ignores=[]))].append(f"{path.name}:{node.name}")
    assert [places for places in bodies.values() if len(places) > 1] == []
    assert {name: files for name, files in classes.items() if len(files) > 1} == {}
