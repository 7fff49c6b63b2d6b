"""Issue 8: every row and every identifier accounted for (row ids, exact ids, dropped values)."""

from __future__ import annotations

import decimal

import numpy as np
import pandas as pd

from moments_pipeline.identity import PreparedAudience, prepare_audience
from moments_pipeline.identity._text import read_text
from tests.identity.helpers import COLUMNS, audience


def frame(rows: list[dict], **dtypes: str) -> pd.DataFrame:
    data = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in data:
            data[column] = None
    for column, dtype in dtypes.items():
        data[column] = data[column].astype(dtype)
    return data


def by_row(result: PreparedAudience) -> dict[str, tuple[str, str]]:
    q = result.quarantine
    return {r: (c, d) for r, c, d in zip(q["row_id"], q["reason"], q["detail"], strict=True)}


def accounted(result: PreparedAudience, n: int) -> None:
    sent = [r for rows in result.participants["source_rows"] for r in rows]
    assert len(sent) + len(result.quarantine) == n == result.counts["input_rows"]
    assert set(sent).isdisjoint(result.quarantine["row_id"])
    # Every reason carries a detail.
    assert (result.quarantine["detail"].str.len() > 0).all()
    assert (result.dropped_values["detail"].str.len() > 0).all()


def test_an_empty_source_is_an_empty_audience() -> None:
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})
    result = prepare_audience(empty, audience())
    assert len(result.participants) == len(result.quarantine) == len(result.dropped_values) == 0
    assert result.counts["input_rows"] == result.counts["participants"] == 0
    # Also with typed empty columns, as a warehouse returns them.
    typed = empty.astype({"rid": "int64", "cid": "float64", "phone": "float64"})
    assert prepare_audience(typed, audience()).counts["input_rows"] == 0


def test_missing_and_duplicated_row_ids_quarantine_only_those_rows() -> None:
    data = frame(
        [
            {"rid": "a", "email": "a@x.com"},
            {"rid": None, "email": "b@x.com"},
            {"rid": "dup", "email": "c@x.com"},
            {"rid": "  ", "email": "d@x.com"},
            {"rid": "dup", "email": "e@x.com"},
            {"rid": "#1x", "email": "f@x.com"},
        ]
    )
    result = prepare_audience(data, audience())
    q = result.quarantine
    assert q["reason"].tolist() == [
        "ROW_ID_MISSING",
        "ROW_ID_DUPLICATE",
        "ROW_ID_MISSING",
        "ROW_ID_DUPLICATE",
    ]
    # A missing id is recorded as its position: unique and traceable.
    # The first row of a shared id keeps it; later ones are recorded as <id>#<position>.
    assert q["row_id"].tolist() == ["#1", "dup", "#3", "dup#4"]
    assert q["row_id"].is_unique
    assert "2 rows share this id" in q["detail"].iloc[1]
    assert "position" in q["detail"].iloc[0]
    assert sorted(r for rows in result.participants["source_rows"] for r in rows) == ["#1x", "a"]
    accounted(result, 6)


def test_position_ids_never_collide_with_real_ids() -> None:
    data = frame([{"rid": "#1", "email": "a@x.com"}, {"rid": None, "email": "b@x.com"}])
    result = prepare_audience(data, audience())
    assert result.quarantine["row_id"].tolist() == ["##1"]
    accounted(result, 2)


def test_float_row_ids_beyond_2_53_do_not_fold_two_rows() -> None:
    ids = [1.0, float(2**53), float(2**53 + 2), 5.0]
    data = frame([{"rid": i, "email": f"{n}@x.com"} for n, i in enumerate(ids)], rid="float64")
    result = prepare_audience(data, audience())
    assert by_row(result)["#1"][0] == "ROW_ID_MISSING"
    assert "2**53" in by_row(result)["#1"][1]
    assert set(result.quarantine["row_id"]) == {"#1", "#2"}
    accounted(result, 4)


def test_nullable_integer_row_ids_are_digits_and_null_is_missing() -> None:
    data = frame([{"rid": 1, "email": "a@x.com"}, {"rid": None, "email": "b@x.com"}], rid="Int64")
    result = prepare_audience(data, audience())
    assert result.participants["source_rows"].tolist() == [["1"]]
    assert result.quarantine["row_id"].tolist() == ["#1"]


