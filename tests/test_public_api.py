"""Pins the public surface of twochat_async: its names, docstrings and version."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

import twochat_async
from twochat_async import _version

EXPORTED = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountInfo",
    "AuthenticationError",
    "AvailableNumber",
    "BadRequestError",
    "City",
    "ConflictError",
    "DidType",
    "Hold",
    "InvalidResponseError",
    "Limiter",
    "NotFoundError",
    "NumberGroup",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "Purchase",
    "RateLimit",
    "RateLimitError",
    "Region",
    "Reservation",
    "ServerError",
    "TwoChatError",
    "TwoChatSession",
    "UnprocessableEntityError",
    "__version__",
]

OBJECTS = [name for name in EXPORTED if name != "__version__"]


def test_all_is_pinned() -> None:
    """twochat_async.__all__ is exactly the reviewed list of public names."""
    assert twochat_async.__all__ == EXPORTED


def test_all_is_sorted() -> None:
    """__all__ is kept sorted, so additions show up in review."""
    assert sorted(twochat_async.__all__) == twochat_async.__all__


@pytest.mark.parametrize("name", EXPORTED)
def test_every_public_name_is_importable(name: str) -> None:
    """Every name in __all__ can be imported from twochat_async."""
    namespace: dict[str, object] = {}
    exec(f"from twochat_async import {name}", namespace)  # noqa: S102 - fixed, trusted names
    assert getattr(twochat_async, name) is namespace[name]


def test_star_import_gives_exactly_all() -> None:
    """from twochat_async import * binds exactly the names of __all__."""
    namespace: dict[str, object] = {}
    exec("from twochat_async import *", namespace)  # noqa: S102 - fixed, trusted import
    assert sorted(name for name in namespace if name != "__builtins__") == EXPORTED


def test_public_objects_come_from_the_package() -> None:
    """Every exported object is defined inside twochat_async, not re-exported from elsewhere."""
    modules = {getattr(twochat_async, name).__module__ for name in OBJECTS}
    assert all(module.startswith("twochat_async.") for module in modules)


def test_package_has_a_docstring() -> None:
    """The package itself has a docstring."""
    assert (twochat_async.__doc__ or "").strip()


@pytest.mark.parametrize("name", OBJECTS)
def test_every_public_name_has_a_docstring(name: str) -> None:
    """Every exported class has its own, non-empty docstring."""
    assert (getattr(twochat_async, name).__doc__ or "").strip()


def public_members() -> list[tuple[str, str, object]]:
    """List the public methods and properties defined on each exported class."""
    members = []
    for name in OBJECTS:
        cls = getattr(twochat_async, name)
        for attr, value in vars(cls).items():
            if attr.startswith("_"):
                continue
            if inspect.isfunction(value) or isinstance(value, property):
                members.append((name, attr, value))
    return members


@pytest.mark.parametrize(
    ("owner", "attr", "member"), public_members(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_public_method_has_a_docstring(owner: str, attr: str, member: object) -> None:
    """Every public method and property of an exported class has a docstring."""
    assert (inspect.getdoc(member) or "").strip(), f"{owner}.{attr}"


def test_public_methods_are_found() -> None:
    """The docstring check above covers the session's and the record's methods."""
    found = {f"{owner}.{attr}" for owner, attr, _ in public_members()}
    expected = {
        "TwoChatSession.reserve",
        "TwoChatSession.close",
        "TwoChatSession.base_url",
        "TwoChatSession.closed",
        "Reservation.expires_in",
        "Reservation.is_expired",
    }
    assert expected <= found


def test_version_comes_from_version_module() -> None:
    """twochat_async.__version__ is the one defined in _version.py."""
    assert _version.__version__ == twochat_async.__version__


def test_version_module_is_the_single_source() -> None:
    """_version.py's literal is the version string the package reports."""
    text = Path(_version.__file__).read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match is not None
    assert match.group(1) == twochat_async.__version__


def test_version_matches_installed_metadata() -> None:
    """The installed distribution's version equals __version__."""
    assert importlib.metadata.version("twochat-async") == twochat_async.__version__
