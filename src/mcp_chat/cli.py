"""The `mcp-chat` command: `serve` (streamable HTTP and the web page), `stdio`, and `chat`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# FastMCP reads these when imported: no banner, no update check (no traffic off this machine),
# plain log lines on stderr.
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("FASTMCP_ENABLE_RICH_LOGGING", "false")
os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")  # its records go to our handler instead

from pydantic import ValidationError

from mcp_chat import __version__
from mcp_chat.config import Settings
from mcp_chat.errors import StartupError
from mcp_chat.logs import setup_logging

if TYPE_CHECKING:
    from mcp_chat.tui.app import ChatApp

DESCRIPTION = """\
mcp-chat: a chat server for AI assistants and people, over the Model Context Protocol.

  mcp-chat serve    streamable HTTP at http://HOST:PORT/mcp (default 127.0.0.1:8000),
                    and a web page for people at http://HOST:PORT/
  mcp-chat stdio    speak MCP on stdin/stdout (let an MCP client start it)
  mcp-chat chat     chat in a room (or with a random stranger) from this terminal

The store is chosen by URL (--store or MCP_CHAT_STORE):
  sqlite:///path/to/file.db   durable; several processes may share one file (default:
                              a file in your user data directory)
  redis://host:port/db?prefix=name
                              shared by several `serve` instances behind a load balancer
  memory://                   in this process only, gone when it stops
