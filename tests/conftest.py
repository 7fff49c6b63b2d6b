"""Shared test plumbing. Fixtures live in per-area plugins under ``tests/fixtures``."""

pytest_plugins = [
    "tests.fixtures.spec",
    "tests.fixtures.postgres",
    "tests.fixtures.emulator",
    "tests.fixtures.contract",
]
