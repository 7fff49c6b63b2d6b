"""One form source, end to end outside Dagster: read, check against the form, prepare, send.

``form_source_problems`` names every column a form source uses that its source lacks (with a
suggestion), without reading a row; ``run_form_source`` reads the source through the
warehouse's read-only source path (``Warehouse.read_source``, the audiences' path: one
read-only SELECT, no files, no network), fetches the form's current definition, refuses to
start when the form is not ACTIVE or the mapping cannot fit it, prepares the rows with the
identity rules (``identity.prepare_form``, prior profiles from the ledger), records the
quarantine in the ledger and runs the ``FormsEngine``. Returns a ``FormRun``; never logs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from moments_pipeline.config import FormSourceConfig
from moments_pipeline.identity import (
    FormDefinitionError,
    FormSourceError,
    mapping_problems,
    prepare_form,
)
from moments_pipeline.infobip import MomentsClient
from moments_pipeline.warehouse import UnsafeQueryError, Warehouse, WarehouseError

from ._errors import SyncStoppedError
from ._forms import (
    FormAccountRefusedError,
    FormSend,
    FormsEngine,
    FormSyncResult,
    FormUnavailableError,
    form_scope,
)
from ._forms_destination import MomentsFormsDestination, outcome_of
from ._options import SyncOptions
from ._protocols import LedgerStore, QuarantineRow, SendKind

_LISTED = 12


class FormSourceInvalidError(SyncStoppedError):
    """The form source cannot work with the form as it is now; nothing was sent."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"form source {name!r}: " + "; ".join(problems) + ". Nothing was sent.")


@dataclass
class FormRun:
    """What one form source run read, refused and sent."""

    source: FormSourceConfig
    form: dict[str, Any]
    rows_in: int
    result: FormSyncResult
    quarantine: pd.DataFrame
    dropped_values: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def form_source_problems(warehouse: Warehouse, source: FormSourceConfig) -> list[str]:
    """``field: message`` per column the form source names that its source lacks."""
    where = "source.table" if source.source.table is not None else "source.query"
    try:
        schema = warehouse.source_schema(table=source.source.table, query=source.source.query)
    except (UnsafeQueryError, WarehouseError) as exc:
        return [f"{where}: {exc}"]
    have = [name for name, _ in schema]
    problems: list[str] = []
    for column, paths in source.source_field_paths().items():
        if column in have:
            continue
        close = difflib.get_close_matches(column, have, n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else "the source has: " + ", ".join(have[:_LISTED])
        )
        problems.extend(f"{path}: column {column!r} not in source ({hint})" for path in paths)
    return problems


def read_form_source(warehouse: Warehouse, source: FormSourceConfig) -> pd.DataFrame:
    """The columns the form source uses, through the warehouse's read-only source path."""
    return warehouse.read_source(
        table=source.source.table, query=source.source.query, columns=source.source_columns()
    )


async def fetch_form(client: MomentsClient, form_id: str) -> dict[str, Any]:
    """The form's current definition (spec JSON, camelCase), or the stop a 401/403/404 means."""
    try:
        form = await client.get_form(form_id)
    except Exception as exc:
        outcome = outcome_of(exc)
        if outcome.kind is SendKind.FORM_UNAVAILABLE:
            raise FormUnavailableError(form_id, outcome.reason or "get-form refused") from None
        if outcome.kind is SendKind.AUTH_FAILED:
            raise FormAccountRefusedError(form_id, outcome.reason or "AUTH_FAILED") from None
        raise
    return form.model_dump(by_alias=True, mode="json")


async def run_form_source(
    client: MomentsClient,
    ledger: LedgerStore,
    source_warehouse: Warehouse,
    source: FormSourceConfig,
    *,
    partition_key: str = "",
    options: SyncOptions | None = None,
) -> FormRun:
    """Run one form source (submissions or views); see the module docstring.

    Raises:
        FormSourceInvalidError: columns missing, or fields that do not fit the form.
        FormUnavailableError: the form is not ACTIVE (checked before any send, and by the
            403 of a submission turned INACTIVE mid-run).
        SyncStoppedError: the other stops of the engine (lease, key).
    """
    problems = form_source_problems(source_warehouse, source)
    if problems:
        raise FormSourceInvalidError(source.name, problems)
    frame = read_form_source(source_warehouse, source).reset_index(drop=True)
    form = await fetch_form(client, source.form.id)
    status = form.get("formStatus")
    if status != "ACTIVE":
        raise FormUnavailableError(source.form.id, f"formStatus {status}", len(frame))
    engine = FormsEngine(MomentsFormsDestination(client), ledger, options=options)
    scope = form_scope(source.form.id, views=source.views)
    if source.views:
        ids = frame[source.source.row_id_column].map(lambda v: None if pd.isna(v) else str(v))
        missing = ids.isna() | ids.duplicated(keep=False)
        quarantine = pd.DataFrame(
            {
                "row_id": [f"#{i}" for i in frame.index[missing]],
                "reason": "ROW_ID_MISSING_OR_DUPLICATE",
                "detail": "a view event needs its own event id",
            },
            dtype=object,
        )
        sends = [FormSend(str(row_id)) for row_id in ids[~missing]]
        dropped = pd.DataFrame(
            columns=["row_id", "column_name", "value_masked", "reason", "detail"]
        )
    else:
        problems = mapping_problems(form, source.fields)
        if problems:
            raise FormSourceInvalidError(source.name, problems)
        prior = pd.DataFrame(ledger.sent_identities(), columns=["kind", "identifier", "person_key"])
        try:
            prepared = prepare_form(frame, source, form, prior_identities=prior)
        except (FormSourceError, FormDefinitionError) as exc:
            raise FormSourceInvalidError(source.name, [str(exc)]) from None
        quarantine, dropped = prepared.quarantine, prepared.dropped_values
        sends = [
            FormSend(s.row_id, s.data, s.person_key, s.profile_anchor, s.identifiers)
            for s in prepared.submissions
        ]
    ledger.replace_quarantine(
        f"{scope}/{source.name}",
        partition_key,
        [
            QuarantineRow(
                f"{scope}/{source.name}", partition_key, str(r.row_id), str(r.reason), r.detail
            )
            for r in quarantine.itertuples(index=False)
        ],
    )
    result = await engine.run(
        source=source.name,
        form_id=source.form.id,
        sends=sends,
        views=source.views,
        partition_key=partition_key,
        resubmit_enabled=bool(form.get("resubmitEnabled", True)),
        submission_source=source.form.source,
        campaign=source.form.campaign,
    )
    counts = dict(result.counts)
    counts["rows_in"] = len(frame)
    counts["QUARANTINED"] = len(quarantine)
    return FormRun(source, form, len(frame), result, quarantine, dropped, counts)
