"""Validation of a form submission against the form's elements, as the Forms API does it.

Pure functions over plain dicts (the spec's ``ApiFormDto`` / ``FormElementDto`` shapes): no I/O,
no emulator state. ``forms.py`` turns the result into HTTP answers and People updates.

Readings of the spec chosen here (the spec names the rules but not their exact semantics):

- A submitted key is matched to an element by ``fieldId`` (case-sensitive). Keys that match no
  element are ignored, not rejected: browser form posts routinely carry extra inputs (the
  submit button, tracking parameters), and the spec's own urlencoded example sends names
  (``firstName``, ``Email``) that match no ``fieldId`` of the example forms. Ignored keys are
  reported in ``FormValidationResult.ignored_fields`` so the emulator can record them.
- ``pattern`` is a Java regex applied with ``Matcher.matches()`` semantics (whole value,
  case-sensitive). The few Java-only constructs a form pattern plausibly uses are translated
  (see ``compile_java_pattern``); anything else that Python's ``re`` rejects is a form
  configuration error, raised as ``FormConfigError`` naming the pattern.
- EMAIL values are lower-cased before their pattern check: the spec's email pattern only admits
  ``[a-z]`` while addresses are case-insensitive in practice and People stores them lower-cased.
- MSISDN values are international digits with an optional leading ``+`` (7 to 15 digits, no
  leading zero: E.164), normalised to digits without ``+`` like the spec's examples.
- NUMBER ``minValue``/``maxValue`` are decimal strings; DATE values follow ``datePattern`` (a
  Java date pattern such as ``dd/MM/yyyy``) or, without one, an ISO ``YYYY-MM-DD`` date.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "EMAIL_PATTERN",
    "IDENTIFIER_PERSON_FIELDS",
    "NON_INPUT_COMPONENTS",
    "STANDARD_PERSON_FIELDS",
    "FormConfigError",
    "FormValidationResult",
    "PersonUpdate",
    "compile_java_pattern",
    "input_elements",
    "person_update",
    "strptime_format",
    "validate_submission",
]

#: Components that carry no submitted value.
NON_INPUT_COMPONENTS = frozenset(
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

#: The email pattern of the spec's example forms (a Java regex, valid for Python ``re`` too).
EMAIL_PATTERN = (
    # Plain '"' pieces: a raw string cannot hold an unescaped double quote.
    r"(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*|"
    '"'
    r"(?:[\x01-\x08\x0b\x0c\x0e-\x1f\x21\x23-\x5b\x5d-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"
    '"'
    r")@(?:(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|\[(?:(?:25[0-5]|"
    r"2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[a-z0-9-]*"
    r"[a-z0-9]:(?:[\x01-\x08\x0b\x0c\x0e-\x1f\x21-\x5a\x53-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-"
    r"\x7f])+)\])"
)

_MSISDN = re.compile(r"\+?([1-9][0-9]{6,14})")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TRUE_WORDS = frozenset({"true", "on", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "off", "0", "no", ""})

# Java's POSIX classes are ASCII-only unless UNICODE_CHARACTER_CLASS is set, so these ranges are
# exact; they are written to be valid both inside and outside a character class.
_JAVA_POSIX_CLASSES = {
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
# Java date pattern letters -> strptime directives (the subset forms use for dates).
_JAVA_DATE_TOKENS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "M": "%m", "d": "%d"}


class FormConfigError(ValueError):
    """A form's own validation rules are unusable (bad ``pattern`` or ``datePattern``)."""


