"""Rows checked against a form's definition, and form source YAML refused with file/line/field.

The product's reading of the form rules (``identity._form_rows``) is held to the emulator's
(its form validation and submission store): every case below is both checked by the product and
submitted raw to the emulator, and the two must agree on accept/refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.config import ConfigError, load_form_source, read_form_sources
from moments_pipeline.emulator import EmulatorSettings, create_app
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.identity import check_row, mapping_problems

RICH = {
    "id": "rich-form",
    "resubmitEnabled": True,
    "elements": [
        {"component": "EMAIL", "fieldId": "email", "personField": "email", "isRequired": True},
        {"component": "MSISDN", "fieldId": "phone", "personField": "phone"},
        {
            "component": "TEXT",
            "fieldId": "name",
            "validationRules": {"maxLength": 8, "forbiddenSymbols": ["<", ">"]},
        },
        {"component": "TEXT", "fieldId": "code", "validationRules": {"pattern": "[A-Z]{2}\\d{3}"}},
        {
            "component": "NUMBER",
            "fieldId": "age",
            "validationRules": {"minValue": "18", "maxValue": "120"},
        },
        {"component": "DATE", "fieldId": "born", "validationRules": {"datePattern": "dd/MM/yyyy"}},
        {
            "component": "DROPDOWN",
            "fieldId": "size",
            "options": [{"name": "Small", "value": "S"}, {"name": "Large", "value": "L"}],
        },
        {
            "component": "RADIOBUTTON",
            "fieldId": "color",
            "options": [{"name": "Red", "value": "red"}, {"name": "Blue", "value": "blue"}],
        },
        {"component": "CHECKBOX", "fieldId": "terms"},
        {"component": "SUBMIT_BUTTON"},
    ],
}
BASE = {"email": "ann@example.com"}
CASES: list[tuple[dict[str, Any], str | None]] = [
    ({}, None),
    ({"email": None}, "email: required"),
    ({"email": "  "}, "email: required"),
    ({"email": "no-at-sign"}, "email:"),
    ({"email": "Ann@Example.COM"}, None),
    ({"phone": "+41793026727"}, None),
    ({"phone": "0793026727"}, "phone:"),
    ({"name": "Ann"}, None),
    ({"name": "Annabellee"}, "name: longer than 8"),
    ({"name": "A<b"}, "name: contains forbidden"),
    ({"code": "AB123"}, None),
    ({"code": "ab123"}, "code: does not match"),
    ({"age": 30}, None),
    ({"age": "17"}, "age: below 18"),
    ({"age": "old"}, "age: not a number"),
    ({"born": "31/12/1990"}, None),
    ({"born": "1990-12-31"}, "born:"),
    ({"size": "L"}, None),
    ({"size": "XL"}, "size: not among"),
    ({"color": "green"}, "color: not among"),
    ({"terms": "true"}, None),
    ({"terms": "maybe"}, "terms:"),
]


@pytest.mark.parametrize(("extra", "expected"), CASES)
async def test_row_rules_agree_with_the_emulator(
    extra: dict[str, Any], expected: str | None
) -> None:
    row = {**BASE, **extra}
    checked = check_row(RICH, row)
    if expected is None:
        assert checked.problems == []
    else:
        assert any(p.startswith(expected) for p in checked.problems), checked.problems
    app = create_app(
        EmulatorSettings(api_keys=[SecretStr("k")], rate_limit_per_s=None, forms=[RICH])
    )
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://emulator.test",
        headers={"Authorization": "App k"},
    ) as client:
        raw = {k: v for k, v in row.items() if v is not None}
        answer = await client.post("/forms/1/forms/rich-form/data", json=raw)
    assert (answer.status_code == 200) == (expected is None), answer.text
    if expected is None:  # what the product would send is accepted as it is
        async with httpx.AsyncClient(
            transport=EmulatorTransport(app),
            base_url="http://emulator.test",
            headers={"Authorization": "App k"},
        ) as client:
            sent = await client.post("/forms/1/forms/rich-form/data", json=checked.values)
        assert sent.status_code == 200
        # ... and read by the emulator exactly as the raw row was.
        raw_record, sent_record = app.state.emulator.form_submissions[-2:]
        assert sent_record["fields"] == raw_record["fields"]


def test_mapping_problems_name_the_field() -> None:
    problems = mapping_problems(RICH, {"emial": "email_col", "name": "n"})
    assert problems == [
        "fields.emial: the form has no field 'emial' (did you mean 'email'?)",
        "fields: the form requires 'email', which no column maps",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "name: s\nform: {id: f1}\nsource: {table: t, row_id_column: id}\nfeilds: {a: b}\n",
            "line 4: feilds: unknown field (did you mean 'fields'?)",
        ),
        (
            "name: s\nform: {id: f1}\nsource: {table: t}\nfields: {email: e}\n",
            "line 3: source: row_id_column is required for a form source",
        ),
        (
            "name: s\nform: {id: 'f/../x'}\nsource: {table: t, row_id_column: id}\nviews: true\n",
            "line 2: form.id: 'f/../x' is not a form id",
        ),
        (
            'name: s\nform: {id: f1, source: "a\\nb"}\nsource: {table: t, row_id_column: i}\n'
            "views: true\n",
            "line 2: form.source: must be 1 to 255 printable ASCII characters",
        ),
        (
            "name: s\nform: {id: f1}\nsource: {query: DELETE FROM t, row_id_column: id}\n"
            "views: true\n",
            "line 3: source.query:",
        ),
        (
            "name: s\nform: {id: f1}\nsource: {table: moments_sync_outbox, row_id_column: id}\n"
            "views: true\n",
            "line 3: source.table:",
        ),
        (
            "name: s\nform: {id: f1}\nviews: true\nsource: {table: t, row_id_column: i}\n"
            "fields: {email: e}\n",
            "a views source takes no 'fields'",
        ),
        ("name: s\nname: t\n", "line 2: name: duplicate key 'name'"),
    ],
)
def test_bad_form_source_files(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_form_source(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and problem in message, message


def test_a_directory_reports_every_bad_file_and_a_reused_name(tmp_path: Path) -> None:
    good = "name: a\nform: {id: f1}\nsource: {table: t, row_id_column: i}\nviews: true\n"
    (tmp_path / "1.yaml").write_text(good)
    (tmp_path / "2.yaml").write_text(good)
    (tmp_path / "3.yaml").write_text("name: [\n")
    found = read_form_sources(tmp_path)
    assert list(found.sources) == ["a"]
    lines = [line for error in found.errors for line in error.lines]
    assert lines[0].startswith(f"{tmp_path / '2.yaml'}: line 1: name: form source 'a' is already")
    assert lines[1].startswith(f"{tmp_path / '3.yaml'}: ")
    assert read_form_sources(tmp_path / "missing").sources == {}
