"""Shared test plumbing. Fixtures live in per-area plugins under ``tests/fixtures``."""

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.spec",
    "tests.fixtures.postgres",
    "tests.fixtures.emulator",
    "tests.fixtures.contract",
]


@pytest.fixture(autouse=True, scope="session")
def _pacing_records_in_a_test_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Keep the cross-process pacing records of every test (and child process) out of /tmp.

    Tests serve emulators on random ports, so each one is an account of its own: left in the
    system's temp directory their records would pile up run after run.
    """
    previous = os.environ.get("MOMENTS_PACING_DIR")
    os.environ["MOMENTS_PACING_DIR"] = str(tmp_path_factory.mktemp("pacing"))
    yield
    if previous is None:
        os.environ.pop("MOMENTS_PACING_DIR", None)
    else:
        os.environ["MOMENTS_PACING_DIR"] = previous
