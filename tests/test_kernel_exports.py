"""The kernel's public API is what `edge_runtime` exports: every name there, documented; nothing else public."""

from __future__ import annotations

import inspect
import pkgutil

import edge_runtime


def test_every_exported_name_exists_and_is_documented() -> None:
    assert len(edge_runtime.__all__) == len(set(edge_runtime.__all__)), "__all__ has a name twice"
    for name in edge_runtime.__all__:
        assert hasattr(edge_runtime, name), f"edge_runtime.__all__ names {name}, which edge_runtime does not have"
        obj = getattr(edge_runtime, name)
        assert (obj.__doc__ or "").strip(), f"edge_runtime.{name} has no docstring of its own"
        assert obj.__module__.startswith("edge_runtime._"), f"edge_runtime.{name} is not the kernel's own"


def test_every_public_name_of_the_package_is_exported() -> None:
    public = {name for name, obj in vars(edge_runtime).items()
              if not name.startswith("_") and not inspect.ismodule(obj)}
    assert public == set(edge_runtime.__all__)


def test_the_kernel_has_no_public_module_beyond_the_package() -> None:
    modules = [module.name for module in pkgutil.iter_modules(edge_runtime.__path__)]
    assert modules, "edge_runtime has no modules: was it moved?"
    assert [name for name in modules if not name.startswith("_")] == [], (
        "import the kernel from `edge_runtime` only: its modules are private (_actor.py, ...)")
