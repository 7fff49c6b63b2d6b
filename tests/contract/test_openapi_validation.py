"""The contract validator itself: it rejects what breaks the spec and excuses exactly two quirks."""

from __future__ import annotations

import copy
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from moments_pipeline.emulator.clock import ManualClock
from moments_pipeline.emulator.settings import EmulatorSettings
from moments_pipeline.emulator.state import Emulator
from moments_pipeline.emulator.state import Exchange as RecordedExchange
from tests.contract.openapi_validation import (
    ERROR_CODE_AS_STRING,
    OFFSET_WITHOUT_COLON,
    ContractValidator,
    Exchange,
    excused_deviation,
    format_violations,
    strict_spec,
)
from tests.fixtures.contract import emulators_in, registry_violations

FORM_PATH = "/forms/1/forms/f23f0f7c-9898-4feb-8f21-5afe2c29db7e"
ADD_PATH = "/moments/1/flows/200000000000001/participants"
REPORT_PATH = "/moments/1/flows/200000000000001/participants/report"


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _get_form_example(spec: dict[str, Any]) -> dict[str, Any]:
    content = spec["paths"]["/forms/1/forms/{id}"]["get"]["responses"]["200"]["content"]
    return copy.deepcopy(content["application/json"]["examples"]["Company Newsletter"]["value"])


def _locations(violations) -> set[str]:
    return {v.location for v in violations}


def test_a_wrong_type_and_a_missing_required_field_are_rejected(contract_validator, openapi_spec):
    form = _get_form_example(openapi_spec)
    form["resubmitEnabled"] = "yes"
    del form["name"]
    form["elements"][0]["isRequired"] = 1
    violations = contract_validator.validate(Exchange("GET", FORM_PATH, 200, _json(form)))
    assert _locations(violations) == {"$['resubmitEnabled']", "$", "$['elements'][0]['isRequired']"}
    messages = " | ".join(v.message for v in violations)
    assert "'yes' is not of type 'boolean'" in messages
    assert "'name' is a required property" in messages
    rendered = format_violations(violations)
    assert rendered.startswith(f"1. GET {FORM_PATH} -> 200: ")


def test_exactly_the_two_readme_deviations_are_accepted(contract_validator, openapi_spec):
    form = _get_form_example(openapi_spec)
    assert form["createdAt"] == "2022-07-11T06:38:12.757+0000"  # the timestamp quirk is in play
    assert contract_validator.validate(Exchange("GET", FORM_PATH, 200, _json(form))) == []
    not_found = {"errorCode": "40401", "errorMessage": "Could not find active flow"}
    assert contract_validator.validate(Exchange("POST", ADD_PATH, 404, _json(not_found))) == []
    # Inside the 400's anyOf: the ExceptionResponse branch fails only by the excused quirk.
    bad_request = {"errorCode": "400", "errorMessage": "Mandatory fields are absent"}
    assert contract_validator.validate(Exchange("POST", ADD_PATH, 400, _json(bad_request))) == []


def _deviations(validator: ContractValidator, exchange: Exchange) -> list[str | None]:
    return [
        excused_deviation(schema_error)
        for error in validator.raw_errors(exchange)
        for schema_error in error.__cause__.schema_errors
    ]


def test_the_deviations_are_named_precisely(contract_validator, openapi_spec):
    form = _get_form_example(openapi_spec)
    assert _deviations(contract_validator, Exchange("GET", FORM_PATH, 200, _json(form))) == [
        OFFSET_WITHOUT_COLON,
        OFFSET_WITHOUT_COLON,
    ]
    not_found = Exchange("POST", ADD_PATH, 404, _json({"errorCode": "40401"}))
    assert _deviations(contract_validator, not_found) == [ERROR_CODE_AS_STRING]


@pytest.mark.parametrize(
    "stamp",
    [
        "2022-07-11T06:38:12.757+2500",  # not a real offset once the colon is back
        "2022-07-11 06:38:12.757+0000",  # a different deviation (space separator)
        "2022-07-11T06:38:12.757",  # no offset at all
        "11/07/2022",
    ],
)
def test_near_misses_of_the_timestamp_quirk_are_rejected(contract_validator, openapi_spec, stamp):
    form = _get_form_example(openapi_spec)
    form["updatedAt"] = stamp
    violations = contract_validator.validate(Exchange("GET", FORM_PATH, 200, _json(form)))
    assert [(v.location, v.message) for v in violations] == [
        ("$['updatedAt']", f"{stamp!r} is not a 'date-time'")
    ]


