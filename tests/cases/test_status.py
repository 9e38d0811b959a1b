"""The answer to "any news on my case?" and the event summaries: built from model objects
in memory (no database), checked for wording, dates, contacts and SMS size."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from actions import content
from bot.cases import status
from bot.cases.models import Case, CaseEvent
from bot.cases.status import case_status, event_summary
from bot.cases.vocabulary import EVENT_TYPES, STAGES, validate_details
from bot.channels.sms_text import is_gsm7, segments
from bot.gateway import Reply

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
YESTERDAY = NOW - timedelta(days=1)  # Monday 9 March 2026
NEXT_UPDATE = "Tuesday 7 April 2026"  # NOW + 28 days
REFERENCE = "4301234/26"
WCU = "wcu.london@example.org"

# Full details for every event type, as an agency might send them.
FULL: dict[str, dict[str, Any]] = {
    "bailed_with_conditions": {
        "conditions": ["Not to contact you", "Not to go to Acacia Road"],
        "until": "2026-06-01",
    },
    "bail_conditions_changed": {"conditions": ["Not to contact you"]},
    "charged": {"offences": ["burglary", "criminal damage"]},
    "no_further_action": {"decided_by": "police", "victim_told_on": "2026-03-09"},
    "out_of_court_disposal": {"disposal_type": "conditional_caution"},
    "first_hearing_scheduled": {
        "date": "2026-04-20",
        "court": "Highbury Corner Magistrates' Court",
    },
    "plea_entered": {"plea": "not_guilty"},
    "trial_scheduled": {"date": "2026-09-14", "court": "Wood Green Crown Court"},
    "trial_adjourned": {"new_date": "2026-11-02", "court": "Wood Green Crown Court"},
    "verdict": {"outcome": "guilty"},
    "sentenced": {"sentence": "2 years in prison"},
    "officer_changed": {
        "officer_name": "DC Sam Patel",
        "officer_contact": "101, quoting 4301234/26",
    },
}
# Only what the vocabulary requires: the optional details are missing.
MINIMAL: dict[str, dict[str, Any]] = {
    "charged": {"offences": ["theft"]},
    "no_further_action": {"decided_by": "cps"},
    "out_of_court_disposal": {"disposal_type": "other"},
    "first_hearing_scheduled": {
        "date": "2026-04-20",
        "court": "Highbury Corner Magistrates' Court",
    },
    "plea_entered": {"plea": "guilty"},
    "trial_scheduled": {"date": "2026-09-14", "court": "Wood Green Crown Court"},
    "verdict": {"outcome": "not_guilty"},
    "officer_changed": {"officer_name": "DC Sam Patel", "officer_contact": "team@example.org"},
}
# The event that usually puts a case at each stage (parole has none).
STAGE_EVENT = {kind.stage: name for name, kind in reversed(EVENT_TYPES.items()) if kind.stage}


def make_case(stage: str = "investigation", **fields: Any) -> Case:
    values: dict[str, Any] = {
        "reference": REFERENCE,
        "agency": "met",
        "crime_type": "burglary",
        "stage": stage,
        "update_every_days": 28,
        "created_at": datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    }
    return Case(**{**values, **fields})


def make_event(
    type: str, occurred_at: datetime = YESTERDAY, details: dict[str, Any] | None = None
) -> CaseEvent:
    # Checked and normalised as the agency API stores them (dates as ISO text).
    clean = validate_details(type, details if details is not None else FULL.get(type))
    return CaseEvent(type=type, occurred_at=occurred_at, agency="met", details=clean or None)


def assert_sms_sized(text: str) -> None:
    assert is_gsm7(text), text
    assert 0 < segments(text) <= 2 and len(text) <= 306, text


def assert_reads_well(text: str) -> None:
    for leftover in ("{", "}", "$", "None", "[", "..", " ,", " ."):
        assert leftover not in text, f"{leftover!r} in {text!r}"


def full_text(replies: list[Reply]) -> str:
    return "\n\n".join(reply.text for reply in replies)


# -- content ---------------------------------------------------------------------------


def test_every_event_type_and_stage_has_wording() -> None:
    keys = content.catalogue()
    assert all(f"case.event.{name}" in keys for name in EVENT_TYPES)
    assert all(f"case.stage.{stage}" in keys for stage in STAGES)
    for key in ("case.contact.officer", "case.contact.wcu", "case.contact.default"):
        assert key in keys
    for key in ("case.next_update", "case.next_date", "case.rtr.police", "case.rtr.cps"):
        assert key in keys


def test_notifications_wording() -> None:
    discreet = content.item("case.notify.discreet").part(0)
    assert discreet == "You have a new update from Waymark. Reply UPDATE to read it."
    event = make_event("charged")
    summary = event_summary(make_case("charge"), event, reserve=40)
    text = content.item("case.notify.detailed").part(0, reference=REFERENCE, summary=summary)
    assert text.startswith(f"News from Waymark on case {REFERENCE}: On Monday 9 March 2026")
    assert_reads_well(text)
    assert_sms_sized(text)


def test_the_update_standard_is_never_called_the_law() -> None:
    for key in ("case.next_update", "case.next_update.agreed"):
        text = content.item(key).part(0).lower()
        assert "law" not in text and "must" not in text and "code" not in text


# -- event summaries -------------------------------------------------------------------


def _detail_sets() -> list[Any]:
    """Every event type with full details, with only the required ones, and with none
    where the vocabulary allows it."""
    params = []
    for kind, event_type in EVENT_TYPES.items():
        for label, details in (("full", FULL), ("minimal", MINIMAL), ("none", {})):
            try:
                event_type.details.model_validate(details.get(kind, {}))
            except ValueError:
                continue
            params.append(pytest.param(kind, details.get(kind, {}), id=f"{kind}-{label}"))
    return params


@pytest.mark.parametrize(("kind", "details"), _detail_sets())
def test_event_summary_for_every_type(kind: str, details: dict[str, Any]) -> None:
    text = event_summary(make_case(), make_event(kind, details=details))
    assert text.startswith("On Monday 9 March 2026, "), text
    assert_reads_well(text)
    assert_sms_sized(text)
    if kind in status.SAFETY_EVENTS:
        assert text.endswith("If you are in danger now, call 999.")


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        (
            "bailed_with_conditions",
            FULL["bailed_with_conditions"],
            "released on bail. The bail conditions are: Not to contact you and Not to go to "
            "Acacia Road. Their bail date is Monday 1 June 2026.",
        ),
        ("bailed_with_conditions", {}, "released on bail, with conditions."),
        ("bail_conditions_changed", {"removed": True}, "all the bail conditions"),
        ("bail_conditions_changed", {}, "the bail conditions for the person you reported changed."),
        ("charged", FULL["charged"], "was charged with burglary and criminal damage."),
        ("charged", {"offences": ["a", "b", "c"]}, "was charged with a, b and c."),
        ("no_further_action", {"decided_by": "police"}, "the police decided to take no further"),
        ("no_further_action", {"decided_by": "cps"}, "the Crown Prosecution Service (CPS)"),
        ("out_of_court_disposal", {"disposal_type": "caution"}, "a caution."),
        ("out_of_court_disposal", {"disposal_type": "other"}, "dealt with the case out of court."),
        (
            "first_hearing_scheduled",
            FULL["first_hearing_scheduled"],
            "It is on Monday 20 April 2026 at Highbury Corner Magistrates' Court.",
        ),
        ("plea_entered", {"plea": "mixed"}, "guilty to some charges and not guilty to others."),
        ("trial_adjourned", {}, "We do not have the new date yet."),
        ("trial_adjourned", {"new_date": "2026-11-02"}, "to a new date: Monday 2 November 2026."),
        ("trial_adjourned", FULL["trial_adjourned"], "Monday 2 November 2026 at Wood Green"),
        ("verdict", {"outcome": "not_guilty"}, "found the person charged not guilty."),
        ("sentenced", {"sentence": "2 years in prison."}, "the sentence: 2 years in prison."),
        ("sentenced", {}, "the court gave the sentence."),
        (
            "officer_changed",
            FULL["officer_changed"],
            "a new officer, DC Sam Patel, took over your case. To reach them: 101, quoting "
            "4301234/26.",
        ),
    ],
)
def test_event_summary_wording(kind: str, details: dict[str, Any], expected: str) -> None:
    text = event_summary(make_case(), make_event(kind, details=details))
    assert expected in text
    assert_reads_well(text)


def test_event_dates_are_london_days_and_naive_times_are_utc() -> None:
    late_in_june = datetime(2026, 6, 30, 23, 30)  # naive, as SQLite returns it: UTC
    text = event_summary(make_case(), make_event("suspect_arrested", late_in_june))
    assert text.startswith("On Wednesday 1 July 2026, ")  # already 1 July in London (BST)
    winter = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    assert "Thursday 15 January 2026" in event_summary(make_case(), make_event("charged", winter))


def test_long_or_odd_details_are_shortened_never_cut() -> None:
    conditions = [f"Not to go within 100 metres of number {n} Long Street" for n in range(20)]
    event = make_event("bailed_with_conditions", details={"conditions": conditions})
    text = event_summary(make_case(), event)
    assert_sms_sized(text)
    assert "and 17 more." in text or "and 18 more." in text or "and 19 more." in text
    assert text.endswith("If you are in danger now, call 999.")

    event = make_event("sentenced", details={"sentence": "y" * 200})
    assert_sms_sized(event_summary(make_case(), event))

    # A name outside GSM-7 makes the message UCS-2 (70 characters a segment): kept while
    # it fits 2 segments, left out when it does not.
    name = {"officer_name": "DC \u0141ukasz Nowak", "officer_contact": "101"}
    text = event_summary(make_case(), make_event("officer_changed", details=name))
    assert (
        text == "On Monday 9 March 2026, a new officer, DC \u0141ukasz Nowak, took over your "
        "case. To reach them: 101."
    )
    long_name = {"officer_name": "DC \u0141ukasz " + "W" * 100, "officer_contact": "101"}
    text = event_summary(make_case(), make_event("officer_changed", details=long_name))
    assert text == "On Monday 9 March 2026, a new officer took over your case. To reach them: 101."

    # Curly quotes from the agency become plain ones.
    event = make_event("charged", details={"offences": ["\u2018theft\u2019"]})
    assert "charged with 'theft'." in event_summary(make_case(), event)


def test_event_summary_can_leave_room_for_an_opening() -> None:
    conditions = [f"Condition number {n} about where they may go" for n in range(6)]
    event = make_event("bailed_with_conditions", details={"conditions": conditions})
    roomy = event_summary(make_case(), event, reserve=60)
    assert segments("x" * 60 + roomy) <= 2
    assert len(roomy) <= len(event_summary(make_case(), event))


def test_an_unknown_event_type_still_says_something() -> None:
    event = CaseEvent(type="something_new", occurred_at=YESTERDAY, agency="met")
    assert (
        event_summary(make_case(), event) == "On Monday 9 March 2026, there was news on your case."
    )


# -- the answer ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_case_status_for_every_stage(stage: str) -> None:
    case = make_case(
        stage,
        officer_name="PC Jo Smith",
        officer_contact="101, quoting 4301234/26",
        witness_care_contact=WCU,
    )
    kind = STAGE_EVENT.get(stage)
    events = [make_event(kind)] if kind else []
    replies = case_status(case, events, now=NOW)
    text = full_text(replies)

    assert content.item(f"case.stage.{stage}").part(0) in text
    if events:
        assert event_summary(case, events[0]) in text
        assert "Monday 9 March 2026" in text
    if stage in status.COURT_STAGES:
        assert f"Witness Care Unit: {WCU}." in text
        assert "PC Jo Smith" not in text
    else:
        assert "Your officer is PC Jo Smith. To reach them: 101, quoting 4301234/26." in text
        assert WCU not in text
    assert f"Your next update is due by {NEXT_UPDATE}." in text
    for reply in replies:
        assert_sms_sized(reply.text)
        assert_reads_well(reply.text)

    assert all(reply.buttons == () for reply in replies[:-1])
    buttons = replies[-1].buttons
    assert buttons[0] == {
        "title": "What this stage means",
        "payload": f'/ask_cjs_stage{{"cjs_stage": "{stage}"}}',
    }
    assert buttons[1] == {"title": "Talk to a person", "payload": "/request_human"}
    review = {"title": "Right to review", "payload": "/ask_right_to_review"}
    assert (review in buttons) == (stage == "no_further_action")


@pytest.mark.parametrize("kind", list(EVENT_TYPES))
def test_case_status_with_every_event_type_as_the_latest(kind: str) -> None:
    stage = EVENT_TYPES[kind].stage or "investigation"
    case = make_case(stage, witness_care_contact=WCU)
    events = [make_event(kind), make_event("reported", datetime(2026, 1, 5, 9, tzinfo=UTC))]
    replies = case_status(case, events, now=NOW)
    text = full_text(replies)
    assert event_summary(case, events[0]) in text
    assert "Monday 5 January 2026" not in text  # only the latest event is told
    assert f"Your next update is due by {NEXT_UPDATE}." in text
    for reply in replies:
        assert_sms_sized(reply.text)
        assert_reads_well(reply.text)


def test_recent_headline_news_comes_first() -> None:
    case = make_case("investigation")
    events = [
        make_event("suspect_interviewed", NOW - timedelta(hours=3)),
        make_event("released_from_custody", NOW - timedelta(days=5)),
        make_event("bail_conditions_changed", NOW - timedelta(days=40)),  # not recent
    ]
    replies = case_status(case, events, now=NOW)
    text = full_text(replies)
    assert replies[0].text.startswith(
        "On Thursday 5 March 2026, the person you reported was released"
    )
    stage = content.item("case.stage.investigation").part(0)
    interviewed = "On Tuesday 10 March 2026, the police questioned the person you reported."
    assert text.index(stage) < text.index(interviewed)
    assert "Friday 30 January 2026" not in text  # the old headline is not repeated
    # The latest event, already told as headline news, is not told twice.
    replies = case_status(case, events[1:], now=NOW)
    assert full_text(replies).count("released from custody") == 1


def test_a_headline_stage_a_later_event_replaced_is_not_news() -> None:
    case = make_case("charge", witness_care_contact=WCU)
    events = [
        make_event("charged", NOW - timedelta(days=2)),
        make_event("released_under_investigation", NOW - timedelta(days=9)),
    ]
    text = full_text(case_status(case, events, now=NOW))
    assert "keep investigating" not in text
    assert text.startswith(content.item("case.stage.charge").part(0))


@pytest.mark.parametrize(
    ("decided_by", "key", "who"),
    [
        ("police", "case.rtr.police", "ask the police to look"),
        ("cps", "case.rtr.cps", "ask the Crown Prosecution Service (CPS) to look"),
    ],
)
def test_no_further_action_gives_the_review_date_for_the_right_scheme(
    decided_by: str, key: str, who: str
) -> None:
    case = make_case("no_further_action")
    event = make_event(
        "no_further_action",
        datetime(2026, 3, 2, 16, tzinfo=UTC),
        {"decided_by": decided_by, "victim_told_on": "2026-03-03"},
    )
    replies = case_status(case, [event], now=NOW)
    text = full_text(replies)
    expected = content.item(key).part(
        0, deadline="Wednesday 3 June 2026", told_date="Tuesday 3 March 2026"
    )
    assert expected in text and who in expected
    assert replies[-1].text.endswith(expected)  # the review comes last, with its button
    assert {"title": "Right to review", "payload": "/ask_right_to_review"} in replies[-1].buttons
    assert status.review_dates(event) == (date(2026, 3, 3), date(2026, 6, 3))


def test_the_review_date_counts_from_the_event_when_the_told_date_is_missing() -> None:
    event = make_event(
        "no_further_action", datetime(2026, 3, 2, 16, tzinfo=UTC), {"decided_by": "police"}
    )
    text = full_text(case_status(make_case("no_further_action"), [event], now=NOW))
    assert (
        "Ask by Tuesday 2 June 2026. That is 3 months after you were told, on Monday 2 March 2026."
        in text
    )


def test_a_passed_review_date_says_you_can_still_ask() -> None:
    event = make_event(
        "no_further_action",
        datetime(2025, 10, 1, 10, tzinfo=UTC),
        {"decided_by": "cps", "victim_told_on": "2025-10-02"},
    )
    text = full_text(case_status(make_case("no_further_action"), [event], now=NOW))
    expected = content.item("case.rtr.cps.passed").part(0, deadline="Friday 2 January 2026")
    assert expected in text
    assert "Ask by" not in text


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"officer_contact": "team.hackney@example.org"},
            "To reach your officer: team.hackney@example.org.",
        ),
        (
            {"officer_name": "PC Jo Smith"},
            "Your officer is PC Jo Smith. To reach them, call 101 at any time and give your "
            f"crime reference number: {REFERENCE}.",
        ),
        (
            {},
            "To reach the officer dealing with your case, call 101 at any time, day or night. "
            f"Give your crime reference number: {REFERENCE}.",
        ),
        (
            {"officer_name": "X" * 120, "officer_contact": "y" * 200},
            f"To reach your officer: {'y' * 200}.",
        ),
    ],
)
def test_the_officer_route(fields: dict[str, Any], expected: str) -> None:
    replies = case_status(make_case("investigation", **fields), [], now=NOW)
    assert expected in full_text(replies)
    for reply in replies:
        assert_sms_sized(reply.text)


def test_the_witness_care_unit_after_charge() -> None:
    case = make_case("trial", officer_name="PC Jo Smith")
    text = full_text(case_status(case, [], now=NOW))
    assert "Your main contact now is the Witness Care Unit. " in text
    assert f"call 101 and give your crime reference number: {REFERENCE}." in text
    assert "PC Jo Smith" not in text
    # Bailed after the charge: still the Witness Care Unit.
    case = make_case("bail", officer_name="PC Jo Smith", witness_care_contact=WCU)
    events = [make_event("bailed_with_conditions"), make_event("charged", NOW - timedelta(days=3))]
    assert f"Witness Care Unit: {WCU}." in full_text(case_status(case, events, now=NOW))
    # Bailed before any charge: the officer.
    text = full_text(case_status(case, events[:1], now=NOW))
    assert WCU not in text and "PC Jo Smith" in text


def test_the_next_key_date() -> None:
    case = make_case(
        "trial",
        next_key_date=date(2026, 9, 14),
        next_key_date_kind="trial",
        next_key_place="Wood Green Crown Court",
    )
    text = full_text(case_status(case, [], now=NOW))
    assert "The trial is set for Monday 14 September 2026. It is at Wood Green Crown Court." in text
    case = make_case("first_hearing", next_key_date=date(2026, 4, 20), next_key_date_kind="hearing")
    text = full_text(case_status(case, [], now=NOW))
    assert "The next court hearing is on Monday 20 April 2026." in text
    assert "It is at" not in text
    # Not said twice when the latest event has just given it.
    case = make_case(
        "trial",
        next_key_date=date(2026, 9, 14),
        next_key_date_kind="trial",
        next_key_place="Wood Green Crown Court",
    )
    text = full_text(case_status(case, [make_event("trial_scheduled")], now=NOW))
    assert text.count("Monday 14 September 2026") == 1
    assert "It is on Monday 14 September 2026 at Wood Green Crown Court." in text
    past = make_case("trial", next_key_date=date(2026, 3, 1), next_key_date_kind="trial")
    assert "Sunday 1 March 2026" not in full_text(case_status(past, [], now=NOW))


def test_the_next_update() -> None:
    # Waymark's own standard, counted from now: this answer is itself an update.
    overdue = make_case(last_victim_update_at=datetime(2025, 12, 1, tzinfo=UTC))
    text = full_text(case_status(overdue, [], now=NOW))
    assert (
        f"Your next update is due by {NEXT_UPDATE}. Waymark aims to update you at least every "
        "28 days. This is our own standard." in text
    )
    # An agreed frequency says so.
    agreed = make_case(update_every_days=14)
    text = full_text(case_status(agreed, [], now=NOW))
    assert "due by Tuesday 24 March 2026. This is how often you agreed" in text
    assert "every 14 days." in text
    # A case built in memory has no defaults yet: Waymark's standard.
    bare = Case(reference=REFERENCE, agency="met", crime_type="theft", stage="report")
    assert f"due by {NEXT_UPDATE}" in full_text(case_status(bare, [], now=NOW))
    # A closed case has no next update.
    closed = make_case(closed_at=YESTERDAY)
    text = full_text(case_status(closed, [make_event("case_closed")], now=NOW))
    assert "next update" not in text
    assert "On Monday 9 March 2026, your case was closed." in text


def test_next_update_due_without_an_answer() -> None:
    case = make_case(last_victim_update_at=datetime(2026, 3, 1, 9, 0))  # naive: UTC
    due = status.next_update_due(case, now=NOW, answering=False)
    assert due == datetime(2026, 3, 29, 9, 0, tzinfo=UTC)
    overdue = make_case(last_victim_update_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert status.next_update_due(overdue, now=NOW, answering=False) == NOW
    assert status.next_update_due(overdue, now=NOW) == NOW + timedelta(days=28)


def test_many_events_still_make_a_short_answer() -> None:
    case = make_case("bail", officer_name="PC Jo Smith")
    events = [
        make_event(kind, NOW - timedelta(days=n % 30, hours=n))
        for n, kind in enumerate(list(EVENT_TYPES) * 3)
    ]
    replies = case_status(case, events, now=NOW)
    assert 1 <= len(replies) <= 6
    for reply in replies:
        assert_sms_sized(reply.text)
        assert_reads_well(reply.text)
    headlines = sum(reply.text.count("If you are in danger now") for reply in replies)
    assert headlines <= status.MAX_HEADLINES + 1  # and the bail stage's own line