@dataclass(frozen=True)
class FormValidationResult:
    """Outcome of validating one submission.

    Attributes:
        values: Accepted values keyed by ``fieldId``, normalised (emails lower-cased, phones as
            international digits); fields that were absent or blank are left out.
        errors: Messages keyed by ``fieldId``; empty when the submission is valid.
        ignored_fields: Submitted keys that match no element, sorted.
    """

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    ignored_fields: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no element reported an error."""
        return not self.errors


def compile_java_pattern(pattern: str) -> re.Pattern[str]:
    r"""Compile a Java regex from a form's ``validationRules.pattern`` for Python's ``re``.

    Translates ``\Q...\E`` quoting, ``\z`` and the ASCII POSIX classes ``\p{Alpha}`` and
    friends. Python 3.11 already understands possessive quantifiers and atomic groups.

    Args:
        pattern: The Java pattern text.

    Returns:
        The compiled pattern; use ``fullmatch`` for Java ``matches()`` semantics.

    Raises:
        FormConfigError: The pattern uses a construct neither translated nor supported by
            ``re``.
    """
    return _compile_java_pattern(pattern)


@functools.lru_cache(maxsize=256)
def _compile_java_pattern(pattern: str) -> re.Pattern[str]:
    translated = _translate_java_regex(pattern)
    try:
        return re.compile(translated)
    except re.error as exc:
        raise FormConfigError(f"form pattern {pattern!r} is not a supported regex: {exc}") from exc


def _translate_java_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char != "\\" or i + 1 >= len(pattern):
            out.append(char)
            i += 1
            continue
        nxt = pattern[i + 1]
        if nxt == "Q":
            end = pattern.find("\\E", i + 2)
            literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
            out.append(re.escape(literal))
            i = len(pattern) if end < 0 else end + 2
        elif nxt == "z":
            out.append(r"\Z")
            i += 2
        elif nxt in "pP" and pattern.startswith("{", i + 2):
            end = pattern.find("}", i + 3)
            name = pattern[i + 3 : end] if end > 0 else ""
            ranges = _JAVA_POSIX_CLASSES.get(name.removeprefix("Is"))
            if ranges is None:
                raise FormConfigError(
                    f"form pattern {pattern!r} uses unsupported class \\{nxt}{{{name}}}"
                )
            inside_class = _inside_character_class(pattern, i)
            if nxt == "P" and inside_class:
                raise FormConfigError(f"form pattern {pattern!r} negates a class inside a class")
            if inside_class:
                out.append(ranges)
            else:
                out.append(f"[{'^' if nxt == 'P' else ''}{ranges}]")
            i = end + 1
        else:
            out.append(pattern[i : i + 2])
            i += 2
    return "".join(out)


def _inside_character_class(pattern: str, position: int) -> bool:
    depth = 0
    i = 0
    while i < position:
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "[":
            depth += 1
        elif pattern[i] == "]" and depth:
            depth -= 1
        i += 1
    return depth > 0


def input_elements(form: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the form's elements that take a submitted value (those with a ``fieldId``)."""
    return [
        element
        for element in form.get("elements", [])
        if element.get("fieldId") and element.get("component") not in NON_INPUT_COMPONENTS
    ]


def validate_submission(
    form: Mapping[str, Any], data: Mapping[str, Any | Sequence[Any]]
) -> FormValidationResult:
    """Validate submitted data against every input element of ``form``.

    Args:
        form: An ``ApiFormDto`` dict.
        data: Submitted values keyed by field name: scalars from JSON, strings from
            urlencoded/multipart bodies, lists where a key was repeated or a JSON array was sent.

    Returns:
        The normalised values, the errors per field and the ignored keys.

    Raises:
        FormConfigError: A ``pattern`` or ``datePattern`` of the form is unusable.
    """
    elements = input_elements(form)
    known = {str(element["fieldId"]) for element in elements}
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for element in elements:
        field_id = str(element["fieldId"])
        messages, value = _validate_element(element, data.get(field_id))
        if messages:
            errors[field_id] = messages
        elif value is not None:
            values[field_id] = value
    ignored = sorted(key for key in data if key not in known)
    return FormValidationResult(values=values, errors=errors, ignored_fields=ignored)


