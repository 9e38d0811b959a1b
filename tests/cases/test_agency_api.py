"""The agency update feed, over real HTTP against a running gateway, on SQLite and
PostgreSQL: keys and scopes, validation, transactions, idempotency and the status."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from bot.cases import api, keys
from bot.cases.models import (
    Case,
    CaseEvent,
    Notification,
    OneTimeCode,
    Task,
    Victim,
    VictimContact,
)
from bot.cases.phones import PERSONAL_NUMBER
from bot.config import get_settings
from bot.handoff.models import AuditEntry
from tests.harness import LiveGateway, database, gateway_settings, live_gateway_for

ALL_SCOPES = list(keys.SCOPES)
_numbers = itertools.count(4301000)


def new_reference() -> str:
    return f"{next(_numbers):07d}/26"


@dataclass
class Api:
    live: LiveGateway
    engine: Engine
    sessions: sessionmaker[Session]
    keys: dict[str, str]

    def call(
        self, method: str, path: str, *, key: str | None = "met", **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        return self.live.client.request(method, self.live.url + path, headers=headers, **kwargs)

    def put_case(self, reference: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.call("PUT", f"/api/cases/{reference}", json=body, **kwargs)

    def post_event(self, reference: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.call("POST", f"/api/cases/{reference}/events", json=body, **kwargs)

    def count(self, model: type, *where: Any) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    def case(self, reference: str) -> Case | None:
        with self.sessions() as session:
            return session.scalar(select(Case).where(Case.reference == reference))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def agency_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One gateway per database for this module; each test uses its own references."""
    with database(request.param, tmp_path_factory.mktemp("api")) as url:
        settings = gateway_settings(url, "http://127.0.0.1:1", "token", agency_max_body_bytes=4096)
        with live_gateway_for(settings) as live:
            engine = db.create_sync_engine(url)
            sessions = sessionmaker(engine, expire_on_commit=False)
            with sessions() as session:
                made = {
                    "met": keys.create_key(session, "met", "Niche feed", ALL_SCOPES),
                    "kent": keys.create_key(session, "kent", "Athena feed", ALL_SCOPES),
                    "reader": keys.create_key(session, "met", "Dashboard", ["cases:read"]),
                    "revoked": keys.create_key(session, "met", "Old feed", ALL_SCOPES),
                }
                session.flush()
                old = session.scalar(
                    select(keys.AgencyKey).where(keys.AgencyKey.name == "Old feed")
                )
                assert old is not None
                keys.revoke_key(session, old.id)
                session.commit()
            try:
                yield Api(live, engine, sessions, made)
            finally:
                engine.dispose()


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "crime_type": "burglary",
        "stage": "investigation",
        "officer_name": "DC Rivers",
        "officer_contact": "101, quoting the reference",
        "victims": [
            {
                "external_id": "v1",
                "consent": True,
                "contacts": [{"channel": "sms", "address": "07700 900123"}],
            }
        ],
    }
    body.update(overrides)
    return body


def event_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "charged",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "details": {"offences": ["burglary"]},
    }
    body.update(overrides)
    return body


def made_case(agency_api: Api, **overrides: Any) -> str:
    reference = new_reference()
    response = agency_api.put_case(reference, case_body(**overrides))
    assert response.status_code == 201, response.text
    return reference


# -- keys and scopes ------------------------------------------------------------------------


