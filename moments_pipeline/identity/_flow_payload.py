"""FlowParticipant dicts (the spec's request shape) from the participants frame.

Built column-wise: each column becomes a plain Python list of JSON-ready values once, then a
single ``zip`` loop assembles the dicts. Missing values (NA/NaN/None) are left out rather than
sent as null; dates are ISO strings (``birthDate`` as ``YYYY-MM-DD``).
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import pandas as pd

from moments_pipeline.config import AudienceConfig


def _json_column(series: pd.Series, *, date_only: bool = False) -> list[Any]:
    """A column as JSON-ready Python values, None where missing."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        fmt = "%Y-%m-%d" if date_only else None
        text = series.dt.strftime(fmt) if fmt else series.map(lambda t: t.isoformat())
        return [None if v is None or v is pd.NA or v != v else v for v in text.tolist()]
    values = series.astype(object).tolist()
    out: list[Any] = []
    for v in values:
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, decimal.Decimal):
            # NUMERIC/DECIMAL attributes: JSON numbers (exact when whole); NaN is no value.
            out.append(None if not v.is_finite() else int(v) if v == v.to_integral() else float(v))
        elif hasattr(v, "isoformat"):
            out.append(v.strftime("%Y-%m-%d") if date_only else v.isoformat())
        elif hasattr(v, "item"):
            out.append(v.item())
        else:
            out.append(v)
    return out


def to_flow_participants(participants: pd.DataFrame, audience: AudienceConfig) -> list[dict]:
    """Build the spec's FlowParticipant dicts.

    Args:
        participants: ``PreparedAudience.participants``.
        audience: The audience (attribute, custom attribute and variable names, tags).

    Returns:
        One dict per participant: ``identifyBy`` {identifier, type[, sender]}, ``person``
        {externalId, attributes, tags, customAttributes, contactInformation {email, phone}},
        ``variables``; empty parts omitted.
    """
    n = len(participants)
    identifiers = participants["identify_by"].astype(str).tolist()
    id_type = audience.identity.identify_by.type.value
    sender = audience.identity.identify_by.sender
    externals = _json_column(participants["external_id"])
    emails = participants["emails"].tolist()
    phones = participants["phones"].tolist()
    attrs = [
        (name, _json_column(participants[f"attr:{name}"], date_only=name == "birthDate"))
        for name in audience.person.attributes
    ]
    customs = [
        (name, _json_column(participants[f"custom:{name}"]))
        for name in audience.person.custom_attributes
    ]
    variables = [(name, _json_column(participants[f"var:{name}"])) for name in audience.variables]
    tags = list(audience.person.tags)
    out: list[dict] = []
    for i in range(n):
        identify_by: dict[str, Any] = {"identifier": identifiers[i], "type": id_type}
        if sender is not None:
            identify_by["sender"] = sender
        person: dict[str, Any] = {}
        if externals[i] is not None:
            person["externalId"] = externals[i]
        for name, column in attrs:
            if column[i] is not None:
                person[name] = column[i]
        if tags:
            person["tags"] = tags
        custom = {name: column[i] for name, column in customs if column[i] is not None}
        if custom:
            person["customAttributes"] = custom
        contact: dict[str, Any] = {}
        if emails[i]:
            contact["email"] = [{"address": a} for a in emails[i]]
        if phones[i]:
            contact["phone"] = [{"number": p} for p in phones[i]]
        if contact:
            person["contactInformation"] = contact
        participant: dict[str, Any] = {"identifyBy": identify_by}
        if person:
            participant["person"] = person
        flow_vars = {name: column[i] for name, column in variables if column[i] is not None}
        if flow_vars:
            participant["variables"] = flow_vars
        out.append(participant)
    return out
