"""The wheel's package list (pyproject.toml lists packages: configs/ is mapped to novapos.configs) keeps up
with the tree: a new package missing from the list would be missing from every install."""

from __future__ import annotations

import tomllib
from pathlib import Path

from novapos.cli.main import CONFIGS

REPO = Path(__file__).resolve().parent.parent
LEFT_OUT = {"bench", "tests"}  # benchmarks and tests are for the repository, not for installs


def _setuptools() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str, mapped: dict[str, str]) -> Path:
    """Where setuptools takes `package` from: its package-dir mapping, or the folder its name spells."""
    for name, folder in mapped.items():
        if package == name or package.startswith(name + "."):
            return REPO / folder / Path(*package.split(".")[len(name.split(".")):])
    return REPO / Path(*package.split("."))


def test_every_package_of_the_tree_is_in_the_wheel_and_nothing_else() -> None:
    setuptools = _setuptools()
    listed = set(setuptools["packages"])
    folders = {_folder(package, setuptools["package-dir"]) for package in listed}
    on_disk = {path.parent for path in REPO.glob("*/**/*") if path.suffix in {".py", ".html", ".sql", ".toml",
                                                                          ".service"}
               and not any(part.startswith(".") or part in {"build", "__pycache__"} or part.endswith(".egg-info")
                           for part in path.relative_to(REPO).parts)
               and path.relative_to(REPO).parts[0] not in LEFT_OUT}
    assert sorted(map(str, on_disk - folders)) == [], "folders with code or data that no listed package ships"
    assert sorted(map(str, folders - on_disk)) == [], "listed packages with no folder"
    assert not {package.split(".")[0] for package in listed} & LEFT_OUT


def test_the_cli_finds_the_shipped_configs_through_the_package() -> None:
    assert CONFIGS.resolve() == (REPO / "configs").resolve()  # an editable install maps it to the tree's folder
    assert {"demo-store.toml", "hub.toml"} <= {path.name for path in CONFIGS.iterdir()}
