"""Telegram through python-telegram-bot: a webhook on the gateway, or polling for local use.

One `Application` per process, built without an Updater in webhook mode. The webhook
checks Telegram's secret-token header before it reads anything. Updates become
channel-neutral messages; `update_id` is the provider id, so a redelivery is ignored.
Buttons become inline keyboards whose callback data points at the stored message and
button, so a tap on an old keyboard still means what it said.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity, Update
from telegram.constants import ChatType, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler
from telegram.request import BaseRequest

from bot.channels.phones import phone_spans
from bot.config import Settings
from bot.deps import GatewayDep
from bot.gateway import MAX_TEXT, DeliveryError, Gateway, IncomingMessage, Rendered, Reply
from bot.handoff.telegram import handle_coordinator_update
from bot.models import Channel, Outbound

logger = logging.getLogger(__name__)
# httpx logs each request URL at INFO, and Bot API URLs contain the bot token.
logging.getLogger("httpx").setLevel(logging.WARNING)
router = APIRouter(prefix="/telegram", tags=["telegram"])
ALLOWED_UPDATES = ["message", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def uses_webhook(settings: Settings) -> bool:
    if settings.telegram_mode == "auto":
        return settings.public_base_url is not None
    return settings.telegram_mode == "webhook"


def build_application(settings: Settings, request: BaseRequest | None = None) -> Application:
    assert settings.telegram_bot_token is not None
    builder = Application.builder().token(settings.telegram_bot_token.get_secret_value())
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    if uses_webhook(settings):
        builder = builder.updater(None)
    return builder.build()


class TelegramSender:
    channel = Channel.TELEGRAM

    def __init__(self, application: Application) -> None:
        self.application = application

    def render(self, reply: Reply) -> list[Rendered]:
        text = reply.text or "Choose one:"
        limit = MessageLimit.MAX_TEXT_LENGTH
        chunks = [text[i : i + limit] for i in range(0, len(text), limit)]
        return [
            Rendered(chunk, list(reply.buttons) if i == len(chunks) - 1 and reply.buttons else None)
            for i, chunk in enumerate(chunks)
        ]

    async def deliver(
        self, *, conversation_id: int, address: str, outbound_id: int, message: Rendered
    ) -> tuple[str | None, str]:
        markup = None
        if message.buttons:
            markup = InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(b["title"][:64], callback_data=f"b:{outbound_id}:{i}")]
                    for i, b in enumerate(message.buttons)
                ]
            )
        # Phone numbers marked as such, so every client makes them tappable.
        entities = [
            MessageEntity(MessageEntity.PHONE_NUMBER, offset, length)
            for offset, length, _digits in phone_spans(message.text)
        ]
        try:
            try:
                sent = await self.application.bot.send_message(
                    chat_id=int(address),
                    text=message.text,
                    reply_markup=markup,
                    entities=entities or None,
                )
            except BadRequest:
                if not entities:
                    raise
                # The message matters more than the links: send it plain.
                logger.warning("Telegram refused phone links; message %s sent plain", outbound_id)
                sent = await self.application.bot.send_message(
                    chat_id=int(address), text=message.text, reply_markup=markup
                )
        except Forbidden as error:  # the person blocked the bot
            raise DeliveryError(
                "blocked", code="forbidden", retryable=False, opted_out=True
            ) from error
        except BadRequest as error:
            raise DeliveryError("bad request", code="bad_request", retryable=False) from error
        except (RetryAfter, NetworkError) as error:
            raise DeliveryError(type(error).__name__, retryable=True) from error
        except TelegramError as error:
            raise DeliveryError(type(error).__name__, retryable=False) from error
        return f"{address}:{sent.message_id}", "sent"


async def to_incoming(update: Update, gateway: Gateway) -> IncomingMessage | None:
    """Translate an update; None for what Waymark doesn't handle (groups, edits)."""
    provider_id = str(update.update_id)
    query = update.callback_query
    if query is not None:
        if query.message is None or query.message.chat.type != ChatType.PRIVATE:
            return None
        payload, title = await _button(gateway, query.data or "")
        return IncomingMessage(
            channel=Channel.TELEGRAM,
            address=str(query.message.chat.id),
            text=title,
            payload=payload,
            provider_id=provider_id,
        )
    message = update.message
    if message is None or message.chat.type != ChatType.PRIVATE:
        return None
    address = str(message.chat.id)
    text = message.text or ""
    if not text:
        return IncomingMessage(
            channel=Channel.TELEGRAM, address=address, provider_id=provider_id, kind="non_text"
        )
    command, _, argument = text.partition(" ")
    command = command.split("@")[0].lower()
    if command == "/start":
        # The deep-link parameter is kept for account linking (case progress).
        meta = {"start_param": argument.strip()[:64]} if argument.strip() else None
        return IncomingMessage(
            channel=Channel.TELEGRAM,
            address=address,
            text="hello",
            payload="/greet",
            provider_id=provider_id,
            meta=meta,
        )
    if command == "/help":
        return IncomingMessage(
            channel=Channel.TELEGRAM, address=address, provider_id=provider_id, kind="help"
        )
    if command == "/stop":
        return IncomingMessage(
            channel=Channel.TELEGRAM, address=address, provider_id=provider_id, kind="stop"
        )
    return IncomingMessage(
        channel=Channel.TELEGRAM, address=address, text=text[:MAX_TEXT], provider_id=provider_id
    )


