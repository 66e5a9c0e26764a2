"""Logging set-up: one format, quiet HTTP client, and no bot token in any line.

httpx logs every request URL at INFO, and Bot API URLs contain the token
(``/bot<token>/sendMessage``). The filter below rewrites any token-shaped string, in the
message and its arguments, before a handler sees the record.
"""

from __future__ import annotations

import logging
import re

TOKEN_PATTERN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


class RedactTokens(logging.Filter):
    def __init__(self, secrets: list[str] | None = None):
        super().__init__()
        self.secrets = [s for s in (secrets or []) if s]

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        text = URL_PASSWORD.sub(r"\1[REDACTED]@", text)
        return TOKEN_PATTERN.sub("[REDACTED]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):  # bad %-arguments: keep both, cleaned
                record.msg = f"{record.msg} {record.args!r}"
            record.args = None
        record.msg = self._clean(str(record.msg))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactTokens(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
