"""Generate the committed sample CSVs: messy, realistic, and byte-for-byte deterministic.

Run ``.venv/bin/python data_samples/generate.py`` to rewrite ``customers.csv``,
``cart_events.csv`` and ``newsletter_signups.csv`` next to this file. The same seed always gives
the same bytes, so a diff of the CSVs after running it means the generator changed.

The mess is deliberate and proportioned like a real CRM export: duplicates with whitespace and
case noise, local-format phone numbers whose country sits in a (sometimes sloppy) country or
region column, families sharing a phone or an email (conflicting identities), chains of people
linked transitively through shared identifiers, invalid phones and emails, NULLs and unicode
names. Valid numbers are checked with ``phonenumbers`` so the "good" rows really are good.
Email domains are the documentation domains of RFC 2606 (example.com/.org/.net and
subdomains): no real mailbox is named.
"""

from __future__ import annotations

import csv
import itertools
import random
import unicodedata
from collections.abc import Callable
from pathlib import Path

import phonenumbers

SEED = 20260723
HERE = Path(__file__).resolve().parent
N_CUSTOMERS = 3000
N_CART_EVENTS = 1800
N_NEWSLETTER = 1200

FIRST_NAMES = [
    "Anna",
    "Luka",
    "Marko",
    "Ivana",
    "Jürgen",
    "Zoë",
    "Siobhán",
    "José",
    "Ørjan",
    "Łukasz",
    "Đurđa",
    "Chloé",
    "Noah",
    "Mia",
    "Liam",
    "Emma",
    "Olivia",
    "Ethan",
    "Sofía",
    "Mateo",
    "Hannah",
    "Lea",
    "Nina",
    "Petra",
    "Tomislav",
    "Ana-Marija",
    "Björn",
    "Renée",
    "François",
    "Aoife",
    "Seán",
    "Dagmar",
    "Günther",
    "Matthäus",
    "Eleni",
    "Yusuf",
    "Amélie",
    "Nikola",
    "민준",
    "Ζωή",
    "Дмитрий",
    "Ayşe",
    "Çağla",
    "Pål",
    "Joaquín",
    "Maëlle",
    "Ines",
    "Fabio",
]
LAST_NAMES = [
    "Müller",
    "Schmid",
    "Keller",
    "Weber",
    "Horvat",
    "Kovačević",
    "Babić",
    "Šimić",
    "Smith",
    "Jones",
    "O'Brien",
    "Murphy",
    "García",
    "Rodríguez",
    "Nguyen",
    "Johnson",
    "Brown",
    "Meier",
    "Fischer",
    "Zürcher",
    "Dubois",
    "Lefèvre",
    "Jovanović",
    "Novak",
    "Wójcik",
    "Andersen",
    "Papadopoulos",
    "김",
    "Ivanova",
    "Yılmaz",
    "de la Cruz",
    "van der Berg",
    "Ó Súilleabháin",
]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.ch", "post.example.de"]

# country -> (phonenumbers region, value of the region column, share of customers)
COUNTRIES: dict[str, tuple[str, str, float]] = {
    "CH": ("CH", "DACH", 0.25),
    "DE": ("DE", "DACH", 0.25),
    "GB": ("GB", "UK&I", 0.2),
    "US": ("US", "North America", 0.15),
    "HR": ("HR", "Adriatic", 0.15),
}
# How the country column gets typed: mostly the ISO code, sometimes with case or whitespace
# noise, now and then a full name that no parser should be trusted to read.
COUNTRY_NAMES = {
    "CH": "Switzerland",
    "DE": "Germany",
    "GB": "United Kingdom",
    "US": "USA",
    "HR": "Croatia",
}
TIERS = ["bronze", "silver", "gold", "platinum"]
BAD_PHONES = [
    "12345",
    "n/a",
    "+41 79 ABC 12 34",
    "000000000",
    "+999 123",
    "tel:",
    "0",
    "--",
    "+1 (415) 555-01345678901234567890",
    "call me",
    "079 30",
]
BAD_EMAILS = [
    "john.doe@",
    "jane.example.com",
    "a@b",
    "foo@@example.com",
    "name with space@example.com",
    "@example.org",
    "none",
    "x@.com",
    "test@example..com",
    "N/A",
]


