"""Import-on-first-use of a package's public names (PEP 562).

A package names the modules that define its public names, and each of them lists its
own in ``__all__``: the one place a public name is written. The package's ``__all__``,
its ``dir()`` and its attributes derive from those lists, importing a module only when
one of its names is first used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def lazy_exports(
    package: str, homes: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__``, serving the public names of ``homes``.

    Args:
        package: The package's ``__name__``.
        homes: Its submodules (relative, without the dot) whose ``__all__`` hold its
            public names, cheapest to import first: a name is looked for in that order.
    """
    namespace = sys.modules[package].__dict__

    def home(module: str) -> ModuleType:
        return importlib.import_module(f".{module}", package)

    def public() -> list[str]:
        return sorted(name for module in homes for name in home(module).__all__)

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            value: Any = public()
        elif name.startswith("_") and not name.startswith("__"):
            # A private submodule, looked up by ``from . import _wire`` before it is
            # imported: never a public name, and searching for it would import the
            # other modules first, which may be the one being imported (a cycle).
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        else:
            for module in map(home, homes):
                if name in module.__all__:
                    value = getattr(module, name)
                    break
            else:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public()})

    return __getattr__, __dir__
