"""Access logs never hold credentials: `?token=` (websocket clients that cannot set headers) is
replaced by `[redacted]` in every access-log line, whichever server (uvicorn, daphne) writes it."""

from __future__ import annotations

import logging
import re

_CREDENTIAL = re.compile(r"([?&](?:token|access_token|api_key)=)[^&\s\"']+", re.IGNORECASE)
ACCESS_LOGGERS = (
    "uvicorn.access",
    "uvicorn.error",
    "daphne.server",
    "django.channels.server",
    "django.request",
)


def redact(text: str) -> str:
    return _CREDENTIAL.sub(r"\1[redacted]", text)


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Attach the filter to the servers' access loggers (idempotent)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