def _mobile(rng: random.Random, country: str) -> str:
    """Return a valid mobile number of ``country`` in E.164, checked with phonenumbers."""
    patterns: dict[str, Callable[[], str]] = {
        "CH": lambda: f"+417{rng.choice('6789')}{rng.randrange(10**7):07d}",
        "DE": lambda: f"+4915{rng.choice('12579')}{rng.randrange(10**8):08d}",
        "GB": lambda: f"+447{rng.choice('45789')}{rng.randrange(10**8):08d}",
        "US": lambda: (
            f"+1{rng.choice(['415', '212', '646', '312', '617', '206'])}"
            f"{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
        ),
        "HR": lambda: f"+3859{rng.choice('1258')}{rng.randrange(10**7):07d}",
    }
    while True:
        number = patterns[country]()
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def _country_text(rng: random.Random, code: str) -> str:
    roll = rng.random()
    if roll < 0.85:
        return code
    if roll < 0.92:
        return code.lower()
    if roll < 0.96:
        return f" {code} "
    return COUNTRY_NAMES[code]


def _date(rng: random.Random, first_year: int, last_year: int) -> str:
    year = rng.randrange(first_year, last_year + 1)
    return f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


def _render_phone(rng: random.Random, e164: str, country: str) -> str:
    """Write an E.164 number the way a human typed it: local, international or bare digits."""
    parsed = phonenumbers.parse(e164)
    style = rng.random()
    if style < 0.4:
        text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    elif style < 0.7:
        text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    elif style < 0.85:
        text = e164
    elif style < 0.95:
        text = "00" + e164[1:]
    else:
        text = e164[1:]  # international digits without '+', the Infobip example style
    if rng.random() < 0.1:
        text = f"  {text} "
    return text


def _email(rng: random.Random, first: str, last: str, n: int) -> str:
    # Strip accents the way most signup forms end up doing (Müller -> muller).
    local = unicodedata.normalize("NFKD", f"{first}.{last}".replace(" ", "").lower())
    local = "".join(c for c in local if c.isascii() and (c.isalnum() or c in "._-")) or "user"
    return f"{local.strip('.')}{n}@{rng.choice(DOMAINS)}"