def _is_blank(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return raw.strip() == ""
    if isinstance(raw, list | tuple):
        return all(_is_blank(item) for item in raw)
    return False


def _message(element: Mapping[str, Any], rule: str, default: str) -> str:
    # FormElementDto.validationMessages lets a form author override the text per rule.
    custom = element.get("validationMessages") or {}
    return str(custom.get(rule, default))


def _validate_element(element: Mapping[str, Any], raw: Any) -> tuple[list[str], Any]:
    component = str(element.get("component", "TEXT"))
    if _is_blank(raw):
        if element.get("isRequired"):
            return [_message(element, "isRequired", "must not be blank")], None
        return [], None
    if component == "CHECKBOX_GROUP":
        return _validate_choices(element, raw)
    if isinstance(raw, list | tuple):
        if len(raw) != 1:
            return [_message(element, "component", "must be a single value")], None
        raw = raw[0]
    if isinstance(raw, Mapping):
        return [_message(element, "component", "must be a single value")], None
    if component == "CHECKBOX":
        return _validate_checkbox(element, raw)
    text = _as_text(raw).strip()
    if component == "EMAIL":
        text = text.lower()
    messages = _check_text_rules(element, text)
    value: Any = text
    if component == "EMAIL" and not (element.get("validationRules") or {}).get("pattern"):
        if not compile_java_pattern(EMAIL_PATTERN).fullmatch(text):
            messages.append(_message(element, "component", "must be a valid email address"))
    elif component == "MSISDN":
        match = _MSISDN.fullmatch(text)
        if match is None:
            messages.append(
                _message(element, "component", "must be a phone number in international format")
            )
        else:
            value = match.group(1)
    elif component == "NUMBER":
        number_messages, value = _check_number(element, raw, text)
        messages.extend(number_messages)
    elif component == "DATE":
        date_messages, value = _check_date(element, text)
        messages.extend(date_messages)
    elif component == "DATETIME":
        try:
            datetime.fromisoformat(text)
        except ValueError:
            messages.append(_message(element, "component", "must be an ISO date-time"))
    elif component in {"DROPDOWN", "RADIOBUTTON"}:
        allowed = _option_values(element)
        if allowed and text not in allowed:
            messages.append(_message(element, "options", "must be one of the form's options"))
    return messages, (None if messages else value)


def _as_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def _check_text_rules(element: Mapping[str, Any], text: str) -> list[str]:
    rules = element.get("validationRules") or {}
    messages: list[str] = []
    max_length = rules.get("maxLength")
    if max_length is not None and len(text) > int(max_length):
        messages.append(_message(element, "maxLength", f"must be at most {max_length} characters"))
    forbidden = [symbol for symbol in rules.get("forbiddenSymbols") or [] if symbol in text]
    if forbidden:
        shown = " ".join(repr(symbol) for symbol in forbidden)
        messages.append(_message(element, "forbiddenSymbols", f"must not contain {shown}"))
    pattern = rules.get("pattern")
    if pattern and not compile_java_pattern(str(pattern)).fullmatch(text):
        messages.append(_message(element, "pattern", "does not match the required format"))
    return messages


def _check_number(element: Mapping[str, Any], raw: Any, text: str) -> tuple[list[str], Any]:
    if isinstance(raw, bool):
        return [_message(element, "component", "must be a number")], None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return [_message(element, "component", "must be a number")], None
    if not number.is_finite():
        return [_message(element, "component", "must be a number")], None
    rules = element.get("validationRules") or {}
    messages: list[str] = []
    if rules.get("minValue") not in (None, "") and number < Decimal(str(rules["minValue"])):
        messages.append(_message(element, "minValue", f"must be at least {rules['minValue']}"))
    if rules.get("maxValue") not in (None, "") and number > Decimal(str(rules["maxValue"])):
        messages.append(_message(element, "maxValue", f"must be at most {rules['maxValue']}"))
    value: Any = int(number) if number == number.to_integral_value() else float(number)
    return messages, value


@functools.lru_cache(maxsize=64)
def strptime_format(java_pattern: str) -> str:
    """Translate a Java date pattern (``dd/MM/yyyy``) into a ``strptime`` format.

    Only day, month and year fields are supported (what a DATE element asks for).

    Raises:
        FormConfigError: The pattern uses another pattern letter or quoting.
    """
    pieces: list[str] = []
    # Java reads a run of one letter as one field (``MMM`` is a month name, not ``MM`` + ``M``).
    for match in re.finditer(r"([A-Za-z])\1*|'|[^A-Za-z']+", java_pattern):
        field_text = match.group(0)
        if field_text in _JAVA_DATE_TOKENS:
            pieces.append(_JAVA_DATE_TOKENS[field_text])
        elif field_text[0].isalpha() or field_text[0] == "'":
            raise FormConfigError(f"datePattern {java_pattern!r}: unsupported field {field_text!r}")
        else:
            pieces.append(field_text.replace("%", "%%"))
    return "".join(pieces)


def _parse_date(text: str, java_pattern: str | None) -> date:
    if not java_pattern:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    return datetime.strptime(text, strptime_format(java_pattern)).date()


def _check_date(element: Mapping[str, Any], text: str) -> tuple[list[str], Any]:
    rules = element.get("validationRules") or {}
    java_pattern = rules.get("datePattern") or None
    if java_pattern:
        strptime_format(java_pattern)  # a broken pattern is the form's fault, not the value's
    try:
        parsed = _parse_date(text, java_pattern)
    except ValueError:
        shown = java_pattern or "yyyy-MM-dd"
        return [_message(element, "datePattern", f"must be a date formatted {shown}")], None
    messages: list[str] = []
    if rules.get("minValue") and parsed < _parse_bound_date(str(rules["minValue"]), java_pattern):
        messages.append(_message(element, "minValue", f"must be on or after {rules['minValue']}"))
    if rules.get("maxValue") and parsed > _parse_bound_date(str(rules["maxValue"]), java_pattern):
        messages.append(_message(element, "maxValue", f"must be on or before {rules['maxValue']}"))
    return messages, parsed.isoformat()


def _parse_bound_date(text: str, java_pattern: str | None) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return _parse_date(text, java_pattern)


def _validate_checkbox(element: Mapping[str, Any], raw: Any) -> tuple[list[str], Any]:
    word = _as_text(raw).strip().lower()
    if word in _TRUE_WORDS:
        return [], True
    if word in _FALSE_WORDS:
        if element.get("isRequired"):
            return [_message(element, "isRequired", "must be checked")], None
        return [], False
    return [_message(element, "component", "must be true or false")], None


def _validate_choices(element: Mapping[str, Any], raw: Any) -> tuple[list[str], Any]:
    items = list(raw) if isinstance(raw, list | tuple) else str(raw).split(",")
    chosen = [_as_text(item).strip() for item in items if not _is_blank(item)]
    allowed = _option_values(element)
    unknown = [item for item in chosen if allowed and item not in allowed]
    if unknown:
        return [_message(element, "options", f"unknown options {sorted(unknown)}")], None
    return [], chosen


def _option_values(element: Mapping[str, Any]) -> set[str]:
    return {str(option.get("value")) for option in element.get("options") or []}


#: ``personField`` values that name an identifier kind of People (they drive create/merge).
IDENTIFIER_PERSON_FIELDS = {
    "email": "EMAIL",
    "phone": "PHONE",
    "phoneNumber": "PHONE",
    "msisdn": "PHONE",
    "externalId": "EXTERNAL_ID",
}
#: Standard People attributes a form element may fill; any other ``personField`` (such as
#: ``267ce64a-1a26-4326-9036-6384696f39c8`` in the spec's example) is a custom attribute id.
STANDARD_PERSON_FIELDS = frozenset(
    {
        "firstName",
        "lastName",
        "middleName",
        "gender",
        "birthDate",
        "city",
        "country",
        "address",
        "preferredLanguage",
        "profilePicture",
    }
)


@dataclass(frozen=True)
class PersonUpdate:
    """What an accepted submission writes to People.

    Attributes:
        identifiers: ``(kind, value)`` pairs, kind ``EMAIL``, ``PHONE`` or ``EXTERNAL_ID``, in
            element order, without duplicates.
        attributes: Standard attributes by name, plus ``customAttributes`` (by ``personField``
            id) when any element maps to a custom attribute.
    """

    identifiers: list[tuple[str, str]]
    attributes: dict[str, Any]


def person_update(form: Mapping[str, Any], values: Mapping[str, Any]) -> PersonUpdate:
    """Map accepted values to People identifiers and attributes through ``personField``.

    ``personField`` alone decides: ``email``/``phone`` (an MSISDN element normally says
    ``phone``) and ``externalId`` become identifiers, standard names become attributes, any
    other value is a custom attribute id. Elements without ``personField`` (the example's
    ``offer_id``) stay on the submission record and never reach People.

    Args:
        form: The ``ApiFormDto`` dict the values were validated against.
        values: ``FormValidationResult.values``.

    Returns:
        The identifiers and attributes to upsert.
    """
    identifiers: list[tuple[str, str]] = []
    attributes: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for element in input_elements(form):
        person_field = element.get("personField")
        field_id = str(element["fieldId"])
        if not person_field or field_id not in values:
            continue
        value = values[field_id]
        kind = IDENTIFIER_PERSON_FIELDS.get(str(person_field))
        if kind is not None:
            pair = (kind, str(value))
            if pair not in identifiers:
                identifiers.append(pair)
        elif person_field in STANDARD_PERSON_FIELDS:
            attributes[str(person_field)] = value
        else:
            custom[str(person_field)] = value
    if custom:
        attributes["customAttributes"] = custom
    return PersonUpdate(identifiers=identifiers, attributes=attributes)
