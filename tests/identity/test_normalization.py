"""Normalization tables: raw value -> expected normalized value (None = invalid or missing)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from moments_pipeline.identity import library_phone, normalize_emails, normalize_phones
from moments_pipeline.identity._emails import _library_email, fast_email_mask
from moments_pipeline.identity._phones import reference_phone

PHONES = [
    ("+41 79 302 67 27", None, "41793026727"),
    ("079 302 67 27", None, "41793026727"),
    ("0041793026727", None, "41793026727"),
    ("+41793026727", None, "41793026727"),
    (" +41-79-302-67-27 ", None, "41793026727"),
    ("(079) 302.67.27", None, "41793026727"),
    ("41793026727", None, "41793026727"),
    ("2025550143", "US", "12025550143"),
    # An extension is refused, not stripped: the rest is a switchboard two people can share.
    ("+1 (212) 555-0100 ext. 7", None, None),
    ("+1 212 555 0100 x7", None, None),
    ("+1 212 555 0100 #7", None, None),
    # "00" is the international prefix where the national reading is not valid.
    ("001 212 555 0143", "US", "12125550143"),
    ("0049 30 901820", "US", "4930901820"),
    ("0049 30 901820", "DE", "4930901820"),
    ("0041 79 302 67 27", "US", "41793026727"),
    # Letters are never digits (phonenumbers would read a vanity number).
    ("1-800-FLOWERS", "US", None),
    ("+1 800 FLOWERS", None, None),
    ("n/a", None, None),
    ("(201) 555-0123", "US", "12015550123"),
    ("07400 123456", "GB", "447400123456"),
    ("+44 7400 123456", "DE", "447400123456"),
    ("030 901820", "DE", "4930901820"),
    ("+4179302672", None, None),  # one digit short
    ("12", None, None),
    ("not a phone", None, None),
    ("+999 123 456 789", None, None),
    ("", None, None),
    ("   ", None, None),
    (None, None, None),
    ("+41 79 302 67 27" + " " * 60, None, "41793026727"),  # trailing padding is trimmed
    ("+41 79 302 67 27" + "9" * 60, None, None),  # longer than 50 characters
    ("٠٧٩ ٣٠٢ ٦٧ ٢٧", None, "41793026727"),  # Arabic-Indic digits, as phonenumbers reads them
]


@pytest.mark.parametrize(("raw", "region", "expected"), PHONES)
def test_phone_table(raw: str | None, region: str | None, expected: str | None) -> None:
    regions = pd.Series([region]) if region else None
    result = normalize_phones(pd.Series([raw], dtype=object), regions=regions, default_region="CH")
    value = result.values.iloc[0]
    assert (None if pd.isna(value) else value) == expected
    present = raw is not None and raw.strip() != ""
    assert bool(result.invalid.iloc[0]) == (present and expected is None)


def test_numeric_phone_columns_with_nulls() -> None:
    raw = pd.Series([41793026727.0, float("nan"), 793026727.0])
    result = normalize_phones(raw, default_region="CH")
    assert result.values.tolist()[0] == "41793026727"
    assert pd.isna(result.values.iloc[1])
    assert result.values.iloc[2] == library_phone("793026727", "CH") == "41793026727"
    assert result.invalid.tolist() == [False, False, False]


def test_region_column_overrides_default_and_falls_back() -> None:
    raw = pd.Series(["030 901820", "079 302 67 27", "(201) 555-0123"])
    regions = pd.Series(["de", None, "US"])
    values = normalize_phones(raw, regions=regions, default_region="CH").values
    assert values.tolist() == ["4930901820", "41793026727", "12015550123"]


def test_phones_without_any_region_need_a_country_code() -> None:
    values = normalize_phones(pd.Series(["+41793026727", "0793026727"])).values
    assert values.iloc[0] == "41793026727" and pd.isna(values.iloc[1])


EMAILS = [
    ("Jane.Doe@Example.COM", "jane.doe@example.com"),
    ("  jane@acme.com\t", "jane@acme.com"),
    ("jane+tag@sub.acme.co.uk", "jane+tag@sub.acme.co.uk"),
    ("o'brien@acme.com", "o'brien@acme.com"),  # valid, only the library path accepts it
    ("jürgen@müller.de", "jürgen@müller.de"),
    ("a..b@acme.com", None),
    (".a@acme.com", None),
    ("a@acme", None),
    ("a@-acme.com", None),
    ("a@acme.123", None),
    ("a@localhost", None),
    ("a@b.test", None),
    ("no-at-sign", None),
    ("a@@b.com", None),
    ("", None),
    (None, None),
    ("x" * 250 + "@a.com", None),  # longer than 255 characters
]


@pytest.mark.parametrize(("raw", "expected"), EMAILS)
def test_email_table(raw: str | None, expected: str | None) -> None:
    result = normalize_emails(pd.Series([raw], dtype=object))
    value = result.values.iloc[0]
    assert (None if pd.isna(value) else value) == expected
    present = raw is not None and raw.strip() != ""
    assert bool(result.invalid.iloc[0]) == (present and expected is None)


def _random_emails(rng: random.Random, n: int) -> list[str]:
    alphabet = "abcxyz019._+-%'!@"
    tlds = ["com", "ch", "test", "local", "c", "123", "xn--p1ai", "museum", "a-b"]
    out = []
    for _ in range(n):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        labels = [
            "".join(rng.choice("abc-09_") for _ in range(rng.randint(0, 6)))
            for _ in range(rng.randint(1, 3))
        ]
        out.append(f"{local}@{'.'.join(labels)}.{rng.choice(tlds)}".lower())
    return out


def test_email_fast_path_never_accepts_what_the_library_rejects() -> None:
    rng = random.Random(7)
    sample = pd.Series(_random_emails(rng, 8000), dtype="str")
    fast = fast_email_mask(sample)
    accepted = sample[fast].tolist()
    assert len(accepted) > 100  # the generator must exercise the fast path
    assert [e for e in accepted if _library_email(e) != e] == []


def test_phone_normalization_agrees_with_the_library_row_by_row() -> None:
    rng = random.Random(11)
    prefixes = ["+41 79", "079", "0041 79", "+1 201", "+44 7400", "07400", "+49 30", "030", "+7"]
    prefixes += ["001 201", "0049 30", "1-800-", "+1 212 555 01", "001 (212)"]
    tails = ["", "", "", " ext 12", "x3", " FLOWERS", " #4"]
    raws = [
        f"{rng.choice(prefixes)} {rng.randint(0, 10 ** rng.randint(4, 9))}".replace(
            " ", rng.choice([" ", "", "-"])
        )
        + rng.choice(tails)
        for _ in range(3000)
    ]
    regions = [rng.choice(["CH", "US", "GB", "DE", None]) for _ in raws]
    result = normalize_phones(pd.Series(raws), regions=pd.Series(regions), default_region="CH")
    expected = [reference_phone(r, g or "CH") for r, g in zip(raws, regions, strict=True)]
    got = [None if pd.isna(v) else v for v in result.values.tolist()]
    assert sum(v is not None for v in expected) > 300
    assert got == expected


def test_phone_fast_path_accepts_only_what_the_library_accepts_identically() -> None:
    import numpy as np
    import pyarrow as pa

    from moments_pipeline.identity._phone_fast import decide_phones

    def fast_phones(values: list[str], regions: list[str | None]) -> list[str | None]:
        # Digits for the values the fast path accepts, None for the rest.
        names = sorted({r for r in regions if r})
        index = {r: i for i, r in enumerate(names)}
        codes = np.array([index.get(r, -1) if r else -1 for r in regions], dtype=np.int64)
        digits, _ = decide_phones(pa.array(values, type=pa.large_string()), codes, names)
        return list(digits.to_pylist())

    rng = random.Random(5)
    regions = [
        "CH",
        "DE",
        "GB",
        "US",
        "FR",
        "IT",
        "RU",
        "BR",
        "AR",
        "MX",
        "IN",
        "CN",
        "JP",
        "AU",
        "SE",
    ]
    raws, regs = [], []
    for _ in range(6000):
        region = rng.choice(regions)
        body = str(rng.randint(10**5, 10**11))
        shape = rng.randint(0, 5)
        if shape == 0:
            raw = "0" + body
        elif shape == 1:
            codes = ["41", "49", "44", "1", "33", "39", "7", "55", "54", "52", "91", "86", "81"]
            raw = f"+{rng.choice(codes)}{body}"
        elif shape == 2:
            raw = f"00{rng.choice(['41', '44', '39', '0'])} {body}"
        elif shape == 3:
            raw = f"({body[:3]}) {body[3:6]}-{body[6:]}"
        elif shape == 4:
            raw = f"+{body[:2]} (0){body[2:]}"
        else:
            raw = "011 " + body
        raws.append(raw)
        regs.append(region)
    fast = fast_phones(raws, regs)
    accepted = [(r, g, f) for r, g, f in zip(raws, regs, fast, strict=True) if f is not None]
    assert len(accepted) > 200
    assert [(r, g, f) for r, g, f in accepted if library_phone(r, g) != f] == []


def test_phone_replay_decisions_accept_and_reject_exactly_as_the_library() -> None:
    import numpy as np
    import pyarrow as pa

    from moments_pipeline.identity._phone_fast import decide_phones

    rng = random.Random(23)
    names = ["CH", "DE", "GB", "US", "FR", "IT", "RU", "BR", "AR", "MX", "IN", "JP", "AU", "XX"]
    national = {"CH": "79", "DE": "30", "GB": "7400", "US": "201", "FR": "6", "IT": "3"}
    raws, codes = [], []
    for _ in range(8000):
        code = rng.randrange(-1, len(names))
        region = names[code] if code >= 0 else rng.choice(list(national))
        body = str(rng.randint(0, 10 ** rng.randint(1, 12)))
        lead = national.get(region, "9")
        shape = rng.randint(0, 9)
        raw = [
            "0" + lead + body,  # national with trunk prefix
            lead + body,  # national without it
            "00" + rng.choice(["1", "41", "44", "49", "0", "7", "39", "800"]) + body,
            "011 " + rng.choice(["41", "44", "1"]) + body,
            "+" + rng.choice(["1", "41", "44", "49", "33", "39", "7", "0", "800", "999"]) + body,
            "+44 (0)" + lead + body,
            "+41 0" + lead + body,  # trunk prefix after the country code
            "1" + body,  # starts with the US calling code
            f" {lead}-{body[:3]}.{body[3:]} ",
            body[:2],
        ][shape].strip()
        raws.append(raw)
        codes.append(code)
    digits, decided = decide_phones(pa.array(raws, type=pa.large_string()), np.array(codes), names)
    regions = [names[c] if c >= 0 else None for c in codes]
    checked = [
        (raw, region, got)
        for raw, region, got, sure in zip(raws, regions, digits.to_pylist(), decided, strict=True)
        if sure
    ]
    assert sum(g is None for _, _, g in checked) > 500  # rejections are decided too
    assert sum(g is not None for _, _, g in checked) > 300
    assert [(r, g, d) for r, g, d in checked if library_phone(r, g) != d] == []


def test_email_values_refused_without_the_library_are_refused_by_it() -> None:
    rng = random.Random(13)
    sample = [*_random_emails(rng, 3000), "a@@b.com", "a@b@c.com", '"a@b"@c.com', "plain", "@@"]
    result = normalize_emails(pd.Series(sample, dtype=object))
    skipped = [v for v in sample if v.count("@") != 1]
    assert len(skipped) > 100
    assert [v for v in skipped if _library_email(v) is not None] == []
    assert result.values[[v.count("@") != 1 for v in sample]].isna().all()


def test_refused_phones_carry_their_reason() -> None:
    raw = pd.Series(
        ["1-800-FLOWERS", "n/a", "+41 44 668 18 00 ext 12", "12", "9" * 60, 1e20, None],
        dtype=object,
    )
    result = normalize_phones(raw, default_region="US")
    assert result.reason is not None
    assert result.reason.tolist() == [
        "PHONE_HAS_LETTERS",
        "PHONE_HAS_LETTERS",
        "PHONE_HAS_EXTENSION",
        "INVALID_PHONE",
        "VALUE_TOO_LONG",
        "UNREADABLE_VALUE",
        None,
    ]
    assert result.invalid.tolist() == [True] * 6 + [False]


def test_refused_emails_carry_their_reason() -> None:
    raw = pd.Series(["bad@", "x" * 300 + "@example.com", 2.0**60, "ok@example.com", None])
    result = normalize_emails(raw.astype(object))
    assert result.reason is not None
    assert result.reason.tolist() == [
        "INVALID_EMAIL",
        "VALUE_TOO_LONG",
        "UNREADABLE_VALUE",
        None,
        None,
    ]