def test_float_external_ids_are_exact_or_quarantined() -> None:
    values = [1e20, float(2**63), float(2**53 + 1), -0.0, float("inf"), 41.0, np.nan, 2.5]
    rows = [{"rid": f"r{i}", "email": f"p{i}@x.com", "cid": v} for i, v in enumerate(values)]
    result = prepare_audience(frame(rows, cid="float64"), audience())
    reasons = by_row(result)
    for row in ("r0", "r1", "r2"):  # never folded into one id
        assert reasons[row][0] == "INVALID_EXTERNAL_ID"
        assert "2**53" in reasons[row][1]
    assert reasons["r4"] == ("INVALID_EXTERNAL_ID", "cid: not a finite number")
    assert reasons["r7"][0] == "INVALID_EXTERNAL_ID"
    keys = set(result.participants["person_key"])
    # -0.0 is 0; NaN in a float column is how pandas carries NULL: keyed by the email.
    assert keys == {"EXTERNAL_ID:0", "EXTERNAL_ID:41", "EMAIL:p6@x.com"}
    # The quarantine shows what the warehouse held, not NA.
    shown = dict(zip(result.quarantine["row_id"], result.quarantine["cid"], strict=True))
    assert shown["r0"] == "1e+20" and shown["r4"] == "inf"
    accounted(result, len(values))


def test_decimal_external_ids_keep_their_exact_digits() -> None:
    values = [
        decimal.Decimal("1E+20"),
        decimal.Decimal(2**63),
        decimal.Decimal(2**63 + 1),
        decimal.Decimal("-0"),
        decimal.Decimal("12.50"),
        decimal.Decimal("NaN"),
    ]
    rows = [{"rid": f"r{i}", "email": f"p{i}@x.com", "cid": v} for i, v in enumerate(values)]
    result = prepare_audience(frame(rows), audience())
    assert result.participants["external_id"].tolist() == [
        "100000000000000000000",
        "9223372036854775808",
        "9223372036854775809",
        "0",
        "12.50",
    ]
    assert by_row(result) == {"r5": ("INVALID_EXTERNAL_ID", "cid: not a finite number")}


def test_read_text_never_makes_two_values_one() -> None:
    floats = pd.Series([float(2**53 - 1), float(2**53), float(2**53 + 1), -0.0, 0.0])
    read = read_text(floats)
    assert read.values.tolist()[0] == "9007199254740991"
    assert read.values.isna().tolist() == [False, True, True, False, False]
    assert read.values.tolist()[3:] == ["0", "0"]  # -0.0 and 0.0 are one value already
    ints = read_text(pd.Series([2**63 - 1, -(2**63)], dtype="int64")).values.tolist()
    assert ints == ["9223372036854775807", "-9223372036854775808"]


def test_external_ids_with_control_characters_are_quarantined() -> None:
    data = frame(
        [
            {"rid": "a", "email": "a@x.com", "cid": "A\x00B"},
            {"rid": "b", "email": "b@x.com", "cid": "A\ufffdB"},
        ]
    )
    result = prepare_audience(data, audience())
    # U+FFFD is what a NUL becomes where a backend could not store it: refused alike, so a
    # PostgreSQL ledger never sends what a DuckDB one refuses.
    why = ("INVALID_EXTERNAL_ID", "cid: holds control or replacement (U+FFFD) characters")
    assert by_row(result) == {"a": why, "b": why}


def test_every_dropped_value_is_recorded_masked_with_reason_and_detail() -> None:
    data = frame(
        [
            {
                "rid": "a",
                "email": "a@x.com",
                "email2": "bad@",
                "phone": "001 212 555 0143",
                "phone2": "1-800-FLOWERS",
            },
            {"rid": "b", "email": "b@x.com", "phone": "n/a", "phone2": "+41 44 668 18 00 x12"},
            {"rid": "c", "email": "c@x.com", "phone": 1e20, "email2": "y" * 300 + "@x.com"},
        ]
    )
    result = prepare_audience(data, audience(identity={"default_region": "US"}))
    p = result.participants.set_index("person_key")
    assert p.loc["EMAIL:a@x.com", "phones"] == ["12125550143"]
    dropped = result.dropped_values
    got = sorted(zip(dropped["row_id"], dropped["column_name"], dropped["reason"], strict=True))
    assert got == [
        ("a", "email2", "INVALID_EMAIL"),
        ("a", "phone2", "PHONE_HAS_LETTERS"),
        ("b", "phone", "PHONE_HAS_LETTERS"),
        ("b", "phone2", "PHONE_HAS_EXTENSION"),
        ("c", "email2", "VALUE_TOO_LONG"),
        ("c", "phone", "UNREADABLE_VALUE"),
    ]
    assert "FLOWERS" not in " ".join(dropped["value_masked"])
    assert "1-8*******ERS" in dropped["value_masked"].tolist()
    assert result.counts["dropped:PHONE_HAS_LETTERS"] == 2
    assert result.counts["dropped_values"] == 6
    accounted(result, 3)


