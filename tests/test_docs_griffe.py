"""The API reference's Griffe extensions (docs/griffe_attributes.py) show what users call.

Griffe comes with the ``docs`` extra; without it this module is skipped (CI's main run
installs it, and its ``mkdocs build --strict`` loads these extensions too).
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

griffe = pytest.importorskip("griffe", reason="needs the docs extra")

ROOT = Path(__file__).resolve().parent.parent


def _extensions() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_griffe_attributes", ROOT / "docs" / "griffe_attributes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


extensions = _extensions()


def load(source: str, tmp_path: Path) -> Any:
    """Load ``source`` as module ``sample`` with both extensions, as mkdocs does."""
    (tmp_path / "sample.py").write_text(textwrap.dedent(source))
    return griffe.load(
        "sample",
        search_paths=[tmp_path],
        extensions=griffe.load_extensions(extensions.AttributesSection, extensions.AttrsInit),
    )


def signature(cls: Any) -> list[tuple[str, str, str | None]]:
    """The ``__init__`` parameters of a Griffe class: name, kind and default, self left out."""
    return [
        (p.name, p.kind.value, None if p.default is None else str(p.default))
        for p in cls.members["__init__"].parameters
        if p.name != "self"
    ]


def test_attrs_classes_get_the_init_attrs_writes(tmp_path: Path) -> None:
    """Fields in order, defaults, factory, kw_only, init=False, alias and a private name."""
    module = load(
        """
        import attrs

        @attrs.frozen
        class Record:
            name: str
            size: int = 1
            tags: list[str] = attrs.field(factory=list)
            hidden: int = attrs.field(default=0, init=False)
            flag: bool = attrs.field(default=False, kw_only=True)
            _secret: str = "x"
            renamed: int = attrs.field(default=2, alias="other")

        @attrs.define(kw_only=True)
        class Options:
            level: int

        class Plain:
            name: str
        """,
        tmp_path,
    )
    assert signature(module["Record"]) == [
        ("name", "positional or keyword", None),
        ("size", "positional or keyword", "1"),
        ("tags", "positional or keyword", "list()"),
        ("secret", "positional or keyword", "'x'"),
        ("other", "positional or keyword", "2"),
        ("flag", "keyword-only", "False"),
    ]
    assert signature(module["Options"]) == [("level", "keyword-only", None)]
    assert "__init__" not in module["Plain"].members
    assert "class-attribute" not in module["Record"].members["size"].labels


def test_the_sdks_records_show_their_constructor() -> None:
    """RateLimit, Reply and Reservation, as the reference renders them."""
    package = griffe.load(
        "twochat_async",
        search_paths=[ROOT],
        extensions=griffe.load_extensions(extensions.AttributesSection, extensions.AttrsInit),
    )
    limit = package["RateLimit"].final_target
    assert signature(limit) == [
        ("per_minute", "positional or keyword", None),
        ("burst", "positional or keyword", "1"),
    ]
    reply = package["testing.Reply"].final_target
    assert [name for name, _, _ in signature(reply)][:4] == ["status", "json", "body", "headers"]
    reservation = package["Reservation"].final_target
    assert signature(reservation)[-1] == ("group_id", "positional or keyword", "None")


def test_attributes_take_the_section_description_and_the_init_argument_type(
    tmp_path: Path,
) -> None:
    """``self.status = status`` shows as ``status: int``, described by the Attributes section."""
    module = load(
        '''
        class Failure(Exception):
            """A failure.

            Attributes:
                status: The HTTP status.
            """

            def __init__(self, message: str, *, status: int) -> None:
                super().__init__(message)
                self.status = status
        ''',
        tmp_path,
    )
    status = module["Failure"].members["status"]
    assert (str(status.annotation), status.value) == ("int", None)
    assert status.docstring.value == "The HTTP status."
