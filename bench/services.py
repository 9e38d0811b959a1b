"""Services matching benchmark (issue 6): `Directory.match` over a 5,000-service directory.

1. Build a synthetic directory of 5,000 valid entries (through the same validation as the
   real file): a realistic mix of service types, crime types, coverage (national,
   London-wide, one to three boroughs), opening hours (24/7, unknown, office hours, evenings,
   past midnight, weekends), age and gender limits, specialisms and languages.
2. Time building the indexes (`Directory(services)`).
3. Run a few thousand varied queries (crime types or none, a borough or none or outside
   London, age group, gender, LGBT+, language, urgency; at moments spread over a year,
   nights, weekends and bank holidays included): p50/p95/p99 of `match` (top 3).
   Target p95 < 10 ms. Also timed: the desk's whole step (question, match, total, render).
4. The same queries over the real directory (content/services/directory.yml, about 25
   services), for the ratio.

Run from the repo root: `.venv/bin/python bench/services.py` (about 20 seconds).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.services import render, schema
from bot.services.matching import Directory, Query
from bot.services.schema import BOROUGHS, CRIME_TYPES, GROUPS, Service

LONDON = ZoneInfo("Europe/London")
TARGET_MS = 10.0
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]

# Service types with how often they occur, and the crime types each usually serves.
TYPES: list[tuple[str, float, tuple[str, ...]]] = [
    ("general", 0.14, ("any",)),
    ("domestic_abuse", 0.16, ("domestic_abuse",)),
    ("idva", 0.08, ("domestic_abuse",)),
    ("sexual_violence", 0.08, ("sexual_violence",)),
    ("isva", 0.05, ("sexual_violence",)),
    ("stalking", 0.04, ("stalking", "harassment")),
    ("hate_crime", 0.05, ("hate_crime",)),
    ("fraud", 0.05, ("fraud", "cyber_crime")),
    ("children_young_people", 0.08, ("any",)),
    ("male_victims", 0.03, ("domestic_abuse", "sexual_violence")),
    ("lgbt", 0.03, ("domestic_abuse", "hate_crime", "sexual_violence")),
    ("black_minoritised_women", 0.03, ("domestic_abuse", "sexual_violence")),
    ("forced_marriage_honour", 0.02, ("domestic_abuse",)),
    ("mental_health_crisis", 0.05, ("any",)),
    ("court_witness", 0.04, ("any",)),
    ("reporting", 0.04, ("any",)),
    ("emergency", 0.01, ("any",)),
    ("general", 0.02, ("burglary", "robbery", "theft", "assault", "criminal_damage")),
]
LANGUAGES = ["Polish", "Somali", "Bengali", "Arabic", "Portuguese", "Romanian", "Turkish"]


def hours_choice(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.15:
        return "always"
    if roll < 0.45:
        return None
    if roll < 0.75:
        return [{"days": WEEKDAYS, "opens": "09:00", "closes": "17:00"}]
    if roll < 0.85:
        return [
            {"days": WEEKDAYS[:4], "opens": "10:00", "closes": "20:30"},
            {"days": ["fri"], "opens": "10:00", "closes": "16:30"},
        ]
    if roll < 0.90:
        return [{"days": ["fri", "sat"], "opens": "22:00", "closes": "04:00"}]
    return [
        {"days": WEEKDAYS, "opens": "08:00", "closes": "22:00"},
        {"days": ["sat", "sun"], "opens": "09:00", "closes": "18:00"},
    ]


def entry(n: int, rng: random.Random) -> dict[str, Any]:
    service_type, _, crimes = rng.choices(TYPES, weights=[w for _, w, _ in TYPES])[0]
    area_roll = rng.random()
    if area_roll < 0.10:
        coverage: dict[str, Any] = {"area": "national", "boroughs": []}
    elif area_roll < 0.25:
        coverage = {"area": "london", "boroughs": []}
    else:
        coverage = {"area": "boroughs", "boroughs": rng.sample(BOROUGHS, rng.randint(1, 3))}
    # About 2% share a phone number with another service (a helpline and its local line).
    number = n if n == 0 or rng.random() > 0.02 else n - 1
    contacts = [
        {
            "kind": "phone",
            "value": f"0800 {number:06d}",
            "hours": hours_choice(rng),
            "bank_holidays": rng.choice([None, None, "closed", "usual"]),
        }
    ]
    for kind in rng.sample(["text", "chat", "web", "email"], rng.randint(0, 2)):
        value = {
            "text": f"07700 {n:06d}",
            "chat": f"service-{n}.org.uk/chat",
            "web": f"service-{n}.org.uk",
            "email": f"help@service-{n}.org.uk",
        }[kind]
        contacts.append({"kind": kind, "value": value, "hours": hours_choice(rng)})
    age_min = age_max = None
    if service_type == "children_young_people":
        age_max = rng.choice([15, 17, 18, 24])
    elif rng.random() < 0.08:
        age_min = rng.choice([16, 18])
    specialist = []
    if rng.random() < 0.15:
        specialist = rng.sample(GROUPS, rng.randint(1, 2))
    genders = "any"
    if service_type == "male_victims":
        genders = "men"
    elif service_type == "black_minoritised_women" or rng.random() < 0.05:
        genders = "women"
    languages = ["English"]
    if rng.random() < 0.12:
        languages += rng.sample(LANGUAGES, rng.randint(1, 3))
    return {
        "id": f"service-{n:05d}",
        "name": f"{service_type.replace('_', ' ').title()} service {n}",
        "organisation": f"Organisation {n % 700}",
        "types": [service_type],
        "crime_types": list(crimes),
        "for_whom": "anyone affected by crime in the area it covers",
        "eligibility": {
            "age_min": age_min,
            "age_max": age_max,
            "genders": genders,
            "specialist_for": specialist,
        },
        "coverage": coverage,
        "contacts": contacts,
        "free": rng.choice([True, True, None]),
        "self_referral": True,
        "referrals": rng.random() < 0.6,
        "police_report_needed": rng.random() < 0.05,
        "languages": languages,
        "interpreters": rng.random() < 0.2,
        "sources": [f"https://service-{n}.org.uk/about"],
        "last_verified": date(2026, 11, 1) - timedelta(days=rng.randint(0, 400)),
    }


def synthetic(count: int, seed: int) -> list[Service]:
    rng = random.Random(seed)
    return schema.validate_entries([entry(n, rng) for n in range(count)])


def queries(count: int, seed: int) -> list[Query]:
    rng = random.Random(seed + 1)
    start = datetime(2026, 1, 1, tzinfo=LONDON)
    made = []
    for _ in range(count):
        crime_roll = rng.random()
        crimes: tuple[str, ...] = ()
        if crime_roll > 0.2:
            crimes = tuple(rng.sample(CRIME_TYPES, 1 if crime_roll < 0.85 else 2))
        place_roll = rng.random()
        made.append(
            Query(
                crime_types=crimes,
                borough=rng.choice(BOROUGHS) if place_roll < 0.7 else None,
                outside_london=place_roll > 0.9,
                age_group=rng.choice([None, None, "under_16", "16_17", "adult", "adult", "any"]),
                gender=rng.choice([None, None, "woman", "man"]),
                lgbt=rng.random() < 0.05,
                language=rng.choice([*LANGUAGES, "English"]) if rng.random() < 0.1 else None,
                urgent=rng.random() < 0.1,
                # Any minute of the year: nights, weekends and bank holidays included.
                at=start + timedelta(minutes=rng.randrange(365 * 24 * 60)),
            )
        )
    return made


def timed(run: Callable[[Query], object], work: list[Query]) -> list[float]:
    for query in work[:50]:  # warm up
        run(query)
    times = []
    for query in work:
        started = time.perf_counter()
        run(query)
        times.append((time.perf_counter() - started) * 1000)
    return times


def desk_step(directory: Directory) -> Callable[[Query], object]:
    """What the gateway does per request: the question, the top 3, the total, the SMS."""

    def run(query: Query) -> object:
        if directory.question(query):
            return render.age_question()
        matches = directory.match(query)
        return render.results(matches, query, offset=0, total=directory.total(query))

    return run


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, ms: list[float]) -> str:
    return (
        f"{name:<44} n={len(ms):<5} p50 {statistics.median(ms):6.2f}  p95 {pct(ms, 0.95):6.2f}"
        f"  p99 {pct(ms, 0.99):6.2f}  max {max(ms):6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=5000, help="synthetic directory size")
    parser.add_argument("--queries", type=int, default=3000, help="queries to time")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    started = time.perf_counter()
    big_services = synthetic(args.services, args.seed)
    generated = time.perf_counter() - started
    builds = []
    for _ in range(3):
        started = time.perf_counter()
        big = Directory(big_services)
        builds.append(time.perf_counter() - started)
    real = Directory(schema.load_file())
    work = queries(args.queries, args.seed)

    big_match = timed(lambda q: big.match(q), work)
    real_match = timed(lambda q: real.match(q), work)
    big_desk = timed(desk_step(big), work)
    candidates = [big.total(q) for q in work]

    p95 = pct(big_match, 0.95)
    print(f"\nServices matching benchmark ({len(work):,} queries, seed {args.seed})")
    print(
        f"synthetic directory: {len(big_services):,} entries generated and validated in "
        f"{generated:.2f} s; {len(big):,} rankable (emergency ones are not ranked)"
    )
    print(
        f"index build (Directory(...)): median of 3 {statistics.median(builds) * 1000:.0f} ms"
        f"; candidates per query: median {statistics.median(candidates):.0f},"
        f" max {max(candidates)}"
    )
    print(row(f"match, top 3 ({len(big):,} services)", big_match))
    print(row(f"match, top 3 (real directory, {len(real)} services)", real_match))
    print(row(f"question + match + total + render ({len(big):,})", big_desk))
    print(
        f"p95 ratio {len(big):,} / {len(real)} services: {p95 / pct(real_match, 0.95):.1f}x"
        f"; target p95 < {TARGET_MS:.0f} ms: {'met' if p95 < TARGET_MS else 'MISSED'}"
        f" (p95/target {p95 / TARGET_MS:.2f})"
    )


if __name__ == "__main__":
    main()
