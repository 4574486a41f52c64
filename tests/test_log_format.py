"""Redaction covers all a log handler writes: a traceback or a stack can hold a secret too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mcp_chat import credentials

LOGGED = """
import logging, sys
from mcp_chat.logs import setup_logging

setup_logging("info", sys.argv[1])
client_id, key = sys.argv[2], sys.argv[3]
log = logging.getLogger("demo")
try:
    raise ValueError(f"input_value=[{client_id!r}] read with {key}")
except ValueError:
    log.exception("failed for %s", client_id)
    log.error("by hand", exc_info=sys.exc_info(), stack_info=True)
log.warning("a stack %s", key, stack_info=True)
"""


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_secrets_are_cut_short_in_tracebacks_and_stacks(log_format: str) -> None:
    client_id = credentials.new_client_secret()
    key = credentials.read_key(credentials.hash_secret(client_id))
    run = subprocess.run(
        [sys.executable, "-c", LOGGED, log_format, client_id, key],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    log = run.stderr
    assert "Traceback" in log and "Stack (most recent call last)" in log  # all was written
    assert f"input_value=['{client_id[:8]}…']" in log
    for secret in (client_id, key):
        assert secret[8:] not in log
    if log_format == "json":
        entries = [json.loads(line) for line in log.splitlines()]
        assert [("exc" in e, "stack" in e) for e in entries] == [
            (True, False),
            (True, True),
            (False, True),
        ]
