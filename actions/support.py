"""Signposting: ask only what is needed, then let the gateway find the services.

The gateway holds the services directory and does the matching (bot/services/). The
assistant only works out what the person has said, asks for what is missing, and
sends one marker (docs/conversation-contract.md):

    {"waymark": {"services": {"crime_types": [...], "location": ..., "postcode": ...,
                              "place": ..., "age_group": ..., "gender": ..., "lgbt": ...,
                              "language": ..., "offset": 0}}}

`support_form` asks what it is about (`crime_type`) and where the person is (a London
borough, a postcode district, or a place outside London), skipping whatever the first
message already said. Everything else comes only from clear words, never a question:

- an age ("I'm 15", "my son is 14") gives `age_group`; the gateway asks only when the
  age changes the answer, and the reply comes back as `/inform{"age_group": ...}`;
- a self-description ("I'm a man", "as a woman", "I'm gay") gives `gender` or `lgbt`
  ("my wife hits me" says nothing about the person's gender);
- a language ("I speak Polish", "in Polish") gives `language`;
- words like "keeps turning up" or "won't leave me alone" add stalking.

A full postcode is never kept: only its district ("E8 1AB" -> "E8").
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.forms import FormSteps, doesnt_know, wants_to_skip, words
from actions.messages import latest_entity, latest_intent, latest_text, marker
from actions.postcodes import district_of

MORE_KEY = "services"
PAGE = 3  # services per page: the gateway shows the top 3, then 3 more for each MORE
NOT_SAID = frozenset({"any", None})

# Clear cues in the person's own words. Ages: "I'm 15", "i am 16 years old", "aged 17",
# and a child the help is for ("my son is 14", "my 9 year old"); never "I'm 5 minutes away".
NOT_AN_AGE = (
    r"(?!\s*(?:mins?\b|minutes?|hours?|hrs?\b|miles?|km\b|metres?|meters?|%|percent|am\b|pm\b"
    r"|weeks?|months?|days?|times?|stone|kg\b|pounds?|quid|k\b|grand|st\b|nd\b|rd\b|th\b))"
)
AGE_SELF = re.compile(
    r"\b(?:i'?m|i am|im|aged)\s+(?:only\s+|just\s+)?(?P<age>\d{1,2})\b"
    r"(?:\s*(?:years?|yrs?)(?:\s*old)?|\s*y/?o\b)?" + NOT_AN_AGE
)
AGE_CHILD = re.compile(
    r"\b(?:my|our)\s+(?:(?:son|daughter|child|kid|boy|girl|brother|sister|grandson"
    r"|granddaughter|nephew|niece)\s+(?:is|who is|who's|whos|aged)\s+(?P<age>\d{1,2})\b"
    + NOT_AN_AGE
    + r"|(?P<age2>\d{1,2})[\s-]*(?:years?|yrs?)[\s-]*old)\b"
)
UNDER_16 = re.compile(r"\b(?:i'?m|i am|im)\s+under\s+16\b")
SELF = r"\b(?:i'?m|i am|im|as)\s+(?:a|an)\s+(?!not\b|never\b)(?:[a-z-]+\s+)?"
GENDER_WORDS = {
    "man": "man",
    "guy": "man",
    "bloke": "man",
    "lad": "man",
    "boy": "man",
    "dad": "man",
    "father": "man",
    "husband": "man",
    "male": "man",
    "woman": "woman",
    "lady": "woman",
    "girl": "woman",
    "mum": "woman",
    "mom": "woman",
    "mother": "woman",
    "wife": "woman",
    "female": "woman",
}
GENDER = re.compile(
    SELF + r"(?P<word>" + "|".join(GENDER_WORDS) + r")\b"
    r"|\b(?:i'?m|i am|im)\s+(?:a\s+)?(?P<adj>male|female)\b"
)
LGBT_WORDS = (
    r"(?:gay|lesbian|bi|bisexual|trans|transgender|non[- ]?binary|queer|pansexual|lgbt\w*)\b"
)
LGBT = re.compile(
    r"\b(?:i'?m|i am|im|as)\s+(?:a\s+|an\s+)?(?!not\b|never\b)(?:[a-z-]+\s+)?"
    + LGBT_WORDS
    # "I'm 17 and gay"
    + r"|\b(?:i'?m|i am|im)\s+[^.?!,]{1,20}?\s+and\s+(?:i'?m\s+)?"
    + LGBT_WORDS
)
STALKING_CUE = re.compile(
    r"\b(?:keeps?|kept|keeps? on)\s+(?:turning|showing|coming|hanging)\s+(?:up|round|around)\b"
    r"|\b(?:turn|turns|turned|turning|show|shows|showed|showing)\s+up\s+(?:at|outside)\s+my\b"
    r"|\b(?:following|follows|followed)\s+me\b"
    r"|\b(?:won'?t|wont|will not|doesn'?t|does not)\s+leave\s+me\s+alone\b"
    r"|\b(?:keeps?|kept|keeps? on|won'?t stop|wont stop)\s+(?:messaging|texting|calling|ringing"
    r"|phoning|contacting|emailing|watching|following|turning up)\b"
    r"|\bwatching\s+(?:my|our)\s+(?:house|flat|home)\b"
)

# Where the person is, when it is neither a borough nor a London postcode district.
OUTSIDE_LONDON = re.compile(r"\b(?:outside|out of|not in|not from|nowhere near)\s+london\b")
JUST_LONDON = re.compile(
    r"^(?:(?:in|central|north|south|east|west|greater|inner|outer)\s+)*london(?:\s+(?:area|uk))?$"
)
UK_POSTCODE = re.compile(
    r"(?<![A-Za-z0-9])(?P<outward>[A-Z]{1,2}[0-9][A-Z0-9]?)(?:\s*[0-9][A-Z]{2})?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
PLACE_PREFIX = re.compile(
    r"^(?:(?:i'?m|i am|im|we'?re|we are|i live|we live|living|i'?m living|based|i'?m based"
    r"|staying|i'?m staying|currently|at the moment|right now)\s+)?"
    r"(?:(?:in|at|near|around|from|by)\s+)?"
)
NOT_A_PLACE = frozenset(
    re.findall(
        r"\S+",
        """i me my you your we what why how who when where which whats help thanks thank ta
        cheers ok okay yes yeah yep no nope nah hi hello hey please pls more menu person human
        bot police court is are was were do does did can could would should will want need
        not dont don't know sure idk dunno home here there it that this just""",
    )
)
SOMETHING_ELSE = re.compile(
    r"^\W*(?:it'?s\s+|it was\s+)?(?:something else|something different|another thing|other"
    r"|none of (?:these|those|them|the above)|not (?:on|in) the list)\W*$"
)
SMALL_WORDS = frozenset({"upon", "on", "in", "the", "of", "and", "under", "by", "le"})
PLACE_MAX_WORDS = 4
PLACE_MAX_CHARS = 40


