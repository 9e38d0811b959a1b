"""The coordinator console: web pages and the JSON API behind them.

Pages (`/console/...`) are rendered on the server with autoescaped templates; the
page's script (`/static/console.js`) keeps them live by listening to the desk's
server-sent events (`/console/api/events`) and re-fetching JSON. Every action goes
through the `HandoffDesk` (`request.app.state.gateway.handoffs`), which does the work
and audits it; this module audits what coordinators look at.

Every route needs a signed-in coordinator (see `bot.handoff.auth`) except the sign-in
page itself; state-changing routes also need the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.cases.models import Case, Task, TaskState
from bot.gateway import MAX_TEXT, Gateway
from bot.handoff import audit, auth
from bot.handoff.auth import CsrfChecked, CurrentCoordinator, Signed, Supervisor
from bot.handoff.desk import HandoffDesk
from bot.handoff.errors import HandoffError
from bot.handoff.models import OUTCOMES, AuditEntry, CannedReply, Handoff
from bot.handoff.packets import Packet, QueueItem
from bot.services.models import Referral

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates" / "console"
LONDON = ZoneInfo("Europe/London")
VIEW_EVERY = 60.0  # seconds: repeated views (live refreshes) are audited at most this often
KEEP_ALIVE = 15.0  # seconds: a keep-alive comment (and a check the session is still live)
PING = 15  # sse-starlette's own keep-alive, in case a wait above is ever longer
AUDIT_ROWS = 200

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

OUTCOME_TEXT = {
    "resolved": "Resolved",
    "referred": "Referred to another service",
    "callback_arranged": "Call back arranged",
    "no_reply": "No reply from the person",
    "withdrawn": "Withdrawn from their case",
    "complaint_logged": "Complaint logged",
    "handed_back": "Handed back to the assistant",
    "other": "Other",
}
CHANNEL_TEXT = {"sms": "SMS", "telegram": "Telegram", "web": "Web chat"}
WHO_TEXT = {
    "person": "Person",
    "assistant": "Waymark assistant",
    "coordinator": "Coordinator",
    "system": "Waymark",
}
TASK_TEXT = {
    "overdue_update": "Update overdue",
    "decision_not_told": "Decision not told",
    "verification_locked": "Locked out of case look-ups",
    "urgent_event": "Urgent case event",
    "no_safe_route": "No safe way to contact",
    "callback_request": "Call back",
    "referral": "Referral to a service",
    "forgotten_referral": "Tell a service: person asked for deletion",
    "forgotten_contact": "Case updates need another route",
    "stop_signal": "STOP from a victim with an open case",
    "advocate_details": "Get the advocate's details",
}
ACTION_TEXT = {
    "sign_in": "Signed in",
    "sign_in_failed": "Sign-in failed",
    "sign_out": "Signed out",
    "view_queue": "Viewed the queue",
    "view_conversation": "Viewed a conversation",
    "view_case": "Viewed a case",
    "view_audit": "Viewed the audit log",
    "task_done": "Marked a task done",
    "view_tasks": "Viewed tasks",
    "claim": "Claimed",
    "reply": "Replied",
    "note": "Added a note",
    "transfer": "Transferred",
    "close": "Closed",
    "hand_back": "Handed back",
    "take_over": "Took over",
    "secret_reset": "Reset a secret",
    "canned_reply_saved": "Saved a canned reply",
    "duty_on": "Went on duty",
    "duty_off": "Went off duty",
    "preferences": "Victim changed contact preferences",
    "forget_me": "Person's data deleted at their request",
}


# -- formatting, shared by the templates -------------------------------------------------


def waited(seconds: int | float) -> str:
    """How long something has waited, in words (console.js has the same function)."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    hours, rest = divmod(minutes, 60)
    text = f"{hours} hour" + ("" if hours == 1 else "s")
    return text + (f" {rest} minute" + ("" if rest == 1 else "s") if rest else "")