@pytest.mark.parametrize("code", ["4x", "", "40401 ", 40401.5, True])
def test_near_misses_of_the_error_code_quirk_are_rejected(contract_validator, code):
    body = {"errorCode": code, "errorMessage": "m"}
    violations = contract_validator.validate(Exchange("POST", ADD_PATH, 404, _json(body)))
    assert _locations(violations) == {"$['errorCode']"}


def test_a_digit_string_is_not_excused_for_other_integer_fields(contract_validator):
    report = {"operationId": "op", "campaignId": "200000000000001", "participants": []}
    exchange = Exchange("GET", REPORT_PATH, 200, _json(report), query_string="operationId=op")
    violations = contract_validator.validate(exchange)
    assert _locations(violations) == {"$['campaignId']"}


def test_anyof_without_an_excusable_branch_is_rejected_with_reasons(contract_validator):
    violations = contract_validator.validate(
        Exchange("POST", ADD_PATH, 400, _json({"errorCode": "4x", "errorMessage": "m"}))
    )
    assert len(violations) == 1
    assert "branch 1: $['errorCode'] '4x' is not of type 'integer'" in violations[0].message


@pytest.mark.parametrize(
    ("exchange", "expected"),
    [
        (Exchange("GET", FORM_PATH, 418, b"{}"), "ResponseNotFound"),
        (Exchange("GET", "/forms/2/nowhere", 200, b"{}"), "PathNotFound"),
        (Exchange("GET", FORM_PATH, 200, b"not json"), "DataValidationError"),
        (Exchange("POST", FORM_PATH + "/views", 503, b"[]"), "is not of type 'object'"),
    ],
)
def test_undocumented_answers_are_rejected(contract_validator, exchange, expected):
    violations = contract_validator.validate(exchange)
    assert violations and expected in violations[0].message


def test_gateway_errors_are_held_to_the_documented_500_body(contract_validator):
    general = {"requestError": {"serviceException": {"messageId": "GENERAL_ERROR", "text": "x"}}}
    assert contract_validator.validate(Exchange("POST", ADD_PATH, 502, _json(general))) == []


def test_injected_faults_with_undocumented_status_are_held_to_the_500_body(contract_validator):
    too_many = {"requestError": {"serviceException": {"messageId": "TOO_MANY_REQUESTS"}}}
    injected = Exchange("GET", FORM_PATH, 429, _json(too_many), fault="429")
    assert contract_validator.validate(injected) == []
    spontaneous = Exchange("GET", FORM_PATH, 429, _json(too_many))
    assert "ResponseNotFound" in contract_validator.validate(spontaneous)[0].message
    malformed = Exchange("GET", FORM_PATH, 429, b"[]", fault="429")
    assert "is not of type 'object'" in contract_validator.validate(malformed)[0].message


def test_inspection_paths_are_outside_the_spec(contract_validator):
    assert contract_validator.validate(Exchange("GET", "/_emulator/people", 200, b"[1")) == []


