"""Log setup: plain lines on stderr, with client ids and read keys cut short before they are
written."""

from __future__ import annotations

import logging
import re
import sys

_SECRET = re.compile(r"((?:mcc|mcr)_[A-Za-z0-9_-]{4})[A-Za-z0-9_-]+")


class RedactSecrets(logging.Filter):
    """Rewrites a record whose text holds a client_id, whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "mcc_" in text or "mcr_" in text:
            record.msg, record.args = _SECRET.sub(r"\1…", text), None
        return True


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