def when(moment: datetime | str | None) -> str:
    """A time as coordinators read it: "26 Nov, 14:05", London time."""
    if not moment:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(LONDON)
    return f"{local.day} {local:%b}, {local:%H:%M}"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters.update(waited=waited, when=when, iso=_iso)
    env.globals.update(
        OUTCOMES=OUTCOMES,
        OUTCOME_TEXT=OUTCOME_TEXT,
        CHANNEL_TEXT=CHANNEL_TEXT,
        WHO_TEXT=WHO_TEXT,
        TASK_TEXT=TASK_TEXT,
        ACTION_TEXT=ACTION_TEXT,
    )
    return env


templates = Jinja2Templates(env=_environment())


# -- the route class: security headers and errors on every console response ------------


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(auth.API_PREFIX)


def _status_for(error: HandoffError) -> int:
    """The desk says why in a sentence; the status tells scripts what kind of refusal."""
    message = str(error)
    if message.startswith("There is no handoff") or "does not exist" in message:
        return status.HTTP_404_NOT_FOUND
    conflicts = ("already", "another coordinator", "Claim #", "belongs to")
    if any(part in message for part in conflicts):
        return status.HTTP_409_CONFLICT
    return status.HTTP_400_BAD_REQUEST


def _error_page(request: Request, code: int, message: str) -> Response:
    titles = {403: "You can't see this page", 404: "Page not found"}
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": titles.get(code, "Sorry, there is a problem"), "message": message},
        status_code=code,
    )


def _error(request: Request, code: int, detail: Any, headers: dict[str, str] | None) -> Response:
    if code == status.HTTP_303_SEE_OTHER and headers and "Location" in headers:
        return RedirectResponse(headers["Location"], status_code=code)
    if _is_api(request):
        return JSONResponse({"detail": detail}, status_code=code, headers=headers)
    return _error_page(request, code, detail if isinstance(detail, str) else "Try again.")


