"""The public surface: each name written once in its home's __all__, served on first use.

The package and twochat_async.testing name their home modules (``_HOMES``); each public
name is listed in its home's ``__all__`` only. These tests check that what users import,
what type checkers read and what ``__all__`` says are the same, and documented.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import twochat_async
import twochat_async.testing

ROOT_DIR = Path(__file__).resolve().parent.parent

PACKAGES = [twochat_async, twochat_async.testing]
#: Helpers the SDK uses inside that are not part of its surface.
INTERNAL = {
    "converter",
    "parse_datetime",
    "error_class",
    "STATUS_ERRORS",
    "RateLimiter",
    "Queue",
    "Place",
}


def homes(package: ModuleType) -> list[ModuleType]:
    """The modules whose ``__all__`` make ``package``'s public names."""
    return [importlib.import_module(f".{home}", package.__name__) for home in package._HOMES]


def exported(package: ModuleType) -> list[tuple[str, object]]:
    """Every public name of ``package`` with its object."""
    return [(name, getattr(package, name)) for name in package.__all__]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_all_is_the_union_of_the_homes_lists(package: ModuleType) -> None:
    """__all__ is every home's __all__, sorted, with no name in two homes."""
    names = [name for home in homes(package) for name in home.__all__]
    assert len(set(names)) == len(names)
    assert sorted(names) == package.__all__


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_type_checkers_read_the_same_homes(package: ModuleType) -> None:
    """The star imports under TYPE_CHECKING in __init__.py are exactly of _HOMES."""
    tree = ast.parse(Path(package.__file__ or "").read_text(encoding="utf-8"))
    (block,) = [node for node in tree.body if isinstance(node, ast.If)]
    starred = {
        node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["*"]
    }
    assert set(package._HOMES) == starred


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_each_home_exports_only_what_it_defines(package: ModuleType) -> None:
    """A home's __all__ names its own classes and functions, never one it imported."""
    for home in homes(package):
        for name in home.__all__:
            value = getattr(home, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                assert home.__name__ == value.__module__, f"{home.__name__}.{name}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_class_of_the_homes_is_exported(package: ModuleType) -> None:
    """No class a user meets is left out of __all__, and no internal helper is in it."""
    defined = {
        name
        for home in homes(package)
        for name, value in vars(home).items()
        if inspect.isclass(value) and value.__module__ == home.__name__ and name[0] != "_"
    }
    assert set() == defined - set(package.__all__) - INTERNAL
    assert set() == INTERNAL & set(package.__all__)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_name_imports_as_the_homes_object(package: ModuleType) -> None:
    """`from package import *` binds exactly __all__, each the object its home defines."""
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)  # noqa: S102 - fixed, trusted import
    del namespace["__builtins__"]
    by_home = {name: getattr(home, name) for home in homes(package) for name in home.__all__}
    assert by_home == namespace
    assert set(package.__all__) <= set(dir(package))


def test_importing_the_package_imports_no_home_until_a_name_is_used() -> None:
    """Names are imported on first use; an unknown one is an AttributeError naming it."""
    code = (
        "import sys, twochat_async\n"
        "print(sorted(m for m in sys.modules if m.startswith('twochat_async.')))\n"
        "twochat_async.APIError\n"
        "print(sorted(m for m in sys.modules if m.startswith('twochat_async.')))\n"
        "try:\n"
        "    twochat_async.Nope\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == [
        "['twochat_async._lazy']",
        "['twochat_async._lazy', 'twochat_async._version', 'twochat_async.errors']",
        "module 'twochat_async' has no attribute 'Nope'",
    ]


MODULES = sorted(
    ".".join(path.relative_to(ROOT_DIR).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT_DIR / "twochat_async").rglob("*.py")
    if path.name != "__main__.py"
)


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_every_module_can_be_the_first_one_imported(module: str) -> None:
    """``import twochat_async._transport`` first, in a fresh interpreter, works: no cycle."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_package_has_a_docstring() -> None:
    """The package itself has a docstring."""
    assert (twochat_async.__doc__ or "").strip()


@pytest.mark.parametrize(
    ("name", "value"),
    [pair for package in PACKAGES for pair in exported(package) if pair[0] != "__version__"],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_public_object_has_a_docstring(name: str, value: object) -> None:
    """Every exported class and function is documented (members: test_reference.py)."""
    assert (inspect.getdoc(value) or "").strip(), name


def test_version_matches_installed_metadata() -> None:
    """The installed distribution's version equals __version__."""
    assert importlib.metadata.version("twochat-async") == twochat_async.__version__
