"""Layout rules of the device layer, checked on the source: simulators stay out of production code,
and drivers stay below the actors."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAY_IMPORT_MOCKS = ("mocks", "tests", "novapos/demo", "novapos/cli", "bench")
"""The simulators themselves, the tests, and the demo and CLI that wire the simulators in."""


def python_modules() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if not any(part.startswith(".") or part in ("build", "node_modules") for part in relative.parts):
            yield relative


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every module `path` imports, statically or through importlib.import_module("...")."""
    for node in ast.walk(ast.parse((ROOT / path).read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def imports_of(packages: tuple[str, ...], where: list[Path]) -> list[str]:
    return [f"{path}:{line} imports {module}" for path in where for line, module in imported_modules(path)
            if module.split(".")[0] in packages]


def test_no_production_module_imports_the_simulators() -> None:
    production = [path for path in python_modules()
                  if not any(path.is_relative_to(allowed) for allowed in MAY_IMPORT_MOCKS)]
    assert len(production) > 50 and Path("edge/app.py") in production  # the scan sees the code
    assert imports_of(("mocks",), production) == []


def test_drivers_know_nothing_of_actors_config_or_the_edge() -> None:
    drivers = [path for path in python_modules() if path.is_relative_to("drivers")]
    assert Path("drivers/registry.py") in drivers
    assert imports_of(("actors", "edge", "edge_runtime", "novapos", "hub", "mocks"), drivers) == []


def test_scanners_and_the_door_hold_barcodes_to_the_same_bound() -> None:
    """Drivers import nothing of novapos, so the bound is written twice; this keeps it one bound."""
    from drivers.barcode_scanner import MAX_BARCODE_LENGTH as scanned
    from novapos.validators import MAX_BARCODE_LENGTH as accepted
    assert scanned == accepted
