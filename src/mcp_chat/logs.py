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


class RedactSecrets(logging.Filter):
    """Rewrites a record whose text holds a client_id, whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "mcc_" in text or "mcr_" in text:
            record.msg, record.args = _SECRET.sub(r"\1…", text), None
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": stamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = _SECRET.sub(r"\1…", self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, log_format: LogFormat = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
