"""The `mcp-chat` command: `serve` (streamable HTTP and the web page), `stdio`, and `chat`."""

from __future__ import annotations

import argparse
import getpass
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

  mcp-chat serve    streamable HTTP at http://HOST:PORT/mcp (default 127.0.0.1:8000),
                    and a web page for people at http://HOST:PORT/
  mcp-chat stdio    speak MCP on stdin/stdout (let an MCP client start it)
  mcp-chat chat     chat in a room (or with a random stranger) from this terminal

The store is chosen by URL (--store or MCP_CHAT_STORE):
  sqlite:///path/to/file.db   durable; several processes may share one file (default:
                              a file in your user data directory)
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
        help="serve MCP over streamable HTTP at /mcp, and the web page at /",
        description=(
            "Serve MCP over streamable HTTP at http://HOST:PORT/mcp, and the chat page for "
            "people at http://HOST:PORT/."
        ),
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
    chat = commands.add_parser(
        "chat",
        help="chat in a room (or with a random stranger) from this terminal",
        description=(
            "Chat in a room, or with a stranger from the random queue (--random), from this "
            "terminal. Connects to a running server (--url), or starts its own stdio server "
            "on a store (--store, default the SQLite file)."
        ),
    )
    where = chat.add_mutually_exclusive_group()
    where.add_argument("--url", help="a server's MCP endpoint, e.g. http://127.0.0.1:8000/mcp")
    where.add_argument("--store", help="store URL for a server of its own (env MCP_CHAT_STORE)")
    room = chat.add_mutually_exclusive_group()
    room.add_argument("--room", help="room to join or create (default lobby)")
    room.add_argument(
        "--random", action="store_true", help="enter the random queue and chat with whoever comes"
    )
    chat.add_argument(
        "--interests",
        type=_interests,
        default=(),
        help="with --random: comma-separated tags (e.g. chess,go); shared ones match first",
    )
    chat.add_argument("--name", default=getpass.getuser(), help="your display name")
    chat.add_argument("--capacity", type=int, help="places in the room, if it is new")
    chat.add_argument(
        "--invite", help="a private room's invite (creating a room with one makes it private)"
    )
    return parser


def _interests(text: str) -> tuple[str, ...]:
    return tuple(tag.strip() for tag in text.split(",") if tag.strip())


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key in ("store", "host", "port", "log_level", "max_message_bytes")
        if (value := getattr(args, key, None)) is not None
    }
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.command == "chat":
        if args.random and (args.capacity is not None or args.invite is not None):
            parser.error("--capacity and --invite are for a named room, not --random")
        if args.interests and not args.random:
            parser.error("--interests goes with --random")
        _chat(args, settings)
        return
    setup_logging(settings.log_level)
    from mcp_chat import app

    if args.command == "serve":
        app.serve_http(settings)
    else:
        app.serve_stdio(settings)


def _chat(args: argparse.Namespace, settings: Settings) -> None:
    # No log handler here: lines on stderr would scribble over the window.
    from mcp_chat.tui.app import ChatApp
    from mcp_chat.tui.link import Seat, stdio_target

    target = args.url or stdio_target(settings.store)
    room = None if args.random else args.room or "lobby"
    seat = Seat(target, room, args.name, args.capacity, args.invite, args.interests)
    ChatApp(seat).run()
