"""The README's programs and commands work exactly as written (against the fake)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
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
COMMANDS = [
    line.strip()
    for _, text in blocks("bash")
    for line in text.splitlines()
    if line.strip().startswith("twochat --fake")
]


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


@pytest.mark.parametrize(("name", "code"), PROGRAMS, ids=[name for name, _ in PROGRAMS])
def test_program_runs_as_written(name: str, code: str) -> None:
    """Each complete program runs to the end; one for the real API reaches a fake instead."""
    with fake_in_thread(README_KEY) as fake:
        # Programs that name no fake fall back to TWOCHAT_BASE_URL: point it at ours.
        result = run([sys.executable, "-c", code], env={"TWOCHAT_BASE_URL": fake.base_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize(("name", "code"), TESTS, ids=[name for name, _ in TESTS])
def test_example_tests_pass_under_pytest(name: str, code: str, tmp_path: Path) -> None:
    """Each example test module passes under pytest, its fixtures from the plugin."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    (tmp_path / "test_example.py").write_text(code)
    expected = len(re.findall(r"^async def test_", code, re.M))
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{expected} passed" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_command_runs_as_written(command: str) -> None:
    """Every `twochat --fake ...` line of the docs exits 0 and prints something."""
    result = run(shlex.split(command))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
