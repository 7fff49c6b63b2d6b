"""A generated bad-input corpus with the outcome each row must have.

``build_corpus(seed)`` returns the rows of one audience table (every column text, as a careless
export gives them) and, per row, what must happen to it: ``SENT`` (in exactly one participant),
``QUARANTINED`` (optionally with the reason), or ``EITHER`` (the row must be accounted for, but
the outcome is Infobip's or the normalizer's call, e.g. a homoglyph address). ``dropped`` lists
the (row id, column) pairs whose identifier must be recorded as dropped. Deterministic for a
seed, so a failure names a row that can be looked at again.

Cases: clean people, case and whitespace duplicates, nulls in every column, oversize values,
invalid and vanity phones, ``00``-prefixed international numbers, invalid secondary emails,
homoglyph and IDN emails, direct and transitive conflicts, shared phones, text that looks like
JSON, control characters and NUL, mixed scripts, missing and duplicated row ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SENT = "SENT"
QUARANTINED = "QUARANTINED"
EITHER = "EITHER"

COLUMNS = ["rid", "cid", "email", "email2", "phone", "phone2", "country", "first_name", "tier"]

AUDIENCE: dict[str, Any] = {
    "name": "corpus",
    "description": "generated bad-input corpus",
    "source": {"table": "corpus_rows", "row_id_column": "rid"},
    "identity": {
        "identify_by": {"column": "email", "type": "EMAIL"},
        "external_id": "cid",
        "emails": ["email", "email2"],
        "phones": ["phone", "phone2"],
        "default_region": "CH",
        "region_column": "country",
    },
    "person": {"attributes": {"firstName": "first_name"}},
    "variables": {"tier": "tier"},
    "flow": {"campaign_id": 200000000000001},
    "report": {"deadline_s": 30, "max_rejection_rate": 1.0},
}


@dataclass
class Corpus:
    """Rows and expectations."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    #: Row id -> (fate, reason or None). Rows without a row id are counted, not listed.
    expected: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: (row id, column) of every identifier that must be recorded as dropped.
    dropped: set[tuple[str, str]] = field(default_factory=set)
    #: Row id -> international digits that must be sent among the person's phones.
    phones_sent: dict[str, str] = field(default_factory=dict)
    #: Rows whose row id is NULL or blank (quarantined as ROW_ID_MISSING).
    missing_row_ids: int = 0

    def add(
        self,
        fate: str,
        reason: str | None = None,
        *,
        dropped: tuple[str, ...] = (),
        phone_sent: str | None = None,
        **values: Any,
    ) -> str:
        rid = values.setdefault("rid", f"r{len(self.rows):04d}")
        row = {c: values.get(c) for c in COLUMNS}
        self.rows.append(row)
        if rid is None or not str(rid).strip():
            self.missing_row_ids += 1
        else:
            self.expected[rid] = (fate, reason)
            self.dropped.update((rid, c) for c in dropped)
            if phone_sent:
                self.phones_sent[rid] = phone_sent
        return rid


def _clean(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "cid": f"C{i:05d}",
        "email": f"person{i}@example.com",
        # Distinct by construction: a random collision would be a (correct) conflict.
        "phone": f"+41 79 {100 + i // 100:03d} {i % 100:02d} 00",
        "country": "CH",
        "first_name": rng.choice(["Anna", "Ben", "Chloé", "Dmitri", "Eun-ji"]),
        "tier": rng.choice(["gold", "silver", None]),
    }


