"""Web chat: the page, a JSON API for it (and for scripts), and live replies over SSE.

A session id is a random bearer secret held only in the page's memory (nothing in
localStorage or cookies). The database keeps a keyed hash of it, not the id itself.
Exit ends the session on the server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update
from sse_starlette.sse import EventSourceResponse

from actions import content
from bot.deps import GatewayDep
from bot.gateway import MAX_TEXT, Gateway, IncomingMessage, Rendered, Reply, clean_text
from bot.models import Channel, Contact, Conversation

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

router = APIRouter(tags=["web chat"])


class WebSender:
    """Replies to a web chat go to the page's live stream; the POST also returns them."""

    channel = Channel.WEB

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def render(self, reply: Reply) -> list[Rendered]:
        return [Rendered(reply.text, list(reply.buttons) or None)]

    async def deliver(
        self, *, conversation_id: int, address: str, outbound_id: int, message: Rendered
    ) -> tuple[str | None, str]:
        self.gateway.publish(
            conversation_id, public_message(outbound_id, message.text, message.buttons)
        )
        return None, "sent"


def public_message(
    message_id: int, text: str, buttons: list[dict[str, str]] | None
) -> dict[str, Any]:
    return {"id": message_id, "text": text, "buttons": buttons or []}


class SessionCreated(BaseModel):
    session_id: str
    events_url: str


class MessageIn(BaseModel):
    text: str = Field(description="What the person typed, or the button's title")
    payload: str | None = Field(default=None, max_length=500, description="A button's payload")
    client_message_id: str | None = Field(
        default=None, max_length=64, description="Optional: a retry with the same id is ignored"
    )

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = clean_text(value)
        if not value:
            raise ValueError("Type a message first.")
        if len(value) > MAX_TEXT:
            raise ValueError(f"Messages can be up to {MAX_TEXT} characters.")
        return value


class MessageOut(BaseModel):
    id: int
    text: str
    buttons: list[dict[str, str]]


class Replies(BaseModel):
    messages: list[MessageOut]


def _address(gateway: Gateway, session_id: str) -> str:
    return gateway.pseudonym("web-session", session_id)


async def _live_conversation(gateway: Gateway, session_id: str) -> int:
    """The conversation for a live session, or 404 (never created, exited or expired)."""
    if not session_id or len(session_id) > 64:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This chat has ended.")
    cutoff = datetime.now(UTC) - timedelta(minutes=gateway.settings.web_session_minutes)
    async with gateway.sessions() as session:
        row = (
            await session.execute(
                select(Conversation.id, Contact.ended_at, Contact.last_seen_at)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(
                    Contact.channel == Channel.WEB, Contact.address == _address(gateway, session_id)
                )
            )
        ).first()
    if row is None or row.ended_at is not None or _aware(row.last_seen_at) < cutoff:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This chat has ended.")
    return int(row.id)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Nothing from anywhere else: no third-party scripts, fonts, images or trackers, and
# the page can only talk to the gateway. Nothing is cached.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def chat_page(request: Request, gateway: GatewayDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "chat.html",
        {
            "exit_url": gateway.settings.web_exit_url,
            "notice": content.item("web.notice").parts[0],
            "greeting": content.item("assistant.greet").parts[0],
        },
        headers=PAGE_HEADERS,
    )


@router.post("/api/web/sessions", status_code=status.HTTP_201_CREATED)
async def create_session(gateway: GatewayDep) -> SessionCreated:
    """Start a chat. Keep the session id secret: it is the only key to the conversation."""
    session_id = secrets.token_urlsafe(24)
    async with gateway.sessions() as session, session.begin():
        await gateway.conversation_for(session, Channel.WEB, _address(gateway, session_id))
    return SessionCreated(
        session_id=session_id, events_url=f"/api/web/sessions/{session_id}/events"
    )


@router.post("/api/web/sessions/{session_id}/messages")
async def send_message(session_id: str, message: MessageIn, gateway: GatewayDep) -> Replies:
    """Send a message; returns the replies to it (or a holding reply if Rasa is slow)."""
    await _live_conversation(gateway, session_id)
    received = await gateway.receive(
        IncomingMessage(
            channel=Channel.WEB,
            address=_address(gateway, session_id),
            text=message.text,
            payload=message.payload,
            provider_id=(
                f"{_address(gateway, session_id)[:16]}:{message.client_message_id}"
                if message.client_message_id
                else None
            ),
        )
    )
    rows = await gateway.replies_for(received.inbound_id, timeout=gateway.settings.rasa_timeout + 5)
    return Replies(messages=[MessageOut(**public_message(r.id, r.text, r.buttons)) for r in rows])


@router.get("/api/web/sessions/{session_id}/events")
async def events(session_id: str, request: Request, gateway: GatewayDep) -> EventSourceResponse:
    """Server-sent events: every message to this chat, as it is sent (`event: message`)."""
    conversation_id = await _live_conversation(gateway, session_id)
    queue = gateway.subscribe(conversation_id)

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    continue  # sse-starlette sends its own keep-alive pings
                if event.get("type") == "end":
                    yield {"event": "end", "data": "{}"}
                    return
                yield {"event": "message", "data": json.dumps(event)}
        finally:
            gateway.unsubscribe(conversation_id, queue)

    return EventSourceResponse(stream(), ping=10, headers={"Cache-Control": "no-store"})


@router.delete("/api/web/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_session(session_id: str, gateway: GatewayDep) -> Response:
    """Exit: the session ends at once and can't be used again. Idempotent."""
    async with gateway.sessions() as session, session.begin():
        result = await session.execute(
            update(Contact)
            .where(Contact.channel == Channel.WEB, Contact.address == _address(gateway, session_id))
            .where(Contact.ended_at.is_(None))
            .values(ended_at=datetime.now(UTC))
            .returning(Contact.id)
        )
        contact_id = result.scalar()
        conversation_id = (
            await session.scalar(
                select(Conversation.id).where(Conversation.contact_id == contact_id)
            )
            if contact_id
            else None
        )
    if conversation_id is not None:
        gateway.publish(conversation_id, {"type": "end"})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
