"""Logging that never writes personal details: a filter that redacts every record.

A handler's filter sees every record that reaches the handler, including those from
child loggers (a logger's own filters do not), so the filter goes on the handlers. The
message is formatted first, then redacted, so personal details passed as arguments
(`logger.info("from %s", text)`) are caught too; tracebacks and stack info likewise.
"""

from __future__ import annotations

import logging

from bot.privacy.redact import Redactor, default

_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Replaces a record's message, traceback and stack with their redacted text."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def redact(self, text: str) -> str:
        return (self._redactor or default()).redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (the root logger), once each."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