def test_calls_without_a_valid_key_are_refused(agency_api: Api) -> None:
    reference = made_case(agency_api)
    path = f"/api/cases/{reference}"
    for key in (None, "wm_not-a-key", "revoked"):
        response = agency_api.call("GET", path, key=key)
        assert response.status_code == 401, key
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["detail"]
    basic = agency_api.call("GET", path, key=None, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    # Refused before the body is looked at.
    assert agency_api.put_case(reference, {"nonsense": 1}, key=None).status_code == 401
    assert agency_api.count(Case, Case.reference == reference) == 1


def test_a_key_needs_the_scope_for_each_call(agency_api: Api) -> None:
    reference = made_case(agency_api)
    assert agency_api.call("GET", f"/api/cases/{reference}", key="reader").status_code == 200
    refused = [
        agency_api.put_case(reference, case_body(), key="reader"),
        agency_api.post_event(reference, event_body(), key="reader"),
        agency_api.call("POST", f"/api/cases/{reference}/victims/v1/reset-secret", key="reader"),
        agency_api.call("GET", "/api/reports/compliance", key="reader"),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert "cases:write" in refused[0].json()["detail"]


def test_an_agency_sees_only_its_own_cases(agency_api: Api) -> None:
    reference = made_case(agency_api)
    unknown = new_reference()
    for ref in (reference, unknown):
        assert agency_api.call("GET", f"/api/cases/{ref}", key="kent").status_code == 404
        assert agency_api.post_event(ref, event_body(), key="kent").status_code == 404
        reset = agency_api.call("POST", f"/api/cases/{ref}/victims/v1/reset-secret", key="kent")
        assert reset.status_code == 404
    # References are unique across agencies: another agency can't take this one over.
    taken = agency_api.put_case(reference, case_body(officer_name="DC Other"), key="kent")
    assert taken.status_code == 409
    assert agency_api.case(reference).officer_name == "DC Rivers"  # type: ignore[union-attr]
    assert agency_api.count(CaseEvent, CaseEvent.agency == "kent") == 0


def test_the_key_command_shows_a_key_once_and_lists_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WAYMARK_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    get_settings.cache_clear()
    try:
        parser = argparse.ArgumentParser()
        keys.register(parser.add_subparsers(dest="command", required=True))

        def run(*argv: str) -> int:
            args = parser.parse_args(list(argv))
            return int(args.func(args))

        assert run("agency-key", "create", "--agency", "met", "--name", "Niche",
                   "--scope", "cases:write", "--scope", "events:write") == 0  # fmt: skip
        out = capsys.readouterr().out
        key = next(line for line in out.splitlines() if line.startswith("wm_"))
        assert "not stored" in out
        assert run("agency-key", "list") == 0
        listing = capsys.readouterr().out
        assert "Niche" in listing and "cases:write" in listing and key not in listing
        assert run("agency-key", "revoke", "--id", "1") == 0
        assert "revoked" in capsys.readouterr().out
        assert run("agency-key", "revoke", "--id", "99") == 1
        with pytest.raises(SystemExit):
            parser.parse_args(["agency-key", "create", "--agency", "met", "--name", "x",
                               "--scope", "everything"])  # fmt: skip
    finally:
        get_settings.cache_clear()


# -- cases ----------------------------------------------------------------------------------


def test_a_case_is_created_then_updated(agency_api: Api) -> None:
    reference = new_reference()
    body = case_body(
        enhanced_rights=True,
        victims=[
            {
                "external_id": "v1",
                "consent": True,
                "contacts": [{"channel": "sms", "address": "07700 900123"}],
                "preferences": {"quiet_start": "21:00", "quiet_end": "08:00"},
                "telegram_link": True,
            },
            {"external_id": "v2", "consent": True, "contacts": []},
        ],
    )
    created = agency_api.put_case(reference.replace("/", "-"), body)  # written another way
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["reference"] == reference and answer["created"] is True
    assert answer["stage"] == "investigation"
    assert answer["notifications_queued"] == 1  # only v1 has a number to enrol
    v1, v2 = answer["victims"]
    assert v1["new_contacts"] == 1 and v1["telegram_link"]
    assert v2["new_contacts"] == 0 and v2["telegram_link"] is None

    with agency_api.sessions() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None and case.agency == "met" and case.enhanced_rights
        assert case.update_every_days == 28
        victim = session.scalar(
            select(Victim).where(Victim.case_id == case.id, Victim.external_id == "v1")
        )
        assert victim is not None
        assert (victim.quiet_start, victim.quiet_end) == (time(21), time(8))
        contact = session.scalar(select(VictimContact).where(VictimContact.victim_id == victim.id))
        assert contact is not None
        assert (contact.address, contact.verified_at) == ("+447700900123", None)
        kinds = session.scalars(select(Notification.kind).where(Notification.case_id == case.id))
        assert list(kinds) == ["enrolment"]
        assert session.scalar(
            select(func.count()).select_from(OneTimeCode).where(
                OneTimeCode.victim_id == victim.id, OneTimeCode.purpose == "telegram"
            )
        ) == 1  # fmt: skip

    # An update: fields left out keep their values; a new number joins the pending code.
    update = {
        "crime_type": "burglary",
        "officer_contact": "met.burglary.team@met.police.uk",
        "update_every_days": 14,
        "victims": [
            {
                "external_id": "v1",
                "consent": True,
                "contacts": [
                    {"channel": "sms", "address": "+44 7700 900123"},
                    {"channel": "sms", "address": "+33 6 12 34 56 78"},
                ],
                "preferences": {"paused": True},
            }
        ],
    }
    updated = agency_api.put_case(reference, update)
    assert updated.status_code == 200, updated.text
    assert updated.json()["created"] is False
    assert updated.json()["victims"] == [
        {
            "external_id": "v1",
            "created": False,
            "new_contacts": 1,
            "enrolment_queued": False,  # the first code hasn't gone yet: it covers both
            "telegram_link": None,
        }
    ]
    assert updated.json()["notifications_queued"] == 0
    with agency_api.sessions() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        assert (case.officer_name, case.officer_contact) == (
            "DC Rivers",
            "met.burglary.team@met.police.uk",
        )
        assert (case.stage, case.update_every_days, case.enhanced_rights) == (
            "investigation",
            14,
            True,
        )
        victim = session.scalar(
            select(Victim).where(Victim.case_id == case.id, Victim.external_id == "v1")
        )
        assert victim is not None and victim.paused
        assert victim.quiet_start == time(21)  # not sent: kept
        addresses = session.scalars(
            select(VictimContact.address).where(VictimContact.victim_id == victim.id)
        )
        assert sorted(addresses) == ["+33612345678", "+447700900123"]
    assert agency_api.count(Victim, Victim.case_id == case.id) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crime_type": "parking"}, "Input should be"),
        ({"officer_contact": "call me on 07700 900456"}, PERSONAL_NUMBER),
        ({"officer_contact": "+44 (0)7700-900-456"}, PERSONAL_NUMBER),
        ({"witness_care_contact": "07700900456"}, PERSONAL_NUMBER),
        ({"update_every_days": 0}, "greater than or equal to 1"),
        ({"victims": [{"external_id": "v1", "consent": False}]}, "agreed to it"),
        ({"victims": [{"external_id": "v1"}]}, "Field required"),
        (
            {
                "victims": [
                    {"external_id": "v1", "consent": True, "preferences": {"quiet_start": "22:00"}}
                ]
            },
            "both quiet_start and quiet_end",
        ),
        (
            {
                "victims": [
                    {
                        "external_id": "v1",
                        "consent": True,
                        "preferences": {"quiet_start": "late", "quiet_end": "08:00"},
                    }
                ]
            },
            "time",
        ),
        (
            {
                "victims": [
                    {"external_id": "v1", "consent": True, "preferences": {"via_advocate": True}}
                ]
            },
            "advocate_phone",
        ),
        (
            {
                "victims": [
                    {
                        "external_id": "v1",
                        "consent": True,
                        "contacts": [{"channel": "sms", "address": "020 7230 1212"}],
                    }
                ]
            },
            "mobiles",
        ),
        (
            {
                "victims": [
                    {
                        "external_id": "v1",
                        "consent": True,
                        "contacts": [{"channel": "sms", "address": "12345"}],
                    }
                ]
            },
            "mobile number",
        ),
        (
            {
                "victims": [
                    {"external_id": "v1", "consent": True},
                    {"external_id": "v1", "consent": True},
                ]
            },
            "must be different",
        ),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_a_bad_case_is_refused_and_nothing_is_written(
    agency_api: Api, change: dict[str, Any], message: str
) -> None:
    reference = new_reference()
    # A good victim first: the bad part comes later in the body.
    body = case_body(**change)
    if "victims" in change:
        body["victims"] = [
            {"external_id": "good", "consent": True, "contacts": []},
            *change["victims"],
        ]
    response = agency_api.put_case(reference, body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert response.json()["errors"]
    assert agency_api.case(reference) is None


def test_a_reference_must_be_in_the_expected_format(agency_api: Api) -> None:
    for bad in ("12345", "4301234/26/extra", "abc"):
        response = agency_api.put_case(bad, case_body())
        assert response.status_code == 422
        assert response.json()["detail"] == api.NOT_A_REFERENCE
    assert agency_api.call("GET", "/api/cases/nope").status_code == 422


def test_a_failure_midway_leaves_nothing_behind(
    agency_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("the link service fell over")

    monkeypatch.setattr(api, "telegram_link", broken)  # after the case and victims are flushed
    reference = new_reference()
    body = case_body()
    body["victims"][0]["telegram_link"] = True
    tables = (Case, Victim, VictimContact, Notification, OneTimeCode)
    before = [agency_api.count(table) for table in tables]
    # A connection of its own: the server drops it after an unhandled error.
    response = agency_api.put_case(reference, body, headers={"Connection": "close"})
    assert response.status_code == 500
    assert agency_api.case(reference) is None
    assert [agency_api.count(table) for table in tables] == before
    monkeypatch.undo()
    assert agency_api.put_case(reference, body).status_code == 201


def test_an_oversized_body_is_refused(agency_api: Api) -> None:
    reference = made_case(agency_api)
    big = event_body(note="x" * 5000)
    response = agency_api.post_event(reference, big)
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["detail"]

    # Chunked: no Content-Length, so the body itself is counted.
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    chunked = agency_api.call(
        "POST",
        f"/api/cases/{reference}/events",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert agency_api.count(CaseEvent, CaseEvent.note.is_not(None)) == 0


# -- events ---------------------------------------------------------------------------------


def test_events_move_the_case_and_queue_notifications(agency_api: Api) -> None:
    reference = made_case(
        agency_api,
        victims=[
            {"external_id": "v1", "consent": True, "contacts": []},
            {"external_id": "v2", "consent": True, "contacts": []},
        ],
    )
    charged = agency_api.post_event(reference, event_body(external_id="ev-1"))
    assert charged.status_code == 201, charged.text
    out = charged.json()
    assert (out["type"], out["stage"], out["notifications_queued"]) == ("charged", "charge", 2)
    with agency_api.sessions() as session:
        event = session.get(CaseEvent, out["id"])
        assert event is not None and event.details == {"offences": ["burglary"]}
        assert event.agency == "met" and event.external_id == "ev-1"
        kinds = session.scalars(select(Notification.kind).where(Notification.event_id == event.id))
        assert list(kinds) == ["charged", "charged"]

    hearing_day = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    hearing = agency_api.post_event(
        reference,
        event_body(
            type="first_hearing_scheduled",
            details={"date": hearing_day, "court": "Highbury Corner Magistrates' Court"},
        ),
    )
    assert hearing.status_code == 201, hearing.text
    assert hearing.json()["stage"] == "first_hearing"

    nfa = agency_api.post_event(
        reference, event_body(type="no_further_action", details={"decided_by": "cps"})
    )
    assert nfa.status_code == 201
    case = agency_api.case(reference)
    assert case is not None
    assert (case.stage, case.next_key_date.isoformat()) == ("no_further_action", hearing_day)  # type: ignore[union-attr]
    assert agency_api.count(Task, Task.event_id == nfa.json()["id"], Task.priority == 0) == 1


def test_a_replay_answers_the_same_and_a_conflict_is_refused(agency_api: Api) -> None:
    reference = made_case(agency_api)
    body = event_body(external_id="niche-123", occurred_at="2026-01-10T09:30:00+00:00")
    first = agency_api.post_event(reference, body)
    again = agency_api.post_event(reference, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    changed = agency_api.post_event(reference, {**body, "details": {"offences": ["theft"]}})
    assert changed.status_code == 409
    assert "niche-123" in changed.json()["detail"]
    elsewhere = agency_api.post_event(made_case(agency_api), body)
    assert elsewhere.status_code == 409
    assert agency_api.count(CaseEvent, CaseEvent.external_id == "niche-123") == 1
    assert agency_api.count(Notification, Notification.event_id == first.json()["id"]) == 1


def test_simultaneous_retries_store_the_event_once(agency_api: Api) -> None:
    reference = made_case(agency_api)
    body = event_body(external_id="race-1")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: agency_api.post_event(reference, body), range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert agency_api.count(CaseEvent, CaseEvent.external_id == "race-1") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "arrested_again"}, "Known types: reported, investigation_started"),
        ({"details": {}}, "details.offences: Field required"),
        ({"details": {"offences": ["x"], "colour": "blue"}}, "details.colour: Extra inputs"),
        (
            {"type": "plea_entered", "details": {"plea": "maybe"}},
            "details.plea: Input should be",
        ),
        (
            {
                "type": "officer_changed",
                "details": {"officer_name": "DC Lee", "officer_contact": "07700 900456"},
            },
            PERSONAL_NUMBER,
        ),
        ({"occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at is in the future"),
        ({"occurred_at": "1960-01-01T00:00:00Z"}, "before 1970"),
        ({"occurred_at": "2026-01-10T09:30:00"}, "time zone"),
        ({"occurred_at": "yesterday"}, "datetime"),
        (
            {"occurred_at": "2026-01-10T09:30:00Z", "victim_informed_at": "2026-01-09T09:30:00Z"},
            "victim_informed_at is before occurred_at",
        ),
        ({"note": "n" * 1001}, "at most 1000"),
        ({"priority": "high"}, "Extra inputs"),
    ],
)
def test_a_bad_event_is_refused_and_nothing_is_written(
    agency_api: Api, change: dict[str, Any], message: str
) -> None:
    reference = made_case(agency_api)
    response = agency_api.post_event(reference, event_body(**change))
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    case = agency_api.case(reference)
    assert case is not None and case.stage == "investigation"
    assert agency_api.count(CaseEvent, CaseEvent.case_id == case.id) == 0


def test_an_event_for_an_unknown_case_is_404(agency_api: Api) -> None:
    response = agency_api.post_event(new_reference(), event_body())
    assert response.status_code == 404
    assert response.json() == {"detail": api.NO_CASE}


# -- secrets, status, report, docs ----------------------------------------------------------


def test_a_coordinator_resets_a_victims_secret(agency_api: Api) -> None:
    reference = made_case(agency_api)
    with agency_api.sessions() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        victim = session.scalar(select(Victim).where(Victim.case_id == case.id))
        assert victim is not None
        victim.secret_hash = "$argon2id$stand-in"
        victim.secret_set_at = datetime.now(UTC)
        session.commit()
    path = f"/api/cases/{reference}/victims/v1/reset-secret"
    response = agency_api.call("POST", path)
    assert response.status_code == 202
    assert response.json() == {
        "reference": reference,
        "external_id": "v1",
        "notification_queued": True,
    }
    with agency_api.sessions() as session:
        victim = session.get(Victim, victim.id)
        assert victim is not None
        assert (victim.secret_hash, victim.secret_set_at) == (None, None)
    assert agency_api.count(
        Notification, Notification.victim_id == victim.id, Notification.kind == "secret_reset"
    ) == 1  # fmt: skip
    # Audited, with who asked and nothing of the secret.
    assert agency_api.count(
        AuditEntry,
        AuditEntry.action == "secret_reset",
        AuditEntry.case_id == victim.case_id,
        AuditEntry.actor == "agency:met",
    ) == 1  # fmt: skip
    missing = agency_api.call("POST", f"/api/cases/{reference}/victims/nobody/reset-secret")
    assert missing.status_code == 404


def test_the_status_shows_the_case_but_no_personal_details(agency_api: Api) -> None:
    reference = made_case(agency_api, next_key_place="Wood Green Crown Court")
    with agency_api.sessions() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        victim = session.scalar(select(Victim).where(Victim.case_id == case.id))
        assert victim is not None
        victim.secret_hash = "$argon2id$stand-in"
        session.commit()
    informed = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    older = agency_api.post_event(
        reference,
        event_body(type="suspect_arrested", details={},
                   occurred_at=(datetime.now(UTC) - timedelta(days=3)).isoformat()),
    )  # fmt: skip
    newer = agency_api.post_event(reference, event_body(victim_informed_at=informed))
    assert older.status_code == newer.status_code == 201

    response = agency_api.call("GET", f"/api/cases/{reference}")
    assert response.status_code == 200, response.text
    escaped = agency_api.call("GET", f"/api/cases/{reference.replace('/', '%2F')}")
    assert escaped.json() == response.json()
    status = response.json()
    assert status["reference"] == reference
    assert (status["stage"], status["crime_type"]) == ("charge", "burglary")
    assert status["officer_contact"] == "101, quoting the reference"
    assert status["next_key_place"] == "Wood Green Crown Court"
    assert [e["type"] for e in status["events"]] == ["charged", "suspect_arrested"]
    assert status["events"][0]["details"] == {"offences": ["burglary"]}
    last = datetime.fromisoformat(status["last_victim_update_at"])
    assert last == datetime.fromisoformat(informed)
    assert datetime.fromisoformat(status["next_update_due"]) == last + timedelta(days=28)
    assert status["victims"] == [
        {"external_id": "v1", "enrolled": True, "linked_contacts": 0, "unconfirmed_contacts": 1}
    ]
    assert isinstance(status["pending_notifications"], int)
    assert "7700" not in response.text and "argon2" not in response.text


def test_the_compliance_report_needs_its_scope(agency_api: Api) -> None:
    made_case(agency_api)
    report = agency_api.call("GET", "/api/reports/compliance", params={"days": 7})
    assert report.status_code == 200, report.text
    assert report.json()["period"]["days"] == 7
    assert report.json()["open_cases"] >= 1
    assert agency_api.call("GET", "/api/reports/compliance", params={"days": 0}).status_code == 422


def test_openapi_documents_the_agency_routes(agency_api: Api) -> None:
    schema = agency_api.live.client.get(agency_api.live.url + "/openapi.json").json()
    paths = schema["paths"]
    assert {"put", "get"} <= set(paths["/api/cases/{reference}"])
    assert "post" in paths["/api/cases/{reference}/events"]
    assert "post" in paths["/api/cases/{reference}/victims/{external_id}/reset-secret"]
    assert "get" in paths["/api/reports/compliance"]
    post = paths["/api/cases/{reference}/events"]["post"]
    assert post["summary"] and post["description"]
    assert {"200", "201", "401", "403", "404", "409", "413", "422"} <= set(post["responses"])
    assert "AgencyKey" in schema["components"]["securitySchemes"]
