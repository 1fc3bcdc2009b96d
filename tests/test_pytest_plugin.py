"""The pytest plugin: registered by entry point, cheap to load, fixtures that clean up."""

from __future__ import annotations

import importlib.metadata

import pytest

from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat

pytest_plugins = ["pytester"]


def test_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    """Installing the package registers the plugin with pytest."""
    entry_points = importlib.metadata.entry_points(group="pytest11")
    assert {ep.name: ep.value for ep in entry_points}.get("twochat") == (
        "twochat_async.testing.pytest_plugin"
    )


def test_a_pytest_run_that_uses_no_fixture_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    """Every pytest run of a project with the package installed loads the plugin: cheaply.

    The plugin comes in through its entry point, as in a user's project; neither aiohttp,
    cattrs nor the SDK's modules are imported by it (lazy public names, __init__.py).
    """
    pytester.makepyfile(
        """
        import sys

        def test_nothing_heavy():
            assert "twochat_async.testing.pytest_plugin" in sys.modules
            heavy = ("aiohttp", "cattrs", "twochat_async.models", "twochat_async._session")
            assert [m for m in heavy if m in sys.modules] == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_sdk_suite_uses_the_plugin_fixtures(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """This suite's own fake/chat fixtures are the plugin's, configured by option fixtures."""
    assert chat.base_url == fake.base_url
    assert fake.base_url.startswith("http://127.0.0.1:")


def test_fixtures_work_in_a_users_test_suite(pytester: pytest.Pytester) -> None:
    """A user's test gets a running fake and a session, and both are cleaned up after."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(
        """
        import socket

        import pytest
        from yarl import URL

        seen = {}

        async def test_reserve(twochat_fake, twochat_session):
            reservation = await twochat_session.reserve("abc-123")
            assert [r.uuid for r in twochat_fake.active_reservations()] == [reservation.uuid]
            seen["fake"], seen["session"] = twochat_fake, twochat_session

        @pytest.fixture
        def twochat_session_options():
            return {"max_retries": 0}

        async def test_options_reach_the_session(twochat_session):
            assert twochat_session.closed is False

        def test_cleaned_up():
            assert seen["session"].closed is True
            port = URL(seen["fake"].base_url).port
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port)).close()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_fake_options_fixture_configures_the_fake(pytester: pytest.Pytester) -> None:
    """Overriding twochat_fake_options changes the fake the fixtures build."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def twochat_fake_options():
            return {"api_key": "k-123", "requests_per_minute": 30}

        async def test_info(twochat_fake, twochat_session):
            assert twochat_fake.api_key == "k-123"
            assert (await twochat_session.info()).requests_per_minute == 30
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_fixtures_without_pytest_asyncio_fail_saying_how_to_install_it(
    pytester: pytest.Pytester,
) -> None:
    """Without pytest-asyncio the fixtures still exist, and fail naming the pytest extra."""
    # A package that shadows the installed pytest-asyncio and fails to import as if it were
    # absent; the subprocess has the test directory first on its PYTHONPATH.
    pytester.mkpydir("pytest_asyncio").joinpath("__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pytest_asyncio'\", name='pytest_asyncio')\n"
    )
    pytester.makepyfile(
        """
        def test_session(twochat_session):
            pass

        def test_fake(twochat_fake):
            pass

        def test_options(twochat_fake_options, twochat_session_options):
            assert twochat_fake_options == twochat_session_options == {}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    message = (
        "The twochat_fake fixture of twochat-async is asynchronous and needs pytest-asyncio, "
        'which is not installed. Install it with: pip install "twochat-async[pytest]"'
    )
    assert result.stdout.lines.count(message) == 2
    result.stdout.no_fnmatch_line("*fixture 'twochat_*' not found*")
