"""The needs assessment: a few short, optional questions, asked once and reused.

`needs_form` asks, one at a time: are you safe now, what helps you communicate (and
which language, for an interpreter, if not known yet), a disability or health condition
(no details), anyone else affected, how services should contact you and when that is
safe. Every question has a Skip button; "skip", "rather not say" or a plain no skips it
(a no that answers the question, like "no" to "are you safe?", is that answer);
"cancel" ends the questions keeping what was given. It never blocks help.

The answers are not kept here: `action_store_needs` sends them to the gateway, which
stores them for the person, and then clears them from the conversation.

    {"waymark": {"needs": {"safe_now": ..., "communication": ..., "language": ...,
                           "disability": ..., "others": ..., "contact": ...,
                           "safe_times": ...}}}

"No" to "are you safe right now?" ends the questions at once: only
`{"needs": {"safe_now": "no"}}` is sent, and the gateway sends the emergency route and
asks a person to take over, urgently.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.forms import REQUESTED_SLOT, FormSteps, doesnt_know, wants_to_skip, words
from actions.messages import latest_entity, latest_intent, latest_text, marker
from actions.referrals import offer_events, referral_cleared

# slot -> the values it takes (the marker's field is the slot name without "needs_").
NEEDS: dict[str, tuple[str, ...]] = {
    "needs_safe_now": ("yes", "no", "skip"),
    "needs_communication": ("none", "interpreter", "bsl", "easy_read", "other", "skip"),
    "needs_disability": ("yes", "no", "skip"),
    "needs_others": ("children", "adults", "no", "skip"),
    "needs_contact": ("text", "call", "chat", "skip"),
    "needs_safe_times": ("morning", "afternoon", "evening", "any", "skip"),
}
ORDER = (
    "needs_safe_now",
    "needs_communication",
    "language",
    "needs_disability",
    "needs_others",
    "needs_contact",
    "needs_safe_times",
)
NEGATION = frozenset({"no", "not", "dont", "don't", "never", "nor", "without"})

YES = re.compile(
    r"^\W*(?:yes|yeah|yea|yep|yup|ya|y|ok|okay|sure|i am|i do|i have|i think so|correct|right)\b"
)
# "Are you safe right now?": only a plain yes counts ("I am at home with him" is not one).
PLAIN_YES = re.compile(
    r"^\W*(?:yes|yeah|yea|yep|yup|ya|y|i am|i think so|i'?m safe)\b[\w\s,.!]{0,12}$"
)
NO = re.compile(
    r"^\W*(?:no|nope|nah|na|n|not really|none|nothing|nobody|no one|i'?m not|i am not"
    r"|i don'?t|i do not|i haven'?t|i have not)\b"
)
NOT_SAFE = re.compile(
    r"\b(?:not safe|unsafe|don'?t feel safe|do not feel safe|not feeling safe|in danger|scared)\b"
)
SAFE = re.compile(r"\b(?:i'?m safe|i am safe|safe now|feel safe|i'?m ok|i'?m okay|i'?m fine)\b")

# Words for each answer, first match in the message wins (negated words are ignored).
KEYWORDS: dict[str, list[tuple[str, str]]] = {
    "needs_communication": [
        (r"interpret\w*|translat\w*|in my language|my own language|language", "interpreter"),
        (r"bsl|sign language|signing|signer|deaf", "bsl"),
        (
            r"easy read|easy-read|simple words|simple english|plain english|learning disabilit\w*",
            "easy_read",
        ),
        (r"something else|other", "other"),
        (r"no|none|nothing|i'?m fine|i'?m ok|not needed|no thanks|don'?t need|do not need", "none"),
    ],
    "needs_others": [
        (r"child\w*|kids?|son|sons|daughters?|baby|babies|toddler|teenagers?", "children"),
        (
            r"adults?|partner|husband|wife|mum|mother|dad|father|parents?|grandparents?|nan"
            r"|grandad|brother|sister|flatmates?|housemates?|friends?|family|carer|neighbours?",
            "adults",
        ),
        (r"no|none|nobody|no one|just me|only me|myself|not really", "no"),
    ],
    "needs_contact": [
        (r"texts?|texting|sms|txt|message me|messages", "text"),
        (r"calls?|calling|phone|phoning|ring|ringing|rang", "call"),
        (r"chat|here|this conversation|online|on this|this app|telegram|web", "chat"),
    ],
    "needs_safe_times": [
        (r"any ?time|anytime|whenever|all day|any|doesn'?t matter|don'?t mind", "any"),
        (r"mornings?|breakfast|early|before (?:noon|lunch|midday)", "morning"),
        (r"afternoons?|lunch\w*|midday|after (?:noon|lunch)|school hours", "afternoon"),
        (r"evenings?|nights?|after work|after dinner|tonight|late", "evening"),
    ],
}
LANGUAGE_WORDS = re.compile(r"[a-z][a-z -]{1,30}")


FILLERS = frozenset({"a", "an", "to", "want", "need", "like", "by", "any"})


def _negated(text: str, start: int) -> bool:
    """ "no kids", "don't call", "don't want a call": a negation just before the word."""
    before = words(text[:start])
    while before and before[-1] in FILLERS:
        before.pop()
    return bool(before) and before[-1] in NEGATION


def by_keywords(slot: str, text: str) -> str | None:
    """The first answer whose words appear, not negated ("don't call, text me" -> text)."""
    best: tuple[int, str] | None = None
    for pattern, value in KEYWORDS[slot]:
        for found in re.finditer(rf"\b(?:{pattern})\b", text):
            if found.group(0) in NEGATION or not _negated(text, found.start()):
                if best is None or found.start() < best[0]:
                    best = (found.start(), value)
                break
    return best[1] if best else None


def yes_or_no(text: str) -> str | None:
    if NO.search(text):
        return "no"
    if YES.search(text):
        return "yes"
    return None


def typed_answer(slot: str, text: str) -> str | None:
    """A typed reply to a question, in the slot's values; None if it doesn't say."""
    text = text.lower().strip()
    if slot == "needs_safe_now":
        if NOT_SAFE.search(text):
            return "no"
        if SAFE.search(text):
            return "yes"
        if NO.search(text):
            return "no"
        return "yes" if PLAIN_YES.search(text) else None
    if slot == "needs_disability":
        return yes_or_no(text)
    return by_keywords(slot, text)


def asked_since_start(tracker: Tracker, slot: str) -> bool:
    """Whether this run of the questions has already asked for `slot`."""
    asked = False
    for event in tracker.events:
        if event.get("event") == "active_loop":
            asked = False
        elif (
            event.get("event") == "slot"
            and event.get("name") == REQUESTED_SLOT
            and event.get("value") == slot
        ):
            asked = True
    return asked


def needs_answers(tracker: Tracker) -> dict[str, Any]:
    """The marker's fields: every question, "skip" where there is no answer."""
    answers: dict[str, Any] = {}
    for slot in NEEDS:
        value = tracker.get_slot(slot)
        answers[slot.removeprefix("needs_")] = value if value in NEEDS[slot] else "skip"
    answers["language"] = tracker.get_slot("language")
    order = ("safe_now", "communication", "language", "disability", "others", "contact")
    return {key: answers[key] for key in (*order, "safe_times")}


