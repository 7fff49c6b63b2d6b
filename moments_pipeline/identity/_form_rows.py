r"""Warehouse rows checked against a Moments form's current definition, before any submission.

Pure functions over the spec's ``ApiFormDto`` JSON shape (a plain dict, camelCase keys, as the
client's model dumps it ``by_alias``) and pandas values: no I/O. The product's own reading of
the form rules (the emulator has another one; product code never imports it):

- ``isRequired``: a blank value (NULL, NaN, empty or whitespace text) is refused.
- ``validationRules``: ``maxLength`` (characters), ``forbiddenSymbols`` (any occurrence),
  ``pattern`` (a Java regex applied to the whole value, ``Matcher.matches()``; ``\Q..\E``,
  ``\z`` and the ASCII POSIX classes ``\p{Alpha}``... are translated, anything Python cannot
  read is the form's fault: ``FormDefinitionError``), ``minValue``/``maxValue`` (NUMBER, DATE),
  ``datePattern`` (DATE, day/month/year letters only).
- Components: EMAIL (lower-cased, as People stores it), MSISDN (international digits, a leading
  ``+`` dropped), NUMBER (a finite decimal; integers sent as integers), DATE (sent in its
  ``datePattern``, else ISO), DATETIME (ISO), DROPDOWN/RADIOBUTTON (one of the options'
  ``value``), CHECKBOX (true/false words), CHECKBOX_GROUP (comma-separated option values).

A refusal message names the field and the rule, never the value (it reaches quarantine tables
and metadata). Which fields carry a person's identifiers (``personField`` email, phone,
externalId) is ``identifier_fields``: the identity rules apply to them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from moments_pipeline.identity._rules import EMAIL, EXTERNAL_ID, PHONE

__all__ = [
    "IDENTIFIER_PERSON_FIELDS",
    "FormDefinitionError",
    "RowCheck",
    "check_row",
    "identifier_fields",
    "input_fields",
    "mapping_problems",
]

_NON_INPUT = frozenset(
    {
        "SUBMIT_BUTTON",
        "TITLE",
        "DESCRIPTION",
        "APPLE_SPLASH",
        "WHATSAPP_SCREEN",
        "WHATSAPP_HEADING",
        "WHATSAPP_SUBHEADING",
        "WHATSAPP_BODY",
    }
)
#: ``personField`` values naming an identifier of People: they create, update or merge profiles.
IDENTIFIER_PERSON_FIELDS: Mapping[str, str] = {
    "email": EMAIL,
    "phone": PHONE,
    "phoneNumber": PHONE,
    "msisdn": PHONE,
    "externalId": EXTERNAL_ID,
}
_MSISDN = re.compile(r"\+?([1-9][0-9]{6,14})")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TRUE = frozenset({"true", "on", "1", "yes"})
_FALSE = frozenset({"false", "off", "0", "no"})
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": r"\x00-\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": r"!-/:-@\[-`{-~",
    "Space": r" \t\n\x0b\f\r",
    "XDigit": "0-9a-fA-F",
}
_DATE_TOKENS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "M": "%m", "d": "%d"}


class FormDefinitionError(ValueError):
    """The form's own rules cannot be applied (a pattern or datePattern Python cannot read)."""


@dataclass(frozen=True)
class RowCheck:
    """One row checked against the form.

    Attributes:
        values: fieldId -> value to submit (normalized); blanks left out.
        problems: ``fieldId: message`` per refused field, in form order; empty when valid.
    """

    values: dict[str, Any]
    problems: list[str]


