"""`import smallpond` resolving to `pond_core.compat.smallpond`, without installing a package.

A meta-path finder maps `smallpond` and every `smallpond.x.y` to the module of the same path
under `pond_core.compat`, returning the very same module objects: `smallpond.dataframe.Session`
is `pond_core.compat.smallpond.dataframe.Session`, so isinstance checks and pickles agree.
A real smallpond on the path is shadowed only while the finder is installed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence

ALIASED = "smallpond"
TARGET = "pond_core.compat.smallpond"


def target_name(fullname: str) -> str | None:
    """The pond module behind `fullname`, or None when the name is not smallpond's."""
    if fullname == ALIASED or fullname.startswith(ALIASED + "."):
        return TARGET + fullname[len(ALIASED) :]
    return None


class _ExistingModule(importlib.abc.Loader):
    """Hands the import system a module that is already imported under its pond name."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        """Already executed under its pond name."""


class SmallpondAliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        name = target_name(fullname)
        if name is None:
            return None
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its own imports is missing
                raise
            return None  # pond has no such smallpond module: "No module named 'smallpond.x'"
        is_package = hasattr(module, "__path__")
        return importlib.machinery.ModuleSpec(fullname, _ExistingModule(module), is_package=is_package)


_FINDER = SmallpondAliasFinder()


def install() -> None:
    """Make `import smallpond` resolve to pond's compatibility package in this process."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Remove the finder and forget the `smallpond` names it gave out."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if target_name(n) is not None]:
        if getattr(sys.modules[name], "__name__", "").startswith(TARGET):
            del sys.modules[name]


@contextlib.contextmanager
def smallpond_aliased() -> Iterator[None]:
    """`import smallpond` resolves to pond's package inside the block only."""
    installed = _FINDER in sys.meta_path
    install()
    try:
        yield
    finally:
        if not installed:
            uninstall()