class ConsoleRoute(APIRoute):
    """Adds the console's security headers to every response, and turns refusals into
    JSON for the API or a page for people (a redirect to sign in, or an error page)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except StarletteHTTPException as error:
                response = _error(request, error.status_code, error.detail, error.headers)
            except HandoffError as error:
                response = _error(request, _status_for(error), str(error), None)
            except RequestValidationError as error:
                if _is_api(request):
                    errors = error.errors()
                    first = errors[0] if errors else {}
                    # One sentence, never the input back (it may be personal).
                    message = str(first.get("msg", "Invalid request.")).removeprefix(
                        "Value error, "
                    )
                    response = JSONResponse({"detail": message}, status_code=422)
                else:
                    response = _error_page(request, 404, "Check the address and try again.")
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded


# Not in the public OpenAPI document: the console's API is for its own pages.
router = APIRouter(
    prefix="/console", tags=["console"], route_class=ConsoleRoute, include_in_schema=False
)


# -- helpers ---------------------------------------------------------------------------


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def _desk(request: Request) -> HandoffDesk:
    return request.app.state.gateway.handoffs


def _first_view(request: Request, key: tuple[Any, ...]) -> bool:
    """True if this view was not audited in the last minute (live refreshes re-fetch)."""
    seen: dict[tuple[Any, ...], float] | None = getattr(request.app.state, "console_views", None)
    if seen is None:
        seen = request.app.state.console_views = {}
    now = time.monotonic()
    if now - seen.get(key, -VIEW_EVERY) < VIEW_EVERY:
        return False
    if len(seen) > 10_000:  # stale keys only matter for a minute
        seen.clear()
    seen[key] = now
    return True


async def _audit(request: Request, *entries: AuditEntry) -> None:
    async with _gateway(request).sessions() as session, session.begin():
        session.add_all(entries)


def _page(request: Request, name: str, signed: Signed, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {"me": signed.coordinator, "supervisor": signed.supervisor, "csrf": signed.csrf_token}
        | context,
    )


def _queue_json(item: QueueItem) -> dict[str, Any]:
    data = asdict(item)
    data["created_at"] = _iso(item.created_at)
    data["channel_text"] = CHANNEL_TEXT.get(item.channel, item.channel)
    return data


def _packet_json(packet: Packet, owner_id: int | None, signed: Signed) -> dict[str, Any]:
    data = asdict(packet)
    data["created_at"] = _iso(packet.created_at)
    data["urgent"] = packet.risk == "high"
    data["channel_text"] = CHANNEL_TEXT.get(packet.channel, packet.channel)
    data["mine"] = owner_id is not None and owner_id == signed.coordinator.id
    for key in ("transcript", "notes"):
        data[key] = [
            {
                "at": _iso(line.at),
                "who": line.who,
                "who_text": WHO_TEXT.get(line.who, line.who) if key == "transcript" else line.who,
                "text": line.text,
                "urgent": line.urgent,
            }
            for line in getattr(packet, key)
        ]
    return data


async def _packet(request: Request, handoff_id: int) -> tuple[Packet, int | None, int | None]:
    """The desk's packet, who owns the handoff, and the verified case's id (to audit)."""
    packet = await _desk(request).packet(handoff_id)
    async with _gateway(request).sessions() as session:
        owner = await session.scalar(select(Handoff.coordinator_id).where(Handoff.id == handoff_id))
        case_id = (
            await session.scalar(select(Case.id).where(Case.reference == packet.case_reference))
            if packet.case_reference
            else None
        )
    return packet, owner, case_id


async def _audit_packet(
    request: Request, signed: Signed, packet: Packet, case_id: int | None
) -> None:
    entries = [
        audit.entry(
            signed.coordinator,
            "view_conversation",
            conversation_id=packet.conversation_id,
            handoff_id=packet.handoff_id,
        )
    ]
    if case_id is not None:
        entries.append(
            audit.entry(
                signed.coordinator,
                "view_case",
                conversation_id=packet.conversation_id,
                case_id=case_id,
                handoff_id=packet.handoff_id,
            )
        )
    await _audit(request, *entries)


async def _tasks(request: Request) -> list[dict[str, Any]]:
    """Open tasks, urgent first, then the soonest due."""
    async with _gateway(request).sessions() as session:
        rows = (
            await session.execute(
                select(Task, Case.reference, Referral.id)
                .outerjoin(Case, Case.id == Task.case_id)
                .outerjoin(Referral, Referral.task_id == Task.id)
                .where(Task.state == TaskState.OPEN)
                .order_by(Task.priority, Task.due_at.asc().nulls_last(), Task.id)
                .limit(200)
            )
        ).all()
    return [
        {
            "id": task.id,
            "kind": task.kind,
            "kind_text": TASK_TEXT.get(task.kind, task.kind.replace("_", " ").capitalize()),
            "urgent": task.priority == 0,
            "detail": task.detail,
            "case_reference": reference,
            "conversation_id": task.conversation_id,
            "due_at": _iso(task.due_at),
            "due_text": when(task.due_at),
            "referral_id": referral_id,
        }
        for task, reference, referral_id in rows
    ]


async def _audit_tasks(request: Request, signed: Signed) -> None:
    if _first_view(request, ("tasks", signed.coordinator.id)):
        await _audit(request, audit.entry(signed.coordinator, "view_tasks"))


async def _audit_queue(request: Request, signed: Signed) -> None:
    if _first_view(request, ("queue", signed.coordinator.id)):
        await _audit(request, audit.entry(signed.coordinator, "view_queue"))


async def _canned(request: Request) -> list[CannedReply]:
    async with _gateway(request).sessions() as session:
        return list((await session.scalars(select(CannedReply).order_by(CannedReply.title))).all())


def _canned_json(reply: CannedReply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "title": reply.title,
        "text": reply.text,
        "updated_at": _iso(reply.updated_at),
    }


# -- pages -------------------------------------------------------------------------------


def _login_page(
    request: Request, *, error: str | None = None, username: str = "", code: int = 200
) -> Response:
    token = auth.login_token(request)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "csrf": token,
            "error": error,
            "username": username[:200],
            "signed_out": request.query_params.get("signed_out") == "1",
        },
        status_code=code,
    )
    auth.set_login_cookie(response, _gateway(request).settings, token)
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request) -> Response:
    """The sign-in form. Public."""
    if await auth.session_for(_gateway(request), request.cookies.get(auth.COOKIE)):
        return RedirectResponse("/console", status_code=status.HTTP_303_SEE_OTHER)
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Sign in. Public, but the form's double-submit CSRF token must match."""
    if not auth.login_csrf_ok(request, csrf_token):
        return _login_page(request, error=auth.CSRF_FAILED, username=username, code=403)
    gateway = _gateway(request)
    new = await auth.sign_in(gateway, username, password, replaces=request.cookies.get(auth.COOKIE))
    if new is None:
        return _login_page(request, error=auth.FAILED, username=username, code=401)
    response = RedirectResponse("/console", status_code=status.HTTP_303_SEE_OTHER)
    auth.set_session_cookie(response, gateway.settings, new.token)
    auth.clear_login_cookie(response, gateway.settings)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, signed: CsrfChecked) -> Response:
    gateway = _gateway(request)
    await auth.sign_out(gateway, signed)
    response = RedirectResponse(
        auth.LOGIN_URL + "?signed_out=1", status_code=status.HTTP_303_SEE_OTHER
    )
    auth.clear_session_cookie(response, gateway.settings)
    return response


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def queue_page(request: Request, signed: CurrentCoordinator) -> Response:
    """The queue, tasks and the on-duty switch."""
    desk = _desk(request)
    items = [_queue_json(item) for item in await desk.queue()]
    counts = await desk.counts()
    tasks = await _tasks(request)
    await _audit_queue(request, signed)
    await _audit_tasks(request, signed)
    figures = (
        await desk.figures(datetime.now(UTC) - timedelta(days=28)) if signed.supervisor else None
    )
    return _page(
        request, "queue.html", signed, items=items, counts=counts, tasks=tasks, figures=figures
    )