def age_group_for(age: int) -> str:
    if age < 16:
        return "under_16"
    if age < 18:
        return "16_17"
    return "adult"


def age_group_from(text: str) -> str | None:
    """The age group clear words give: "I'm 15" -> under_16, "I'm 17" -> 16_17."""
    text = text.lower()
    if UNDER_16.search(text):
        return "under_16"
    found = AGE_SELF.search(text)
    if found and 8 <= int(found.group("age")) <= 99:
        return age_group_for(int(found.group("age")))
    found = AGE_CHILD.search(text)
    if found:
        return age_group_for(int(found.group("age") or found.group("age2")))
    return None


def gender_from(text: str) -> str | None:
    found = GENDER.search(text.lower())
    if not found:
        return None
    return GENDER_WORDS[found.group("word") or found.group("adj")]


def lgbt_from(text: str) -> bool:
    return bool(LGBT.search(text.lower()))


def stalking_from(text: str) -> bool:
    return bool(STALKING_CUE.search(text.lower()))


def place_from(text: str) -> str | None:
    """A short place outside London, as the person wrote it ("Leeds"); None if not a place.

    A postcode outside London keeps only its first part ("LS1 4AB" -> "LS1").
    """
    lowered = text.lower().strip()
    if OUTSIDE_LONDON.search(lowered):
        return "outside London"
    postcode = UK_POSTCODE.search(text)
    if postcode and any(c.isdigit() for c in text):
        return postcode.group("outward").upper()
    cleaned = PLACE_PREFIX.sub("", re.sub(r"[.!,;:]+$", "", lowered).strip()).strip()
    tokens = cleaned.split()
    if not tokens or len(tokens) > PLACE_MAX_WORDS or len(cleaned) > PLACE_MAX_CHARS:
        return None
    if not re.fullmatch(r"[a-z][a-z' &.-]*", cleaned) or JUST_LONDON.match(cleaned):
        return None
    if any(word in NOT_A_PLACE for word in words(cleaned)):
        return None
    return " ".join(
        token if (index and token in SMALL_WORDS) else token[:1].upper() + token[1:]
        for index, token in enumerate(tokens)
    )


def where_from_entities(tracker: Tracker) -> dict[str, Any]:
    """A borough or postcode district in this message replaces where they said before."""
    location = latest_entity(tracker, "location")
    postcode = latest_entity(tracker, "postcode")
    place = latest_entity(tracker, "place")
    if location:
        return {"location": location, "postcode": district_of(postcode or ""), "place": None}
    if postcode:
        return {"location": None, "postcode": district_of(postcode), "place": None}
    if place:
        return {"location": None, "postcode": None, "place": str(place)[:PLACE_MAX_CHARS]}
    return {}


def request_messages(tracker: Tracker) -> list[dict[str, Any]]:
    """The person's messages since they last asked for support (all, if they never did)."""
    users = [e for e in tracker.events if e.get("event") == "user"]
    for index in range(len(users) - 1, -1, -1):
        intent = ((users[index].get("parse_data") or {}).get("intent") or {}).get("name")
        if intent == "ask_support_services":
            return users[index:]
    return users[-1:]


def _text(event: dict[str, Any]) -> str:
    text = event.get("text") or ""
    return "" if text.startswith("/") else text.lower()