async def _button(gateway: Gateway, data: str) -> tuple[str | None, str | None]:
    """The payload and title behind a keyboard button's callback data."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != "b" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None, None
    async with gateway.sessions() as session:
        buttons = await session.scalar(
            select(Outbound.buttons).where(
                Outbound.id == int(parts[1]), Outbound.channel == Channel.TELEGRAM
            )
        )
    index = int(parts[2])
    if not buttons or index >= len(buttons):
        return None, None
    return buttons[index].get("payload"), buttons[index].get("title")


async def handle_update(update: Update, gateway: Gateway) -> None:
    """Store one update (idempotent), then answer any button tap so the spinner stops.
    A coordinator's private chat is handled (and its taps answered) by the handoff desk."""
    if await handle_coordinator_update(update, gateway):
        return
    incoming = await to_incoming(update, gateway)
    if incoming is not None and (incoming.text or incoming.payload or incoming.kind != "text"):
        await gateway.receive(incoming)
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except TelegramError:
            logger.warning("Could not answer a callback query")


def add_handlers(application: Application, gateway: Gateway) -> None:
    """For polling mode: every update goes through the same `handle_update`."""

    async def on_update(update: object, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            await handle_update(update, gateway)

    application.add_handler(TypeHandler(Update, on_update))


@router.post("/webhook")
async def webhook(request: Request, gateway: GatewayDep) -> Response:
    application: Application | None = getattr(request.app.state, "telegram", None)
    if application is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Telegram is not enabled.")
    expected = gateway.settings.telegram_secret_token.get_secret_value().encode()
    given = request.headers.get(SECRET_HEADER, "").encode()
    if not hmac.compare_digest(given, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid secret token.")
    try:
        data = json.loads(await request.body())
        update = Update.de_json(data, application.bot)
    except Exception as error:  # malformed updates fail in many ways: all are 400
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Not a Telegram update.") from error
    if update is None or not isinstance(data, dict) or "update_id" not in data:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Not a Telegram update.")
    await handle_update(update, gateway)
    return Response(status_code=status.HTTP_200_OK)


async def start(application: Application, settings: Settings, gateway: Gateway) -> None:
    await application.initialize()
    if uses_webhook(settings):
        await application.bot.set_webhook(
            url=f"{settings.public_base_url}/telegram/webhook",
            secret_token=settings.telegram_secret_token.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
        )
        logger.info("Telegram webhook registered")
    else:
        add_handlers(application, gateway)
        await application.start()
        assert application.updater is not None
        await application.bot.delete_webhook()
        await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        logger.info("Telegram polling started")


async def stop(application: Application, settings: Settings) -> None:
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
