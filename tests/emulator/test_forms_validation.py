"""Unit tests of the pure form validation rules and the seeded example forms."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from moments_pipeline.emulator.form_validation import (
    EMAIL_PATTERN,
    FormConfigError,
    compile_java_pattern,
    person_update,
    strptime_format,
    validate_submission,
)
from moments_pipeline.emulator.forms_seed import (
    complete_form,
    default_forms,
    format_form_timestamp,
)

NEWSLETTER_ID = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"


def _example(spec: dict[str, Any], path: str, name: str) -> Any:
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return content["examples"][name]["value"]


def _form(*elements: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "test-form",
        "name": "t",
        "elements": [*elements, {"component": "SUBMIT_BUTTON", "label": "Submit"}],
        "resubmitEnabled": True,
        "formType": "OPT_IN",
        "formStatus": "ACTIVE",
    }


def _element(component: str, field_id: str = "f", **extra: Any) -> dict[str, Any]:
    return {"component": component, "fieldId": field_id, "isRequired": False, **extra}


# -- seeded forms ---------------------------------------------------------------------------


def test_seeded_newsletter_form_is_the_get_form_example_verbatim(openapi_spec):
    expected = _example(openapi_spec, "/forms/1/forms/{id}", "Company Newsletter")
    assert default_forms()[0] == expected


def test_seeded_email_form_is_the_list_example_verbatim(openapi_spec):
    listed = _example(openapi_spec, "/forms/1/forms", "Response example")["forms"]
    assert default_forms()[1] == listed[1]
    # The list example's copy of the newsletter form differs only by the name's case.
    assert {**default_forms()[0], "name": "Test form"} == listed[0]


def test_default_forms_are_fresh_copies():
    first = default_forms()
    first[0]["elements"][0]["validationRules"]["forbiddenSymbols"].clear()
    assert default_forms()[0]["elements"][0]["validationRules"]["forbiddenSymbols"]


def test_form_timestamps_use_the_examples_format():
    moment = datetime(2022, 7, 11, 6, 38, 12, 757_000, tzinfo=UTC)
    assert format_form_timestamp(moment) == "2022-07-11T06:38:12.757+0000"
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert format_form_timestamp(plus_two) == "2022-07-11T08:38:12.757+0200"


def test_complete_form_fills_required_fields_and_keeps_given_ones():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    done = complete_form({"id": "x", "formStatus": "DRAFT"}, now=now)
    assert done["formStatus"] == "DRAFT"
    assert done["createdAt"] == done["updatedAt"] == "2026-01-01T00:00:00.000+0000"
    assert (done["name"], done["elements"], done["resubmitEnabled"]) == ("x", [], True)
    with pytest.raises(ValueError, match="'id'"):
        complete_form({"name": "no id"}, now=now)


# -- the Java email pattern -----------------------------------------------------------------


def test_spec_email_pattern_compiles_in_python_without_warnings(openapi_spec):
    form = _example(openapi_spec, "/forms/1/forms/{id}", "Company Newsletter")
    spec_pattern = form["elements"][4]["validationRules"]["pattern"]
    assert spec_pattern == EMAIL_PATTERN
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning about nested sets would fail here
        compiled = re.compile(spec_pattern)
    assert compiled.fullmatch("john.doe@example.com")
    assert compiled.fullmatch("x@[192.168.0.1]")
    assert not compiled.fullmatch("john.doe@example.com trailing")  # matches() is whole-value


@pytest.mark.parametrize(
    ("java", "good", "bad"),
    [
        (r"\Q1+1\E=2", "1+1=2", "11=2"),
        (r"\p{Upper}\p{Digit}+", "A12", "a12"),
        (r"[\p{Alpha}_]+", "ab_C", "ab-C"),
        (r"\P{Digit}+", "abc", "a1"),
        (r"a++b", "aab", "ac"),
        (r"end\z", "end", "end\n"),
    ],
)
def test_java_regex_constructs_are_translated(java, good, bad):
    pattern = compile_java_pattern(java)
    assert pattern.fullmatch(good)
    assert not pattern.fullmatch(bad)


def test_unsupported_java_regex_names_the_pattern():
    with pytest.raises(FormConfigError, match=r"\\p\{InGreek\}"):
        compile_java_pattern(r"\p{InGreek}+")
    with pytest.raises(FormConfigError, match=r"'\(unclosed'"):
        compile_java_pattern("(unclosed")


def test_java_date_patterns_translate_or_are_refused():
    assert strptime_format("dd/MM/yyyy") == "%d/%m/%Y"
    assert strptime_format("yyyy.M.d") == "%Y.%m.%d"
    with pytest.raises(FormConfigError, match="unsupported field 'EEE'"):
        strptime_format("EEE dd/MM/yyyy")
    broken = _form(_element("DATE", "d", validationRules={"datePattern": "dd-MMM-yyyy"}))
    with pytest.raises(FormConfigError, match="unsupported field 'MMM'"):
        validate_submission(broken, {"d": "01-Jan-2020"})


# -- rules ----------------------------------------------------------------------------------


def test_newsletter_example_submission_is_valid_and_normalised():
    form = default_forms()[0]
    data = {"first_name": "John", "email": "John.Doe@Example.com", "company": "Acme", "x": "1"}
    result = validate_submission(form, data)
    assert result.ok
    assert result.values == {
        "first_name": "John",
        "email": "john.doe@example.com",
        "company": "Acme",
    }
    assert result.ignored_fields == ["x"]


def test_is_required_rejects_missing_and_blank():
    form = default_forms()[0]
    assert validate_submission(form, {}).errors == {"email": ["must not be blank"]}
    assert validate_submission(form, {"email": "   "}).errors == {"email": ["must not be blank"]}
    optional = validate_submission(default_forms()[1], {})
    assert optional.ok and optional.values == {}


def test_max_length_counts_characters():
    form = default_forms()[0]
    assert validate_submission(form, {"email": "a@b.co", "first_name": "J" * 255}).ok
    result = validate_submission(form, {"email": "a@b.co", "first_name": "J" * 256})
    assert result.errors == {"first_name": ["must be at most 255 characters"]}


@pytest.mark.parametrize("symbol", ["<", "&", "\n", "\\", "]"])
def test_forbidden_symbols_are_rejected(symbol):
    form = default_forms()[0]
    result = validate_submission(form, {"email": "a@b.co", "last_name": f"Do{symbol}e"})
    assert list(result.errors) == ["last_name"]
    assert repr(symbol) in result.errors["last_name"][0]


def test_pattern_rejects_a_malformed_email():
    result = validate_submission(default_forms()[0], {"email": "john@@example.com"})
    assert result.errors == {"email": ["does not match the required format"]}


def test_email_component_without_pattern_still_checks_the_address():
    form = _form(_element("EMAIL", "mail"))
    assert validate_submission(form, {"mail": "A@B.CO"}).values == {"mail": "a@b.co"}
    assert validate_submission(form, {"mail": "not-an-email"}).errors == {
        "mail": ["must be a valid email address"]
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("41793026727", "41793026727"), ("+41793026727", "41793026727"), (41793026727, "41793026727")],
)
def test_msisdn_accepts_international_digits(raw, expected):
    form = _form(_element("MSISDN", "phone"))
    assert validate_submission(form, {"phone": raw}).values == {"phone": expected}


@pytest.mark.parametrize(
    "raw", ["079 302 67 27", "0793026727", "+41-79", "12345", "4179302672712345"]
)
def test_msisdn_rejects_non_international_numbers(raw):
    form = _form(_element("MSISDN", "phone"))
    errors = validate_submission(form, {"phone": raw}).errors
    assert errors == {"phone": ["must be a phone number in international format"]}


def test_number_checks_type_and_bounds():
    form = _form(_element("NUMBER", "age", validationRules={"minValue": "18", "maxValue": "120"}))
    assert validate_submission(form, {"age": 42}).values == {"age": 42}
    assert validate_submission(form, {"age": "18.5"}).values == {"age": 18.5}
    assert validate_submission(form, {"age": "17"}).errors == {"age": ["must be at least 18"]}
    assert validate_submission(form, {"age": 121}).errors == {"age": ["must be at most 120"]}
    assert validate_submission(form, {"age": "forty"}).errors == {"age": ["must be a number"]}
    assert validate_submission(form, {"age": True}).errors == {"age": ["must be a number"]}
    assert validate_submission(form, {"age": "NaN"}).errors == {"age": ["must be a number"]}


def test_date_follows_date_pattern_or_iso():
    iso = _form(_element("DATE", "born"))
    assert validate_submission(iso, {"born": "1990-02-28"}).values == {"born": "1990-02-28"}
    assert validate_submission(iso, {"born": "28/02/1990"}).errors == {
        "born": ["must be a date formatted yyyy-MM-dd"]
    }
    assert not validate_submission(iso, {"born": "1990-02-30"}).ok
    european = _form(_element("DATE", "born", validationRules={"datePattern": "dd/MM/yyyy"}))
    assert validate_submission(european, {"born": "28/02/1990"}).values == {"born": "1990-02-28"}
    assert not validate_submission(european, {"born": "1990-02-28"}).ok


def test_date_bounds():
    rules = {"minValue": "2000-01-01", "maxValue": "2000-12-31"}
    form = _form(_element("DATE", "d", validationRules=rules))
    assert validate_submission(form, {"d": "2000-06-01"}).ok
    assert validate_submission(form, {"d": "1999-12-31"}).errors == {
        "d": ["must be on or after 2000-01-01"]
    }
    assert validate_submission(form, {"d": "2001-01-01"}).errors == {
        "d": ["must be on or before 2000-12-31"]
    }


def test_choices_checkbox_and_single_values():
    options = [{"name": "Red", "value": "red"}, {"name": "Blue", "value": "blue"}]
    form = _form(
        _element("DROPDOWN", "colour", options=options),
        _element("CHECKBOX_GROUP", "likes", options=options),
        _element("CHECKBOX", "consent", isRequired=True),
    )
    ok = validate_submission(form, {"colour": "red", "likes": ["red", "blue"], "consent": "on"})
    assert ok.values == {"colour": "red", "likes": ["red", "blue"], "consent": True}
    bad = validate_submission(form, {"colour": "green", "likes": "red,pink", "consent": "false"})
    assert set(bad.errors) == {"colour", "likes", "consent"}
    repeated = validate_submission(_form(_element("TEXT", "t")), {"t": ["a", "b"]})
    assert repeated.errors == {"t": ["must be a single value"]}


def test_custom_validation_messages_override_defaults():
    element = _element("TEXT", "t", isRequired=True, validationMessages={"isRequired": "Say it"})
    assert validate_submission(_form(element), {}).errors == {"t": ["Say it"]}


def test_several_rules_report_together():
    form = default_forms()[0]
    result = validate_submission(form, {"email": "x", "first_name": "<" * 300})
    assert result.errors["email"] == ["does not match the required format"]
    assert len(result.errors["first_name"]) == 2


# -- personField mapping --------------------------------------------------------------------


def test_person_update_maps_identifiers_attributes_and_custom_ids():
    form = _form(
        _element("TEXT", "first_name", personField="firstName"),
        _element("TEXT", "country", personField="country"),
        _element("TEXT", "company", personField="267ce64a-1a26-4326-9036-6384696f39c8"),
        _element("EMAIL", "email", personField="email"),
        _element("MSISDN", "mobile", personField="phone"),
        _element("TEXT", "offer_id"),
    )
    data = {
        "first_name": "Ann",
        "country": "CH",
        "company": "Acme",
        "email": "ann@example.com",
        "mobile": "+41793026727",
        "offer_id": "o-1",
    }
    result = validate_submission(form, data)
    assert result.ok
    update = person_update(form, result.values)
    assert update.identifiers == [("EMAIL", "ann@example.com"), ("PHONE", "41793026727")]
    assert update.attributes == {
        "firstName": "Ann",
        "country": "CH",
        "customAttributes": {"267ce64a-1a26-4326-9036-6384696f39c8": "Acme"},
    }
