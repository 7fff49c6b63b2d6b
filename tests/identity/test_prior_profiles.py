"""Cross-run identity: the ledger as the account's profiles, across audiences keyed differently."""

from __future__ import annotations

import random

import pandas as pd

from moments_pipeline.identity import PreparedAudience, participant_identities, prepare_audience
from tests.identity.helpers import COLUMNS, audience

# Keyed by externalId (loyalty) and keyed by email (newsletter, no externalId column).
LOYALTY = audience(name="loyalty")
NEWSLETTER = audience(name="newsletter", identity={"external_id": None})


def frame(rows: list[dict]) -> pd.DataFrame:
    data = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in data:
            data[column] = None
    return data


def reasons(result: PreparedAudience) -> dict[str, str]:
    return dict(zip(result.quarantine["row_id"], result.quarantine["reason"], strict=True))


def anchors(result: PreparedAudience) -> dict[str, str]:
    p = result.participants
    return dict(zip(p["person_key"], p["profile_anchor"], strict=True))


def ledger_of(*results: PreparedAudience) -> pd.DataFrame:
    return pd.concat([participant_identities(r.participants) for r in results], ignore_index=True)


def test_second_audience_keyed_by_email_updates_the_profile_of_the_first() -> None:
    loyalty = prepare_audience(
        frame(
            [
                {"rid": "l1", "email": "ana@x.com", "cid": "1", "phone": "+41793026727"},
                {"rid": "l2", "email": "bo@x.com", "cid": "2"},
            ]
        ),
        LOYALTY,
    )
    newsletter = prepare_audience(
        frame(
            [
                {"rid": "n1", "email": "ANA@x.com ", "email2": "ana@home.ch"},
                {"rid": "n2", "email": "cy@x.com", "phone": "+41793026728"},
                {"rid": "n3", "email": "bo@x.com", "phone": "079 302 67 27"},
            ]
        ),
        NEWSLETTER,
        prior_identities=ledger_of(loyalty),
    )
    # n3's phone is ana's (profile EXTERNAL_ID:1) and its email bo's: that alone would merge.
    assert reasons(newsletter) == {"n3": "WOULD_MERGE_PRIOR_PROFILES"}
    assert anchors(newsletter) == {
        "EMAIL:ana@x.com": "EXTERNAL_ID:1",
        "EMAIL:cy@x.com": "EMAIL:cy@x.com",
    }
    recorded = participant_identities(newsletter.participants)
    by_identifier = dict(zip(recorded["identifier"], recorded["person_key"], strict=True))
    assert by_identifier == {
        "ana@x.com": "EXTERNAL_ID:1",
        "ana@home.ch": "EXTERNAL_ID:1",
        "cy@x.com": "EMAIL:cy@x.com",
        "41793026728": "EMAIL:cy@x.com",
    }
    # Read back, the ledger is one key per identifier: one cluster per profile.
    ledger = ledger_of(loyalty, newsletter)
    assert (ledger.groupby(["kind", "identifier"])["person_key"].nunique() == 1).all()


def test_email_and_phone_sent_for_two_people_is_quarantined_with_masked_anchors() -> None:
    first = prepare_audience(
        frame(
            [
                {"rid": "a", "email": "ana@x.com", "cid": "10001"},
                {"rid": "b", "email": "bo@x.com", "cid": "20002", "phone": "+41793026727"},
            ]
        ),
        LOYALTY,
    )
    second = prepare_audience(
        frame(
            [
                {"rid": "c", "email": "ana@x.com", "phone": "+41 79 302 67 27"},
                {"rid": "d", "email": "ana@x.com", "email2": "new@x.com"},
            ]
        ),
        NEWSLETTER,
        prior_identities=ledger_of(first),
    )
    assert reasons(second) == dict.fromkeys("cd", "WOULD_MERGE_PRIOR_PROFILES")
    assert second.participants.empty
    detail = second.quarantine["detail"].iloc[0]
    assert "EMAIL an***@x***.com (profile EXTERNAL_ID:1***1)" in detail
    assert "PHONE 41*******27 (profile EXTERNAL_ID:2***2)" in detail
    assert "ana@x.com" not in detail and "41793026727" not in detail
    assert "10001" not in detail and "20002" not in detail


def test_external_id_change_on_an_anchored_profile_is_quarantined() -> None:
    first = prepare_audience(
        frame([{"rid": "a", "email": "ana@x.com", "cid": "1", "phone": "+41793026727"}]), LOYALTY
    )
    prior = ledger_of(first)
    second = prepare_audience(
        frame(
            [
                {"rid": "b", "email": "other@x.com", "cid": "7", "phone": "+41793026727"},
                {"rid": "c", "email": "ana@x.com", "cid": "1", "email2": "ana@home.ch"},
            ]
        ),
        LOYALTY,
        prior_identities=prior,
    )
    assert reasons(second) == {"b": "IDENTIFIER_SENT_FOR_OTHER_PERSON"}
    assert second.quarantine["detail"].iloc[0] == (
        "PHONE 41*******27 already sent for profile EXTERNAL_ID:*, which holds externalId *, not *"
    )
    assert anchors(second) == {"EXTERNAL_ID:1": "EXTERNAL_ID:1"}
    # Without an externalId of its own, a person may update that profile.
    third = prepare_audience(
        frame([{"rid": "d", "email": "d@x.com", "phone": "+41793026727"}]),
        NEWSLETTER,
        prior_identities=prior,
    )
    assert third.quarantine.empty
    assert anchors(third) == {"EMAIL:d@x.com": "EXTERNAL_ID:1"}


