"""The import rules of the architecture, read from the source: what may import what.

- the library (``stream_app`` outside ``stream_app.worker``) never imports the worker shell;
- ``producers``, ``training`` and ``drift`` never import the worker shell;
- one service never imports another's internals (shared pieces live in the library); the few
  public entry points one service offers another are listed in ``PUBLIC`` below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("producers", "training", "drift")
WORKER = "stream_app.worker"
# A service's public entry points for the other services: `fraudstream-train first-model` trains
# on simulated history, so it runs the simulator as its users do.
PUBLIC = frozenset(
    {
        "producers.simulator",
        "producers.simulator.SimulatorConfig",
        "producers.simulator.generate_history",
    }
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (lazy imports count too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(REPO)} imports {module}"
        for module in imported_modules(path)
        if module not in PUBLIC and any(is_under(module, package) for package in forbidden)
    )


def library_files() -> list[Path]:
    return [p for p in (REPO / "stream_app").rglob("*.py") if "worker" not in p.parts]


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_library_imports_neither_the_worker_shell_nor_a_service(path: Path) -> None:
    assert violations(path, (WORKER, *SERVICES)) == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_worker_shell_and_no_other_service(service: str) -> None:
    others = tuple(s for s in SERVICES if s != service)
    found = [
        line
        for path in sorted((REPO / service).rglob("*.py"))
        for line in violations(path, (WORKER, *others))
    ]
    assert found == []


def test_the_rule_sees_a_lazy_import_of_the_worker(tmp_path: Path) -> None:
    """A check that cannot fail is none: an import inside a function is found too."""
    module = tmp_path / "sneaky.py"
    module.write_text("def f():\n    from stream_app.worker.app import create_app\n")
    found = {m for m in imported_modules(module) if is_under(m, WORKER)}
    assert found == {"stream_app.worker.app", "stream_app.worker.app.create_app"}


def test_the_worker_shell_exists_where_the_rules_say() -> None:
    assert (REPO / "stream_app" / "worker" / "app.py").is_file()
    assert library_files(), "the library has files to check"