def reset_needs() -> list[EventType]:
    return [SlotSet(slot, None) for slot in NEEDS]


class ValidateNeedsForm(FormSteps):
    form = "needs_form"
    extra_answer_intents = frozenset({"tell_needs"})

    def next_question(self, slots: dict[str, Any], tracker: Tracker) -> str | None:
        if slots.get("needs_safe_now") == "no":
            return None  # not safe: nothing else is asked
        for slot in ORDER:
            if slot == "language":
                if (
                    slots.get("needs_communication") == "interpreter"
                    and not slots.get("language")
                    and not asked_since_start(tracker, "language")
                ):
                    return slot
            elif slots.get(slot) is None:
                return slot
        return None

    def not_understood(self, slot: str, tracker: Tracker) -> str:
        return "utter_needs_not_understood"

    def skipped(self, slot: str) -> dict[str, Any]:
        return {"language": None} if slot == "language" else {slot: "skip"}

    def on_start(self, tracker: Tracker) -> dict[str, Any]:
        # A fresh assessment: answers from questions that were cut short are not reused.
        values: dict[str, Any] = {slot: None for slot in NEEDS}
        # "I need an interpreter" (tell_needs) already answers one question.
        said = by_keywords("needs_communication", latest_text(tracker))
        if latest_intent(tracker) == "tell_needs" and said in {"interpreter", "bsl", "easy_read"}:
            values["needs_communication"] = said
            language = latest_entity(tracker, "language")
            if said == "interpreter" and language:
                values["language"] = language
        return values

    def read_answer(self, slot: str, tracker: Tracker) -> dict[str, Any] | None:
        text = latest_text(tracker)
        language = latest_entity(tracker, "language")
        if slot == "language":
            if language:
                return {"language": language}
            cleaned = re.sub(r"\b(?:in|the|please|pls|language|i speak|speak)\b", " ", text)
            cleaned = " ".join(cleaned.split())
            if (
                cleaned
                and LANGUAGE_WORDS.fullmatch(cleaned)
                and len(cleaned.split()) <= 2
                and not wants_to_skip(text)
                and not doesnt_know(text)
                and not re.fullmatch(r"(?:no|none|nope|nah|skip|english)", cleaned)
            ):
                return {"language": cleaned.title()}
            return None
        given = latest_entity(tracker, slot)
        if given in NEEDS[slot]:
            return {slot: given}
        if slot == "needs_communication" and language:
            return {slot: "interpreter", "language": language}
        found = typed_answer(slot, text)
        return {slot: found} if found else None


class ActionStoreNeeds(Action):
    """Send the answers to the gateway, clear them here, then go on with a referral."""

    def name(self) -> str:
        return "action_store_needs"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.get_slot("needs_safe_now") == "no":
            # The gateway sends the emergency route and asks a person to take over.
            dispatcher.utter_message(json_message=marker(needs={"safe_now": "no"}))
            return [*reset_needs(), *referral_cleared()]
        events = reset_needs()
        if any(tracker.get_slot(slot) is not None for slot in NEEDS):
            dispatcher.utter_message(json_message=marker(needs=needs_answers(tracker)))
        elif not tracker.get_slot("referral_service"):
            dispatcher.utter_message(response="utter_form_stopped")  # cancelled before any answer
        service = tracker.get_slot("referral_service")
        if service:
            return [*events, *offer_events(dispatcher, tracker, service)]
        return [*events, *referral_cleared()]