def crime_types(tracker: Tracker) -> list[str]:
    """What it is about: the slot first, then other crime types and cues in the request."""
    found: list[str] = []
    slot = tracker.get_slot("crime_type")
    if slot not in NOT_SAID:
        found.append(str(slot))
    messages = request_messages(tracker)
    for event in messages:
        for entity in (event.get("parse_data") or {}).get("entities") or []:
            if entity.get("entity") == "crime_type" and entity.get("value") not in NOT_SAID:
                found.append(str(entity["value"]))
    if any(stalking_from(_text(event)) for event in messages):
        found.append("stalking")
    unique = list(dict.fromkeys(found))
    specific = [c for c in unique if c != "other"]
    return specific or unique


def person_slots(tracker: Tracker) -> dict[str, Any]:
    """age_group, gender and lgbt from clear words in the request, where not known yet."""
    texts = [_text(event) for event in request_messages(tracker)]
    found: dict[str, Any] = {}
    if tracker.get_slot("age_group") is None:
        age = next((a for a in map(age_group_from, texts) if a), None)
        if age:
            found["age_group"] = age
    if tracker.get_slot("gender") is None:
        gender = next((g for g in map(gender_from, texts) if g), None)
        if gender:
            found["gender"] = gender
    if not tracker.get_slot("lgbt") and any(map(lgbt_from, texts)):
        found["lgbt"] = True
    return found


def services_marker(tracker: Tracker, offset: int, known: dict[str, Any]) -> dict[str, Any]:
    def slot(name: str) -> Any:
        return known[name] if name in known else tracker.get_slot(name)

    location = slot("location")
    return marker(
        services={
            "crime_types": crime_types(tracker),
            "location": None if location in NOT_SAID else location,
            "postcode": district_of(slot("postcode") or ""),
            "place": slot("place") or None,
            "age_group": slot("age_group"),
            "gender": slot("gender"),
            "lgbt": bool(slot("lgbt")),
            "language": slot("language"),
            "offset": offset,
        }
    )


class ValidateSupportForm(FormSteps):
    """What it is about, then where: only what the first messages didn't say."""

    form = "support_form"
    extra_answer_intents = frozenset({"ask_support_services"})

    def next_question(self, slots: dict[str, Any], tracker: Tracker) -> str | None:
        if slots.get("crime_type") is None:
            return "crime_type"
        if all(slots.get(s) is None for s in ("location", "postcode", "place")):
            return "location"
        return None

    def not_understood(self, slot: str, tracker: Tracker) -> str:
        if JUST_LONDON.match(re.sub(r"[^a-z ]", "", latest_text(tracker)).strip()):
            return "utter_location_which_part"
        return "utter_location_not_understood"

    def skipped(self, slot: str) -> dict[str, Any]:
        if slot == "crime_type":
            return {"crime_type": "any"}
        return {"location": "any", "postcode": None, "place": None}

    def on_start(self, tracker: Tracker) -> dict[str, Any]:
        return {"support_stopped": None, **where_from_entities(tracker)}

    def on_every_turn(self, tracker: Tracker, values: dict[str, Any]) -> dict[str, Any]:
        return (
            {} if {"location", "postcode", "place"} & set(values) else where_from_entities(tracker)
        )

    def on_cancel(self, tracker: Tracker) -> dict[str, Any]:
        return {"support_stopped": True}

    def read_answer(self, slot: str, tracker: Tracker) -> dict[str, Any] | None:
        text = latest_text(tracker)
        where = where_from_entities(tracker)
        if slot == "crime_type":
            found = latest_entity(tracker, "crime_type")
            if found:
                return {"crime_type": found, **where}
            if where:  # answered where instead; what it is about is asked again
                return where
            if SOMETHING_ELSE.match(text):
                return {"crime_type": "other"}
            if wants_to_skip(text) or latest_intent(tracker) == "deny":
                return None
            if doesnt_know(text) or (
                latest_intent(tracker) in {"inform", "nlu_fallback", "ask_support_services"}
                and re.search(r"[a-z]{2}", text)
            ):
                return {"crime_type": "other"}  # their own words: general services fit
            return None
        if where:
            return where
        if wants_to_skip(text):
            return None
        if doesnt_know(text):
            return self.skipped(slot)
        place = place_from(text)
        if place:
            return {"location": None, "postcode": None, "place": place}
        return None


class ActionSupportServices(Action):
    """Ask the gateway for the services that fit (the first page of 3)."""

    def name(self) -> str:
        return "action_support_services"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.get_slot("support_stopped"):
            dispatcher.utter_message(response="utter_form_stopped")
            return [SlotSet("support_stopped", None)]
        known = person_slots(tracker)
        dispatcher.utter_message(json_message=services_marker(tracker, 0, known))
        return [
            *(SlotSet(name, value) for name, value in known.items()),
            SlotSet("more_key", MORE_KEY),
            SlotSet("more_index", float(PAGE)),
        ]


def more_services(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """MORE after the services: the next page (the gateway says when there are no more)."""
    offset = int(tracker.get_slot("more_index") or PAGE)
    dispatcher.utter_message(json_message=services_marker(tracker, offset, {}))
    return [SlotSet("more_index", float(offset + PAGE))]
