"""The apps form layers, each importing only the apps to its left (README, "Layout"):

    core → accounts → jobs → runs → workers → frontend

and none imports the project package `nomaflow` (settings, urls, the Celery app: use
`celery.current_app`). A cycle between apps is then impossible. Every module of an app is
read, its admin, management commands and migrations too: a migration's `dependencies`
are strings, not imports, so only what it imports counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "accounts", "jobs", "runs", "workers", "frontend")
PROJECT = "nomaflow"


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import in `path`, relative ones resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]  # the module's own package
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:  # `from . import x`: each name may be a module
                yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)
            else:
                yield node.lineno, module


def forbidden_for(app: str) -> set[str]:
    """The top-level packages `app` may not import: the apps to its right, and the project."""
    return {*LAYERS[LAYERS.index(app) + 1 :], PROJECT}


def violations(app: str) -> list[str]:
    forbidden = forbidden_for(app)
    found = []
    for path in sorted((ROOT / app).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.partition(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("app", LAYERS)
def test_an_app_imports_only_the_apps_to_its_left(app: str) -> None:
    found = violations(app)
    assert not found, f"{app} may import only {', '.join(LAYERS[: LAYERS.index(app)]) or 'no other app'}:\n" + (
        "\n".join(found)
    )


def test_relative_imports_are_resolved_so_climbing_out_of_an_app_counts(tmp_path: Path) -> None:
    module = tmp_path / "jobs" / "management" / "mod.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ...runs import services\nfrom . import helpers\nfrom ..models import Job\nimport workers.steps\n"
    )
    found = [name for _line, name in imported_modules(module, tmp_path)]
    assert found == ["runs", "jobs.management.helpers", "jobs.models", "workers.steps"]


def test_each_app_is_refused_the_apps_to_its_right_and_the_project() -> None:
    assert forbidden_for("core") == {"accounts", "jobs", "runs", "workers", "frontend", PROJECT}
    assert forbidden_for("jobs") == {"runs", "workers", "frontend", PROJECT}
    assert forbidden_for("frontend") == {PROJECT}


def test_every_app_is_in_a_layer() -> None:
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    assert apps == set(LAYERS)
