"""SMS through Twilio: the inbound webhook, delivery status callbacks, and sending.

Every request is checked with Twilio's own `RequestValidator` against the public URL
Twilio used (behind a proxy the internal URL differs). The webhook stores the message,
then acknowledges with empty TwiML; replies go out through the REST API, in order.
"""

from __future__ import annotations

import logging
from typing import Annotated

from aiohttp import ClientError, encode_basic_auth
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from bot.channels import sms_text
from bot.channels.sms_keywords import is_ambiguous_opt_in, keyword
from bot.config import Settings
from bot.deps import GatewayDep, get_gateway
from bot.gateway import MAX_TEXT, DeliveryError, IncomingMessage, Rendered, Reply
from bot.handoff.sms import handle_coordinator_sms
from bot.models import Channel

logger = logging.getLogger(__name__)
# The Twilio client logs whole requests (numbers, bodies) at INFO: keep it quieter.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
logging.getLogger("twilio.async_http_client").setLevel(logging.WARNING)

router = APIRouter(prefix="/sms", tags=["sms"])
EMPTY_TWIML = str(MessagingResponse())
OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
# Twilio errors that mean "this will never work for this message": don't retry.
PERMANENT = {21211, 21408, 21610, 21612, 21614, 30003, 30004, 30005, 30006, 30007}


class TwilioHttp(AsyncTwilioHttpClient):
    """Twilio's asyncio transport, with the credentials sent as a header: aiohttp
    deprecates the `auth=` argument that the library still passes."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if auth is not None:
            headers = {**(headers or {}), "Authorization": encode_basic_auth(*auth)}
        return await super().request(
            method, url, params, data, headers, None, timeout, allow_redirects
        )


def build_client(settings: Settings, http_client: AsyncTwilioHttpClient | None = None) -> Client:
    """Twilio's client on its asyncio transport (make it inside the running loop)."""
    assert settings.twilio_account_sid and settings.twilio_auth_token
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client or TwilioHttp(timeout=15),
    )


class TwilioSender:
    channel = Channel.SMS

    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client

    def render(self, reply: Reply) -> list[Rendered]:
        """GSM-7 where possible, buttons as numbered choices, long text split at sentences."""
        text = sms_text.to_gsm7(sms_text.render_buttons(reply.text, list(reply.buttons)))
        return [Rendered(part) for part in sms_text.split(text, self.settings.sms_max_segments)]

    async def deliver(
        self, *, conversation_id: int, address: str, outbound_id: int, message: Rendered
    ) -> tuple[str | None, str]:
        kwargs: dict[str, str] = {"to": address, "body": message.text}
        if self.settings.twilio_messaging_service_sid:
            kwargs["messaging_service_sid"] = self.settings.twilio_messaging_service_sid
        elif self.settings.twilio_from_number:
            kwargs["from_"] = self.settings.twilio_from_number
        else:
            raise DeliveryError("no sending number configured", retryable=False)
        if self.settings.public_base_url:
            kwargs["status_callback"] = f"{self.settings.public_base_url}/sms/status"
        try:
            sent = await self.client.messages.create_async(**kwargs)
        except TwilioRestException as error:
            code = int(error.code) if error.code else None
            raise DeliveryError(
                f"Twilio error {code or error.status}",
                code=str(code) if code else str(error.status),
                retryable=code not in PERMANENT and (error.status >= 500 or error.status == 429),
                opted_out=code == OPTED_OUT,
            ) from error
        except (TwilioException, ClientError, TimeoutError, OSError) as error:  # try again
            raise DeliveryError(type(error).__name__, retryable=True) from error
        return sent.sid, sent.status or "queued"


async def verified_form(request: Request) -> dict[str, str]:
    """The form Twilio posted, once its signature checks out (403 otherwise)."""
    gateway = get_gateway(request)
    settings = gateway.settings
    if not settings.twilio_enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "SMS is not enabled.")
    try:
        form = await request.form()
    except Exception as error:  # malformed bodies come in many shapes
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Malformed form data.") from error
    params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    # Twilio signs the URL it called: the public one, with the raw query string.
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signature = request.headers.get("X-Twilio-Signature", "")
    assert settings.twilio_auth_token
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not signature or not validator.validate(url, params, signature):
        logger.warning("Rejected a Twilio request with a bad signature on %s", request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid signature.")
    return params


FormDep = Annotated[dict[str, str], Depends(verified_form)]


@router.post("/inbound")
async def inbound(form: FormDep, gateway: GatewayDep) -> Response:
    """Twilio's incoming-message webhook."""
    sid, sender = form.get("MessageSid", ""), form.get("From", "")
    if not sid or not sender:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "MessageSid and From are required.")
    if len(sid) > 64 or len(sender) > 64:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "MessageSid or From is too long.")
    body = form.get("Body", "")
    if len(body) > MAX_TEXT:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "Message too long.")
    # A coordinator's phone is never a victim's: their texts are commands or replies.
    if await handle_coordinator_sms(gateway, sender, body, sid):
        return Response(EMPTY_TWIML, media_type="application/xml")
    if not body.strip():
        # A picture, a location, or an empty text: all get the kind "text only" reply.
        kind = "non_text"
    else:
        kind = keyword(body) or "text"
        if kind == "start" and is_ambiguous_opt_in(body):
            kind = "text"  # YES is also an answer: the gateway checks the opt-out state
    await gateway.receive(
        IncomingMessage(channel=Channel.SMS, address=sender, text=body, provider_id=sid, kind=kind)
    )
    return Response(EMPTY_TWIML, media_type="application/xml")


@router.post("/status")
async def delivery_status(form: FormDep, gateway: GatewayDep) -> Response:
    """Twilio's status callback: delivery status per MessageSid, only ever forward."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    state = form.get("MessageStatus") or form.get("SmsStatus") or ""
    if not sid or not state or len(sid) > 64:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "MessageSid and MessageStatus are required."
        )
    known = await gateway.record_status(
        Channel.SMS, sid, state.lower(), form.get("ErrorCode") or None
    )
    if not known:
        # Not ours (yet): a callback can beat our own record of the send. 200 either way,
        # so Twilio doesn't retry something we can't use.
        logger.info("Status for an unknown message")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
