"""Needs answers and referrals in plain words, and a referral's export.

Needs answers are fixed choices (never free text), so what a person agreed to share is
exactly what the consent message said.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.models import Channel
from bot.services.models import Referral, ReferralEvent
from bot.services.schema import Service

# The answers the needs questions can give, and nothing else is kept.
NEEDS_CHOICES: dict[str, frozenset[str]] = {
    "safe_now": frozenset({"yes", "no", "skip"}),
    "communication": frozenset({"none", "interpreter", "bsl", "easy_read", "other", "skip"}),
    "disability": frozenset({"yes", "no", "skip"}),
    "others": frozenset({"children", "adults", "no", "skip"}),
    "contact": frozenset({"text", "call", "chat", "skip"}),
    "safe_times": frozenset({"morning", "afternoon", "evening", "any", "skip"}),
}
LANGUAGE_MAX = 40

REASONS = {
    "domestic_abuse": "domestic abuse",
    "sexual_violence": "sexual violence",
    "hate_crime": "a hate crime",
    "fraud": "fraud",
    "burglary": "a burglary",
    "robbery": "a robbery",
    "theft": "a theft",
    "assault": "an assault",
    "stalking": "stalking",
    "harassment": "harassment",
    "criminal_damage": "criminal damage",
    "cyber_crime": "cyber crime",
    "homicide": "losing someone to crime",
}
TIMES = {"morning": "in the morning", "afternoon": "in the afternoon", "evening": "in the evening"}


def clean_needs(raw: dict[str, Any]) -> dict[str, str]:
    """Only known questions with known answers; a language only as a short name."""
    answers = {
        key: str(raw[key])
        for key, allowed in NEEDS_CHOICES.items()
        if isinstance(raw.get(key), str) and raw[key] in allowed
    }
    language = raw.get("language")
    if (
        isinstance(language, str)
        and 0 < len(language.strip()) <= LANGUAGE_MAX
        and language.replace(" ", "").isalpha()
    ):
        answers["language"] = language.strip().title()
    return answers


def reason_text(reason: str | None) -> str:
    return REASONS.get(reason or "", "support after a crime")


def needs_text(needs: dict[str, str]) -> str:
    """What the person told us about their needs, as one plain phrase."""
    said: list[str] = []
    if needs.get("safe_now") == "yes":
        said.append("you feel safe now")
    elif needs.get("safe_now") == "no":
        said.append("you don't feel safe now")
    communication = needs.get("communication")
    language = needs.get("language")
    if communication == "interpreter":
        said.append(f"you need a {language} interpreter" if language else "you need an interpreter")
    elif communication == "bsl":
        said.append("you need a British Sign Language interpreter")
    elif communication == "easy_read":
        said.append("you'd like information in Easy Read")
    elif communication == "other":
        said.append("you have other needs to understand and be understood")
    elif language:
        said.append(f"you speak {language}")
    if needs.get("disability") == "yes":
        said.append("you have a disability or health condition to tell them about")
    if needs.get("others") == "children":
        said.append("children are affected too")
    elif needs.get("others") == "adults":
        said.append("other adults are affected too")
    return "; ".join(said) if said else "nothing, as you didn't tell me any"


def contact_route(channel: str, address: str, needs: dict[str, str]) -> dict[str, Any]:
    """How the service may contact the person: their number only if they texted us from
    it and chose a text or a call; otherwise through this conversation, via our team."""
    chosen = needs.get("contact")
    times = needs.get("safe_times")
    route: dict[str, Any] = {"channel": channel, "safe_times": times if times in TIMES else None}
    if channel == Channel.SMS and chosen in {"text", "call"}:
        route.update(method=chosen, phone=address)
    else:
        route.update(method="waymark", phone=None)
    return route


def contact_text(route: dict[str, Any]) -> str:
    method = route.get("method")
    text = {
        "text": "by text to this number",
        "call": "by phone on this number",
    }.get(method or "", "through this chat, via our team")
    when = TIMES.get(route.get("safe_times") or "")
    return f"{text}, {when}" if when else text


def export(referral: Referral, service: Service, events: list[ReferralEvent]) -> dict[str, Any]:
    """The structured referral a coordinator sends on (JSON, and the printable page)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": referral.id,
        "status": referral.status,
        "created_at": iso(referral.consented_at),
        "updated_at": iso(referral.updated_at),
        "conversation_id": referral.conversation_id,
        "service": {
            "id": service.id,
            "name": service.name,
            "organisation": service.organisation,
            "contacts": [
                {"kind": c.kind, "value": c.value, "note": c.note} for c in service.contacts
            ],
        },
        "reason": {"crime_type": referral.reason, "text": reason_text(referral.reason)},
        "needs": {"answers": referral.needs, "text": needs_text(referral.needs)},
        "contact": {**referral.contact, "text": contact_text(referral.contact)},
        "consent": {"given_at": iso(referral.consented_at), "by": "the person, in this chat"},
        "history": [
            {"status": e.status, "by": e.by, "note": e.note, "at": iso(e.at)} for e in events
        ],
    }
