"""How an audience shows in an orchestrator's catalog: its schedule, owners and tags.

Validated here, while the YAML is loaded, so that ``moments-pipeline validate`` and the
Dagster code location report the same ``file: line N: field: message`` lines. The rules are the
ones Dagster applies (it is not imported here: only ``moments_pipeline.dagster`` may):

- a cron expression of five fields (minute, hour, day of month, month, day of week), each a
  list of ``*``, ``N`` or ``N-M``, optionally ``/step``, month and weekday names allowed, or
  one of the macros ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``;
- a timezone of the IANA database (``Europe/Zurich``), by the rule partitions use
  (``_models._check_timezone``);
- owners: an e-mail address or ``team:<name>`` (Dagster's ``is_valid_owner``);
- tags: keys ``[namespace/]name`` of letters, digits, ``_ . -`` (at most 63 each) and values
  of the same characters (Dagster's strict tags, which the UI can filter on); the
  ``moments/`` and ``dagster/`` namespaces are the pipeline's and Dagster's own.

No I/O.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

CRON_MACROS = frozenset({"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly"})
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (field name, lowest, highest, names numbered from ``lowest``).
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ITEM_RE = re.compile(r"^(?P<range>\*|(?P<lo>\w+)(?:-(?P<hi>\w+))?)(?:/(?P<step>\d+))?$")
_TAG_PART = r"[A-Za-z0-9_.-]{1,63}"
_TAG_KEY_RE = re.compile(rf"^(?:{_TAG_PART}/)?{_TAG_PART}$")
_TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")
_EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,7}\b")
RESERVED_TAG_NAMESPACES = ("moments/", "dagster/")


def _cron_value(text: str, field: str, lowest: int, highest: int, names: tuple[str, ...]) -> int:
    if text.isdigit():
        value = int(text)
    elif text.lower() in names:
        value = names.index(text.lower()) + lowest
    else:
        raise ValueError(f"{field}: {text!r} is not a number or a name")
    if not lowest <= value <= highest:
        raise ValueError(f"{field}: {value} is outside {lowest}-{highest}")
    return value


def _check_cron_field(
    part: str, field: str, lowest: int, highest: int, names: tuple[str, ...]
) -> None:
    for item in part.split(","):
        match = _ITEM_RE.fullmatch(item)
        if match is None:
            raise ValueError(
                f"{field}: {item!r} is not '*', 'N', 'N-M' or one of them with '/step'"
            )
        if match["lo"] is not None:
            lo = _cron_value(match["lo"], field, lowest, highest, names)
            hi = _cron_value(match["hi"], field, lowest, highest, names) if match["hi"] else lo
            if hi < lo:
                raise ValueError(f"{field}: range {item!r} is backwards")
        if match["step"] is not None and int(match["step"]) == 0:
            raise ValueError(f"{field}: a step of 0 never fires")


def check_cron(expression: str) -> str:
    """Return ``expression`` when it is a cron expression Dagster schedules, else raise."""
    text = " ".join(expression.split())
    if text.lower() in CRON_MACROS:
        return text.lower()
    parts = text.split(" ")
    if len(parts) != len(_CRON_FIELDS):
        raise ValueError(
            f"{expression!r} is not a cron expression: expected 5 fields (minute hour "
            f"day-of-month month day-of-week) or one of {sorted(CRON_MACROS)}, got {len(parts)}"
        )
    try:
        for part, spec in zip(parts, _CRON_FIELDS, strict=True):
            _check_cron_field(part, *spec)
    except ValueError as exc:
        raise ValueError(f"{expression!r}: {exc}") from None
    return text


def check_owner(owner: str) -> str:
    """Return ``owner`` when it is an e-mail address or ``team:<name>``, else raise."""
    if _EMAIL_RE.fullmatch(owner) or (owner.startswith("team:") and len(owner) > len("team:")):
        return owner
    raise ValueError(f"{owner!r} is not an owner: give an e-mail address or 'team:<name>'")


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Return ``tags`` when every key and value is a strict Dagster tag, else raise."""
    for key, value in tags.items():
        if not _TAG_KEY_RE.fullmatch(key):
            raise ValueError(
                f"tag key {key!r} is not '[namespace/]name' of letters, digits, '_', '.', '-' "
                "(at most 63 characters each)"
            )
        if key.startswith(RESERVED_TAG_NAMESPACES):
            raise ValueError(
                f"tag key {key!r}: the namespaces {', '.join(RESERVED_TAG_NAMESPACES)} are "
                "reserved for the pipeline and Dagster"
            )
        if not _TAG_VALUE_RE.fullmatch(value):
            raise ValueError(
                f"tag {key!r}: value {value!r} is not letters, digits, '_', '.', '-' "
                "(at most 63 characters)"
            )
    return tags


CronExpression = Annotated[str, AfterValidator(check_cron)]
Owner = Annotated[str, AfterValidator(check_owner)]
Tags = Annotated[dict[str, str], AfterValidator(check_tags)]
