"""The matched services as SMS-sized messages (each at most 2 GSM-7 segments).

    These services can help. 1) National Domestic Abuse Helpline: call 0808 2000 247.
    Free, 24/7, for anyone affected by domestic abuse. 2) ...
    3) Victim Support: call 0808 168 9111. Free, 24/7, for any crime, reported or not.
    Reply MORE for other services, or REFER and we can ask one to contact you.

The first message has the first 2 results and the next has the rest; a message that
would be too long is split between results. The wording around the results lives in
content/services.yml.
"""

from __future__ import annotations

from datetime import UTC, datetime

from actions.content import item
from bot.services import hours
from bot.services.matching import Match, Query
from bot.services.schema import Contact

SMS_LIMIT = 306  # 2 GSM-7 segments of 153
FIRST_MESSAGE_RESULTS = 2
GSM7_EXTENDED = frozenset("^{}\\[~]|€")  # each takes 2 of the 306
ACTIONS = {
    "phone": "call {}",
    "text": "text {}",
    "chat": "chat at {}",
    "web": "go to {}",
    "email": "email {}",
}
AGE_BUTTONS = (
    ("Under 16", "under_16"),
    ("16 or 17", "16_17"),
    ("18 or over", "adult"),
    ("I'd rather not say", "any"),
)


def sms_length(text: str) -> int:
    """GSM-7 units (the extension table's characters take 2)."""
    return sum(2 if c in GSM7_EXTENDED else 1 for c in text)


def contact_text(contact: Contact, *, note: bool = True) -> str:
    """How to get in touch: "call 0808 2000 247", "chat at 247sexualabusesupport.org.uk"."""
    text = ACTIONS[contact.kind].format(contact.value)
    if note and contact.note:
        text += f" ({contact.note.rstrip('.')})"
    return text


def result_line(
    number: int, found: Match, at: datetime, *, compact: bool = False, room: int = SMS_LIMIT
) -> str:
    """One result: "1) Name: call 0808 168 9111. Free, 24/7, for ...".

    `compact` leaves out the note of a website, chat or email address (it only describes
    it), never a phone or text note (it says how to get through: "press 2 for ...").
    Past `room` the reason is cut short, so the name and the way in always show."""
    contact, _ = hours.best_contact(found.service, at)
    keep_note = not compact or contact.kind in ("phone", "text")
    reason = found.reason
    for note in (keep_note, False):
        way_in = f"{number}) {found.service.name}: {contact_text(contact, note=note)}."
        space = room - sms_length(way_in) - 1
        if sms_length(reason) <= space:
            return f"{way_in} {reason}"
        if space >= 12:  # enough for a few words of the reason
            return f"{way_in} {_cut(reason, space)}"
    return way_in if sms_length(way_in) <= room else _cut(way_in, room)


def _cut(text: str, room: int) -> str:
    """`text` cut at a word to fit `room`, ending "..."."""
    while sms_length(text) > room:
        text = text[: room - 3].rsplit(" ", 1)[0].rstrip(",.") + "..."
    return text


def _fits(parts: list[str]) -> bool:
    return sms_length(" ".join(parts)) <= SMS_LIMIT


def _message(fixed: list[str], full: list[str], compact: list[str], after: list[str]) -> str | None:
    """`fixed` + the results + `after` as one text, leaving out notes only if it must."""
    for lines in (full, compact):
        if _fits([*fixed, *lines, *after]):
            return " ".join([*fixed, *lines, *after])
    return None


def _pack(intro: str, full: list[str], compact: list[str], tail: list[str]) -> list[str]:
    """The first 2 results with the intro, the rest with the prompts after them; else the
    prompts on their own; else as many results to a message as fit."""
    head, rest, none = (
        slice(0, FIRST_MESSAGE_RESULTS),
        slice(FIRST_MESSAGE_RESULTS, None),
        slice(0, 0),
    )
    plans = (
        [([intro], head, []), ([], rest, tail)] if full[rest] else [([intro], head, tail)],
        [([intro], head, []), ([], rest, []), ([], none, tail)],
    )
    for plan in plans:
        plan = [(fixed, part, after) for fixed, part, after in plan if fixed or full[part] or after]
        texts = [_message(fixed, full[part], compact[part], after) for fixed, part, after in plan]
        if None not in texts:
            return [t for t in texts if t is not None]
    # Greedy: each result where it fits, each prompt likewise.
    messages: list[str] = []
    current = [intro]
    for line, short in zip(full, compact, strict=True):
        for variant in (line, short):
            if _fits([*current, variant]):
                current.append(variant)
                break
        else:
            if current == [intro]:  # cut this one short rather than send the intro alone
                room = SMS_LIMIT - sms_length(intro) - 1
                current.append(short if sms_length(short) <= room else short[: room - 3] + "...")
            else:
                messages.append(" ".join(current))
                current = [line]
    for text in tail:
        if not _fits([*current, text]):
            messages.append(" ".join(current))
            current = []
        current.append(text)
    messages.append(" ".join(current))
    return messages


def _is_other_language(query: Query) -> bool:
    return bool(query.language and query.language.strip().lower() != "english")


def _prompt(matches: list[Match], offset: int, total: int) -> str | None:
    more = offset + len(matches) < total
    refer = any(m.service.referrals for m in matches)
    if more and refer:
        return item("services.more_refer").part(0)
    if more:
        return item("services.more").part(0)
    if refer:
        return item("services.refer").part(0)
    return None


def results(matches: list[Match], query: Query, *, offset: int, total: int) -> list[str]:
    """The texts to send, in order; each fits 2 SMS segments."""
    if not matches:
        return [item("services.none" if offset == 0 else "services.no_more").part(0)]
    at = query.at or datetime.now(UTC)
    if offset:
        intro = item("services.intro_more").part(0)
    elif query.outside_london:
        intro = item("services.intro_national").part(0)
    else:
        intro = item("services.intro").part(0)
    tail = []
    if offset == 0 and _is_other_language(query):
        tail.append(item("services.language").part(0))
    prompt = _prompt(matches, offset, total)
    if prompt:
        tail.append(prompt)

    full = [result_line(n, m, at) for n, m in enumerate(matches, start=offset + 1)]
    compact = [result_line(n, m, at, compact=True) for n, m in enumerate(matches, start=offset + 1)]
    return _pack(intro, full, compact, tail)


def age_question() -> tuple[str, list[dict[str, str]]]:
    """The one question that can change the list, with a button per answer."""
    buttons = [
        {"title": title, "payload": f'/inform{{"age_group":"{value}"}}'}
        for title, value in AGE_BUTTONS
    ]
    return item("services.age_question").part(0), buttons