@router.get("/handoffs/{handoff_id}", response_class=HTMLResponse, include_in_schema=False)
async def handoff_page(request: Request, handoff_id: int, signed: CurrentCoordinator) -> Response:
    """One handoff's packet: why, risk, case, safe-contact preferences, summary,
    transcript, notes, and what the coordinator can do."""
    packet, owner, case_id = await _packet(request, handoff_id)
    await _audit_packet(request, signed, packet, case_id)
    _first_view(request, ("packet", signed.coordinator.id, handoff_id))  # the page counts
    return _page(
        request,
        "handoff.html",
        signed,
        data=_packet_json(packet, owner, signed),
        canned=await _canned(request),
        max_text=MAX_TEXT,
    )


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
async def audit_page(
    request: Request,
    signed: Supervisor,
    conversation_id: str = "",
    coordinator: str = "",
) -> Response:
    """The latest audit entries, optionally for one conversation or coordinator."""
    conversation_id, coordinator = conversation_id.strip(), coordinator.strip().lstrip("@")
    error = None
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_ROWS)
    if conversation_id:
        if conversation_id.isdigit() and len(conversation_id) < 12:
            query = query.where(AuditEntry.conversation_id == int(conversation_id))
        else:
            error = "Enter a conversation number, like 42."
    if coordinator:
        query = query.where(AuditEntry.actor == coordinator[:80].lower())
    entries: list[AuditEntry] = []
    if error is None:
        async with _gateway(request).sessions() as session:
            entries = list((await session.scalars(query)).all())
    await _audit(
        request,
        audit.entry(
            signed.coordinator,
            "view_audit",
            conversation_id=int(conversation_id) if conversation_id and error is None else None,
        ),
    )
    return _page(
        request,
        "audit.html",
        signed,
        entries=entries,
        error=error,
        conversation_id=conversation_id,
        coordinator=coordinator,
        details={e.id: json.dumps(e.detail, sort_keys=True) if e.detail else "" for e in entries},
    )


@router.get("/canned", response_class=HTMLResponse, include_in_schema=False)
async def canned_page(request: Request, signed: CurrentCoordinator) -> Response:
    return _page(
        request,
        "canned.html",
        signed,
        canned=await _canned(request),
        max_text=MAX_TEXT,
        added=request.query_params.get("added") == "1",
    )


# -- JSON API ----------------------------------------------------------------------------


class TextIn(BaseModel):
    text: str = Field(max_length=10_000)


class TransferIn(BaseModel):
    to: str = Field(min_length=1, max_length=80, description="The coordinator's username")


class CloseIn(BaseModel):
    outcome: str = Field(description=f"One of: {', '.join(OUTCOMES)}")


