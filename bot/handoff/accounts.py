"""Coordinator accounts and canned replies: `python -m bot coordinator ...`.

- `coordinator add USERNAME --name "Sam" [--role supervisor] [--telegram CHAT_ID]
  [--phone +44...] [--hours "mon-fri 09:00-17:00"] [--password-stdin]`
- `coordinator list`, `coordinator set USERNAME ...` (same options, plus --active/--inactive),
  `coordinator duty USERNAME on|off`

Passwords are argon2 hashes; a password is read from stdin or asked for, never taken
as an argument (it would stay in the shell history).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases.phones import normalise_phone
from bot.handoff.availability import HoursError, describe_hours, parse_hours
from bot.handoff.models import CannedReply, Coordinator, Role

MIN_PASSWORD = 12
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

# Replies coordinators start with; editable in the console. Plain, kind, no facts that
# need a source beyond what the assistant already says.
DEFAULT_CANNED = (
    (
        "Hello",
        "Hello, I'm from the Waymark team. Thank you for getting in touch. "
        "How can I help? If you are in danger now, call 999.",
    ),
    (
        "Safe to talk?",
        "Is it safe for you to talk here right now? You can reply YES or NO. "
        "If you are in danger now, call 999.",
    ),
    (
        "Looking into it",
        "Thank you. I'm looking into this now and will message you here again soon.",
    ),
    (
        "Call back",
        "Would a phone call help? Tell me a safe time and number to call, or reply NO.",
    ),
    (
        "Closing",
        "Thank you for talking to me. I'll hand you back to the Waymark assistant now. "
        "You can ask for a person again at any time.",
    ),
)


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("not-a-password-anyone-has")


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > 200:
        return "Use at most 200 characters."
    return None


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists."""
    try:
        return _hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def add_coordinator(
    session: Session,
    username: str,
    *,
    display_name: str,
    role: str = Role.COORDINATOR,
    password: str | None = None,
    telegram_chat_id: str | None = None,
    phone: str | None = None,
    hours: str = "",
    on_duty: bool = False,
) -> Coordinator:
    """Validate and add an account. Raises ValueError with a clear message. No commit."""
    username = username.strip().lower()
    if not username or len(username) > 64 or set(username) - USERNAME_CHARS:
        raise ValueError("The username must be 1 to 64 of a-z, 0-9, '.', '_' or '-'.")
    if session.scalar(select(Coordinator).where(Coordinator.username == username)):
        raise ValueError(f"There is already a coordinator called {username!r}.")
    coordinator = Coordinator(username=username, display_name="", role=role)
    update_coordinator(
        coordinator,
        display_name=display_name,
        role=role,
        password=password,
        telegram_chat_id=telegram_chat_id,
        phone=phone,
        hours=hours,
    )
    coordinator.on_duty = on_duty
    coordinator.active = True
    coordinator.failed_logins = 0
    session.add(coordinator)
    session.flush()
    return coordinator


def update_coordinator(
    coordinator: Coordinator,
    *,
    display_name: str | None = None,
    role: str | None = None,
    password: str | None = None,
    telegram_chat_id: str | None = None,
    phone: str | None = None,
    hours: str | None = None,
) -> None:
    if display_name is not None:
        display_name = display_name.strip()
        if not display_name or len(display_name) > 80:
            raise ValueError("The name shown to victims must be 1 to 80 characters.")
        coordinator.display_name = display_name
    if role is not None:
        if role not in set(Role):
            raise ValueError(f"The role must be one of: {', '.join(Role)}.")
        coordinator.role = role
    if password is not None:
        problem = password_problem(password)
        if problem:
            raise ValueError(problem)
        coordinator.password_hash = hash_password(password)
    if telegram_chat_id is not None:
        chat = telegram_chat_id.strip()
        if chat and not chat.lstrip("-").isdigit():
            raise ValueError("The Telegram chat id is a number (ask the bot's /start log).")
        coordinator.telegram_chat_id = chat or None
    if phone is not None:
        coordinator.phone = normalise_phone(phone) if phone.strip() else None  # ValueError
    if hours is not None:
        try:
            coordinator.working_hours = parse_hours(hours)
        except HoursError as error:
            raise ValueError(str(error)) from error


def ensure_canned_replies(session: Session) -> int:
    """Add the default canned replies if there are none yet. Returns how many added."""
    if session.scalar(select(CannedReply.id).limit(1)) is not None:
        return 0
    for title, text in DEFAULT_CANNED:
        session.add(CannedReply(title=title, text=text))
    session.flush()
    return len(DEFAULT_CANNED)