def _noisy_email(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.3:
        return email.upper()
    if roll < 0.6:
        return f" {email.title()} "
    return email


def _customers(rng: random.Random) -> list[dict[str, str | None]]:
    codes = list(COUNTRIES)
    weights = [COUNTRIES[c][2] for c in codes]
    rows: list[dict[str, str | None]] = []
    for i in range(N_CUSTOMERS):
        country = rng.choices(codes, weights)[0]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        e164 = _mobile(rng, country)
        email = _email(rng, first, last, i)
        row: dict[str, str | None] = {
            "record_id": "",  # numbered after shuffling, like the line ids of a CRM export
            "customer_id": f"C{100000 + i}",
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": _render_phone(rng, e164, country),
            "country": _country_text(rng, country),
            "region": COUNTRIES[country][1],
            "loyalty_tier": rng.choice(TIERS),
            "marketing_opt_in": "true" if rng.random() < 0.85 else "false",
            "signup_date": _date(rng, 2018, 2025),
        }
        roll = rng.random()
        if roll < 0.05:
            row["email"] = None
        elif roll < 0.10:
            row["phone"] = None
        elif roll < 0.115:
            row["email"] = row["phone"] = None
        elif roll < 0.15:
            row["phone"] = rng.choice(BAD_PHONES)
        elif roll < 0.18:
            row["email"] = rng.choice(BAD_EMAILS)
        if rng.random() < 0.03:
            row["country"] = None  # the region column and the number's own prefix still help
        if rng.random() < 0.02:
            row["first_name"] = f"  {first.upper()}  "
        rows.append(row)

    # Duplicates: the same customer exported again, with formatting noise.
    for src in rng.sample(rows[:N_CUSTOMERS], 240):
        dup = dict(src)
        if dup["email"]:
            dup["email"] = _noisy_email(rng, dup["email"])
        if dup["loyalty_tier"]:
            dup["loyalty_tier"] = dup["loyalty_tier"].upper()
        rows.append(dup)

    # Conflicts: a different customer shares a family phone or email with someone else.
    for _ in range(60):
        a, b = rng.sample(rows[:N_CUSTOMERS], 2)
        if rng.random() < 0.5 and a["phone"]:
            b["phone"] = a["phone"]
        elif a["email"]:
            b["email"] = _noisy_email(rng, a["email"])

    # Transitive chains: A shares a phone with B, B shares an email with C (and so on).
    for _ in range(15):
        chain = rng.sample(rows[:N_CUSTOMERS], rng.randrange(3, 6))
        for left, right in itertools.pairwise(chain):
            if rng.random() < 0.5:
                right["phone"] = left["phone"]
            else:
                right["email"] = left["email"]
    rng.shuffle(rows)
    for number, row in enumerate(rows, start=1):
        row["record_id"] = f"R{number:06d}"
    return rows


def _cart_events(
    rng: random.Random, customers: list[dict[str, str | None]]
) -> list[dict[str, str | None]]:
    rows: list[dict[str, str | None]] = []
    for i in range(N_CART_EVENTS):
        cust = rng.choice(customers)
        rows.append(
            {
                "event_id": f"E{500000 + i}",
                "customer_id": cust["customer_id"],
                "email": cust["email"] if rng.random() < 0.9 else None,
                "phone": cust["phone"],
                "country": cust["country"],
                "region": cust["region"],
                "cart_value": f"{rng.lognormvariate(3.6, 0.8):.2f}",
                "currency": rng.choice(["CHF", "EUR", "GBP", "USD"]),
                "abandoned_at": f"2026-07-{rng.randrange(1, 23):02d}T{rng.randrange(24):02d}:"
                f"{rng.randrange(60):02d}:00Z",
                "product_name": rng.choice(
                    [
                        "Wanderschuh Alpin",
                        "Café crème set",
                        "Øresund scarf",
                        "Kravata Šibenik",
                        "Running socks",
                        "E-reader",
                    ]
                ),
            }
        )
    return rows


def _newsletter(
    rng: random.Random, customers: list[dict[str, str | None]]
) -> list[dict[str, str | None]]:
    rows: list[dict[str, str | None]] = []
    for i in range(N_NEWSLETTER):
        if rng.random() < 0.5:
            cust = rng.choice(customers)
            email, first = cust["email"], cust["first_name"]
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = _email(rng, first, last, 900000 + i)
        roll = rng.random()
        if roll < 0.04:
            email = rng.choice(BAD_EMAILS)
        elif roll < 0.07:
            email = None
        elif email and roll < 0.3:
            email = _noisy_email(rng, email)
        rows.append(
            {
                "signup_id": f"N{700000 + i}",
                "email": email,
                "first_name": first,
                "language": rng.choice(["de", "en", "fr", "hr", "it", "EN", " de "]),
                "source": rng.choice(["footer", "checkout", "popup", "event"]),
                "signed_up_at": f"2026-0{rng.randrange(1, 8)}-{rng.randrange(1, 29):02d}",
            }
        )
    # Double opt-in resubmissions: the same address signing up twice.
    rows.extend(dict(r, signup_id=f"N{800000 + n}") for n, r in enumerate(rng.sample(rows, 80)))
    return rows


N_SUBSCRIBERS = 40


def _subscribers(rng: random.Random) -> list[dict[str, str | None]]:
    """The mirror audience's source (``audiences/active_subscribers.yaml``).

    A clean, small subscription table whose ``status`` the demo changes to show removals (its
    own addresses, so its people are nobody else's).
    """
    return [
        {
            "subscriber_id": f"S{i:04d}",
            "email": f"subscriber{i:03d}@news.example.net",
            "first_name": rng.choice(FIRST_NAMES),
            "status": "unsubscribed" if i % 10 == 9 else "active",
        }
        for i in range(N_SUBSCRIBERS)
    ]


def _write(path: Path, rows: list[dict[str, str | None]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    """Write the sample CSVs next to this script."""
    rng = random.Random(SEED)
    customers = _customers(rng)
    _write(HERE / "customers.csv", customers)
    _write(HERE / "cart_events.csv", _cart_events(rng, customers))
    _write(HERE / "newsletter_signups.csv", _newsletter(rng, customers))
    # Its own generator: adding it changes none of the bytes above.
    _write(HERE / "subscribers.csv", _subscribers(random.Random(SEED + 11)))


if __name__ == "__main__":
    main()
