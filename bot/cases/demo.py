"""`python -m bot seed-demo`: fictional cases at every stage, to try a verified look-up.

Every demo victim's memorable word is `bluebell`. References run from 9900101/26 (a
case at the report stage) to 9900115/26 (parole); the README lists them. Demo phone
numbers are in Ofcom's drama range (07700 900xxx), so nothing real is ever texted; in
demo mode the one-time codes are written to the gateway log ("Demo outbox").

Seeding is idempotent: a reference that exists is left alone.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import db
from bot.cases.credentials import hash_secret
from bot.cases.events import add_event
from bot.cases.models import Case, Notification, NotificationState, Victim, VictimContact
from bot.config import Settings, get_settings

DEMO_SECRET = "bluebell"
DEMO_AGENCY = "demo"
OFFICER = "101, quoting your crime reference"
WCU = "The Witness Care Unit, through 101"


@dataclass(frozen=True)
class DemoCase:
    number: int
    crime_type: str
    events: tuple[tuple[str, int, dict[str, Any]], ...]  # (type, days ago, details)
    enhanced: bool = False
    overdue: bool = False  # leave the victim un-updated, for the watchdog
    stage: str | None = None  # set by the agency directly (no event moves a case there)

    @property
    def reference(self) -> str:
        return f"99001{self.number:02d}/26"

    @property
    def phone(self) -> str:
        return f"+447700900{100 + self.number}"  # case 99001NN/26: +4477009001NN


def _future(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


START = (("reported", 90, {}), ("investigation_started", 88, {}))
ARREST = (*START, ("suspect_arrested", 60, {}), ("suspect_interviewed", 59, {}))
CHARGED = (*ARREST, ("charged", 45, {"offences": ["burglary"]}))
HEARING = (
    *CHARGED,
    (
        "first_hearing_scheduled",
        44,
        {"date": _future(-20), "court": "Highbury Corner Magistrates' Court"},
    ),
)
PLEA = (*HEARING, ("plea_entered", 20, {"plea": "not_guilty"}))
TRIAL = (
    *PLEA,
    ("trial_scheduled", 19, {"date": _future(40), "court": "Snaresbrook Crown Court"}),
)
VERDICT = (
    *TRIAL[:-1],
    ("trial_scheduled", 19, {"date": _future(-5), "court": "Snaresbrook Crown Court"}),
    ("verdict", 5, {"outcome": "guilty"}),
)

DEMO_CASES = (
    DemoCase(1, "theft", (("reported", 3, {}),)),
    DemoCase(2, "burglary", START, overdue=True),
    DemoCase(3, "assault", (*START, ("suspect_arrested", 2, {}))),
    DemoCase(
        4,
        "domestic_abuse",
        (
            *ARREST,
            (
                "bailed_with_conditions",
                3,
                {"conditions": ["Not to contact you", "Not to go to your street"]},
            ),
        ),
        enhanced=True,
    ),
    DemoCase(5, "robbery", (*ARREST, ("released_under_investigation", 10, {}))),
    DemoCase(6, "burglary", CHARGED),
    DemoCase(
        7,
        "assault",
        (
            *ARREST,
            ("no_further_action", 6, {"decided_by": "police", "victim_told_on": _future(-6)}),
        ),
    ),
    DemoCase(
        8, "criminal_damage", (*ARREST, ("out_of_court_disposal", 12, {"disposal_type": "caution"}))
    ),
    DemoCase(9, "burglary", HEARING),
    DemoCase(10, "burglary", PLEA),
    DemoCase(11, "harassment", TRIAL, overdue=True),
    DemoCase(12, "burglary", VERDICT),
    DemoCase(13, "burglary", (*VERDICT, ("sentenced", 1, {"sentence": "2 years in prison"}))),
    DemoCase(14, "burglary", (*VERDICT, ("sentenced", 30, {}), ("appeal_lodged", 4, {}))),
    DemoCase(
        15,
        "stalking",
        (
            *VERDICT[:-2],
            ("verdict", 320, {"outcome": "guilty"}),
            ("sentenced", 300, {}),
            ("released_from_custody", 1, {}),
        ),
        enhanced=True,
        stage="parole",
    ),
)


DEMO_COORDINATOR = "demo"
DEMO_PASSWORD = "waymark-demo-console"


def seed(session: Session, settings: Settings, now: datetime | None = None) -> list[str]:
    """Create the demo cases that don't exist yet; returns the references created."""
    now = now or datetime.now(UTC)
    secret = hash_secret(DEMO_SECRET)
    created: list[str] = []
    for demo in DEMO_CASES:
        if session.scalar(select(Case.id).where(Case.reference == demo.reference)):
            continue
        first = max(days for _, days, _ in demo.events)
        case = Case(
            reference=demo.reference,
            agency=DEMO_AGENCY,
            crime_type=demo.crime_type,
            stage="report",
            enhanced_rights=demo.enhanced,
            update_every_days=settings.update_every_days,
            officer_name="DC Sam Okafor",
            officer_contact=OFFICER,
            created_at=now - timedelta(days=first),
        )
        session.add(case)
        session.flush()
        victim = Victim(
            case_id=case.id,
            external_id=f"demo-{demo.number}",
            consent_at=case.created_at,
            secret_hash=secret,
            secret_set_at=case.created_at,
        )
        session.add(victim)
        session.flush()
        session.add(
            VictimContact(
                victim_id=victim.id, channel="sms", address=demo.phone, verified_at=case.created_at
            )
        )
        for index, (kind, days, details) in enumerate(demo.events):
            when = now - timedelta(days=days, hours=1)
            add_event(
                session,
                case,
                type=kind,
                occurred_at=when,
                agency=DEMO_AGENCY,
                external_id=f"{demo.reference}:{index}",
                details=details,
                victim_informed_at=None if demo.overdue else when + timedelta(hours=2),
                now=now,
            )
        if demo.stage:
            case.stage = demo.stage
        if any(kind in {"charged", "verdict"} for kind, _, _ in demo.events):
            case.witness_care_contact = WCU
        # Demo history is not news: nothing to send about it.
        session.execute(
            update(Notification)
            .where(Notification.case_id == case.id)
            .values(state=NotificationState.CANCELLED, error="demo data")
        )
        created.append(demo.reference)
    return created