def input_fields(form: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The form's elements that take a value (those with a ``fieldId``), in form order."""
    return [
        e
        for e in form.get("elements") or []
        if e.get("fieldId") and e.get("component") not in _NON_INPUT
    ]


def identifier_fields(form: Mapping[str, Any]) -> dict[str, str]:
    """FieldId -> identifier kind (EMAIL, PHONE, EXTERNAL_ID) of the identifier person fields."""
    found: dict[str, str] = {}
    for element in input_fields(form):
        kind = IDENTIFIER_PERSON_FIELDS.get(str(element.get("personField") or ""))
        if kind is not None:
            found[str(element["fieldId"])] = kind
    return found


def mapping_problems(form: Mapping[str, Any], mapped: Mapping[str, str]) -> list[str]:
    """What makes every row of a source fail before a row is read: ``fields.<id>: ...`` lines.

    A mapped fieldId the form does not have (with a suggestion), or a required field that no
    column maps. ``mapped`` is the source's ``fields`` (fieldId -> column).
    """
    import difflib

    fields = {str(e["fieldId"]): e for e in input_fields(form)}
    problems = []
    for field_id in mapped:
        if field_id not in fields:
            close = difflib.get_close_matches(field_id, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"its fields: {', '.join(fields)}"
            problems.append(f"fields.{field_id}: the form has no field {field_id!r} ({hint})")
    for field_id, element in fields.items():
        if element.get("isRequired") and field_id not in mapped:
            problems.append(f"fields: the form requires {field_id!r}, which no column maps")
    return problems


def _blank(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, float) and math.isnan(raw):
        return True
    if isinstance(raw, str):
        return raw.strip() == ""
    try:  # pandas NA / NaT
        return bool(raw != raw)
    except (TypeError, ValueError):
        return False


def _text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime):
        return raw.isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    return str(raw)


def _message(element: Mapping[str, Any], rule: str, default: str) -> str:
    custom = element.get("validationMessages") or {}
    return str(custom.get(rule) or default)


@functools.lru_cache(maxsize=256)
def _pattern(java: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(java):
        char = java[i]
        if char != "\\" or i + 1 >= len(java):
            out.append(char)
            i += 1
            continue
        nxt = java[i + 1]
        if nxt == "Q":
            end = java.find("\\E", i + 2)
            out.append(re.escape(java[i + 2 :] if end < 0 else java[i + 2 : end]))
            i = len(java) if end < 0 else end + 2
        elif nxt == "z":
            out.append(r"\Z")
            i += 2
        elif nxt in "pP" and java.startswith("{", i + 2):
            end = java.find("}", i + 3)
            ranges = _POSIX.get(java[i + 3 : end].removeprefix("Is")) if end > 0 else None
            if ranges is None:
                raise FormDefinitionError(f"form pattern uses an unsupported class at {i}")
            out.append(f"[{'^' if nxt == 'P' else ''}{ranges}]")
            i = end + 1
        else:
            out.append(java[i : i + 2])
            i += 2
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise FormDefinitionError(f"form pattern is not a supported regex: {exc}") from None


@functools.lru_cache(maxsize=64)
def _date_format(java: str) -> str:
    pieces = []
    for match in re.finditer(r"([A-Za-z])\1*|'|[^A-Za-z']+", java):
        piece = match.group(0)
        if piece in _DATE_TOKENS:
            pieces.append(_DATE_TOKENS[piece])
        elif piece[0].isalpha() or piece[0] == "'":
            raise FormDefinitionError(f"datePattern {java!r}: unsupported field {piece!r}")
        else:
            pieces.append(piece.replace("%", "%%"))
    return "".join(pieces)


def _parse_date(text: str, java: str | None) -> date:
    if not java:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    return datetime.strptime(text, _date_format(java)).date()


def _text_rules(element: Mapping[str, Any], text: str) -> list[str]:
    rules = element.get("validationRules") or {}
    out = []
    max_length = rules.get("maxLength")
    if max_length is not None and len(text) > int(max_length):
        out.append(_message(element, "maxLength", f"longer than {max_length} characters"))
    forbidden = [s for s in rules.get("forbiddenSymbols") or [] if s and s in text]
    if forbidden:
        shown = " ".join(repr(s) for s in forbidden)
        out.append(_message(element, "forbiddenSymbols", f"contains forbidden {shown}"))
    pattern = rules.get("pattern")
    if pattern and not _pattern(str(pattern)).fullmatch(text):
        out.append(_message(element, "pattern", "does not match the form's pattern"))
    return out


def _number(element: Mapping[str, Any], raw: Any, text: str) -> tuple[list[str], Any]:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(raw, bool) or not number.is_finite():
        return [_message(element, "component", "not a number")], None
    rules = element.get("validationRules") or {}
    out = []
    if rules.get("minValue") not in (None, "") and number < Decimal(str(rules["minValue"])):
        out.append(_message(element, "minValue", f"below {rules['minValue']}"))
    if rules.get("maxValue") not in (None, "") and number > Decimal(str(rules["maxValue"])):
        out.append(_message(element, "maxValue", f"above {rules['maxValue']}"))
    whole = number == number.to_integral_value()
    return out, (int(number) if whole else float(number))


def _date(element: Mapping[str, Any], raw: Any, text: str) -> tuple[list[str], Any]:
    rules = element.get("validationRules") or {}
    java = rules.get("datePattern") or None
    if java:
        _date_format(str(java))  # a broken pattern is the form's fault, not the row's
    if isinstance(raw, datetime | date):
        parsed = raw.date() if isinstance(raw, datetime) else raw
    else:
        try:
            parsed = _parse_date(text, java)
        except ValueError:
            return [_message(element, "datePattern", f"not a date as {java or 'yyyy-MM-dd'}")], None
    out = []
    for rule, worse in (("minValue", parsed.__lt__), ("maxValue", parsed.__gt__)):
        bound = rules.get(rule)
        if bound:
            try:
                limit = date.fromisoformat(str(bound))
            except ValueError:
                limit = _parse_date(str(bound), java)
            if worse(limit):
                out.append(
                    _message(
                        element, rule, f"{'before' if rule == 'minValue' else 'after'} {bound}"
                    )
                )
    # Sent as the form reads it: in its datePattern (a warehouse DATE as much as a text).
    return out, parsed.strftime(_date_format(str(java))) if java else parsed.isoformat()


def _options(element: Mapping[str, Any]) -> set[str]:
    return {str(o.get("value")) for o in element.get("options") or []}


def _check(element: Mapping[str, Any], raw: Any) -> tuple[list[str], Any]:
    component = str(element.get("component") or "TEXT")
    if component == "CHECKBOX":
        word = _text(raw).strip().lower()
        if word in _TRUE:
            return [], True
        if word in _FALSE:
            if element.get("isRequired"):
                return [_message(element, "isRequired", "must be checked")], None
            return [], False
        return [_message(element, "component", "not true or false")], None
    if component == "CHECKBOX_GROUP":
        chosen = [item.strip() for item in _text(raw).split(",") if item.strip()]
        allowed = _options(element)
        if allowed and any(item not in allowed for item in chosen):
            return [_message(element, "options", "not among the form's options")], None
        return [], chosen
    text = _text(raw).strip()
    if component == "EMAIL":
        text = text.lower()
    problems = _text_rules(element, text)
    value: Any = text
    if component == "EMAIL" and not (element.get("validationRules") or {}).get("pattern"):
        if not _EMAIL_SHAPE.fullmatch(text):
            problems.append(_message(element, "component", "not an email address"))
    elif component == "MSISDN":
        match = _MSISDN.fullmatch(text)
        if match is None:
            problems.append(_message(element, "component", "not an international phone number"))
        else:
            value = match.group(1)
    elif component == "NUMBER":
        more, value = _number(element, raw, text)
        problems += more
    elif component == "DATE":
        more, value = _date(element, raw, text)
        problems += more
    elif component == "DATETIME":
        try:
            datetime.fromisoformat(text)
        except ValueError:
            problems.append(_message(element, "component", "not an ISO date-time"))
    elif component in ("DROPDOWN", "RADIOBUTTON"):
        allowed = _options(element)
        if allowed and text not in allowed:
            problems.append(_message(element, "options", "not among the form's options"))
    return problems, (None if problems else value)


def check_row(form: Mapping[str, Any], raw: Mapping[str, Any]) -> RowCheck:
    """Check one row's values (fieldId -> raw value) against every input field of ``form``.

    Fields the row does not carry are blank. Raises ``FormDefinitionError`` when a rule of the
    form itself is unusable (every row would fail the same way: the run stops).
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for element in input_fields(form):
        field_id = str(element["fieldId"])
        value = raw.get(field_id)
        if _blank(value):
            if element.get("isRequired"):
                problems.append(f"{field_id}: " + _message(element, "isRequired", "required"))
            continue
        found, checked = _check(element, value)
        if found:
            problems.extend(f"{field_id}: {text}" for text in found)
        elif checked is not None:
            values[field_id] = checked
    return RowCheck(values=values, problems=problems)