class DutyIn(BaseModel):
    on_duty: bool


class CannedIn(BaseModel):
    title: str
    text: str

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 80:
            raise ValueError("Give the reply a title of 1 to 80 characters.")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > MAX_TEXT:
            raise ValueError(f"Write the reply: 1 to {MAX_TEXT} characters.")
        return value


@router.get("/api/queue")
async def api_queue(request: Request, signed: CurrentCoordinator) -> dict[str, Any]:
    """Open handoffs, urgent first, then the longest waiting."""
    items = await _desk(request).queue()
    counts = await _desk(request).counts()
    await _audit_queue(request, signed)
    return {
        "items": [_queue_json(item) for item in items],
        "counts": counts,
        "on_duty": signed.coordinator.on_duty,
    }


@router.get("/api/handoffs/{handoff_id}")
async def api_handoff(request: Request, handoff_id: int, signed: CurrentCoordinator) -> Any:
    packet, owner, case_id = await _packet(request, handoff_id)
    if _first_view(request, ("packet", signed.coordinator.id, handoff_id)):
        await _audit_packet(request, signed, packet, case_id)
    return _packet_json(packet, owner, signed)


@router.post("/api/handoffs/{handoff_id}/claim")
async def api_claim(request: Request, handoff_id: int, signed: CsrfChecked) -> dict[str, Any]:
    desk = _desk(request)
    if not await desk.claim(handoff_id, signed.coordinator):
        refused = await desk.not_claimed(handoff_id, signed.coordinator)
        if refused.startswith("There is no handoff"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, refused)
        # Claimed already by this coordinator (another tab, a double click): fine.
        if not refused.endswith("already yours."):
            raise HTTPException(status.HTTP_409_CONFLICT, refused)
    return {"claimed": True, "handoff_id": handoff_id}


@router.post("/api/handoffs/{handoff_id}/reply")
async def api_reply(
    request: Request, handoff_id: int, body: TextIn, signed: CsrfChecked
) -> dict[str, Any]:
    notified = await _desk(request).reply(handoff_id, signed.coordinator, body.text)
    return {"sent": True, "status": notified.status if notified else None}


@router.post("/api/handoffs/{handoff_id}/note")
async def api_note(
    request: Request, handoff_id: int, body: TextIn, signed: CsrfChecked
) -> dict[str, Any]:
    await _desk(request).note(handoff_id, signed.coordinator, body.text)
    return {"saved": True}


@router.post("/api/handoffs/{handoff_id}/transfer")
async def api_transfer(
    request: Request, handoff_id: int, body: TransferIn, signed: CsrfChecked
) -> dict[str, Any]:
    target = await _desk(request).transfer(handoff_id, signed.coordinator, body.to)
    return {"transferred": True, "to": target.username, "to_name": target.display_name}


@router.post("/api/handoffs/{handoff_id}/close")
async def api_close(
    request: Request, handoff_id: int, body: CloseIn, signed: CsrfChecked
) -> dict[str, Any]:
    await _desk(request).close(handoff_id, signed.coordinator, body.outcome)
    return {"closed": True, "outcome": body.outcome}


@router.post("/api/handoffs/{handoff_id}/back")
async def api_hand_back(request: Request, handoff_id: int, signed: CsrfChecked) -> dict[str, Any]:
    await _desk(request).hand_back(handoff_id, signed.coordinator)
    return {"closed": True, "outcome": "handed_back"}


@router.post("/api/conversations/{conversation_id}/take-over")
async def api_take_over(
    request: Request, conversation_id: int, signed: CsrfChecked
) -> dict[str, Any]:
    """Take a conversation from the assistant (or from the queue)."""
    handoff_id = await _desk(request).take_over(conversation_id, signed.coordinator)
    return {"handoff_id": handoff_id}


@router.post("/api/duty")
async def api_duty(request: Request, body: DutyIn, signed: CsrfChecked) -> dict[str, Any]:
    await _desk(request).set_duty(signed.coordinator, body.on_duty)
    return {"on_duty": body.on_duty}