def build_corpus(seed: int = 7, clean_rows: int = 40) -> Corpus:
    """The corpus for ``seed``: ``clean_rows`` clean people plus every hostile case."""
    rng = random.Random(seed)
    c = Corpus()
    for i in range(clean_rows):
        c.add(SENT, **_clean(rng, i))

    # One person written twice (case, whitespace, national vs international phone).
    c.add(SENT, cid="D1", email="dup@example.com", phone="+41 79 555 01 01", country="CH")
    c.add(SENT, cid="D1", email="  DUP@Example.COM ", phone="079 555 01 01", country="ch")

    # Nulls in every column, one at a time, on otherwise clean rows.
    base = _clean(rng, 900)
    for column in COLUMNS[1:]:
        values = {**base, "cid": f"N-{column}", "email": f"null.{column}@example.com"}
        values["phone"] = f"+41 78 200 11 {COLUMNS.index(column):02d}"
        values[column] = None
        fate = QUARANTINED if column == "email" else SENT
        c.add(fate, "MISSING_IDENTIFY_BY" if column == "email" else None, **values)
    # Nothing but a row id.
    c.add(QUARANTINED, "MISSING_IDENTIFY_BY")
    # Whitespace-only identifiers are missing, not values.
    c.add(QUARANTINED, "MISSING_IDENTIFY_BY", cid="W1", email="\t\n ", phone="\u00a0")

    # Oversize values.
    c.add(EITHER, cid="O1", email="big.name@example.com", first_name="x" * 10_000)
    c.add(QUARANTINED, "INVALID_IDENTIFY_BY", cid="O2", email="y" * 300 + "@example.com")
    c.add(QUARANTINED, "INVALID_EXTERNAL_ID", cid="Z" * 300, email="long.id@example.com")
    c.add(
        SENT,
        cid="O3",
        email="o3@example.com",
        email2="z" * 300 + "@example.com",
        dropped=("email2",),
    )

    # Phones: invalid, vanity (letters never become digits), 00 international prefix.
    c.add(SENT, cid="P1", email="p1@example.com", phone="12345", dropped=("phone",))
    c.add(
        SENT,
        cid="P2",
        email="p2@example.com",
        phone="1-800-FLOWERS",
        country="US",
        dropped=("phone",),
    )
    c.add(SENT, cid="P3", email="p3@example.com", phone="n/a", dropped=("phone",))
    c.add(
        SENT,
        cid="P4",
        email="p4@example.com",
        phone="001 212 555 0143",
        country="US",
        phone_sent="12125550143",
    )
    c.add(
        SENT,
        cid="P5",
        email="p5@example.com",
        phone="0049 30 901820",
        country="DE",
        phone_sent="4930901820",
    )
    c.add(
        SENT,
        cid="P6",
        email="p6@example.com",
        phone="+41 79 302 67 27",
        phone2="+41 79 302 67 27",
        phone_sent="41793026727",
    )
    c.add(SENT, cid="P7", email="p7@example.com", phone2="not a phone", dropped=("phone2",))

    # Emails: invalid secondaries dropped; homoglyphs and IDN are different addresses.
    c.add(SENT, cid="E1", email="e1@example.com", email2="not-an-email", dropped=("email2",))
    c.add(SENT, cid="E2", email="e2@example.com", email2="[1, 2, 3]", dropped=("email2",))
    c.add(EITHER, cid="H1", email="paypal@example.com")
    c.add(EITHER, cid="H2", email="p\u0430ypal@example.com")  # Cyrillic a
    c.add(EITHER, cid="H3", email="zoë@exämple.org")
    c.add(QUARANTINED, "INVALID_IDENTIFY_BY", cid="E3", email="robert'); DROP TABLE x;--@x.com")

    # Text that looks like JSON, control characters, NUL, mixed scripts, in identifiers
    # (quarantined rows keep them raw) and in attributes (sent).
    for i, text in enumerate(
        ["[not json", '{"a": 1}', "a\x00b", "tab\there", "\x1b[31mred", "]", "null", "\u202eevil"]
    ):
        c.add(QUARANTINED, "INVALID_IDENTIFY_BY", cid=f"T{i}", email=text)
        c.add(SENT, cid=f"TA{i}", email=f"text{i}@example.com", first_name=text, tier=text)
    for i, name in enumerate(["李小龍", "Ørjan", "Zoë 🙂", "مريم", "Ἀθηνᾶ", ""]):
        c.add(SENT, cid=f"U{i}", email=f"unicode{i}@example.com", first_name=name)

    # Conflicts: a shared email, a shared phone, a transitive chain, a secondary shared.
    c.add(QUARANTINED, "IDENTITY_CONFLICT", cid="K1", email="shared@example.net")
    c.add(QUARANTINED, "IDENTITY_CONFLICT", cid="K2", email="shared@example.net")
    c.add(
        QUARANTINED, "IDENTITY_CONFLICT", cid="K3", email="k3@example.net", phone="+41 76 111 22 33"
    )
    c.add(QUARANTINED, "IDENTITY_CONFLICT", cid="K4", email="k4@example.net", phone="0761112233")
    c.add(
        QUARANTINED, "IDENTITY_CONFLICT", cid="G1", email="g1@example.com", phone="+41 76 222 00 01"
    )
    c.add(
        QUARANTINED,
        "IDENTITY_CONFLICT",
        cid="G2",
        email="g2@example.com",
        phone="+41 76 222 00 01",
        email2="g3@example.com",
    )
    c.add(QUARANTINED, "IDENTITY_CONFLICT", cid="G3", email="g3@example.com")
    c.add(
        QUARANTINED, "IDENTITY_CONFLICT", cid="S1", email="s1@example.com", email2="S2@EXAMPLE.com"
    )
    c.add(QUARANTINED, "IDENTITY_CONFLICT", cid="S2", email="s2@example.com")

    # Row ids: missing and duplicated quarantine only those rows.
    c.add(QUARANTINED, "ROW_ID_MISSING", rid=None, cid="R1", email="r1@example.com")
    c.add(QUARANTINED, "ROW_ID_MISSING", rid="  ", cid="R2", email="r2@example.com")
    c.add(QUARANTINED, "ROW_ID_DUPLICATE", rid="dup-id", cid="R3", email="r3@example.com")
    c.rows.append(
        {**dict.fromkeys(COLUMNS), "rid": "dup-id", "cid": "R4", "email": "r4@example.com"}
    )
    return c