# -- commands -------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("coordinator", help="add, change or list coordinator accounts")
    actions = parser.add_subparsers(dest="coordinator_command", required=True)

    def details(p: argparse.ArgumentParser, *, new: bool) -> None:
        p.add_argument("username")
        p.add_argument("--name", required=new, help="the name victims see, e.g. 'Sam'")
        p.add_argument("--role", choices=list(Role), default=Role.COORDINATOR if new else None)
        p.add_argument("--telegram", help="the coordinator's Telegram chat id ('' to remove)")
        p.add_argument("--phone", help="the coordinator's mobile for SMS alerts ('' to remove)")
        p.add_argument("--hours", help="working hours, e.g. 'mon-fri 09:00-17:00; sat 10:00-14:00'")
        p.add_argument(
            "--password-stdin", action="store_true", help="read a console password from stdin"
        )
        p.add_argument("--ask-password", action="store_true", help="ask for a console password")

    add = actions.add_parser("add", help="add a coordinator")
    details(add, new=True)
    add.set_defaults(func=main_add)
    change = actions.add_parser("set", help="change a coordinator")
    details(change, new=False)
    change.add_argument("--active", dest="active", action="store_true", default=None)
    change.add_argument("--inactive", dest="active", action="store_false")
    change.set_defaults(func=main_set)
    duty = actions.add_parser("duty", help="put a coordinator on or off duty")
    duty.add_argument("username")
    duty.add_argument("state", choices=["on", "off"])
    duty.set_defaults(func=main_duty)
    listing = actions.add_parser("list", help="list coordinators")
    listing.set_defaults(func=main_list)


def _session() -> Session:
    from bot import db
    from bot.config import get_settings

    url = get_settings().database_url
    db.migrate(url)
    return Session(db.create_sync_engine(url), expire_on_commit=False)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.ask_password:
        first = getpass.getpass("Console password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("The passwords don't match.")
        return first
    return None


def main_add(args: argparse.Namespace) -> int:
    with _session() as session:
        try:
            coordinator = add_coordinator(
                session,
                args.username,
                display_name=args.name,
                role=args.role,
                password=_password(args),
                telegram_chat_id=args.telegram,
                phone=args.phone,
                hours=args.hours or "",
            )
            ensure_canned_replies(session)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        session.commit()
        print(f"Added {coordinator.username} ({coordinator.role}).")
    session.get_bind().dispose()
    return 0


def _find(session: Session, username: str) -> Coordinator | None:
    return session.scalar(select(Coordinator).where(Coordinator.username == username.lower()))


def main_set(args: argparse.Namespace) -> int:
    with _session() as session:
        coordinator = _find(session, args.username)
        if coordinator is None:
            print(f"No coordinator called {args.username!r}.", file=sys.stderr)
            return 1
        try:
            update_coordinator(
                coordinator,
                display_name=args.name,
                role=args.role,
                password=_password(args),
                telegram_chat_id=args.telegram,
                phone=args.phone,
                hours=args.hours,
            )
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        if args.active is not None:
            coordinator.active = args.active
        coordinator.failed_logins = 0
        coordinator.locked_until = None
        session.commit()
        print(f"Updated {coordinator.username}.")
    session.get_bind().dispose()
    return 0


def main_duty(args: argparse.Namespace) -> int:
    with _session() as session:
        coordinator = _find(session, args.username)
        if coordinator is None:
            print(f"No coordinator called {args.username!r}.", file=sys.stderr)
            return 1
        coordinator.on_duty = args.state == "on"
        session.commit()
        print(f"{coordinator.username} is {'on' if coordinator.on_duty else 'off'} duty.")
    session.get_bind().dispose()
    return 0


def main_list(args: argparse.Namespace) -> int:
    with _session() as session:
        rows: Sequence[Coordinator] = session.scalars(
            select(Coordinator).order_by(Coordinator.username)
        ).all()
    session.get_bind().dispose()
    if not rows:
        print("No coordinators yet: add one with `coordinator add`.")
    for c in rows:
        routes = ", ".join(
            r
            for r in (
                "console" if c.password_hash else "",
                "telegram" if c.telegram_chat_id else "",
                "sms" if c.phone else "",
            )
            if r
        )
        print(
            f"{c.username:<16} {c.display_name:<16} {c.role:<12} "
            f"{'on duty' if c.on_duty else 'off duty':<9} {describe_hours(c.working_hours):<30} "
            f"{routes or 'no route'}{'' if c.active else '  (inactive)'}"
        )
    return 0
