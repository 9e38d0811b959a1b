"""The leak test: a scripted conversation full of personal details, through the real
gateway, model and action server, then a search of everything Waymark keeps.

Someone texts their name, phone number, email, address and date of birth unprompted,
asks about reporting, then checks their case with their memorable word. Afterwards
none of those may appear in clear in the gateway's database (every table, and the
SQLite file itself), in Rasa's tracker store, or in the logs (the gateway's, with the
production redacting filter, and Rasa's and the action server's log files).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from bot.config import ROOT
from bot.models import Inbound
from bot.privacy.logs import RedactingFilter
from tests.cases.test_lookup import new_case, sms_turn, verified_answer
from tests.harness import LiveGateway

pytestmark = pytest.mark.rasa

NAME = "Priyanka Ashworth"
PHONE = "07700 900461"
EMAIL = "p.ashworth84@example.com"
STREET = "27 Wellmeadow Road"
POSTCODE = "SE13 6TA"
BIRTHDAY = "14/03/1984"


def script(number: str) -> list[str]:
    return [
        f"hi my name is {NAME}, can I report something without giving my name?",
        f"you can reach me on {PHONE} or {EMAIL} if that helps",
        f"I live at {STREET}, {POSTCODE} and my date of birth is {BIRTHDAY}",
        "what support is there for burglary near me",
        "not now",  # out of whatever the details above started
    ]


def needles(number: str, secret: str) -> dict[str, str]:
    """What must not be found, in the forms a search would meet it."""
    digits = PHONE.replace(" ", "")
    return {
        "name": NAME.split()[1],
        "phone": digits,
        "phone (spaced)": PHONE,
        "phone (E.164)": "+44" + digits[1:],
        "email": EMAIL,
        "street": STREET.split()[1],
        "postcode": POSTCODE,
        "date of birth": BIRTHDAY,
        "the sender's number": number,
        "the sender's number (national)": "0" + number.removeprefix("+44"),
        "the secret": secret,
    }


@pytest.fixture
def production_log(tmp_path: Path) -> Iterator[Path]:
    """The gateway's log as production writes it: everything, through the filter."""
    path = tmp_path / "gateway.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def rows_as_text(database_url: str) -> dict[str, list[str]]:
    """Every row of every table, as text, read without the app's types (so sealed
    columns show what is on disk)."""
    engine = create_engine(make_url(database_url))
    found: dict[str, list[str]] = {}
    try:
        with engine.connect() as connection:
            for table in inspect(connection).get_table_names():
                rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
                found[table] = [repr(tuple(row)) for row in rows]
    finally:
        engine.dispose()
    return found


def tail(path: Path, start: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as log:
        log.seek(start)
        return log.read().decode("utf-8", "replace")


def test_nothing_personal_is_kept_in_clear(
    live_gateway: LiveGateway, rasa_stack: Any, production_log: Path
) -> None:
    live = live_gateway
    secret = f"bluebell{uuid.uuid4().hex[:6]}"
    number, reference = new_case(live, secret=secret)
    logs = [ROOT / "var" / "log" / "rasa.log", ROOT / "var" / "log" / "actions.log"]
    starts = [path.stat().st_size if path.exists() else 0 for path in logs]

    for message in script(number):
        assert sms_turn(live, number, message), message
    replies = verified_answer(live, number, reference, secret)
    assert "charged" in " ".join(replies).lower()

    # The conversation really happened, and what was stored is the redacted text.
    with live.db() as session:
        stored = [t for t in session.scalars(select(Inbound.text)) if t]
    assert any("[name]" in t and "report" in t for t in stored), stored[-8:]
    assert any("[phone]" in t and "[email]" in t for t in stored), stored[-8:]

    places: dict[str, str] = {}
    for table, rows in rows_as_text(live.settings.database_url).items():
        places[f"gateway table {table}"] = "\n".join(rows)
    database = Path(make_url(live.settings.database_url).database or "")
    for suffix in ("", "-wal"):
        path = database.with_name(database.name + suffix)
        if path.exists():
            places[f"gateway file {path.name}"] = path.read_bytes().decode("latin-1")
    with sqlite3.connect(rasa_stack.tracker_store_path) as conn:
        events = conn.execute("SELECT data FROM events").fetchall()
    places["Rasa's tracker store"] = "\n".join(row[0] for row in events)
    places["the gateway log"] = production_log.read_text()
    for path, start in zip(logs, starts, strict=True):
        places[path.name] = tail(path, start)

    # The searches look where the conversation went: Rasa got it, redacted.
    assert "[name]" in places["Rasa's tracker store"]
    assert "[phone]" in places["Rasa's tracker store"]
    assert places["the gateway log"].count("\n") > 20
    leaks = [
        f"{what} in {where}"
        for what, needle in needles(number, secret).items()
        for where, haystack in places.items()
        if needle.lower() in haystack.lower()
    ]
    assert not leaks, leaks
