"""Reading an audience's source: the one home of it outside Dagster.

``source_problems`` checks, without reading a row, that every column the audience names is in
the source (the query is checked and described by the warehouse, ``Warehouse.source_schema``);
``read_audience_source`` then reads just those columns (``Warehouse.read_source``), so a source
column the audience never uses, whatever its name, plays no part. Both go through the
warehouse's read-only source path; nothing here builds SQL. Like the rest of ``sync`` this
module returns answers and never logs.
"""

from __future__ import annotations

import difflib
from datetime import date

import pandas as pd

from moments_pipeline.config import AudienceConfig
from moments_pipeline.warehouse import (
    SourceDay,
    UnsafeQueryError,
    Warehouse,
    WarehouseError,
    date_kind,
)

#: How many source columns a problem lists when no close match exists.
_LISTED_COLUMNS = 12


def source_field_paths(audience: AudienceConfig) -> dict[str, list[str]]:
    """Source column -> the audience fields naming it (``identity.emails[0]``...), in order."""
    identity = audience.identity
    named: list[tuple[str, str | None]] = [
        ("source.row_id_column", audience.source.row_id_column),
        ("identity.identify_by.column", identity.identify_by.column),
        ("identity.external_id", identity.external_id),
        *((f"identity.emails[{i}]", c) for i, c in enumerate(identity.emails)),
        *((f"identity.phones[{i}]", c) for i, c in enumerate(identity.phones)),
        ("identity.region_column", identity.region_column),
        *((f"person.attributes.{k}", c) for k, c in audience.person.attributes.items()),
        *(
            (f"person.custom_attributes.{k}", c)
            for k, c in audience.person.custom_attributes.items()
        ),
        *((f"variables.{k}", c) for k, c in audience.variables.items()),
        ("conflicts.recency_column", audience.conflicts.recency_column),
        ("partition.date_column", audience.partition.date_column if audience.partition else None),
        ("sensor.watermark_column", audience.sensor.watermark_column if audience.sensor else None),
    ]
    paths: dict[str, list[str]] = {}
    for path, column in named:
        if column is not None:
            paths.setdefault(column, []).append(path)
    return paths


def source_problems(warehouse: Warehouse, audience: AudienceConfig) -> list[str]:
    """Everything that stops the audience's source from being read, without reading a row.

    Args:
        warehouse: The warehouse the audience's ``source.connection`` names.
        audience: A validated audience.

    Returns:
        One ``field: message`` line per problem, empty when the source can be read, e.g.
        ``identity.emails[0]: column 'emial' not in source (did you mean 'email'?)``; a
        refused query or an unreadable table is one ``source.query``/``source.table`` line.
    """
    source = audience.source
    field = "source.table" if source.table is not None else "source.query"
    try:
        schema = warehouse.source_schema(table=source.table, query=source.query)
    except (UnsafeQueryError, WarehouseError) as exc:
        return [f"{field}: {exc}"]
    have = [name for name, _ in schema]
    present = set(have)
    problems: list[str] = []
    for column, paths in source_field_paths(audience).items():
        if column in present:
            continue
        close = difflib.get_close_matches(column, have, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        else:
            shown = ", ".join(have[:_LISTED_COLUMNS]) + (
                ", ..." if len(have) > _LISTED_COLUMNS else ""
            )
            hint = f"the source has: {shown}"
        problems.extend(f"{path}: column {column!r} not in source ({hint})" for path in paths)
    partition = audience.partition
    types = dict(schema)
    if partition is not None and partition.date_column in types:
        found = types[partition.date_column]
        if date_kind(found) is None:  # a day is cut from a DATE or a TIMESTAMP only
            problems.append(
                f"partition.date_column: column {partition.date_column!r} is {found}, "
                "not a DATE or TIMESTAMP"
            )
    return problems


def source_day(audience: AudienceConfig, partition_key: str) -> SourceDay | None:
    """The day filter of one partition (``YYYY-MM-DD``); None for an unpartitioned audience.

    Raises:
        ValueError: The audience is partitioned and the key is not a day, or the reverse.
    """
    partition = audience.partition
    if partition is None:
        if partition_key:
            raise ValueError(f"audience {audience.name!r} is not partitioned: {partition_key!r}")
        return None
    try:
        day = date.fromisoformat(partition_key)
    except ValueError:
        raise ValueError(
            f"audience {audience.name!r}: partition key {partition_key!r} is not a day (YYYY-MM-DD)"
        ) from None
    return SourceDay(partition.date_column, day, partition.timezone)


def read_audience_source(
    warehouse: Warehouse, audience: AudienceConfig, partition_key: str = ""
) -> pd.DataFrame:
    """Read the columns the audience uses (``audience.source_columns()``) from its source.

    Args:
        warehouse: The warehouse the audience's ``source.connection`` names.
        audience: A validated audience; call ``source_problems`` first for readable errors.
        partition_key: The day (``YYYY-MM-DD``) of a partitioned audience: only that day's
            rows are read, filtered in the warehouse; "" for an unpartitioned one.

    Returns:
        One row per source row, exactly the audience's columns (and the partition's date
        column).

    Raises:
        UnsafeQueryError: The query is refused (nothing ran).
        WarehouseError: The read failed (a missing column, the server refused it...).
    """
    source = audience.source
    day = source_day(audience, partition_key)
    columns = audience.source_columns()
    if day is not None and day.column not in columns:
        columns.append(day.column)  # kept in the snapshot: each row shows the day it is of
    return warehouse.read_source(table=source.table, query=source.query, columns=columns, day=day)
