"""The README's programs and commands work exactly as written (against the fake)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import fake_in_thread

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)
#: The key the README's own examples use, so the fake accepts them unchanged.
README_KEY = "your-key"


def blocks(language: str) -> list[tuple[str, str]]:
    """Every fenced block of ``language`` in the docs, as (name, text)."""
    found = []
    for path in DOCS:
        for number, match in enumerate(FENCE.finditer(path.read_text()), 1):
            if match.group(1) == language:
                found.append((f"{path.name}#{number}", match.group(2)))
    return found


PROGRAMS = [(name, code) for name, code in blocks("python") if "asyncio.run(" in code]
TESTS = [(name, code) for name, code in blocks("python") if "async def test_" in code]
# Each command once, though the README and a page of docs may both show it.
COMMANDS = list(
    dict.fromkeys(
        line.strip()
        for _, text in blocks("bash")
        for line in text.splitlines()
        if line.strip().startswith("twochat --fake")
    )
)

PROGRAMS_BY_NAME = dict(PROGRAMS)
#: Subprocesses run at once: they mostly wait (on start-up, on the fake), two per core.
WORKERS = 2 * (os.cpu_count() or 1)

pytestmark = pytest.mark.slow  # every test here runs a program, a command or pytest


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command as a newcomer would: this interpreter's scripts on PATH, no TWOCHAT_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    return subprocess.run(  # noqa: S603 - commands come from our own README
        argv, capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}, check=False
    )


def test_the_docs_have_programs_and_commands() -> None:
    """The extraction below finds what it should (else the tests would pass vacuously)."""
    assert len(PROGRAMS) >= 2
    assert len(TESTS) >= 1
    assert "twochat --fake reserve abc-123" in " ".join(COMMANDS)


def run_program(code: str) -> subprocess.CompletedProcess[str]:
    """Run a program of the docs in a fresh interpreter, against a fake of its own."""
    with fake_in_thread(README_KEY) as fake:
        # Programs that name no fake fall back to TWOCHAT_BASE_URL: point it at ours.
        return run([sys.executable, "-c", code], env={"TWOCHAT_BASE_URL": fake.base_url})


@pytest.fixture(scope="module")
def program_results() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every program's run, by block name: several at once, as each mostly waits."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(
            zip(PROGRAMS_BY_NAME, pool.map(run_program, PROGRAMS_BY_NAME.values()), strict=True)
        )


@pytest.fixture(scope="module")
def command_results() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command's run, by command line, several at once."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(
            zip(COMMANDS, pool.map(lambda line: run(shlex.split(line)), COMMANDS), strict=True)
        )


@pytest.mark.parametrize("name", PROGRAMS_BY_NAME)
def test_program_runs_as_written(
    name: str, program_results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    """Each complete program runs to the end; one for the real API reaches a fake instead."""
    result = program_results[name]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def module_name(name: str) -> str:
    """The test module an example block is written to: ``testing.md#3`` -> ``test_testing_md_3``."""
    return "test_" + re.sub(r"\W", "_", name)


@pytest.fixture(scope="module")
def example_outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[str]]]:
    """Run every example test module in one pytest run; its output and outcomes by module.

    One run instead of one per block: a pytest start-up costs seconds. Each module is its
    own file, so one block's tests cannot see another's names.
    """
    folder = tmp_path_factory.mktemp("examples")
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    for name, code in TESTS:
        (folder / f"{module_name(name)}.py").write_text(code)
    result = run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", str(folder)],
    )
    outcomes: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        # -rA's summary: "PASSED test_testing_md_3.py::test_name", one line per test.
        match = re.match(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (?:\S*/)?(\w+)\.py::", line)
        if match:
            outcomes.setdefault(match.group(2), []).append(match.group(1))
    return result.stdout + result.stderr, outcomes


@pytest.mark.parametrize(("name", "code"), TESTS, ids=[name for name, _ in TESTS])
def test_example_tests_pass_under_pytest(
    name: str, code: str, example_outcomes: tuple[str, dict[str, list[str]]]
) -> None:
    """Each example test module passes under pytest, its fixtures from the plugin."""
    output, outcomes = example_outcomes
    expected = len(re.findall(r"^async def test_", code, re.M))
    assert ["PASSED"] * expected == outcomes.get(module_name(name)), output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_runs_as_written(
    command: str, command_results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    """Every `twochat --fake ...` line of the docs exits 0 and prints something."""
    result = command_results[command]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
