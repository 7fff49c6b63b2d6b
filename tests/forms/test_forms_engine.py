"""The forms engine against the in-process emulator, on DuckDB and PostgreSQL ledgers.

Exactly once (a re-run submits nothing again), ambiguous answers held and never re-sent, a 4xx
refusal recorded as rejected, resubmitEnabled false honoured within and across runs, the
identity ledger shared with flows (a submission cannot merge two people), and a form turned
INACTIVE mid-run stopping the run with the rest left PLANNED and sent once reactivated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, QueuedFault, create_app
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import (
    ALREADY_SUBMITTED,
    BatchState,
    FormsEngine,
    FormUnavailableError,
    MomentsFormsDestination,
    SqlLedgerStore,
    form_scope,
)
from moments_pipeline.sync._forms import FORM_CAMPAIGN, PROBE_RECORDED

from .support import FORM, fast_options, form_dict, rows, sends_for, source, submissions_by_email


def _app(**settings: Any) -> Any:
    return create_app(
        EmulatorSettings(api_keys=[SecretStr("test-key")], rate_limit_per_s=None, **settings)
    )


def _client(app: Any) -> MomentsClient:
    config = MomentsClientConfig(
        base_url="http://127.0.0.1:9",
        api_key="test-key",
        rate_per_s=1000,
        max_attempts=2,
        backoff_initial_s=0.0,
        backoff_max_s=0.0,
    )
    return MomentsClient(config, transport=EmulatorTransport(app))


async def _run(
    app: Any,
    ledger: SqlLedgerStore,
    frame: Any,
    *,
    probe: Callable[[str, str], None] | None = None,
    concurrency: int = 8,
    **kwargs: Any,
) -> Any:
    src = kwargs.pop("src", None) or source()
    async with _client(app) as client:
        form = await form_dict(client, src.form.id)
        sends, _ = sends_for(frame, src, form, ledger)
        engine = FormsEngine(
            MomentsFormsDestination(client),
            ledger,
            options=fast_options(max_concurrent_sends=concurrency),
            probe=probe,
        )
        return await engine.run(
            source=src.name,
            form_id=src.form.id,
            sends=sends,
            resubmit_enabled=bool(form["resubmitEnabled"]),
            submission_source=src.form.source,
            campaign=src.form.campaign,
            **kwargs,
        )


async def test_each_row_submitted_once_and_rerun_sends_nothing(ledger: SqlLedgerStore) -> None:
    app = _app()
    result = await _run(app, ledger, rows(6))
    assert result.counts == {"SUBMITTED": 6}
    again = await _run(app, ledger, rows(6))
    assert again.counts == {"SUBMITTED": 6} and again.requests == 0
    submissions = app.state.emulator.form_submissions
    assert submissions_by_email(submissions) == {f"lead{i}@example.com": 1 for i in range(6)}
    assert {(s["source"], s["formCampaign"]) for s in submissions} == {("in-store", "spring")}
    # The submissions' identifiers are in the account's identity ledger.
    assert ("EMAIL", "lead0@example.com") in {(k, i) for k, i, _ in ledger.sent_identities()}


async def test_ambiguous_answer_is_held_and_never_resent(ledger: SqlLedgerStore) -> None:
    app = _app()
    app.state.emulator.faults.enqueue(
        QueuedFault(kind="drop_after", count=1, operation="submit-form-data")
    )
    first = await _run(app, ledger, rows(3))
    assert first.counts == {"HELD": 1, "SUBMITTED": 2}
    second = await _run(app, ledger, rows(3))
    assert second.counts == {"HELD": 1, "SUBMITTED": 2} and second.requests == 0
    # The dropped answer's submission did land: exactly once, never twice.
    assert set(submissions_by_email(app.state.emulator.form_submissions).values()) == {1}
    assert len(app.state.emulator.form_submissions) == 3


async def test_not_processed_answers_are_retried_not_held(ledger: SqlLedgerStore) -> None:
    app = _app()
    # A 429 proves nothing was processed: back to CLAIMED, retried after Retry-After, sent.
    app.state.emulator.faults.enqueue(
        QueuedFault(kind="429", count=1, operation="submit-form-data")
    )
    result = await _run(app, ledger, rows(3))
    assert result.counts == {"SUBMITTED": 3}
    assert len(app.state.emulator.form_submissions) == 3


async def test_rejected_by_infobip_is_recorded_with_its_reason(ledger: SqlLedgerStore) -> None:
    app = _app()
    # A field the form validates on its side with a rule our copy of the form does not have:
    # make the live form stricter than the definition the rows were checked against.
    async with _client(app) as client:
        form = await form_dict(client)
    src = source()
    sends, _ = sends_for(rows(2), src, form, ledger)
    element = next(
        e for e in app.state.emulator.forms[FORM]["elements"] if e.get("fieldId") == "company"
    )
    element["validationRules"] = {"maxLength": 2}
    async with _client(app) as client:
        engine = FormsEngine(MomentsFormsDestination(client), ledger, options=fast_options())
        result = await engine.run(source=src.name, form_id=FORM, sends=sends)
    assert result.counts == {"REJECTED": 2}
    assert set(result.by_reason) == {"REJECTED:ValidationError:HTTP_400:BAD_REQUEST"}
    states = {r.state for r in ledger.batches(form_scope(FORM), "", FORM_CAMPAIGN)}
    assert states == {BatchState.FAILED}
    assert ledger.sent_identities() == []  # nothing processed, nothing in the identity ledger


async def test_resubmit_disabled_one_submission_per_person(ledger: SqlLedgerStore) -> None:
    app = _app()
    app.state.emulator.forms[FORM]["resubmitEnabled"] = False
    frame = rows(3)
    frame.loc[1, "email"] = "LEAD0@example.com"  # the same person as row 0
    result = await _run(app, ledger, frame)
    assert result.counts == {"SUBMITTED": 2, "SKIPPED": 1}
    assert result.by_reason == {f"SKIPPED:{ALREADY_SUBMITTED}": 1}
    later = rows(1).assign(signup_id=["s-later"])  # lead0 again, in a later run
    again = await _run(app, ledger, later)
    assert again.counts == {"SKIPPED": 1} and again.requests == 0
    assert len(app.state.emulator.form_submissions) == 2


async def test_a_submission_never_merges_two_people(ledger: SqlLedgerStore) -> None:
    app = _app()
    phone_form = {
        "id": "phone-form",
        "elements": [
            {"component": "EMAIL", "fieldId": "email", "personField": "email"},
            {"component": "MSISDN", "fieldId": "phone", "personField": "phone"},
        ],
    }
    app = _app(forms=[phone_form])
    src = source(
        form={"id": "phone-form"},
        fields={"email": "email", "phone": "phone"},
        default_region="CH",
    )
    first = rows(2).assign(phone=["+41793000001", "+41793000002"])
    assert (await _run(app, ledger, first, src=src)).counts == {"SUBMITTED": 2}
    # lead0's email with lead1's phone: two known profiles in one submission.
    mixed = rows(1).assign(signup_id=["mix"], phone=["+41793000002"])
    async with _client(app) as client:
        form = await form_dict(client, "phone-form")
    sends, quarantine = sends_for(mixed, src, form, ledger)
    assert sends == [] and list(quarantine["reason"]) == ["WOULD_MERGE_PRIOR_PROFILES"]
    assert len(app.state.emulator.form_submissions) == 2


async def test_form_turned_inactive_mid_run_stops_then_resumes(ledger: SqlLedgerStore) -> None:
    app = _app()
    seen: list[str] = []

    def disable_after_two(at: str, key: str) -> None:
        if at == PROBE_RECORDED:
            seen.append(key)
            if len(seen) == 2:
                app.state.emulator.forms[FORM]["formStatus"] = "DISABLED"

    with pytest.raises(FormUnavailableError) as stopped:
        await _run(app, ledger, rows(5), probe=disable_after_two, concurrency=1)
    assert FORM in str(stopped.value) and "not ACTIVE" in str(stopped.value)
    assert stopped.value.not_sent == 3
    states = sorted(r.state.value for r in ledger.batches(form_scope(FORM), "", FORM_CAMPAIGN))
    assert states == ["PLANNED"] * 3 + ["SENT"] * 2
    app.state.emulator.forms[FORM]["formStatus"] = "ACTIVE"
    resumed = await _run(app, ledger, rows(5))
    assert resumed.counts == {"SUBMITTED": 5} and resumed.requests == 3
    assert set(submissions_by_email(app.state.emulator.form_submissions).values()) == {1}
    assert len(app.state.emulator.form_submissions) == 5


async def test_views_count_each_event_once(ledger: SqlLedgerStore) -> None:
    app = _app()
    async with _client(app) as client:
        from moments_pipeline.sync import FormSend

        engine = FormsEngine(MomentsFormsDestination(client), ledger, options=fast_options())
        events = [FormSend(f"ev{i}") for i in range(4)]
        result = await engine.run(source="kiosk_views", form_id=FORM, sends=events, views=True)
        again = await FormsEngine(
            MomentsFormsDestination(client), ledger, options=fast_options()
        ).run(source="kiosk_views", form_id=FORM, sends=events, views=True)
    assert result.counts == {"SUBMITTED": 4} and again.requests == 0
    assert app.state.emulator.form_views[FORM] == 4


async def test_rows_left_planned_are_rechecked_under_the_lease(ledger: SqlLedgerStore) -> None:
    phone_form = {
        "id": "phone-form",
        "elements": [
            {"component": "EMAIL", "fieldId": "email", "personField": "email"},
            {"component": "MSISDN", "fieldId": "phone", "personField": "phone"},
        ],
    }
    app = _app(forms=[phone_form])
    fields = {"fields": {"email": "email", "phone": "phone"}, "default_region": "CH"}
    src_a = source(name="a", form={"id": "phone-form"}, **fields)
    src_b = source(name="b", form={"id": "phone-form"}, **fields)
    async with _client(app) as client:
        form = await form_dict(client, "phone-form")
    # Run A plans ann (email + phone) but the form is off: nothing sent, the row stays PLANNED.
    stale, _ = sends_for(rows(1).assign(phone=["+41793000009"]), src_a, form, ledger)
    app.state.emulator.forms["phone-form"]["formStatus"] = "DISABLED"
    async with _client(app) as client:
        engine = FormsEngine(MomentsFormsDestination(client), ledger, options=fast_options())
        with pytest.raises(FormUnavailableError):
            await engine.run(source="a", form_id="phone-form", sends=stale)
    app.state.emulator.forms["phone-form"]["formStatus"] = "ACTIVE"
    # Meanwhile B submits ann's email and ann's phone as two different people.
    other = rows(2).assign(email=["lead0@example.com", "other@example.com"])
    other = other.assign(phone=[None, "+41793000009"], signup_id=["b1", "b2"])
    assert (await _run(app, ledger, other, src=src_b)).counts == {"SUBMITTED": 2}
    # A resumes with what it had prepared: sending it now would merge B's two profiles.
    async with _client(app) as client:
        engine = FormsEngine(MomentsFormsDestination(client), ledger, options=fast_options())
        resumed = await engine.run(source="a", form_id="phone-form", sends=stale)
    assert resumed.counts == {"REFUSED_AT_SYNC": 1} and resumed.requests == 0
    assert resumed.rows[0].reason.startswith("WOULD_MERGE_PRIOR_PROFILES")
    assert len(app.state.emulator.form_submissions) == 2
    assert ledger.identifier_conflicts(10) == []
