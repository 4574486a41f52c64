"""The `mcp-chat` command: `serve` (streamable HTTP) and `stdio`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

# FastMCP reads these when imported: no banner, no update check (no traffic off this machine),
# plain log lines on stderr.
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("FASTMCP_ENABLE_RICH_LOGGING", "false")
os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")  # its records go to our handler instead

from mcp_chat import __version__
from mcp_chat.config import Settings
from mcp_chat.logs import setup_logging

DESCRIPTION = """\
mcp-chat: a chat server for AI assistants and people, over the Model Context Protocol.

  mcp-chat serve    streamable HTTP at http://HOST:PORT/mcp (default 127.0.0.1:8000)
  mcp-chat stdio    speak MCP on stdin/stdout (let an MCP client start it)

The store is chosen by URL (--store or MCP_CHAT_STORE):
  sqlite:///path/to/file.db   durable; several processes may share one file (default:
                              a file in your user data directory)
  redis://host:port/db?prefix=name
                              shared by several `serve` instances behind a load balancer
  memory://                   in this process only, gone when it stops
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-chat",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mcp-chat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", help="store URL (env MCP_CHAT_STORE)")
        p.add_argument(
            "--log-level",
            choices=["debug", "info", "warning", "error"],
            help="log level (env MCP_CHAT_LOG_LEVEL, default info)",
        )
        p.add_argument(
            "--max-message-bytes",
            type=int,
            help="largest message accepted, in UTF-8 bytes (default 65536)",
        )

    serve = commands.add_parser(
        "serve",
        help="serve MCP over streamable HTTP at /mcp",
        description="Serve MCP over streamable HTTP at http://HOST:PORT/mcp.",
    )
    common(serve)
    serve.add_argument("--host", help="address to bind (env MCP_CHAT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env MCP_CHAT_PORT, default 8000)")
    stdio = commands.add_parser(
        "stdio",
        help="speak MCP on stdin/stdout",
        description="Speak MCP on stdin/stdout, for MCP clients that start the server.",
    )
    common(stdio)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key in ("store", "host", "port", "log_level", "max_message_bytes")
        if (value := getattr(args, key, None)) is not None
    }
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = settings_from(args)
    setup_logging(settings.log_level)
    from mcp_chat import app

    if args.command == "serve":
        app.serve_http(settings)
    else:
        app.serve_stdio(settings)
