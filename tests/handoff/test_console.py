"""The coordinator console over HTTP, against a live gateway (the real model, fake
providers): sign-in, sessions, lock-out, CSRF, the JSON API, audit and the pages.

The live gateway's public URL is https, so the console's cookies are Secure; httpx
won't send Secure cookies over plain http, so `Console` keeps them by hand.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bot.cases.models import Case, Task, Victim
from bot.handoff import console as console_module
from bot.handoff.models import AuditEntry, CannedReply, ConsoleSession, Coordinator, Handoff
from bot.models import Conversation
from tests.handoff.conftest import (
    PASSWORD,
    conversation_of,
    coordinator,
    everyone_off_duty,
    greeted,
)
from tests.harness import LiveGateway, fresh_number, fresh_reference, wait_until

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
FAILED = "Enter a correct username and password."
HOSTILE = '<script>window.pwned=1</script> <img src=x onerror="window.pwned=1">'


# -- a console client -----------------------------------------------------------------------


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie header, for each cookie the response sets."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0].strip()
        found[name] = header
    return found


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1].strip('"')


_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def close_consoles() -> Iterator[None]:
    """Every Console's HTTP client is closed after each test (warnings are errors)."""
    yield
    while _clients:
        _clients.pop().close()


@dataclass
class Console:
    """One browser's worth of console: its cookies and CSRF token, kept by hand."""

    live: LiveGateway
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None

    def __post_init__(self) -> None:
        _clients.append(self.client)

    @classmethod
    def signed_in(cls, live: LiveGateway, who: Coordinator, password: str = PASSWORD) -> Console:
        console = cls(live)
        response = console.sign_in(who.username, password)
        assert response.status_code == 303, response.text
        return console

    def url(self, path: str) -> str:
        return self.live.url + path

    def cookie_header(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def keep(self, response: httpx.Response) -> httpx.Response:
        for name, header in set_cookies(response).items():
            value = cookie_value(header)
            if "Max-Age=0" in header or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def login_form(self) -> str:
        """Open the sign-in page; the form's CSRF token (also set as a cookie)."""
        page = self.keep(self.client.get(self.url("/console/login"), headers=self.cookie_header()))
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None
        return match.group(1)

    def sign_in(self, username: str, password: str) -> httpx.Response:
        token = self.login_form()
        response = self.keep(
            self.client.post(
                self.url("/console/login"),
                data={"username": username, "password": password, "csrf_token": token},
                headers=self.cookie_header(),
            )
        )
        if response.status_code == 303:
            page = self.get("/console")
            assert page.status_code == 200, page.text
            match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
            assert match is not None
            self.csrf = match.group(1)
        return response

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.keep(
            self.client.get(self.url(path), params=params, headers=self.cookie_header())
        )

    def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        csrf: str | bool | None = True,
    ) -> httpx.Response:
        """A state-changing call; `csrf=False` leaves the token out, a string sends it."""
        headers = self.cookie_header()
        token = self.csrf if csrf is True else (csrf or None)
        if token:
            headers["X-CSRF-Token"] = token
        return self.keep(self.client.request(method, self.url(path), json=body, headers=headers))

    def post(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return self.send("POST", path, body, **kw)

    @property
    def token(self) -> str:
        return self.cookies["waymark_console"]


# -- helpers --------------------------------------------------------------------------------


def audit_rows(live: LiveGateway, **where: Any) -> list[AuditEntry]:
    with live.db() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        return list(session.scalars(query))


def actions(live: LiveGateway, **where: Any) -> list[str]:
    return [row.action for row in audit_rows(live, **where)]


def reload(live: LiveGateway, who: Coordinator) -> Coordinator:
    with live.db() as session:
        found = session.get(Coordinator, who.id)
        assert found is not None
        return found


def error_text(page: str) -> str:
    match = re.search(r'<ul class="error-summary__list">\s*<li><a [^>]*>([^<]*)<', page)
    assert match is not None, page
    return match.group(1)


def start_handoff(live: LiveGateway, number: str, reason: str = "request_human") -> tuple[int, int]:
    """A conversation by SMS, then a handoff for it. (conversation id, handoff id)."""
    before = len(live.twilio.to(number))
    live.sms(number, "hello")
    wait_until(lambda: live.twilio.to(number), before + 1, timeout=90)
    conversation = conversation_of(live, "sms", number)
    return conversation.id, live.run(live.gateway.handoffs.start(conversation.id, reason))


def victim_says(live: LiveGateway, number: str, text: str, conversation_id: int) -> None:
    """An SMS from the person while a coordinator has them; waits until it is stored."""
    live.sms(number, text)

    def stored() -> list[Any]:
        packet = live.run(live.gateway.handoffs.packet(open_handoff_id(live, conversation_id)))
        return [line for line in packet.transcript if line.text == text]

    wait_until(stored, 1)


def open_handoff_id(live: LiveGateway, conversation_id: int) -> int:
    with live.db() as session:
        found = session.scalar(
            select(Handoff.id).where(
                Handoff.conversation_id == conversation_id, Handoff.state != "closed"
            )
        )
    assert found is not None
    return found


def assert_secure_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


def assert_no_inline_code(page: str) -> None:
    """The CSP forbids inline script and style; the pages must not rely on them."""
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline <script>"
    assert "<style" not in page
    assert not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page), "inline event handler"


