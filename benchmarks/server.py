"""The mcp-chat HTTP server plus a `noop` tool, for benchmarks only (not part of the product).

python -m benchmarks.server --port 0 --store sqlite:///tmp/bench.db
"""

from __future__ import annotations

import argparse
import os

# FastMCP reads these when imported, as in mcp_chat.cli.
os.environ["FASTMCP_SHOW_SERVER_BANNER"] = "false"
os.environ["FASTMCP_CHECK_FOR_UPDATES"] = "off"
os.environ["FASTMCP_ENABLE_RICH_LOGGING"] = "false"
os.environ["FASTMCP_LOG_ENABLED"] = "false"

import uvicorn

from mcp_chat.app import build, http_app
from mcp_chat.bounds import MAX_HEAD_BYTES, bounded_http
from mcp_chat.config import Settings
from mcp_chat.logs import setup_logging
from mcp_chat.loop import run_on_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()

    # No sending-rate limit: the benchmark measures how fast messages can go.
    settings = Settings(
        host="127.0.0.1",
        port=args.port,
        store=args.store,
        log_level="warning",
        rate_messages=0,
        rate_joins=0,
    )
    setup_logging(settings.log_level)
    parts = build(settings)
    server = parts.server

    @server.tool
    async def noop() -> dict[str, bool]:
        """Does nothing: the baseline cost of one tool call."""
        return {"success": True}

    config = uvicorn.Config(
        http_app(settings, parts),
        host=settings.host,
        port=settings.port,
        # uvicorn's own loggers at info, so that its "Uvicorn running on http://HOST:PORT" line
        # (the port, when --port 0) reaches stderr; everything else stays at warning.
        log_level="info",
        reload=False,
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # Figure I's load leaves its connections idle while it runs on another setup.
        timeout_keep_alive=60,
        # As `mcp-chat serve` runs: httptools with the bounds on each request's head.
        http=bounded_http(MAX_HEAD_BYTES, settings.read_timeout),
    )
    run_on_loop(uvicorn.Server(config).serve(), settings.event_loop)


if __name__ == "__main__":
    main()
