"""The API reference shows no undocumented member: every public name has its docstring."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

import twochat_async
import twochat_async.testing

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
#: Every class the API reference documents: the public classes of the package and of
#: twochat_async.testing.
CLASSES = sorted(
    {
        value
        for package in (twochat_async, twochat_async.testing)
        for value in (getattr(package, name) for name in package.__all__)
        if inspect.isclass(value)
    },
    key=lambda cls: cls.__name__,
)
SECTION = re.compile(r"^(\w[\w ]*):$")
ENTRY = re.compile(r"^(\w+)(?: \(.*\))?: *(.*)$")


def summary(doc: str | None) -> str:
    """The summary line of a docstring ('' when there is none)."""
    return inspect.cleandoc(doc).partition("\n")[0].strip() if doc else ""


def attributes_section(doc: str | None) -> dict[str, str]:
    """The Google-style ``Attributes:`` section of a docstring, as name -> description."""
    found: dict[str, str] = {}
    inside = False
    for line in inspect.cleandoc(doc or "").splitlines():
        if not line.startswith(" "):
            heading = SECTION.match(line)
            inside = heading is not None and heading.group(1) == "Attributes"
        elif inside and not line.startswith(" " * 5):
            entry = ENTRY.match(line.strip())
            if entry:
                found[entry.group(1)] = entry.group(2)
    return found


def data_attributes(cls: type) -> dict[str, bool]:
    """Public data attributes a reader sees on ``cls``, and whether one has its own docstring.

    Griffe finds them in the source: names assigned in the class body (attrs fields among
    them) and ``self.<name>`` assigned in its methods. A string right after the assignment
    is the attribute's docstring.
    """
    (node,) = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    assert isinstance(node, ast.ClassDef)
    found: dict[str, bool] = {}

    def name_of(target: ast.expr, in_method: bool) -> str | None:
        if not in_method:
            return target.id if isinstance(target, ast.Name) else None
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            return target.attr if target.value.id == "self" else None  # self.<name> = ...
        return None

    def visit(body: list[ast.stmt], in_method: bool) -> None:
        for statement, following in zip(body, [*body[1:], None], strict=True):
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(statement.body, in_method=True)
                continue
            if isinstance(statement, ast.Assign):
                targets = statement.targets
            elif isinstance(statement, ast.AnnAssign):
                targets = [statement.target]
            else:
                continue
            documented = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            for target in targets:
                name = name_of(target, in_method)
                if name is not None and not name.startswith("_"):
                    found[name] = found.get(name, False) or documented

    visit(node.body, in_method=False)
    return found


def undocumented(cls: type) -> list[str]:
    """Every member of ``cls`` that the API reference would show without documentation."""
    missing = [] if summary(cls.__doc__) else [f"{cls.__name__} (class docstring)"]
    in_section = attributes_section(cls.__doc__)
    fields = {field.name for field in attrs.fields(cls)} if attrs.has(cls) else set()
    for name, value in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        function: Any = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        is_member = isinstance(function, property) or inspect.isfunction(function)
        if is_member and not summary(function.__doc__):
            missing.append(f"{cls.__name__}.{name}")
    for name, has_docstring in data_attributes(cls).items():
        if not has_docstring and not in_section.get(name):
            missing.append(f"{cls.__name__}.{name} (not in the Attributes section)")
    return missing


@pytest.mark.parametrize("cls", CLASSES, ids=[cls.__name__ for cls in CLASSES])
def test_every_public_member_is_documented(cls: type) -> None:
    """The class, its methods and properties have docstrings; its fields are described."""
    assert undocumented(cls) == []


def test_the_reference_page_shows_every_class() -> None:
    """docs/reference.md renders each of them, by itself or with its whole module."""
    shown = set(re.findall(r"^::: ([\w.]+)$", REFERENCE.read_text(), re.M))
    places = ("twochat_async", "twochat_async.testing")
    missing = [
        cls.__name__
        for cls in CLASSES
        if cls.__module__ not in shown and not {f"{p}.{cls.__name__}" for p in places} & shown
    ]
    assert missing == []


def test_the_check_finds_undocumented_members() -> None:
    """A made-up class with one gap of each kind is caught (the test above can fail)."""

    @attrs.frozen
    class Record:
        """A record whose docstring describes only one of its fields.

        Attributes:
            described: A field with a description.
        """

        described: int
        forgotten: int

        @property
        def shape(self) -> int:
            return self.described

        def method(self) -> None:
            pass

        @classmethod
        def build(cls) -> None:
            """Documented."""

    class Error(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status
            self.noted = status
            """An attribute documented the way Griffe also reads."""

    assert undocumented(Record) == [
        "Record.shape",
        "Record.method",
        "Record.forgotten (not in the Attributes section)",
    ]
    assert undocumented(Error) == [
        "Error (class docstring)",
        "Error.status (not in the Attributes section)",
    ]