# -- signing in ---------------------------------------------------------------------------


def test_sign_in_sets_a_strict_session_cookie_and_keeps_only_its_digest(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = coordinator(live)
    console = Console(live)
    form = console.client.get(console.url("/console/login"))
    assert_secure_headers(form)
    assert_no_inline_code(form.text)
    login_cookie = set_cookies(form)["waymark_console_login"]
    for part in ("HttpOnly", "Path=/console", "SameSite=strict", "Secure"):
        assert part in login_cookie

    response = console.sign_in(sam.username, PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = set_cookies(response)["waymark_console"]
    for part in ("HttpOnly", "Path=/console", "SameSite=strict", "Secure", "Max-Age=43200"):
        assert part in cookie, cookie
    # The form's one-use cookie is cleared.
    assert "Max-Age=0" in set_cookies(response)["waymark_console_login"]

    with live.db() as session:
        rows = session.scalars(
            select(ConsoleSession).where(ConsoleSession.coordinator_id == sam.id)
        ).all()
    assert len(rows) == 1
    assert rows[0].token_digest == hashlib.sha256(console.token.encode()).hexdigest()
    assert console.token not in json.dumps([rows[0].token_digest, rows[0].csrf_token])
    assert rows[0].csrf_token == console.csrf
    expires = rows[0].expires_at.replace(tzinfo=rows[0].expires_at.tzinfo or UTC)
    assert timedelta(hours=11.9) < expires - datetime.now(UTC) <= timedelta(hours=12)
    assert actions(live, coordinator_id=sam.id)[:1] == ["sign_in"]

    page = console.get("/console")
    assert page.status_code == 200
    assert_secure_headers(page)
    assert_no_inline_code(page.text)
    assert f"Signed in as {sam.display_name}" in page.text
    # Signed in already: the sign-in page goes to the queue.
    again = console.get("/console/login")
    assert again.status_code == 303 and again.headers["location"] == "/console"


def test_wrong_password_unknown_user_and_inactive_account_get_the_same_answer(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = coordinator(live)
    gone = coordinator(live, active=False)
    answers = []
    for username, password in (
        (sam.username, "not the password at all"),
        (f"nobody-{uuid.uuid4().hex[:8]}", PASSWORD),
        (gone.username, PASSWORD),
        ("", ""),
    ):
        console = Console(live)
        response = console.sign_in(username, password)
        assert "waymark_console" not in set_cookies(response)
        assert_secure_headers(response)
        answers.append((response.status_code, error_text(response.text)))
    assert set(answers) == {(401, answers[0][1])}
    assert answers[0][1].startswith(FAILED)

    failed = [r for r in audit_rows(live, action="sign_in_failed") if r.actor == sam.username]
    assert failed and failed[-1].coordinator_id is None
    assert reload(live, sam).failed_logins == 1


def test_a_failed_sign_in_audits_the_username_as_typed_cut_to_80_and_never_the_password(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    typed = "Someone-" + uuid.uuid4().hex + "x" * 100
    secret = f"pw-{uuid.uuid4().hex}"
    Console(live).sign_in(typed, secret)
    rows = [r for r in audit_rows(live, action="sign_in_failed") if r.actor == typed[:80]]
    assert len(rows) == 1
    everything = json.dumps([[r.actor, r.detail] for r in audit_rows(live)])
    assert secret not in everything


def test_the_account_locks_after_repeated_failures_and_refuses_even_the_right_password(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = coordinator(live)
    limit = live.settings.console_max_failures
    wrong = Console(live)
    for _ in range(limit - 1):
        assert wrong.sign_in(sam.username, "a wrong password").status_code == 401
    assert reload(live, sam).locked_until is None
    assert reload(live, sam).failed_logins == limit - 1
    assert wrong.sign_in(sam.username, "a wrong password").status_code == 401
    locked = reload(live, sam).locked_until
    assert locked is not None
    until = locked if locked.tzinfo else locked.replace(tzinfo=UTC)
    minutes = live.settings.console_lock_minutes
    assert timedelta(minutes=minutes - 1) < until - datetime.now(UTC) <= timedelta(minutes=minutes)

    right = Console(live).sign_in(sam.username, PASSWORD)
    assert right.status_code == 401
    assert error_text(right.text).startswith(FAILED)
    assert "waymark_console" not in set_cookies(right)
    last = [r for r in audit_rows(live, action="sign_in_failed") if r.actor == sam.username][-1]
    assert last.detail == {"locked": True}

    # Once the lock has run out, the right password works and the count starts again.
    with live.db() as session, session.begin():
        session.execute(
            update(Coordinator)
            .where(Coordinator.id == sam.id)
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1), failed_logins=3)
        )
    assert Console(live).sign_in(sam.username, PASSWORD).status_code == 303
    after = reload(live, sam)
    assert after.failed_logins == 0 and after.locked_until is None


# -- CSRF -----------------------------------------------------------------------------------


def test_the_sign_in_form_needs_its_double_submit_token(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live)
    console = Console(live)
    # No cookie at all (a cross-site form).
    bare = console.client.post(
        console.url("/console/login"),
        data={"username": sam.username, "password": PASSWORD, "csrf_token": "x" * 43},
    )
    assert bare.status_code == 403
    assert "waymark_console" not in set_cookies(bare)
    # A cookie, but another token in the form.
    console.login_form()
    mismatch = console.client.post(
        console.url("/console/login"),
        data={"username": sam.username, "password": PASSWORD, "csrf_token": "y" * 43},
        headers=console.cookie_header(),
    )
    assert mismatch.status_code == 403
    assert error_text(mismatch.text) == "This form has expired. Reload the page and try again."
    assert "waymark_console" not in set_cookies(mismatch)
    # Refused before the password was checked: no failure counted.
    assert reload(live, sam).failed_logins == 0


def test_state_changing_calls_need_the_sessions_csrf_token(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live, on_duty=False)
    other = Console.signed_in(live, coordinator(live))
    console = Console.signed_in(live, sam)
    for token in (False, "", "not-the-token", other.csrf):
        refused = console.post("/console/api/duty", {"on_duty": True}, csrf=token)
        assert refused.status_code == 403, token
        assert refused.json()["detail"] == "This form has expired. Reload the page and try again."
        assert_secure_headers(refused)
    assert reload(live, sam).on_duty is False

    # As a form field too (how the sign-out form sends it), but never as a query string.
    query = console.client.post(
        console.url(f"/console/api/duty?csrf_token={console.csrf}"),
        json={"on_duty": True},
        headers=console.cookie_header(),
    )
    assert query.status_code == 403
    assert console.post("/console/api/duty", {"on_duty": True}).json() == {"on_duty": True}
    assert reload(live, sam).on_duty is True
    assert "duty_on" in actions(live, coordinator_id=sam.id)


# -- sessions -------------------------------------------------------------------------------


def test_signing_out_revokes_the_session(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live)
    console = Console.signed_in(live, sam)
    token = console.token
    # Sign-out is a form post: without the token it is refused.
    headers = console.cookie_header()
    refused = console.client.post(console.url("/console/logout"), headers=headers)
    assert refused.status_code == 403
    assert console.get("/console/api/queue").status_code == 200

    out = console.client.post(
        console.url("/console/logout"), data={"csrf_token": console.csrf}, headers=headers
    )
    assert out.status_code == 303
    assert out.headers["location"] == "/console/login?signed_out=1"
    assert "Max-Age=0" in set_cookies(out)["waymark_console"]
    with live.db() as session:
        row = session.scalar(
            select(ConsoleSession).where(
                ConsoleSession.token_digest == hashlib.sha256(token.encode()).hexdigest()
            )
        )
    assert row is not None and row.revoked_at is not None
    assert actions(live, coordinator_id=sam.id)[-1] == "sign_out"

    # The old cookie is dead everywhere, even if a browser kept it.
    stale = {"Cookie": f"waymark_console={token}"}
    api = console.client.get(console.url("/console/api/queue"), headers=stale)
    assert api.status_code == 401
    assert api.json() == {"detail": "Sign in to the console first."}
    page = console.client.get(console.url("/console"), headers=stale)
    assert page.status_code == 303 and page.headers["location"] == "/console/login"
    signed_out = console.client.get(console.url("/console/login?signed_out=1"))
    assert "You have signed out." in signed_out.text


def test_an_expired_session_or_a_deactivated_account_is_signed_out(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = coordinator(live)
    expired = Console.signed_in(live, sam)
    with live.db() as session, session.begin():
        session.execute(
            update(ConsoleSession)
            .where(
                ConsoleSession.token_digest == hashlib.sha256(expired.token.encode()).hexdigest()
            )
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert expired.get("/console/api/queue").status_code == 401

    alex = coordinator(live)
    leaving = Console.signed_in(live, alex)
    with live.db() as session, session.begin():
        session.execute(update(Coordinator).where(Coordinator.id == alex.id).values(active=False))
    assert leaving.get("/console/api/tasks").status_code == 401


def test_signing_in_again_revokes_the_browsers_old_session(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live)
    console = Console.signed_in(live, sam)
    first = console.token
    # The same browser posts the form again (say, from a tab opened before).
    token = Console(live).login_form()
    again = console.client.post(
        console.url("/console/login"),
        data={"username": sam.username, "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": f"waymark_console={first}; waymark_console_login={token}"},
    )
    assert again.status_code == 303
    second = cookie_value(set_cookies(again)["waymark_console"])
    assert second != first
    for cookie, code in ((first, 401), (second, 200)):
        response = console.client.get(
            console.url("/console/api/queue"), headers={"Cookie": f"waymark_console={cookie}"}
        )
        assert response.status_code == code


# -- the work itself ------------------------------------------------------------------------


def test_claim_reply_note_transfer_and_close_through_the_api_audits_without_content(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam, alex = coordinator(live), coordinator(live)
    number = fresh_number()
    conversation_id, handoff_id = start_handoff(live, number)
    sam_console, alex_console = Console.signed_in(live, sam), Console.signed_in(live, alex)

    queue = sam_console.get("/console/api/queue")
    assert_secure_headers(queue)
    mine = [q for q in queue.json()["items"] if q["conversation_id"] == conversation_id]
    assert len(mine) == 1
    assert mine[0]["handoff_id"] == handoff_id
    assert mine[0]["state"] == "queued" and mine[0]["reason_text"] == "Asked for a person"
    assert mine[0]["channel"] == "sms" and mine[0]["urgent"] is False

    packet = sam_console.get(f"/console/api/handoffs/{handoff_id}").json()
    assert packet["state"] == "queued" and packet["mine"] is False
    assert packet["risk"] == "standard" and packet["case_reference"] is None
    assert any(line["who"] == "person" and line["text"] == "hello" for line in packet["transcript"])

    assert sam_console.post(f"/console/api/handoffs/{handoff_id}/claim").json()["claimed"]
    # Claiming again (a second tab) is fine; someone else is told who was first.
    assert sam_console.post(f"/console/api/handoffs/{handoff_id}/claim").status_code == 200
    lost = alex_console.post(f"/console/api/handoffs/{handoff_id}/claim")
    assert lost.status_code == 409
    assert lost.json()["detail"].endswith(f"already has #{handoff_id}.")

    reply = f"SECRET-REPLY-{uuid.uuid4().hex[:8]}"
    sent = sam_console.post(f"/console/api/handoffs/{handoff_id}/reply", {"text": reply})
    assert sent.status_code == 200, sent.text
    wait_until(lambda: [t for t in live.twilio.to(number) if t == reply], 1)
    # Only the coordinator who has the conversation replies.
    refused = alex_console.post(f"/console/api/handoffs/{handoff_id}/reply", {"text": "hi"})
    assert refused.status_code == 409
    assert refused.json() == {"detail": f"#{handoff_id} belongs to another coordinator."}
    empty = sam_console.post(f"/console/api/handoffs/{handoff_id}/reply", {"text": "  "})
    assert empty.status_code == 400 and empty.json() == {"detail": "The message is empty."}

    said = f"SECRET-VICTIM-{uuid.uuid4().hex[:8]}"
    victim_says(live, number, said, conversation_id)
    note = f"SECRET-NOTE-{uuid.uuid4().hex[:8]}"
    assert sam_console.post(f"/console/api/handoffs/{handoff_id}/note", {"text": note}).json()
    packet = sam_console.get(f"/console/api/handoffs/{handoff_id}").json()
    assert packet["mine"] is True and packet["state"] == "claimed"
    assert [n["text"] for n in packet["notes"]] == [note]
    texts = [(line["who"], line["text"]) for line in packet["transcript"]]
    assert ("coordinator", reply) in texts and ("person", said) in texts

    nobody = sam_console.post(f"/console/api/handoffs/{handoff_id}/transfer", {"to": "nobody-x"})
    assert nobody.status_code == 400
    moved = sam_console.post(f"/console/api/handoffs/{handoff_id}/transfer", {"to": alex.username})
    assert moved.json() == {"transferred": True, "to": alex.username, "to_name": alex.display_name}
    assert alex_console.get(f"/console/api/handoffs/{handoff_id}").json()["mine"] is True

    bad = alex_console.post(f"/console/api/handoffs/{handoff_id}/close", {"outcome": "vanished"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("Choose an outcome")
    closed = alex_console.post(f"/console/api/handoffs/{handoff_id}/close", {"outcome": "resolved"})
    assert closed.json() == {"closed": True, "outcome": "resolved"}
    again = alex_console.post(f"/console/api/handoffs/{handoff_id}/close", {"outcome": "resolved"})
    assert again.status_code == 409
    assert again.json() == {"detail": f"Handoff #{handoff_id} is already closed."}
    assert conversation_of(live, "sms", number).owner == "bot"

    done = actions(live, handoff_id=handoff_id)
    for action in ("view_conversation", "claim", "reply", "note", "transfer", "close"):
        assert action in done, (action, done)
    assert "view_queue" in actions(live, coordinator_id=sam.id)
    # The audit log says who did what; never what anyone wrote.
    everything = json.dumps(
        [[r.actor, r.action, r.detail] for r in audit_rows(live)], ensure_ascii=False
    )
    for secret in (reply, said, note):
        assert secret not in everything


def test_views_are_audited_but_live_refreshes_at_most_once_a_minute(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    number = fresh_number()
    _, handoff_id = start_handoff(live, number)
    console = Console.signed_in(live, sam)
    for _ in range(3):
        assert console.get("/console/api/queue").status_code == 200
        assert console.get(f"/console/api/handoffs/{handoff_id}").status_code == 200
        assert console.get("/console/api/tasks").status_code == 200
    seen = actions(live, coordinator_id=sam.id)
    assert seen.count("view_queue") == 1
    assert seen.count("view_tasks") == 1
    assert seen.count("view_conversation") == 1
    # Opening the page is a view of its own, every time.
    for _ in range(2):
        assert console.get(f"/console/handoffs/{handoff_id}").status_code == 200
    assert actions(live, coordinator_id=sam.id).count("view_conversation") == 3


def test_the_packet_page_shows_the_verified_case_and_audits_viewing_it(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    _, conversation = greeted(live)
    reference = fresh_reference()
    with live.db() as session, session.begin():
        case = Case(reference=reference, agency="met", crime_type="burglary", stage="charged")
        session.add(case)
        session.flush()
        victim = Victim(
            case_id=case.id,
            external_id=f"v-{uuid.uuid4().hex[:8]}",
            consent_at=datetime.now(UTC),
            safe_to_text=False,
            discreet=True,
        )
        session.add(victim)
        session.flush()
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(verified_victim_id=victim.id)
        )
        case_id = case.id
    handoff_id = live.run(live.gateway.handoffs.start(conversation.id, "complain"))
    console = Console.signed_in(live, sam)

    page = console.get(f"/console/handoffs/{handoff_id}")
    assert page.status_code == 200
    assert_secure_headers(page)
    assert_no_inline_code(page.text)
    assert reference in page.text and "(stage: charged)" in page.text
    assert re.search(r"Safe to text</dt>\s*<dd[^>]*>No<", page.text)
    assert "Wants to complain" in page.text
    rows = audit_rows(live, coordinator_id=sam.id, handoff_id=handoff_id)
    assert [r.action for r in rows] == ["view_conversation", "view_case"]
    assert rows[1].case_id == case_id and rows[1].conversation_id == conversation.id
    data = console.get(f"/console/api/handoffs/{handoff_id}").json()
    assert data["case_reference"] == reference
    assert data["preferences"]["safe_to_text"] is False

    missing = console.get("/console/handoffs/999999999")
    assert missing.status_code == 404 and "Page not found" in missing.text
    assert console.get("/console/api/handoffs/999999999").status_code == 404


def test_victim_text_is_escaped_on_the_page(live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    number = fresh_number()
    conversation_id, handoff_id = start_handoff(live, number)
    console = Console.signed_in(live, sam)
    assert console.post(f"/console/api/handoffs/{handoff_id}/claim").status_code == 200
    victim_says(live, number, HOSTILE, conversation_id)
    page = console.get(f"/console/handoffs/{handoff_id}")
    assert "<script>window.pwned" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page.text
    assert_no_inline_code(page.text.replace("onerror=&#34;", ""))
    assert console.get(f"/console/api/handoffs/{handoff_id}").json()["transcript"][-1]["text"] == (
        HOSTILE
    )


def test_a_coordinator_takes_over_from_the_assistant_and_hands_back(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    number, conversation = greeted(live)
    console = Console.signed_in(live, sam)

    taken = console.post(f"/console/api/conversations/{conversation.id}/take-over")
    assert taken.status_code == 200, taken.text
    handoff_id = taken.json()["handoff_id"]
    packet = console.get(f"/console/api/handoffs/{handoff_id}").json()
    assert packet["mine"] is True and packet["reason"] == "console"
    assert conversation_of(live, "sms", number).owner == "human"
    assert "take_over" in actions(live, handoff_id=handoff_id)

    back = console.post(f"/console/api/handoffs/{handoff_id}/back")
    assert back.json() == {"closed": True, "outcome": "handed_back"}
    assert conversation_of(live, "sms", number).owner == "bot"
    assert "hand_back" in actions(live, handoff_id=handoff_id)
    missing = console.post("/console/api/conversations/999999999/take-over")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "That conversation does not exist."}


def test_tasks_are_listed_urgent_first_and_can_be_marked_done(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live)
    now = datetime.now(UTC)
    with live.db() as session, session.begin():
        made = [
            Task(
                kind="overdue_update",
                dedupe_key=f"test:{uuid.uuid4().hex}",
                priority=1,
                detail="Update overdue: case needs an update.",
                due_at=now - timedelta(days=3),
            ),
            Task(
                kind="urgent_event",
                dedupe_key=f"test:{uuid.uuid4().hex}",
                priority=0,
                detail="Urgent: a bail decision to tell.",
                due_at=now + timedelta(hours=1),
            ),
            Task(
                kind="callback_request",
                dedupe_key=f"test:{uuid.uuid4().hex}",
                priority=1,
                detail="Call back <b>soon</b>.",
                due_at=None,
            ),
        ]
        session.add_all(made)
        session.flush()
        ids = [t.id for t in made]
    console = Console.signed_in(live, sam)
    tasks = console.get("/console/api/tasks").json()["tasks"]
    ours = [t for t in tasks if t["id"] in ids]
    assert [t["id"] for t in ours] == [ids[1], ids[0], ids[2]]
    assert ours[0]["urgent"] is True and ours[0]["kind_text"] == "Urgent case event"
    # Every urgent task comes before every other.
    flags = [t["urgent"] for t in tasks]
    assert flags == sorted(flags, reverse=True)
    assert "view_tasks" in actions(live, coordinator_id=sam.id)

    page = console.get("/console")
    assert "Call back &lt;b&gt;soon&lt;/b&gt;." in page.text

    assert console.post(f"/console/api/tasks/{ids[1]}/done").json()["done"] is True
    again = console.post(f"/console/api/tasks/{ids[1]}/done")
    assert again.status_code == 409
    assert console.post("/console/api/tasks/999999999/done").status_code == 404
    assert ids[1] not in [t["id"] for t in console.get("/console/api/tasks").json()["tasks"]]


def test_canned_replies_can_be_added_and_edited(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live)
    console = Console.signed_in(live, sam)
    replies = console.get("/console/api/canned").json()["replies"]
    assert "Hello" in [r["title"] for r in replies]

    title = f"Court dates {uuid.uuid4().hex[:6]} <i>"
    added = console.post("/console/api/canned", {"title": title, "text": "We will check."})
    assert added.status_code == 201, added.text
    reply_id = added.json()["id"]
    edited = console.send(
        "PUT", f"/console/api/canned/{reply_id}", {"title": title, "text": "  Checking now.  "}
    )
    assert edited.json()["text"] == "Checking now."
    with live.db() as session:
        row = session.get(CannedReply, reply_id)
        assert row is not None and row.text == "Checking now." and row.updated_by == sam.id
    saved = [r for r in audit_rows(live, coordinator_id=sam.id, action="canned_reply_saved")]
    assert [r.detail for r in saved] == [{"canned_reply_id": reply_id}] * 2

    duplicate = console.post("/console/api/canned", {"title": title, "text": "Again."})
    assert duplicate.status_code == 409
    empty = console.post("/console/api/canned", {"title": "Empty", "text": "   "})
    assert empty.status_code == 422
    assert empty.json()["detail"] == "Write the reply: 1 to 2000 characters."
    missing = console.send("PUT", "/console/api/canned/999999", {"title": "x", "text": "y"})
    assert missing.status_code == 404
    refused = console.send(
        "PUT", f"/console/api/canned/{reply_id}", {"title": "x", "text": "y"}, csrf=False
    )
    assert refused.status_code == 403

    page = console.get("/console/canned")
    assert page.status_code == 200
    assert_no_inline_code(page.text)
    assert title.replace("<i>", "&lt;i&gt;") in page.text


def test_the_audit_log_and_figures_are_for_supervisors_only(live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live)
    boss = coordinator(live, role="supervisor")
    number = fresh_number()
    conversation_id, handoff_id = start_handoff(live, number)
    worker, supervisor = Console.signed_in(live, sam), Console.signed_in(live, boss)
    worker.get(f"/console/handoffs/{handoff_id}")

    page = worker.get("/console/audit")
    assert page.status_code == 403 and "You can't see this page" in html.unescape(page.text)
    assert_secure_headers(page)
    assert worker.get("/console/api/feedback").status_code == 403
    assert 'href="/console/audit"' not in worker.get("/console").text

    full = supervisor.get("/console/audit")
    assert full.status_code == 200
    assert_no_inline_code(full.text)
    assert 'href="/console/audit"' in supervisor.get("/console").text
    assert "view_audit" in actions(live, coordinator_id=boss.id)

    mine = supervisor.get("/console/audit", conversation_id=str(conversation_id))
    rows = re.findall(r'<tr data-action="([a-z_]+)">', mine.text)
    assert "view_conversation" in rows
    assert set(rows) <= set(actions(live, conversation_id=conversation_id))
    by_sam = supervisor.get("/console/audit", coordinator=sam.username)
    assert set(re.findall(r'<tr data-action="([a-z_]+)">', by_sam.text)) == set(
        actions(live, actor=sam.username)
    )
    wrong = supervisor.get("/console/audit", conversation_id="forty-two")
    assert wrong.status_code == 200
    assert error_text(wrong.text) == "Enter a conversation number, like 42."

    figures = supervisor.get("/console/api/feedback", days="7").json()
    assert figures["days"] == 7 and figures["handoffs"] >= 1
    assert supervisor.get("/console/api/feedback", days="0").status_code == 422


def test_the_event_stream_tells_the_console_and_ends_when_the_session_does(
    live_gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = live_gateway
    sam = coordinator(live)
    console = Console.signed_in(live, sam)
    desk = live.gateway.handoffs
    watchers = len(desk._watchers)
    monkeypatch.setattr(console_module, "KEEP_ALIVE", 0.3)
    with console.client.stream(
        "GET", console.url("/console/api/events"), headers=console.cookie_header()
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert_secure_headers(stream)
        live.app.state.loop.call_soon_threadsafe(
            desk.broadcast, {"type": "message", "conversation_id": 12345}
        )
        lines = stream.iter_lines()
        seen: list[str] = []
        for line in lines:
            seen.append(line)
            if line.startswith("data:") and "12345" in line:
                break
        assert "event: message" in seen
        for line in lines:
            if line.startswith(": keep-alive"):
                break
        # Signed out elsewhere: the stream says so and ends.
        with live.db() as session, session.begin():
            session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.coordinator_id == sam.id)
                .values(revoked_at=datetime.now(UTC))
            )
        rest = list(lines)
        assert "event: signed_out" in rest
    deadline = time.monotonic() + 10
    while len(desk._watchers) > watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(desk._watchers) == watchers
    assert console.client.get(console.url("/console/api/events")).status_code == 401


# -- both databases ---------------------------------------------------------------------------


def test_sign_in_lock_out_csrf_and_audit_on_each_database(gateway_on: LiveGateway) -> None:
    live = gateway_on
    sam = coordinator(live)
    wrong = Console(live)
    for _ in range(live.settings.console_max_failures):
        assert wrong.sign_in(sam.username, "wrong password here").status_code == 401
    assert Console(live).sign_in(sam.username, PASSWORD).status_code == 401
    with live.db() as session, session.begin():
        session.execute(
            update(Coordinator).where(Coordinator.id == sam.id).values(locked_until=None)
        )
    console = Console.signed_in(live, sam)
    assert console.post("/console/api/duty", {"on_duty": False}, csrf=False).status_code == 403
    assert console.post("/console/api/duty", {"on_duty": False}).status_code == 200
    assert console.get("/console/api/queue").json()["items"] == []
    token = console.token
    assert console.post("/console/logout").status_code == 303
    stale = console.client.get(
        console.url("/console/api/queue"), headers={"Cookie": f"waymark_console={token}"}
    )
    assert stale.status_code == 401
    assert actions(live) == [
        *["sign_in_failed"] * (live.settings.console_max_failures + 1),
        "sign_in",
        "view_queue",
        "view_tasks",
        "duty_off",
        "sign_out",
    ]