def test_letters_in_a_phone_identify_by_quarantine_the_row_with_that_detail() -> None:
    config = audience(
        identity={"identify_by": {"column": "phone", "type": "PHONE"}, "default_region": "US"}
    )
    data = frame(
        [
            {"rid": "a", "phone": "1-800-FLOWERS", "email": "a@x.com"},
            {"rid": "b", "phone": "001 212 555 0143"},
        ]
    )
    result = prepare_audience(data, config)
    assert by_row(result) == {
        "a": (
            "INVALID_IDENTIFY_BY",
            "phone: PHONE_HAS_LETTERS: letters are never read as phone digits",
        )
    }
    assert result.participants["identify_by"].tolist() == ["12125550143"]


def test_a_row_without_any_usable_identifier_is_quarantined_as_such() -> None:
    data = frame(
        [
            {"rid": "a", "email": None, "phone": "n/a", "cid": None},
            {"rid": "b", "email": None, "email2": "bad@", "cid": "\x00"},
            {"rid": "c", "email": None, "cid": "7"},
            {"rid": "d"},  # nothing given at all: the identifyBy is missing
            {"rid": "e", "email": "bad", "cid": None},  # a refused identifyBy keeps its reason
        ]
    )
    result = prepare_audience(data, audience())
    assert {r: c for r, (c, _) in by_row(result).items()} == {
        "a": "NO_USABLE_IDENTIFIER",
        "b": "NO_USABLE_IDENTIFIER",
        "c": "MISSING_IDENTIFY_BY",
        "d": "MISSING_IDENTIFY_BY",
        "e": "INVALID_IDENTIFY_BY",
    }
    assert by_row(result)["b"][1].endswith(
        "; also cid: holds control or replacement (U+FFFD) characters"
    )
    # What was refused is still recorded, value by value.
    dropped = result.dropped_values
    assert set(zip(dropped["row_id"], dropped["reason"], strict=True)) == {
        ("a", "PHONE_HAS_LETTERS"),
        ("b", "INVALID_EMAIL"),
    }
    accounted(result, 5)


def test_hostile_text_goes_into_quarantine_unchanged() -> None:
    texts = ["[not json", "{brace}", "a\x00b", "\x07bell", "z" * 10_000, "Zoë 李 ع", '["x"]']
    rows = [{"rid": f"r{i}", "email": t, "cid": None} for i, t in enumerate(texts)]
    result = prepare_audience(frame(rows), audience())
    assert dict(zip(result.quarantine["row_id"], result.quarantine["email"], strict=True)) == {
        f"r{i}": t for i, t in enumerate(texts)
    }


def test_decimal_attributes_become_json_numbers() -> None:
    import orjson

    from moments_pipeline.identity import to_flow_participants

    scores = [decimal.Decimal("12"), decimal.Decimal("1.25"), decimal.Decimal("NaN")]
    rows = [{"rid": f"r{i}", "email": f"s{i}@x.com", "score": s} for i, s in enumerate(scores)]
    config = audience()
    bodies = to_flow_participants(prepare_audience(frame(rows), config).participants, config)
    assert [b.get("variables", {}).get("score") for b in bodies] == [12, 1.25, None]
    orjson.dumps(bodies)  # serializable


def test_a_decimal_nan_is_a_value_not_a_null() -> None:
    # pandas and Arrow both take Decimal('NaN') for missing; a NUMERIC NaN is a stored value.
    read = read_text(pd.Series([decimal.Decimal("NaN"), None, float("nan")], dtype=object))
    assert read.values.isna().all()
    assert read.unreadable.tolist() == ["not a finite number", None, None]
