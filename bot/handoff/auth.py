"""Console sign-in: sessions, CSRF, lock-out and roles.

- A session is a random token in the `waymark_console` cookie (HttpOnly, SameSite=Strict,
  Path=/console, Secure behind https); `console_sessions` keeps only its SHA-256 digest,
  so a copy of the database can't be used to sign in.
- Every state-changing request sends the session's CSRF token, as the `X-CSRF-Token`
  header or a `csrf_token` form field. The sign-in form has no session yet, so it uses a
  double-submit cookie instead.
- After `console_max_failures` failed sign-ins an account is locked for
  `console_lock_minutes`. Unknown user, wrong password and locked account all get the
  same message and take the same time, so the form can't be used to find accounts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, Response, status
from sqlalchemy import select, update

from bot.handoff import audit
from bot.handoff.accounts import verify_password
from bot.handoff.models import ConsoleSession, Coordinator, Role

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.gateway import Gateway

COOKIE = "waymark_console"
LOGIN_COOKIE = "waymark_console_login"  # the sign-in form's double-submit CSRF token
PATH = "/console"
API_PREFIX = "/console/api/"
LOGIN_URL = "/console/login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SUPERVISORS = frozenset({Role.SUPERVISOR, Role.ADMIN})
FAILED = (
    "Enter a correct username and password. "
    "After several wrong tries, sign-in is locked for a while."
)
CSRF_FAILED = "This form has expired. Reload the page and try again."
MAX_PASSWORD_CHARS = 1000  # longer can't be right (accounts allow 200); caps hashing work


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; they were stored in UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _same(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


@dataclass
class Signed:
    """The signed-in coordinator of a request, and their session."""

    coordinator: Coordinator
    session_id: int
    csrf_token: str

    @property
    def supervisor(self) -> bool:
        return self.coordinator.role in SUPERVISORS


@dataclass(frozen=True)
class NewSession:
    coordinator: Coordinator
    token: str
    csrf_token: str


# -- signing in and out -----------------------------------------------------------------


async def sign_in(
    gateway: Gateway, username: str, password: str, *, replaces: str | None = None
) -> NewSession | None:
    """Check a username and password; a new session, or None (with the failure counted
    and audited). `replaces`: a session token the browser already had, revoked now so an
    old cookie can't outlive a new sign-in."""
    settings = gateway.settings
    now = datetime.now(UTC)
    typed = username.strip()
    name = typed.lower()
    coordinator = None
    if name and len(name) <= 64:
        async with gateway.sessions() as session:
            coordinator = await session.scalar(
                select(Coordinator).where(Coordinator.username == name)
            )
    usable = coordinator is not None and coordinator.active
    stored = coordinator.password_hash if usable and coordinator else None
    # Argon2 is slow on purpose: off the event loop. Always run, for constant timing.
    right = await asyncio.to_thread(verify_password, stored, password[:MAX_PASSWORD_CHARS])
    locked_until = _aware(coordinator.locked_until) if coordinator else None
    locked = locked_until is not None and locked_until > now
    if coordinator is None or not usable or not right or locked:
        await _failed(gateway, typed, coordinator if usable else None, locked, now)
        return None
    assert coordinator is not None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with gateway.sessions() as session, session.begin():
        await session.execute(
            update(Coordinator)
            .where(Coordinator.id == coordinator.id)
            .values(failed_logins=0, locked_until=None)
        )
        if replaces:
            await session.execute(
                update(ConsoleSession)
                .where(
                    ConsoleSession.token_digest == digest(replaces),
                    ConsoleSession.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        session.add(
            ConsoleSession(
                token_digest=digest(token),
                csrf_token=csrf,
                coordinator_id=coordinator.id,
                created_at=now,
                expires_at=now + timedelta(hours=settings.console_session_hours),
            )
        )
        session.add(audit.entry(coordinator, "sign_in"))
    coordinator.failed_logins = 0
    coordinator.locked_until = None
    return NewSession(coordinator, token, csrf)


async def _failed(
    gateway: Gateway,
    typed: str,
    coordinator: Coordinator | None,
    locked: bool,
    now: datetime,
) -> None:
    settings = gateway.settings
    detail: dict[str, bool] | None = {"locked": True} if locked else None
    async with gateway.sessions() as session, session.begin():
        if coordinator is not None and not locked:
            failures = await session.scalar(
                update(Coordinator)
                .where(Coordinator.id == coordinator.id)
                .values(failed_logins=Coordinator.failed_logins + 1)
                .returning(Coordinator.failed_logins)
            )
            if (failures or 0) >= settings.console_max_failures:
                # A fresh count once the lock ends: at most N guesses per lock period.
                await session.execute(
                    update(Coordinator)
                    .where(Coordinator.id == coordinator.id)
                    .values(
                        locked_until=now + timedelta(minutes=settings.console_lock_minutes),
                        failed_logins=0,
                    )
                )
                detail = {"locked": True}
        # The username as typed (it may be a mistyped password): never the password.
        session.add(audit.entry(typed[:80] or "(blank)", "sign_in_failed", detail=detail))


async def sign_out(gateway: Gateway, signed: Signed) -> None:
    async with gateway.sessions() as session, session.begin():
        await session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == signed.session_id)
            .values(revoked_at=datetime.now(UTC))
        )
        session.add(audit.entry(signed.coordinator, "sign_out"))


