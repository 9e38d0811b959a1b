"""The gateway app: one ASGI app for the channel webhooks, the web chat and health.

`create_app()` builds it; long-lived objects (database engine, Rasa client, Twilio
client, Telegram application) are made in the lifespan and shared on `app.state`.
Run it with `python -m bot serve` (or `python -m bot run`, which also starts Rasa).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from telegram.request import BaseRequest
from twilio.http.async_http_client import AsyncTwilioHttpClient

from bot import db
from bot.cases import api as cases_api
from bot.cases import notify, watchdog
from bot.channels import sms, telegram, web
from bot.config import Settings, get_settings
from bot.gateway import Gateway
from bot.handoff import console
from bot.handoff import sms as coordinator_sms
from bot.handoff import telegram as coordinator_telegram
from bot.privacy import crypto, retention
from bot.rasa_client import RasaClient
from bot.services import api as services_api
from bot.services import console as services_console

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    twilio_http: Callable[[], AsyncTwilioHttpClient] | None = None,
    telegram_request: BaseRequest | None = None,
) -> FastAPI:
    """The gateway. Tests pass local fakes for the providers' HTTP (`twilio_http` makes
    Twilio's HTTP client inside the running loop); nothing else changes."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Encryption at rest: this app's data keys seal and open (docs/privacy.md).
        keys = crypto.use(settings.data_keys)
        await asyncio.to_thread(db.migrate, settings.database_url)
        engine = db.create_engine(settings.database_url)
        crypto.bind(engine, keys)
        rasa = RasaClient(settings.rasa_url, settings.rasa_token.get_secret_value())
        gateway = Gateway(settings, db.sessionmaker(engine), rasa)
        gateway.add_sender(web.WebSender(gateway))
        app.state.gateway = gateway
        app.state.loop = asyncio.get_running_loop()  # for scripts and tests in other threads
        app.state.telegram = None
        twilio_client = None
        if settings.twilio_enabled:
            twilio_client = sms.build_client(settings, twilio_http() if twilio_http else None)
            gateway.add_sender(sms.TwilioSender(settings, twilio_client))
        if settings.telegram_enabled:
            application = telegram.build_application(settings, telegram_request)
            gateway.add_sender(telegram.TelegramSender(application))
            # Coordinators with both get alerts on Telegram (buttons) before SMS.
            gateway.handoffs.add_link(coordinator_telegram.TelegramLink(application))
            await telegram.start(application, settings, gateway)
            app.state.telegram = application
        if twilio_client is not None:
            gateway.handoffs.add_link(coordinator_sms.SmsLink(settings, twilio_client))
        await gateway.start()
        stop_notifying = asyncio.Event()
        notifiers = notify.start_workers(gateway, stop_notifying)
        watching = asyncio.create_task(
            watchdog.run_periodically(gateway.sessions, settings, stop_notifying)
        )
        timers = asyncio.create_task(gateway.handoffs.run_periodically(stop_notifying))
        # Retention: purges what is past its retention period (bot/privacy/retention.py).
        purging = asyncio.create_task(
            retention.run_periodically(
                settings, stop_notifying, lambda removed: gateway.forget_all()
            )
        )
        try:
            yield
        finally:
            await notify.stop_workers(notifiers, stop_notifying)
            watching.cancel()
            timers.cancel()
            purging.cancel()  # a purge under way ends after its current batch
            await asyncio.gather(watching, timers, purging, return_exceptions=True)
            await gateway.stop()
            if app.state.telegram is not None:
                await telegram.stop(app.state.telegram, settings)
            await rasa.aclose()
            if twilio_client is not None:
                await twilio_client.http_client.close()
            await engine.dispose()

    app = FastAPI(
        title="Waymark gateway",
        summary="Channels (SMS, Telegram, web chat) in front of the Waymark assistant.",
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=web.WEB_DIR / "static"), name="static")
    app.include_router(web.router)
    app.include_router(sms.router)
    app.include_router(telegram.router)
    app.include_router(cases_api.router)
    app.include_router(console.router)
    app.include_router(services_api.router)
    app.include_router(services_console.router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        # One clear sentence first, then the details for scripts.
        errors = error.errors()
        first = errors[0] if errors else {}
        message = str(first.get("msg", "Invalid request.")).removeprefix("Value error, ")
        return JSONResponse(
            status_code=422,
            content={"detail": message, "errors": _safe_errors(errors)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=error.status_code, content={"detail": error.detail}, headers=error.headers
        )

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> dict[str, Any]:
        """Liveness, with the state of the database and Rasa. 200 while messages can be kept."""
        state = await _state(request.app.state.gateway)
        code = 200 if state["database"] == "ok" else 503
        return JSONResponse(state, status_code=code)  # type: ignore[return-value]

    @app.get("/ready", tags=["health"])
    async def ready(request: Request) -> dict[str, Any]:
        """Readiness: 200 only when the database and Rasa both answer."""
        state = await _state(request.app.state.gateway)
        code = 200 if state["database"] == "ok" and state["rasa"] == "ok" else 503
        return JSONResponse(state, status_code=code)  # type: ignore[return-value]

    return app


def _safe_errors(errors: Any) -> list[dict[str, Any]]:
    # Never echo the input back: it may be personal.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors]


async def _state(gateway: Gateway) -> dict[str, Any]:
    try:
        async with gateway.sessions() as session:
            await session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        logger.exception("Database check failed")
        database = "down"
    rasa = "ok" if await gateway.rasa.ready() else "down"
    channels = sorted(gateway.senders)
    return {
        "status": "ok" if database == rasa == "ok" else "degraded",
        "database": database,
        "rasa": rasa,
        "channels": channels,
    }
