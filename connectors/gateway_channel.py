"""The gateway's channel into Rasa: `POST /webhooks/waymark/webhook`, bearer-token protected.

Modelled on Rasa's own `RestInput` (rasa/core/channels/rest.py), but the caller must send
`Authorization: Bearer <token>`, bad requests get a 400 with a JSON error instead of a
500, and the message id and metadata the gateway sends are kept on the user event.

Request body (JSON):
    sender      the conversation id (non-empty string, at most 128 characters)
    message     what the person wrote (a string, not empty or only whitespace)
    message_id  optional string, at most 128 characters; Rasa makes one when absent
    metadata    optional object, stored on the user event in the tracker

The response is the list of bot messages (text, buttons, image, custom...) that Rasa's
`CollectingOutputChannel` collected for the message.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 128


class BadRequest(ValueError):
    """The request body is not what the channel accepts; the message says why."""


def _error(message: str, status: int) -> HTTPResponse:
    return response.json({"error": message}, status=status)


def _parse_body(body: bytes) -> tuple[str, str, str | None, dict[str, Any] | None]:
    """sender, message, message_id and metadata from the request body, checked."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest("The body must be a JSON object.") from error
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    sender = data.get("sender")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_ID_LENGTH:
        raise BadRequest(
            f"'sender' must be a non-empty string of at most {MAX_ID_LENGTH} characters."
        )
    text = data.get("message")
    if not isinstance(text, str) or not text.strip():
        # Rasa's NLU pipeline fails on empty text, so it is refused here.
        raise BadRequest("'message' must be a string with some text in it.")
    message_id = data.get("message_id")
    if message_id is not None and (
        not isinstance(message_id, str) or not message_id or len(message_id) > MAX_ID_LENGTH
    ):
        raise BadRequest(
            f"'message_id' must be a non-empty string of at most {MAX_ID_LENGTH} characters."
        )
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be an object.")
    return sender, text, message_id, metadata


class GatewayInput(InputChannel):
    """The channel the Waymark gateway posts every person's message to."""

    @classmethod
    def name(cls) -> str:
        return "waymark"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        token = (credentials or {}).get("token")
        if not isinstance(token, str) or not token.strip():
            raise RasaException(
                "The Waymark gateway channel needs a 'token' in its credentials "
                "(connectors.gateway_channel.GatewayInput: token: ${WAYMARK_RASA_TOKEN})."
            )
        return cls(token)

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def _authorised(self, request: Request) -> bool:
        scheme, _, credential = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.strip().encode(), self._token)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        module = inspect.getmodule(self)
        webhook = Blueprint(
            f"custom_webhook_{type(self).__name__}", module.__name__ if module else None
        )

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorised(request):
                return _error("Missing or wrong bearer token.", 401)
            try:
                sender, text, message_id, metadata = _parse_body(request.body)
            except BadRequest as error:
                return _error(str(error), 400)
            collector = CollectingOutputChannel()
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        collector,
                        sender,
                        input_channel=self.name(),
                        message_id=message_id,
                        metadata=metadata,
                    )
                )
            except Exception:
                # The gateway gets a 500 rather than a silent empty reply, so it can
                # send its holding message. Only the exception is logged, not the text.
                logger.exception("Handling a gateway message failed.")
                return _error("Rasa could not handle the message.", 500)
            return response.json(collector.messages)

        return webhook