async def session_for(gateway: Gateway, token: str | None) -> Signed | None:
    """The live session (not revoked, not expired, account active) for a cookie."""
    if not token or len(token) > 200:
        return None
    async with gateway.sessions() as session:
        row = (
            await session.execute(
                select(ConsoleSession, Coordinator)
                .join(Coordinator, Coordinator.id == ConsoleSession.coordinator_id)
                .where(
                    ConsoleSession.token_digest == digest(token),
                    ConsoleSession.revoked_at.is_(None),
                    ConsoleSession.expires_at > datetime.now(UTC),
                    Coordinator.active.is_(True),
                )
            )
        ).first()
    if row is None:
        return None
    console_session, coordinator = row
    return Signed(coordinator, console_session.id, console_session.csrf_token)


async def still_signed_in(gateway: Gateway, session_id: int) -> bool:
    """For long-lived streams: has this session been signed out or run out since?"""
    async with gateway.sessions() as session:
        found = await session.scalar(
            select(ConsoleSession.id)
            .join(Coordinator, Coordinator.id == ConsoleSession.coordinator_id)
            .where(
                ConsoleSession.id == session_id,
                ConsoleSession.revoked_at.is_(None),
                ConsoleSession.expires_at > datetime.now(UTC),
                Coordinator.active.is_(True),
            )
        )
    return found is not None


# -- cookies ----------------------------------------------------------------------------


def _secure(settings: Settings) -> bool:
    return bool(settings.public_base_url and settings.public_base_url.startswith("https"))


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.console_session_hours * 3600,
        path=PATH,
        secure=_secure(settings),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, secure=_secure(settings), httponly=True, samesite="strict"
    )


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token: the browser's current one, or a new one. Reused so
    two open sign-in tabs don't invalidate each other."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    if 32 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def set_login_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=PATH,
        secure=_secure(settings),
        httponly=True,
        samesite="strict",
    )


def clear_login_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        LOGIN_COOKIE, path=PATH, secure=_secure(settings), httponly=True, samesite="strict"
    )


def login_csrf_ok(request: Request, sent: str | None) -> bool:
    """Double submit: the form's hidden field must match the cookie set with the form."""
    return _same(sent, request.cookies.get(LOGIN_COOKIE))


# -- dependencies -------------------------------------------------------------------------


def not_signed_in(request: Request) -> HTTPException:
    """Pages send people to the sign-in page; the JSON API answers 401."""
    if request.url.path.startswith(API_PREFIX):
        return HTTPException(status.HTTP_401_UNAUTHORIZED, "Sign in to the console first.")
    return HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": LOGIN_URL})


async def current_coordinator(request: Request) -> Signed:
    cached = getattr(request.state, "console_signed", None)
    if isinstance(cached, Signed):
        return cached
    signed = await session_for(request.app.state.gateway, request.cookies.get(COOKIE))
    if signed is None:
        raise not_signed_in(request)
    request.state.console_signed = signed
    return signed


CurrentCoordinator = Annotated[Signed, Depends(current_coordinator)]


async def require_supervisor(signed: CurrentCoordinator) -> Signed:
    if not signed.supervisor:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only supervisors can see this.")
    return signed


Supervisor = Annotated[Signed, Depends(require_supervisor)]


async def check_csrf(request: Request, signed: CurrentCoordinator) -> Signed:
    """State-changing requests must carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return signed
    sent = request.headers.get(CSRF_HEADER)
    kind = request.headers.get("content-type", "")
    if not sent and kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette: the endpoint can read it too
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if not _same(sent, signed.csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, CSRF_FAILED)
    return signed


CsrfChecked = Annotated[Signed, Depends(check_csrf)]
