"""Directory entries for tests: a valid entry, changed only where a test says."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.services.schema import Service, validate_entry

LONDON = ZoneInfo("Europe/London")
TODAY = date(2026, 11, 26)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]

GOOD: dict[str, Any] = {
    "id": "national-domestic-abuse-helpline",
    "name": "National Domestic Abuse Helpline",
    "organisation": "Refuge",
    "types": ["domestic_abuse"],
    "crime_types": ["domestic_abuse"],
    "for_whom": "anyone affected by domestic abuse",
    "eligibility": {
        "age_min": None,
        "age_max": None,
        "genders": "any",
        "specialist_for": [],
        "criteria": None,
    },
    "coverage": {"area": "national", "boroughs": []},
    "contacts": [
        {
            "kind": "phone",
            "value": "0808 2000 247",
            "note": None,
            "hours": "always",
            "bank_holidays": "usual",
        },
        {
            "kind": "chat",
            "value": "nationaldahelpline.org.uk",
            "note": "live chat on the website",
            "hours": [
                {"days": ["mon", "tue", "wed", "thu"], "opens": "10:00", "closes": "20:30"},
                {"days": ["fri"], "opens": "10:00", "closes": "16:30"},
            ],
            "bank_holidays": None,
        },
    ],
    "free": True,
    "self_referral": True,
    "referrals": True,
    "police_report_needed": False,
    "languages": ["English"],
    "interpreters": True,
    "commissioned_by": None,
    "summary": None,
    "sources": ["https://refuge.org.uk/news/example"],
    "last_verified": date(2026, 11, 26),
}


def at(day: str, clock: str = "12:00") -> datetime:
    """A London moment: at("2026-12-02", "14:00")."""
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=LONDON)


def contact(
    kind: str = "phone",
    value: str | None = None,
    hours: Any = "always",
    bank_holidays: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    default = {
        "phone": "0808 168 9111",
        "text": "07717 989 025",
        "chat": "victimsupport.org.uk",
        "web": "example.org.uk",
        "email": "help@example.org.uk",
    }[kind]
    return {
        "kind": kind,
        "value": value or default,
        "note": note,
        "hours": hours,
        "bank_holidays": bank_holidays,
    }


def period(days: list[str], opens: str, closes: str) -> dict[str, Any]:
    return {"days": days, "opens": opens, "closes": closes}


def raw(**changes: Any) -> dict[str, Any]:
    """The good entry with top-level fields replaced; `eligibility` and `coverage`
    changes are merged into the good ones."""
    entry = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if key in ("eligibility", "coverage") and isinstance(value, dict):
            entry[key] = {**entry[key], **value}
        else:
            entry[key] = value
    return entry


def service(service_id: str, **changes: Any) -> Service:
    """A valid service: the good entry with a new id (and name, unless given)."""
    changes.setdefault("name", service_id.replace("-", " ").title())
    return validate_entry(raw(id=service_id, **changes), today=TODAY)
