"""Benchmark of identity preparation (normalize + dedupe + conflict detection).

Generates ``--rows`` messy audience rows deterministically from ``--seed`` (duplicates,
conflicting identities, bad phones and emails, four countries, whitespace, case), runs
``prepare_audience`` on all of them, then does the same work row by row (``phonenumbers`` and
``email-validator`` per value, a Python union-find) on ``--sample`` rows and extrapolates.

The last line printed is one JSON object: rows, seconds, rows_per_s, peak_rss_mb (maximum RSS
of the whole process, generator included), naive_seconds_estimate, speedup, plus cpu_seconds
(user+sys of this process during ``prepare_audience``) and loadavg_1m (1-minute load average
before preparing and at the end; the machine is shared).

    .venv/bin/python benchmarks/bench_prepare.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import pandas as pd
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from moments_pipeline.config import parse_audience
from moments_pipeline.identity import prepare_audience

AUDIENCE = parse_audience(
    {
        "name": "bench",
        "source": {"table": "bench.customers", "row_id_column": "row_id"},
        "identity": {
            "identify_by": {"column": "email", "type": "EMAIL"},
            "external_id": "customer_id",
            "emails": ["email", "work_email"],
            "phones": ["mobile", "landline"],
            "default_region": "CH",
            "region_column": "country",
        },
        "person": {"attributes": {"firstName": "first_name", "city": "city"}},
        "variables": {"tier": "tier"},
        "flow": {"campaign_id": 200000000000001},
        "conflicts": {"policy": "quarantine", "recency_column": "updated_at"},
    }
)

COUNTRIES = np.array(["CH", "DE", "GB", "US"])


def _digits(rng: np.random.Generator, n: int, width: int) -> pd.Series:
    return pd.Series(rng.integers(0, 10**width, n)).astype(str).str.zfill(width)


def _phones(rng: np.random.Generator, person: np.ndarray, country: np.ndarray) -> pd.Series:
    """Valid-looking numbers per country in mixed formats, derived from the person id."""
    n = len(person)
    tail = pd.Series(person % 10_000_000).astype(str).str.zfill(7)
    national = pd.Series("", index=range(n), dtype=object)
    intl = national.copy()
    for code, nat_prefix, cc in (("CH", "079", "41"), ("DE", "0301", "49"), ("GB", "0740", "44")):
        sel = country == code
        national[sel] = nat_prefix + tail[sel]
        intl[sel] = cc + nat_prefix[1:] + tail[sel]
    us = country == "US"
    national[us] = "201" + (2 + person[us] % 8).astype(str) + tail[us].str[1:]
    intl[us] = "1" + national[us]
    style = rng.integers(0, 5, n)
    out = pd.Series(national.to_numpy(), dtype=object)
    out[style == 1] = "+" + intl[style == 1]
    out[style == 2] = "00" + intl[style == 2]
    spaced = "+" + intl.str[:2] + " " + intl.str[2:5] + " " + intl.str[5:]
    out[style == 3] = spaced[style == 3]
    out[style == 4] = " " + national[style == 4].str[:3] + "-" + national[style == 4].str[3:] + " "
    return out


def generate(rows: int, seed: int) -> pd.DataFrame:
    """Messy rows: ~80% distinct persons, 2% conflicts, 3% bad phones, 2% bad emails."""
    rng = np.random.default_rng(seed)
    person = rng.integers(0, int(rows * 0.8), rows)
    country = COUNTRIES[person % 4]
    domains = np.array(["example.com", "Mail.CH", "acme.co.uk", "web.de"])
    email = "user" + pd.Series(person).astype(str) + "@" + domains[person % 4]
    case = rng.random(rows)
    email[case < 0.1] = email[case < 0.1].str.upper()
    email[(case > 0.1) & (case < 0.2)] = "  " + email[(case > 0.1) & (case < 0.2)] + " "
    bad = rng.random(rows) < 0.02
    email[bad] = email[bad].str.replace("@", "@@", regex=False)
    email[rng.random(rows) < 0.01] = None
    mobile = _phones(rng, person, country)
    # Conflicts: some rows carry another person's phone.
    other = rng.random(rows) < 0.02
    neighbour = (person[other] + 7) % int(rows * 0.8)
    mobile[other] = _phones(rng, neighbour, COUNTRIES[neighbour % 4]).to_numpy()
    broken = rng.random(rows) < 0.03
    mobile[broken] = "12" + _digits(rng, int(broken.sum()), 2).to_numpy()
    landline = pd.Series(None, index=range(rows), dtype=object)
    has_land = rng.random(rows) < 0.15
    landline[has_land] = _phones(
        rng, person[has_land] + 3_000_000_000, country[has_land]
    ).to_numpy()
    work = pd.Series(None, index=range(rows), dtype=object)
    has_work = rng.random(rows) < 0.2
    work[has_work] = (
        "w" + pd.Series(person[has_work]).astype(str) + "@work.example.com"
    ).to_numpy()
    region = pd.Series(country, dtype=object)
    region[rng.random(rows) < 0.05] = None  # falls back to the default region (CH)
    return pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "customer_id": pd.Series(person).astype(str).to_numpy(),
            "email": email.to_numpy(),
            "work_email": work.to_numpy(),
            "mobile": mobile.to_numpy(),
            "landline": landline.to_numpy(),
            "country": region.to_numpy(),
            "first_name": np.array(["Ana", "Bo", "Cy", "Di"])[rng.integers(0, 4, rows)],
            "city": np.array(["Zürich", "Berlin", "London", "Newark"])[person % 4],
            "tier": rng.integers(1, 4, rows),
            "updated_at": rng.integers(0, 10**9, rows),
        }
    )


def naive(frame: pd.DataFrame) -> int:
    """The same work row by row: library calls per value and a Python union-find."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def phone(raw: object, region: str) -> str | None:
        if not isinstance(raw, str) or not raw.strip():
            return None
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]

    def email(raw: object) -> str | None:
        if not isinstance(raw, str) or not raw.strip():
            return None
        try:
            return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            return None

    keys: list[tuple[str, list[str]]] = []
    for row in frame.itertuples(index=False):
        region = row.country if isinstance(row.country, str) else "CH"
        ids = [
            e
            for e in (
                email(row.email),
                email(row.work_email),
                phone(row.mobile, region),
                phone(row.landline, region),
            )
            if e
        ]
        key = "x:" + str(row.customer_id).strip()
        for ident in ids:
            parent[find(ident)] = find(key)
        keys.append((key, ids))
    components: dict[str, set[str]] = {}
    for key, _ids in keys:
        components.setdefault(find(key), set()).add(key)
    return sum(len(v) > 1 for v in components.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)

    frame = generate(args.rows, args.seed)
    load_before = os.getloadavg()[0]
    cpu_start = time.process_time()
    start = time.perf_counter()
    result = prepare_audience(frame, AUDIENCE)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    print(f"prepared: {result.counts}", file=sys.stderr)

    sample = frame.sample(n=min(args.sample, len(frame)), random_state=args.seed)
    naive_start = time.perf_counter()
    naive(sample)
    naive_seconds = (time.perf_counter() - naive_start) * len(frame) / len(sample)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": len(frame),
                "seconds": round(seconds, 3),
                "rows_per_s": round(len(frame) / seconds),
                "peak_rss_mb": round(peak_rss_mb, 1),
                "naive_seconds_estimate": round(naive_seconds, 1),
                "speedup": round(naive_seconds / seconds, 1),
                "cpu_seconds": round(cpu_seconds, 3),
                "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
