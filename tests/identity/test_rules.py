"""The identity rules in one place: kinds, comparable forms, person keys, ledger profiles."""

from __future__ import annotations

import numpy as np

from moments_pipeline.identity import rules


def test_kinds_of_an_identify_by() -> None:
    assert rules.identify_by_kind("EMAIL", None) == "EMAIL"
    assert rules.identify_by_kind("PHONE", "ignored") == "PHONE"
    assert rules.identify_by_kind("FACEBOOK", "page-1") == "FACEBOOK:page-1"
    assert rules.identify_by_kind("LINE") == "LINE:None"


def test_comparable_form_folds_emails_only() -> None:
    assert rules.comparable("EMAIL", "Ann@Example.COM") == "ann@example.com"
    # Lowered as the normalizer does, not case-folded: straße and strasse stay two addresses.
    assert rules.comparable("EMAIL", "Straße@x.com") == "straße@x.com"
    assert rules.comparable("EMAIL", "strasse@x.com") != rules.comparable("EMAIL", "Straße@x.com")
    assert rules.comparable("EXTERNAL_ID", "AbC") == "AbC"
    assert rules.comparable("FACEBOOK:p", "AbC") == "AbC"
    kinds = np.array(["EMAIL", "PHONE", "EMAIL", "EXTERNAL_ID"], dtype=object)
    values = np.array(["A@X.com", "41", "ß@x.ch", "Q"], dtype=object)
    expected = [rules.comparable(k, v) for k, v in zip(kinds, values, strict=True)]
    assert rules.comparable_values(kinds, values).tolist() == expected
    assert values.tolist() == ["A@X.com", "41", "ß@x.ch", "Q"]  # input untouched


def test_person_keys_and_their_external_ids() -> None:
    assert rules.person_key(rules.EXTERNAL_ID, "42") == "EXTERNAL_ID:42"
    assert rules.external_id_of_key("EXTERNAL_ID:a:b") == "a:b"
    assert rules.external_id_of_key("EMAIL:a@x.com") is None
    assert rules.external_id_of_key("FACEBOOK:p:EXTERNAL_ID:1") is None


def test_ledger_profiles_are_components_anchored_by_their_smallest_key() -> None:
    grouped = rules.ledger_profiles(
        ["EMAIL", "EMAIL", "PHONE", "PHONE", "FACEBOOK:p1", "FACEBOOK:p2", None, "EXTERNAL_ID"],
        ["Ann@x.com", "ann@X.com", "41", "41", "id", "id", "x", 7],
        [
            "EXTERNAL_ID:2",
            "EMAIL:ann@x.com",
            "EMAIL:ann@x.com",
            "EXTERNAL_ID:1",
            "F1",
            "F2",
            "k",
            "F1",
        ],
    )
    profile = dict(
        zip(
            zip(grouped.kinds.tolist(), grouped.identifiers.tolist(), strict=True),
            (grouped.anchors[p] for p in grouped.profiles.tolist()),
            strict=True,
        )
    )
    # Two spellings of one address and a shared phone chain three keys into one profile; one
    # channel id under two senders is two identifiers; the row with a null is ignored.
    assert profile == {
        ("EMAIL", "ann@x.com"): "EMAIL:ann@x.com",
        ("PHONE", "41"): "EMAIL:ann@x.com",
        ("FACEBOOK:p1", "id"): "F1",
        ("FACEBOOK:p2", "id"): "F2",
        ("EXTERNAL_ID", "7"): "F1",
    }
    holders, held_ids = grouped.external_profiles.tolist(), grouped.external_ids.tolist()
    held = {(grouped.anchors[p], e) for p, e in zip(holders, held_ids, strict=True)}
    assert held == {("EMAIL:ann@x.com", "1"), ("EMAIL:ann@x.com", "2"), ("F1", "7")}
    assert len(held) == len(grouped.external_ids)  # each pair once


def test_an_empty_ledger_has_no_profiles() -> None:
    grouped = rules.ledger_profiles([], [], [])
    assert grouped.anchors == [] and len(grouped.kinds) == 0 and len(grouped.external_ids) == 0
