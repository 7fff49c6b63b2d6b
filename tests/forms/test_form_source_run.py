"""A form source end to end (``sync.run_form_source``) on DuckDB and PostgreSQL: bad input.

Rows read through the warehouse's read-only source path, checked against the live form, the
bad ones quarantined with reasons that name fields and rules (never values), every row
accounted for; a source or mapping that cannot work stops before anything is sent, naming the
field; an INACTIVE form stops before anything is sent, naming the form.
"""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, create_app
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import (
    AccountRefusedError,
    FormSourceInvalidError,
    FormUnavailableError,
    SqlLedgerStore,
    run_form_source,
)
from moments_pipeline.warehouse import Warehouse

from .support import FORM, fast_options, source

BAD_ROWS = pd.DataFrame(
    {
        "signup_id": ["ok1", "ok2", "bad_email", "no_email", "angle", "long", "dup_id", "dup_id"],
        "email": [
            "ann@example.com",
            " Bob@Example.org ",
            "not-an-email",
            None,
            "cy@example.com",
            "dan@example.com",
            "eve@example.com",
            "fay@example.com",
        ],
        "first_name": ["Ann", "Bob", "Cy", "Di", "Cy <b>", "D" * 300, "Eve", "Fay"],
        "company": ["Acme", None, None, None, None, None, None, None],
    }
)


def _client(app: object) -> MomentsClient:
    config = MomentsClientConfig(
        base_url="http://127.0.0.1:9", api_key="test-key", rate_per_s=1000, max_attempts=2
    )
    return MomentsClient(config, transport=EmulatorTransport(app))  # type: ignore[arg-type]


def _app() -> object:
    return create_app(EmulatorSettings(api_keys=[SecretStr("test-key")], rate_limit_per_s=None))


async def test_bad_rows_are_quarantined_with_reasons(
    warehouse: Warehouse, ledger: SqlLedgerStore
) -> None:
    warehouse.write_frame("signups", BAD_ROWS, mode="replace")
    app = _app()
    async with _client(app) as client:
        run = await run_form_source(client, ledger, warehouse, source(), options=fast_options())
    reasons = dict(zip(run.quarantine["row_id"], run.quarantine["reason"], strict=True))
    assert reasons == {
        "bad_email": "INVALID_IDENTIFY_BY",
        "no_email": "MISSING_IDENTIFY_BY",
        "dup_id": "ROW_ID_DUPLICATE",
        "dup_id#7": "ROW_ID_DUPLICATE",
        "angle": "FORM_FIELD_INVALID",
        "long": "FORM_FIELD_INVALID",
    }
    details = dict(zip(run.quarantine["row_id"], run.quarantine["detail"], strict=True))
    assert details["angle"] == "first_name: contains forbidden '<' '>'"
    assert details["long"] == "first_name: longer than 255 characters"
    assert "D" * 20 not in " ".join(map(str, details.values()))  # rules, never values
    assert run.result.counts == {"SUBMITTED": 2}
    assert run.rows_in == len(run.result.rows) + len(run.quarantine) == len(BAD_ROWS)
    emails = sorted(s["fields"]["email"] for s in app.state.emulator.form_submissions)  # type: ignore[attr-defined]
    assert emails == ["ann@example.com", "bob@example.org"]  # normalized as the ledger has them
    # The quarantine is recorded in the ledger too.
    assert len(ledger.quarantine(f"form:{FORM}/signups", "")) == 6


async def test_a_source_that_cannot_work_stops_before_sending(
    warehouse: Warehouse, ledger: SqlLedgerStore
) -> None:
    warehouse.write_frame("signups", BAD_ROWS, mode="replace")
    app = _app()
    async with _client(app) as client:
        with pytest.raises(FormSourceInvalidError) as missing:
            await run_form_source(
                client, ledger, warehouse, source(fields={"email": "emial"}), options=fast_options()
            )
        with pytest.raises(FormSourceInvalidError) as unknown:
            await run_form_source(
                client,
                ledger,
                warehouse,
                source(fields={"email": "email", "frist_name": "first_name"}),
                options=fast_options(),
            )
        app.state.emulator.forms[FORM]["formStatus"] = "DRAFT"  # type: ignore[attr-defined]
        with pytest.raises(FormUnavailableError) as inactive:
            await run_form_source(client, ledger, warehouse, source(), options=fast_options())
    assert "fields.email: column 'emial' not in source (did you mean 'email'?)" in str(
        missing.value
    )
    assert "fields.frist_name: the form has no field 'frist_name' (did you mean 'first_name'?)" in (
        str(unknown.value)
    )
    assert FORM in str(inactive.value) and "formStatus DRAFT" in str(inactive.value)
    assert app.state.emulator.form_submissions == []  # type: ignore[attr-defined]
    assert ledger.sent_identities() == []


async def test_a_refused_key_stops_naming_the_form_never_the_key(
    warehouse: Warehouse, ledger: SqlLedgerStore
) -> None:
    warehouse.write_frame("signups", BAD_ROWS, mode="replace")
    app = _app()
    secret = "wrong-key-0123456789"
    config = MomentsClientConfig(base_url="http://127.0.0.1:9", api_key=secret, max_attempts=1)
    async with MomentsClient(config, transport=EmulatorTransport(app)) as client:  # type: ignore[arg-type]
        with pytest.raises(AccountRefusedError) as refused:
            await run_form_source(client, ledger, warehouse, source(), options=fast_options())
    text = f"{refused.value} {refused.value!r}"
    assert FORM in text and "HTTP_401" in text and secret not in text
    assert app.state.emulator.form_submissions == []  # type: ignore[attr-defined]