@router.get("/api/tasks")
async def api_tasks(request: Request, signed: CurrentCoordinator) -> dict[str, Any]:
    """Open tasks, urgent first."""
    tasks = await _tasks(request)
    await _audit_tasks(request, signed)
    return {"tasks": tasks}


@router.post("/api/tasks/{task_id}/done")
async def api_task_done(request: Request, task_id: int, signed: CsrfChecked) -> dict[str, Any]:
    async with _gateway(request).sessions() as session, session.begin():
        done = await session.execute(
            update(Task)
            .where(Task.id == task_id, Task.state == TaskState.OPEN)
            .values(state=TaskState.DONE, closed_at=datetime.now(UTC))
        )
        if done.rowcount != 1:
            found = await session.scalar(select(Task.id).where(Task.id == task_id))
            if found is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no task #{task_id}.")
            raise HTTPException(status.HTTP_409_CONFLICT, f"Task #{task_id} is already done.")
        case_id = await session.scalar(select(Task.case_id).where(Task.id == task_id))
        session.add(
            audit.entry(signed.coordinator, "task_done", case_id=case_id, detail={"task": task_id})
        )
    _desk(request).broadcast({"type": "tasks"})
    return {"done": True, "task_id": task_id}


@router.get("/api/canned")
async def api_canned(request: Request, signed: CurrentCoordinator) -> dict[str, Any]:
    return {"replies": [_canned_json(r) for r in await _canned(request)]}


async def _save_canned(
    request: Request, signed: Signed, body: CannedIn, reply_id: int | None
) -> CannedReply:
    try:
        async with _gateway(request).sessions() as session, session.begin():
            if reply_id is None:
                reply = CannedReply(title=body.title, text=body.text)
                session.add(reply)
            else:
                found = await session.get(CannedReply, reply_id)
                if found is None:
                    raise HTTPException(
                        status.HTTP_404_NOT_FOUND, f"There is no canned reply #{reply_id}."
                    )
                reply = found
                reply.title, reply.text = body.title, body.text
            reply.updated_by = signed.coordinator.id
            reply.updated_at = datetime.now(UTC)
            await session.flush()
            session.add(
                audit.entry(
                    signed.coordinator, "canned_reply_saved", detail={"canned_reply_id": reply.id}
                )
            )
    except IntegrityError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "There is already a canned reply with that title."
        ) from None
    return reply


@router.post("/api/canned", status_code=status.HTTP_201_CREATED)
async def api_canned_add(request: Request, body: CannedIn, signed: CsrfChecked) -> dict[str, Any]:
    return _canned_json(await _save_canned(request, signed, body, None))


@router.put("/api/canned/{reply_id}")
async def api_canned_save(
    request: Request, reply_id: int, body: CannedIn, signed: CsrfChecked
) -> dict[str, Any]:
    return _canned_json(await _save_canned(request, signed, body, reply_id))


@router.get("/api/feedback")
async def api_feedback(
    request: Request,
    signed: Supervisor,
    days: Annotated[int, Query(ge=1, le=366, description="The period, in days")] = 28,
) -> dict[str, Any]:
    """Response times and ratings for the last `days` days. Supervisors only."""
    figures = await _desk(request).figures(datetime.now(UTC) - timedelta(days=days))
    return {"days": days, **figures}


@router.get("/api/events")
async def api_events(request: Request, signed: CurrentCoordinator) -> EventSourceResponse:
    """Server-sent events: `queue`, `message` (with a conversation id) and `tasks`, ids
    only; the page fetches what changed. Ends when the session does."""
    desk = _desk(request)
    gateway = _gateway(request)
    watching = desk.subscribe()

    async def stream() -> AsyncIterator[ServerSentEvent]:
        try:
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(watching.get(), timeout=KEEP_ALIVE)
                except TimeoutError:
                    if not await auth.still_signed_in(gateway, signed.session_id):
                        yield ServerSentEvent(data="{}", event="signed_out")
                        return
                    yield ServerSentEvent(comment="keep-alive")
                    continue
                kind = str(event.get("type") or "queue")
                yield ServerSentEvent(data=json.dumps(event), event=kind)
        finally:
            desk.unsubscribe(watching)

    return EventSourceResponse(stream(), ping=PING, headers={"Cache-Control": "no-store"})
