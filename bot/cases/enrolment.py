"""Enrolment: an agency registers a victim's contact; the victim proves it and picks a
secret.

- SMS: the notification worker sends a one-time code (`enrolment_text`). When the
  person replies with it from that number, the number is linked and they choose a
  PIN or memorable word (bot.cases.desk handles the replies).
- Telegram: the agency gives the victim a deep link (`telegram_link`); opening it
  sends /start <token>, which links the chat. Or, on an unlinked chat, the person
  verifies with their reference and secret and confirms a code sent to a linked phone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from actions import content
from bot.cases.credentials import code_digest, new_code, new_link_token
from bot.cases.models import OneTimeCode, Victim, VictimContact
from bot.config import Settings

ENROL_DAYS = 7  # an enrolment code or deep link works for a week
TELEGRAM_LINK_DAYS = 30


def enrolment_text(
    session: Session,
    settings: Settings,
    contact: VictimContact,
    now: datetime | None = None,
) -> str:
    """A fresh enrolment code for `contact` (older unused ones stop working), and the
    discreet message that carries it."""
    now = now or datetime.now(UTC)
    session.execute(
        update(OneTimeCode)
        .where(
            OneTimeCode.victim_contact_id == contact.id,
            OneTimeCode.purpose == "enrol",
            OneTimeCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    code = new_code()
    session.add(
        OneTimeCode(
            victim_id=contact.victim_id,
            purpose="enrol",
            digest=code_digest(settings.secret_key.get_secret_value(), code),
            victim_contact_id=contact.id,
            expires_at=now + timedelta(days=ENROL_DAYS),
            created_at=now,
        )
    )
    session.flush()
    return content.item("case.enrol.code").part(0, code=code)


def telegram_link(
    session: Session, settings: Settings, victim: Victim, now: datetime | None = None
) -> str:
    """A one-time Telegram deep link (or just its token when no bot username is set)."""
    now = now or datetime.now(UTC)
    token = new_link_token()
    session.add(
        OneTimeCode(
            victim_id=victim.id,
            purpose="telegram",
            digest=code_digest(settings.secret_key.get_secret_value(), token),
            expires_at=now + timedelta(days=TELEGRAM_LINK_DAYS),
            created_at=now,
        )
    )
    session.flush()
    if settings.telegram_bot_username:
        return f"https://t.me/{settings.telegram_bot_username}?start={token}"
    return token
