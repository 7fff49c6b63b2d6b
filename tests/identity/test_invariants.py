"""Generated inputs (plain ``random``, seeded): no identifier twice, every row accounted for."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from moments_pipeline.identity import participant_identities, prepare_audience
from tests.identity.helpers import audience

POLICIES = ["quarantine", "keep_most_recent", "drop_shared_identifier"]


def generated(seed: int, n: int) -> pd.DataFrame:
    """Messy rows drawn from small pools so duplicates, conflicts and chains are frequent."""
    rng = random.Random(seed)
    emails = [f"user{i}@example.com" for i in range(2 * n)]
    phones = [f"+41 79 {300 + i // 100:03d} {i % 100:02d} 00" for i in range(2 * n)]

    def email() -> str | None:
        roll = rng.random()
        if roll < 0.1:
            return None
        if roll < 0.15:
            return rng.choice(["bad@", "  ", "x@@y", "no.at.sign"])
        value = rng.choice(emails)
        return rng.choice([value, value.upper(), f"  {value} "])

    def phone() -> str | None:
        roll = rng.random()
        if roll < 0.3:
            return None
        if roll < 0.35:
            return rng.choice(["12", "abc", "+999 1"])
        return rng.choice(phones)

    rows = []
    for i in range(n):
        # Chains: some rows reuse the previous row's second email as their identifyBy.
        chained = rows and rng.random() < 0.1 and rows[-1]["email2"]
        rows.append(
            {
                "rid": f"r{i}",
                "email": chained or email(),
                "email2": email() if rng.random() < 0.4 else None,
                "cid": rng.choice([None, str(rng.randint(0, n)), f" {rng.randint(0, n)} "]),
                "phone": phone(),
                "phone2": phone() if rng.random() < 0.2 else None,
                "first_name": rng.choice(["Ana", "Bo", None]),
                "score": rng.random(),
                "ts": rng.choice([None, rng.randint(0, 100)]),
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", range(6))
def test_no_identifier_twice_and_every_row_accounted(policy: str, seed: int) -> None:
    data = generated(seed, 600)
    config = audience(conflicts={"policy": policy, "recency_column": "ts"})
    prior = None
    if seed % 2:
        first = prepare_audience(generated(seed + 100, 300), config)
        prior = participant_identities(first.participants)
    result = prepare_audience(data, config, prior_identities=prior)

    identities = participant_identities(result.participants)
    assert not identities.duplicated(["kind", "identifier"]).any()
    # Every contact sent is a normalized identifier; no two participants share one.
    for column in ("emails", "phones"):
        values = [v for values in result.participants[column] for v in values]
        assert len(values) == len(set(values))

    sent = [r for rows in result.participants["source_rows"] for r in rows]
    assert len(sent) + len(result.quarantine) == len(data)
    assert set(sent) | set(result.quarantine["row_id"]) == set(data["rid"])
    assert result.counts["participant_rows"] + result.counts["quarantined_rows"] == len(data)
    assert result.quarantine["reason"].notna().all()

    if prior is not None:
        # The ledger stays one key (profile anchor) per identifier.
        ledger = pd.concat([prior, identities], ignore_index=True)
        assert (ledger.groupby(["kind", "identifier"])["person_key"].nunique() == 1).all()
    assert len(result.participants) > 0
    assert len(result.quarantine) > 0