def main_seed(args: argparse.Namespace) -> int:
    settings = get_settings()
    db.migrate(settings.database_url)
    engine = db.create_sync_engine(settings.database_url)
    try:
        with Session(engine) as session, session.begin():
            created = seed(session, settings)
            seed_coordinator(session)
    finally:
        engine.dispose()
    print(f"Demo cases: {len(created)} created, {len(DEMO_CASES) - len(created)} already there.")
    print(f"References 9900101/26 to 99001{len(DEMO_CASES):02d}/26; memorable word: {DEMO_SECRET}.")
    print(
        f"Coordinator console: /console, sign in as {DEMO_COORDINATOR} "
        f"with the password {DEMO_PASSWORD!r}."
    )
    return 0


def seed_coordinator(session: Session) -> bool:
    """A demo supervisor, on duty at any time, and the default canned replies.

    Demo only: the password is public (README). Never run seed-demo in production.
    """
    from bot.handoff.accounts import add_coordinator, ensure_canned_replies
    from bot.handoff.models import Coordinator

    ensure_canned_replies(session)
    if session.scalar(select(Coordinator.id).where(Coordinator.username == DEMO_COORDINATOR)):
        return False
    add_coordinator(
        session,
        DEMO_COORDINATOR,
        display_name="Alex (demo)",
        role="supervisor",
        password=DEMO_PASSWORD,
        on_duty=True,
    )
    return True


def register(sub: Any) -> None:
    parser = sub.add_parser("seed-demo", help="add fictional demo cases (idempotent)")
    parser.set_defaults(func=main_seed)
