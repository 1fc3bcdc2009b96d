"""The package's shape: short functions, and aiohttp used through its documented API only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "twochat_async"
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: The longest a function may be, its signature and docstring included.
MAX_LINES = 60


def functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method defined in ``tree``."""
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_the_checks_see_the_whole_package() -> None:
    """The scan below finds the request path, so a rename cannot make it pass vacuously."""
    names = {f.name for path in SOURCES for f in functions(ast.parse(path.read_text()))}
    assert {"request", "_send", "_roundtrip", "acquire", "reserve"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_a_screen(path: Path) -> None:
    """No function in the package is longer than 60 lines."""
    long = {
        f.name: n
        for f in functions(ast.parse(path.read_text()))
        if (n := (f.end_lineno or f.lineno) - f.lineno + 1) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_aiohttp_is_used_through_its_documented_api(path: Path) -> None:
    """No subclass of aiohttp's request or connector, no DEFAULT_HEADERS, no aiohttp.helpers."""
    tree = ast.parse(path.read_text())
    bases = {
        ast.unparse(base)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for base in node.bases
    }
    imports = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not bases & {"aiohttp.ClientRequest", "aiohttp.TCPConnector", "TCPConnector"}
    assert not {name for name in imports if name.startswith("aiohttp.helpers")}
    assert "DEFAULT_HEADERS" not in attributes
