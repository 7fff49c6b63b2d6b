"""Config mistakes are loud and early: duplicate keys, lines, did-you-mean, every file at once."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from moments_pipeline.config import (
    ConfigError,
    ConfigErrors,
    load_audience,
    load_audiences,
    read_audiences,
)

GOOD = """\
name: vip
source:
  table: crm.customers
identity:
  identify_by: {column: email, type: EMAIL}
  emails: [email]
  phones: [mobile]
  default_region: CH
flow: {campaign_id: 1}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_audience(path)
    return info.value.problems


def test_a_repeated_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "vip.yaml",
        GOOD.replace("  emails: [email]\n", "  emails: [email]\n  emails: [work]\n"),
    )
    assert problems_of(path) == [
        "line 7: identity.emails: duplicate key 'emails' (first given at line 6)"
    ]


def test_a_repeated_top_level_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "vip.yaml", GOOD + "name: other\n")
    assert problems_of(path) == ["line 10: name: duplicate key 'name' (first given at line 1)"]


def test_a_merge_key_override_is_not_a_duplicate(tmp_path: Path) -> None:
    text = GOOD.replace(
        "flow: {campaign_id: 1}",
        "defaults: &d {deadline_s: 5, max_rejection_rate: 0.1}\n"
        "report:\n  <<: *d\n  deadline_s: 9\nflow: {campaign_id: 1}",
    )
    problems = problems_of(write(tmp_path, "vip.yaml", text))
    # Only the unknown `defaults` key is wrong; `deadline_s` overriding the merge is YAML's own.
    assert len(problems) == 1
    assert problems[0].startswith("line 9: defaults: unknown field (allowed: name, ")


def test_python_tags_stay_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "vip.yaml", GOOD + "description: !!python/object/apply:os.getcwd []\n")
    assert problems_of(path) == [
        "line 10: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.getcwd'"
    ]


def test_unknown_key_gets_a_did_you_mean_at_its_level(tmp_path: Path) -> None:
    path = write(tmp_path, "vip.yaml", GOOD.replace("emails: [email]", "emial: [email]"))
    assert str(load_error(path)) == (
        f"{path}: line 6: identity.emial: unknown field (did you mean 'emails'?)"
    )
    nested = write(tmp_path, "n.yaml", GOOD.replace("type: EMAIL}", "type: EMAIL, colum: x}"))
    assert problems_of(nested) == [
        "line 5: identity.identify_by.colum: unknown field (did you mean 'column'?)"
    ]


def test_unknown_key_without_a_close_match_lists_the_allowed_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "vip.yaml",
        GOOD.replace("  table: crm.customers", "  table: crm.customers\n  zzz: 1"),
    )
    assert problems_of(path) == [
        "line 4: source.zzz: unknown field (allowed: connection, table, query, row_id_column)"
    ]


def test_validation_errors_name_the_line_of_the_item_or_the_parent(tmp_path: Path) -> None:
    text = GOOD.replace("phones: [mobile]", "phones:\n    - mobile\n    - 'bad col'")
    text = text.replace("flow: {campaign_id: 1}", "flow: {}")
    assert problems_of(write(tmp_path, "vip.yaml", text)) == [
        "line 9: identity.phones[1]: 'bad col' is not a plain identifier (letters, digits, "
        "underscore; not starting with a digit; at most 63 characters)",
        # A missing field has no line of its own: its parent's is given.
        "line 11: flow.campaign_id: Field required",
    ]


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_audience(path)
    return info.value


def test_a_directory_reports_every_bad_file_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a_good.yaml", GOOD)
    bad_one = write(tmp_path, "b.yaml", GOOD.replace("name: vip", "name: b\nnme: x"))
    bad_two = write(tmp_path, "c.yml", "name: c\nsource: [unclosed\n")
    duplicate = write(tmp_path, "d.yaml", GOOD)
    with pytest.raises(ConfigErrors) as info:
        load_audiences(tmp_path)
    error = info.value
    assert isinstance(error, ConfigError)
    assert [e.path for e in error.errors] == [bad_one, bad_two, duplicate]
    assert error.path == tmp_path
    assert str(error).splitlines() == error.problems
    assert error.problems[0] == f"{bad_one}: line 2: nme: unknown field (did you mean 'name'?)"
    assert error.problems[1].startswith(f"{bad_two}: line 3: ")
    assert error.problems[2] == (
        f"{duplicate}: line 1: name: audience 'vip' is already defined in "
        f"{tmp_path / 'a_good.yaml'}"
    )


def test_read_audiences_keeps_the_good_ones_and_their_files(tmp_path: Path) -> None:
    good = write(tmp_path, "a.YAML", GOOD)
    write(tmp_path, "b.yaml", "name: [")
    result = read_audiences(tmp_path)
    assert list(result.audiences) == ["vip"]
    assert result.files == {"vip": good}
    assert [e.path.name for e in result.errors] == ["b.yaml"]


def test_a_missing_directory_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        load_audiences(tmp_path / "nowhere")
    assert str(info.value) == (
        f"{tmp_path / 'nowhere'}: does not exist (expected an audience file or directory)"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_audiences("audiences")
    assert str(info.value) == (
        "audiences: does not exist (expected an audience file or directory, "
        f"relative to {tmp_path})"
    )


def test_errors_survive_pickling(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "name: [")
    with pytest.raises(ConfigErrors) as info:
        load_audiences(tmp_path)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
    assert [e.problems for e in copy.errors] == [e.problems for e in info.value.errors]
