"""A refused source query is a config error naming the file, ``source.query`` and what."""

from __future__ import annotations

from pathlib import Path

import pytest

from moments_pipeline.config import ConfigError, load_audience

YAML = """\
name: sneaky
source:
  query: {query}
identity:
  identify_by: {{column: email, type: EMAIL}}
flow: {{campaign_id: 1}}
"""


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "WITH d AS (DELETE FROM moments_sync_participant_status RETURNING 1) SELECT * FROM d",
            "source.query: DELETE inside a CTE is refused",
        ),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "source.query: function read_csv is refused: it reads or writes files",
        ),
        (
            "SELECT email, getenv('INFOBIP_API_KEY') AS tier FROM people",
            "source.query: function getenv is refused: it reads the environment",
        ),
        (
            "SELECT pg_read_file('/etc/passwd') AS email",
            "source.query: function pg_read_file is refused",
        ),
        ("SELECT * FROM people FOR UPDATE", "source.query: a locking clause"),
    ],
)
def test_yaml_error_names_file_field_and_refusal(tmp_path: Path, query: str, message: str) -> None:
    path = tmp_path / "sneaky.yaml"
    path.write_text(YAML.format(query=f'"{query}"'))
    with pytest.raises(ConfigError) as info:
        load_audience(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message in text


def test_an_ordinary_query_loads(tmp_path: Path) -> None:
    path = tmp_path / "fine.yaml"
    query = "SELECT lower(email) AS email FROM people WHERE signup >= DATE '2026-01-01'"
    path.write_text(YAML.format(query=f'"{query}"'))
    assert load_audience(path).source.query == query