"""


# Limits shared by both commands: (flag, type, help). The setting is the flag's name.
_LIMIT_FLAGS: list[tuple[str, type, str]] = [
    ("--max-message-bytes", int, "largest message, in UTF-8 bytes (default 65536)"),
    ("--max-capacity", int, "largest room a creator may ask for (default 50)"),
    ("--max-name-chars", int, "longest display name (default 64)"),
    ("--max-room-id-chars", int, "longest room id (default 64)"),
    ("--max-rooms", int, "open rooms per server; 0: no limit (default 10000)"),
    ("--rate-messages", int, "messages a participant may send per window; 0: off (default 120)"),
    ("--rate-window", float, "the window of --rate-messages and --rate-joins (default 60 s)"),
    ("--rate-joins", int, "joins and queue entries per client address per window (default 60)"),
    ("--max-waits", int, "blocked waits per participant; 0: no limit (default 4)"),
    ("--default-wait", float, "seconds a wait blocks when no timeout is given (default 30)"),
    ("--message-max-age", float, "remove messages older than this many seconds; 0: keep"),
    ("--idle-max-age", float, "remove rooms idle for this many seconds; 0: keep"),
    ("--retention-interval", float, "seconds between retention runs (default 300)"),
]


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
            help="log level (env MCP_CHAT_LOG_LEVEL, default info; warning for stdio)",
        )
        p.add_argument(
            "--log-format",
            choices=["plain", "json"],
            help="log lines as text or JSON objects (env MCP_CHAT_LOG_FORMAT, default plain)",
        )
        p.add_argument(
            "--channel",
            choices=["on", "off", "mentions"],
            help="push new messages to the client as Claude Code channel notifications "
            "(env MCP_CHAT_CHANNEL; default on for stdio, off for serve)",
        )
        limits = p.add_argument_group("limits and retention (env MCP_CHAT_<NAME>)")
        for flag, kind, text in _LIMIT_FLAGS:
            limits.add_argument(flag, type=kind, help=text)

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
    serve.add_argument(
        "--auth-token",
        help="require 'Authorization: Bearer TOKEN' on /mcp and /metrics "
        "(env MCP_CHAT_AUTH_TOKEN; prefer the env or a file: flags show in ps)",
    )
    serve.add_argument(
        "--auth-token-file",
        help="file of accepted tokens, one per line (env MCP_CHAT_AUTH_TOKEN_FILE)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        metavar="HOST",
        help="also accept this Host header (repeatable; env MCP_CHAT_ALLOWED_HOSTS as a JSON list)",
    )
    serve.add_argument(
        "--max-sessions",
        type=int,
        help="handshake-era MCP sessions open at once; at the cap the longest-idle one is "
        "closed for a new one (env MCP_CHAT_MAX_SESSIONS, default 1000)",
    )
    serve.add_argument(
        "--session-idle-timeout",
        type=float,
        help="seconds a handshake-era MCP session may sit idle before it is closed "
        "(env MCP_CHAT_SESSION_IDLE_TIMEOUT, default 600)",
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        help="seconds a client has to send a request's headers, and again its body; slower "
        "gets 408 (env MCP_CHAT_READ_TIMEOUT, default 30)",
    )
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
    chat.add_argument(
        "--auth-token",
        help="with --url: the server's access token (env MCP_CHAT_AUTH_TOKEN; prefer the env "
        "or a file: flags show in ps)",
    )
    chat.add_argument(
        "--auth-token-file",
        help="with --url: a file holding the token, its first line that is not blank or a "
        "# comment (env MCP_CHAT_AUTH_TOKEN_FILE)",
    )
    return parser


def _interests(text: str) -> tuple[str, ...]:
    return tuple(tag.strip() for tag in text.split(",") if tag.strip())


_SETTINGS = (
    "store",
    "host",
    "port",
    "log_level",
    "log_format",
    "auth_token",
    "auth_token_file",
    "allowed_hosts",
    "max_sessions",
    "session_idle_timeout",
    "read_timeout",
    "channel",
    *(flag[2:].replace("-", "_") for flag, _, _ in _LIMIT_FLAGS),
)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {key: value for key in _SETTINGS if (value := getattr(args, key, None)) is not None}
    if getattr(args, "command", None) == "stdio" and "log_level" not in overrides:
        # A client that starts the server may show every stderr line as an error (Claude Code
        # does): over stdio only what is wrong is written, unless asked otherwise.
        overrides.setdefault("log_level", os.environ.get("MCP_CHAT_LOG_LEVEL", "warning"))
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _run(parser, args)
    except StartupError as exc:
        print(f"mcp-chat: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            print(f"mcp-chat: {where}: {problem['msg']}", file=sys.stderr)
        sys.exit(2)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    settings = settings_from(args)
    if args.command == "chat":
        _chat_app(parser, args, settings).run()
        return
    setup_logging(settings.log_level, settings.log_format)
    from mcp_chat import app

    if args.command == "serve":
        app.serve_http(settings)
    else:
        app.serve_stdio(settings)


def chat_app(argv: Sequence[str]) -> ChatApp:
    """The window `mcp-chat chat ARGV...` runs, not yet running (tests drive it)."""
    parser = _parser()
    args = parser.parse_args(["chat", *argv])
    return _chat_app(parser, args, settings_from(args))


def _chat_app(
    parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings
) -> ChatApp:
    # No log handler here: lines on stderr would scribble over the window.
    from mcp_chat.auth import load_tokens
    from mcp_chat.tui.app import ChatApp
    from mcp_chat.tui.link import Seat, stdio_target

    if args.random and (args.capacity is not None or args.invite is not None):
        parser.error("--capacity and --invite are for a named room, not --random")
    if args.interests and not args.random:
        parser.error("--interests goes with --random")
    if not args.url and (args.auth_token is not None or args.auth_token_file is not None):
        parser.error("--auth-token and --auth-token-file go with --url (stdio needs none)")
    token = None
    if args.url:
        # Flags win over the variables (a token exported for `serve` is the one to bring).
        if args.auth_token is not None or args.auth_token_file is not None:
            secret, path = args.auth_token, args.auth_token_file
        else:
            secret = settings.auth_token.get_secret_value() if settings.auth_token else None
            path = settings.auth_token_file
        try:
            token = next(iter(load_tokens(secret, None if path is None else Path(path))), None)
        except OSError as exc:  # the file's name, never its content
            parser.error(f"cannot read the token file {path}: {exc.strerror}")
    target = args.url or stdio_target(settings.store)
    room = None if args.random else args.room or "lobby"
    seat = Seat(target, room, args.name, args.capacity, args.invite, args.interests, token)
    return ChatApp(seat)