def _json_examples(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    continue
                media = response.get("content", {}).get("application/json", {})
                for name, example in media.get("examples", {}).items():
                    concrete = re.sub(r"\{[^}]+\}", "200000000000001", path)
                    yield pytest.param(
                        method,
                        concrete,
                        int(status),
                        example["value"],
                        id=f"{operation['operationId']}-{status}-{name}",
                    )


def test_every_json_example_of_the_spec_passes(openapi_spec, contract_validator):
    # The live service's own answers (the examples) pass once the two quirks are excused, and
    # only because of that: without the excuses some of them fail.
    params = list(_json_examples(openapi_spec))
    assert len(params) >= 10
    raw_failures = 0
    for param in params:
        method, path, status, body = param.values
        exchange = Exchange(method.upper(), path, status, _json(body), query_string="operationId=x")
        assert contract_validator.validate(exchange) == [], param.id
        raw_failures += bool(contract_validator.raw_errors(exchange))
    assert raw_failures >= 3


def test_registry_violations_checks_each_registered_emulator(contract_validator):
    recording = Emulator(EmulatorSettings(record_exchanges=True), ManualClock())
    bad = RecordedExchange(
        "GET", FORM_PATH, "", {}, b"", 200, {"content-type": "application/json"}, b"[]", "get-form"
    )
    recording.exchanges.append(bad)
    served_like = SimpleNamespace(emulator=recording)
    assert emulators_in([served_like, recording]) == [recording]
    found = registry_violations([served_like], contract_validator)
    assert [(v.exchange, v.location) for v in found] == [(f"GET {FORM_PATH} -> 200", "$")]
    silent = Emulator(EmulatorSettings(record_exchanges=False), ManualClock())
    assert [v.message for v in registry_violations([silent], contract_validator)] == [
        "record_exchanges is off: responses unchecked"
    ]


def test_contract_validator_fixture_is_shared(contract_validator):
    assert isinstance(contract_validator, ContractValidator)
    from tests.contract.openapi_validation import contract_validator as load

    assert load(contract_validator.spec_path) is contract_validator


GENERAL = {"requestError": {"serviceException": {"messageId": "GENERAL_ERROR", "text": "x"}}}


@pytest.mark.parametrize(
    ("exchange", "location", "message"),
    [
        pytest.param(
            Exchange("POST", ADD_PATH, 200, _json({"operationId": "op", "status": "OK"})),
            "$",
            "Additional properties are not allowed ('status' was unexpected)",
            id="extra-field-on-add-200",
        ),
        pytest.param(
            Exchange(
                "POST",
                ADD_PATH,
                404,
                _json({"errorCode": "40401", "errorMesage": "Could not find active flow"}),
            ),
            "$",
            "Additional properties are not allowed ('errorMesage' was unexpected)",
            id="misspelled-errorMessage-on-404",
        ),
        pytest.param(
            Exchange("GET", FORM_PATH, 404, _json({"errorCode": "40401", "errorMessage": "nope"})),
            "$",
            "Additional properties are not allowed ('errorCode', 'errorMessage' were unexpected)",
            id="flow-envelope-on-get-form-404",
        ),
        pytest.param(
            Exchange(
                "POST", ADD_PATH, 429, _json({"errorCode": "42900", "errorMessage": "slow down"})
            ),
            "$",
            "Additional properties are not allowed ('errorCode', 'errorMessage' were unexpected)",
            id="flow-envelope-on-429",
        ),
        pytest.param(
            Exchange("POST", ADD_PATH, 400, b"{}"),
            "$",
            "matches none of the anyOf alternatives",
            id="empty-object-on-400",
        ),
    ],
)
def test_near_misses_of_the_envelopes_are_rejected(contract_validator, exchange, location, message):
    violations = contract_validator.validate(exchange)
    assert violations, "the strict check accepted a near miss"
    assert [v.location for v in violations] == [location]
    assert message in violations[0].message


def test_empty_object_on_400_names_both_alternatives(contract_validator):
    (violation,) = contract_validator.validate(Exchange("POST", ADD_PATH, 400, b"{}"))
    assert "branch 0: $ {} should be non-empty" in violation.message
    assert "branch 1: $ {} should be non-empty" in violation.message


def test_strict_spec_closes_only_object_schemas_with_properties(openapi_spec):
    strict = strict_spec(openapi_spec)
    schemas = strict["components"]["schemas"]
    exception = schemas[
        "900634339512041dd9c6cd5c4ad62d6cf43ea57e0548f5deeceb9f79d92b92f0.ExceptionResponse"
    ]
    assert (exception["additionalProperties"], exception["minProperties"]) == (False, 1)
    person = schemas["900634339512041dd9c6cd5c4ad62d6cf43ea57e0548f5deeceb9f79d92b92f0.IamPersonV2"]
    assert person["properties"]["customAttributes"]["additionalProperties"] == {"type": "object"}
    assert "additionalProperties" not in openapi_spec["components"]["schemas"]["ApiException"]


def test_the_general_error_envelope_passes_strictly_and_its_near_miss_fails(contract_validator):
    assert contract_validator.validate(Exchange("POST", ADD_PATH, 500, _json(GENERAL))) == []
    typo = {"requestError": {"serviceExeption": GENERAL["requestError"]["serviceException"]}}
    violations = contract_validator.validate(Exchange("POST", ADD_PATH, 500, _json(typo)))
    assert [v.location for v in violations] == ["$['requestError']"]


def test_a_subprocess_emulator_whose_exchanges_were_lost_fails_loudly(contract_validator):
    lost = SimpleNamespace(
        exchanges=[],
        settings=EmulatorSettings(record_exchanges=True),
        exchange_fetch_errors=["exchanges of the emulator process 123 could not be fetched"],
    )
    found = registry_violations([lost], contract_validator)
    assert [v.message for v in found] == [
        "exchanges of the emulator process 123 could not be fetched"
    ]
    silent = SimpleNamespace(exchanges=[], settings=EmulatorSettings(), exchange_fetch_errors=[])
    assert [v.message for v in registry_violations([silent], contract_validator)] == [
        "record_exchanges is off: responses unchecked"
    ]


def test_recorded_exchanges_round_trip_through_the_inspection_format():
    exchange = RecordedExchange(
        "POST", ADD_PATH, "a=1", {"content-type": "application/json"}, b"\x00{}", 200,
        {"content-type": "application/json"}, b'{"operationId":"x"}', "add-flow-participants",
        "503",
    )  # fmt: skip
    assert RecordedExchange.from_dict(json.loads(json.dumps(exchange.to_dict()))) == exchange
