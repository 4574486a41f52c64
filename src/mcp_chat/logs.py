"""Log setup: plain lines or JSON objects on stderr, with client ids and read keys cut short
before they are written."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal

from mcp_chat.messages import stamp

_SECRET = re.compile(r"((?:mcc|mcr)_[A-Za-z0-9_-]{4})[A-Za-z0-9_-]+")

LogFormat = Literal["plain", "json"]


def redact(text: str) -> str:
    """`text` with every client_id and read key cut short (`mcc_AbCd…`)."""
    if "mcc_" in text or "mcr_" in text:
        return _SECRET.sub(r"\1…", text)
    return text


class PlainLines(logging.Formatter):
    """Text lines. Redacts the whole formatted record, not just its message: a traceback
    (exc_info, exc_text) or stack_info can hold a secret too, e.g. pydantic's
    `input_value=[...]` when a request's arguments fail validation."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and exc and stack when
    there are some. The encoded line is redacted as a whole, for the same reason as in
    `PlainLines`. (A secret's characters are never escaped in JSON, and the pattern stops
    at a backslash or a quote, so redaction keeps the line valid JSON.)"""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": stamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(entry, ensure_ascii=False))


def setup_logging(level: str, log_format: LogFormat = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else PlainLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
