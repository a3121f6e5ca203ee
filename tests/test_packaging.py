"""What the wheel carries, as pyproject.toml's package discovery decides it (fast; tests/test_install.py
builds the real wheel): every package of the product and its configs, no benchmarks, no tests."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

from novapos.cli.main import CONFIGS

REPO = Path(__file__).resolve().parent.parent


def test_discovery_ships_the_product_and_its_configs_but_not_benchmarks_or_tests() -> None:
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = set(find_namespace_packages(str(REPO), include=find["include"]))
    tops = {path.name for path in REPO.iterdir() if (path / "__init__.py").is_file()}
    assert {package.split(".")[0] for package in packages} == tops - {"bench", "tests"}
    assert {"configs", "configs.systemd", "edge.static"} <= packages  # data-only folders travel too


def test_the_cli_finds_the_shipped_configs_through_the_package() -> None:
    assert CONFIGS.resolve() == (REPO / "configs").resolve()  # an editable install: the tree's own folder
    assert {"demo-store.toml", "hub.toml"} <= {path.name for path in CONFIGS.iterdir()}
    assert {"novapos-edge.service", "novapos-hub@.service"} <= {path.name for path in (CONFIGS / "systemd").iterdir()}