def test_chains_across_three_runs() -> None:
    run1 = prepare_audience(frame([{"rid": "1", "email": "e@x.com", "cid": "1"}]), LOYALTY)
    run2 = prepare_audience(
        frame([{"rid": "2", "email": "e@x.com", "phone": "+41793026727"}]),
        NEWSLETTER,
        prior_identities=ledger_of(run1),
    )
    assert anchors(run2) == {"EMAIL:e@x.com": "EXTERNAL_ID:1"}
    prior = ledger_of(run1, run2)
    run3 = prepare_audience(
        frame(
            [
                # Reaches profile 1 only through the phone run 2 added to it.
                {"rid": "3a", "email": "f@x.com", "phone": "+41793026727"},
                {"rid": "3b", "email": "g@x.com"},
            ]
        ),
        NEWSLETTER,
        prior_identities=prior,
    )
    assert run3.quarantine.empty
    assert anchors(run3) == {"EMAIL:f@x.com": "EXTERNAL_ID:1", "EMAIL:g@x.com": "EMAIL:g@x.com"}
    prior = pd.concat([prior, ledger_of(run3)], ignore_index=True)
    run4 = prepare_audience(
        frame(
            [
                {"rid": "4a", "email": "k@x.com", "cid": "2", "phone": "+41793026727"},
                {"rid": "4b", "email": "f@x.com", "email2": "g@x.com", "cid": "9"},
                {"rid": "4c", "email": "m@x.com", "cid": "3"},
            ]
        ),
        LOYALTY,
        prior_identities=prior,
    )
    # 4a's phone is on profile 1 (externalId 1); 4b joins profile 1 (f) and g's profile.
    assert reasons(run4) == {
        "4a": "IDENTIFIER_SENT_FOR_OTHER_PERSON",
        "4b": "WOULD_MERGE_PRIOR_PROFILES",
    }
    assert anchors(run4) == {"EXTERNAL_ID:3": "EXTERNAL_ID:3"}


def test_ledger_written_with_plain_person_keys_is_read_as_one_profile() -> None:
    # The same email recorded under two audiences' own keys: one profile, not two.
    prior = pd.DataFrame(
        {
            "kind": ["EXTERNAL_ID", "EMAIL", "EMAIL", "PHONE"],
            "identifier": ["1", "e@x.com", "e@x.com", "41793026727"],
            "person_key": ["EXTERNAL_ID:1", "EXTERNAL_ID:1", "EMAIL:e@x.com", "EMAIL:e@x.com"],
        }
    )
    result = prepare_audience(
        frame([{"rid": "a", "email": "f@x.com", "cid": "1", "phone": "+41793026727"}]),
        LOYALTY,
        prior_identities=prior,
    )
    assert result.quarantine.empty
    assert anchors(result) == {"EXTERNAL_ID:1": "EMAIL:e@x.com"}


def _generated(rng: random.Random, n: int, keyed_by_external_id: bool) -> pd.DataFrame:
    pool = 60  # small pools: identifiers recur across runs and audiences

    def email() -> str:
        return f"u{rng.randrange(pool)}@x.com"

    rows = []
    for i in range(n):
        rows.append(
            {
                "rid": f"r{i}",
                "email": email(),
                "email2": email() if rng.random() < 0.3 else None,
                "cid": str(rng.randrange(pool)) if keyed_by_external_id else None,
                "phone": f"+41 79 302 {rng.randrange(pool):02d} 00" if rng.random() < 0.4 else None,
            }
        )
    return frame(rows)


def _profiles(ledger: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Profile root per identifier and per ("key", key): an independent union-find."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for kind, identifier, key in ledger.itertuples(index=False):
        parent[find((kind, identifier))] = find(("key", key))
    return {node: str(find(node)) for node in list(parent)}


def test_generated_runs_never_touch_two_profiles_and_keep_the_ledger_clustered() -> None:
    rng = random.Random(7)
    ledger = pd.DataFrame({"kind": [], "identifier": [], "person_key": []})
    counts = {"quarantined": 0, "updating": 0, "new": 0}
    for run in range(8):
        config = LOYALTY if run % 2 == 0 else NEWSLETTER
        data = _generated(rng, 40, keyed_by_external_id=config is LOYALTY)
        result = prepare_audience(data, config, prior_identities=ledger)
        counts["quarantined"] += len(result.quarantine)
        sent = participant_identities(result.participants)
        assert not sent.duplicated(["kind", "identifier"]).any()
        root = _profiles(ledger)
        people = result.participants
        own = participant_identities(people.assign(profile_anchor=people["person_key"]))
        anchor_of = dict(zip(people["person_key"], people["profile_anchor"], strict=True))
        for key, group in own.groupby("person_key"):
            nodes = zip(group["kind"], group["identifier"], strict=True)
            touched = {root[node] for node in nodes if node in root}
            # No participant touches two prior profiles; its anchor names the one it touches.
            assert len(touched) <= 1
            if touched:
                assert touched == {root["key", anchor_of[key]]}
                counts["updating"] += 1
            else:
                assert anchor_of[key] == key and ("key", key) not in root
                counts["new"] += 1
        ledger = pd.concat([ledger, sent], ignore_index=True)
        assert (ledger.groupby(["kind", "identifier"])["person_key"].nunique() == 1).all()
    assert min(counts.values()) > 0, counts
