"""Helpers of the forms tests: a form source, rows, the engine on the in-process emulator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from moments_pipeline.config import FormSourceConfig
from moments_pipeline.identity import prepare_form
from moments_pipeline.infobip import MomentsClient
from moments_pipeline.sync import FormSend, LedgerStore, SyncOptions

FORM = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"
"""The spec's example form, seeded ACTIVE by the emulator (email required, resubmit on)."""


def source(**overrides: Any) -> FormSourceConfig:
    """A submissions source of the example form: email, first name, company."""
    data: dict[str, Any] = {
        "name": "signups",
        "form": {"id": FORM, "source": "in-store", "campaign": "spring"},
        "source": {"table": "signups", "row_id_column": "signup_id"},
        "fields": {"email": "email", "first_name": "first_name", "company": "company"},
    }
    data.update(overrides)
    return FormSourceConfig.model_validate(data)


def rows(n: int, *, start: int = 0) -> pd.DataFrame:
    """``n`` distinct people, one row each."""
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "signup_id": [f"s{i}" for i in ids],
            "email": [f"Lead{i}@Example.com" for i in ids],
            "first_name": [f"Lead {i}" for i in ids],
            "company": ["Acme"] * n,
        }
    )


async def form_dict(client: MomentsClient, form_id: str = FORM) -> dict[str, Any]:
    """The form's current definition as the product reads it (spec JSON, camelCase)."""
    return (await client.get_form(form_id)).model_dump(by_alias=True, mode="json")


def sends_for(
    frame: pd.DataFrame, src: FormSourceConfig, form: dict[str, Any], ledger: LedgerStore
) -> tuple[list[FormSend], pd.DataFrame]:
    """Prepare ``frame`` (identity ledger as prior profiles) into engine sends + quarantine."""
    prior = pd.DataFrame(ledger.sent_identities(), columns=["kind", "identifier", "person_key"])
    prepared = prepare_form(frame, src, form, prior_identities=prior)
    sends = [
        FormSend(s.row_id, s.data, s.person_key, s.profile_anchor, s.identifiers)
        for s in prepared.submissions
    ]
    return sends, prepared.quarantine


def fast_options(**overrides: Any) -> SyncOptions:
    """Lease settings for quick runs."""
    values: dict[str, Any] = {"lease_wait_s": 10.0, "lease_poll_s": 0.05}
    values.update(overrides)
    return SyncOptions(**values)


def submissions_by_email(submissions: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many accepted submissions the emulator holds per email field."""
    counts: dict[str, int] = {}
    for item in submissions:
        email = str(item["fields"].get("email"))
        counts[email] = counts.get(email, 0) + 1
    return counts
