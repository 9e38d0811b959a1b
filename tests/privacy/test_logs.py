"""The redacting log filter (bot/privacy/logs.py): nothing personal reaches a log file."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.privacy.logs import RedactingFilter, install

PHONE = "07700 900123"
EMAIL = "priya.s@example.com"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing to a string through a handler with the filter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.privacy.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_arguments_are_formatted_then_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.info("inbound from %s: %r", PHONE, f"my email is {EMAIL}")
    assert out.getvalue() == "INFO inbound from [phone]: 'my email is [email]'\n"


def test_the_record_is_left_with_its_redacted_message_and_no_args() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "call %s", (PHONE,), None)
    assert RedactingFilter().filter(record) is True
    assert record.msg == "call [phone]"
    assert record.args is None
    assert record.getMessage() == "call [phone]"


def test_stack_info_is_redacted() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent", (), None)
    record.stack_info = f'Stack (most recent call last):\n  send("{PHONE}")'
    RedactingFilter().filter(record)
    assert record.stack_info == 'Stack (most recent call last):\n  send("[phone]")'


def test_tracebacks_are_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    try:
        raise ValueError(f"no contact for {EMAIL} on {PHONE}")
    except ValueError:
        logger.exception("sending failed")
    text = out.getvalue()
    assert "ValueError: no contact for [email] on [phone]" in text
    assert EMAIL not in text
    assert PHONE not in text


def test_a_bad_format_string_is_logged_redacted_not_raised() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "call %s %s", (PHONE,), None)
    assert RedactingFilter().filter(record) is True
    assert PHONE not in record.getMessage()
    assert "[phone]" in record.getMessage()


def test_records_from_child_loggers_are_redacted_at_the_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    parent = logging.getLogger("tests.privacy.parent")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    try:
        install(parent)
        logging.getLogger("tests.privacy.parent.child").info("text from %s", PHONE)
    finally:
        parent.removeHandler(handler)
        parent.propagate = True
    assert out.getvalue() == "text from [phone]\n"


def test_install_adds_one_filter_to_every_root_handler() -> None:
    root = logging.getLogger()
    handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        root.addHandler(handler)
    try:
        install()
        install()
        for handler in handlers:
            assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        for handler in root.handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]
        for handler in handlers:
            root.removeHandler(handler)
