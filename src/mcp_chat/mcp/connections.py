"""Handshake-era connections (2025-11-25 and older) and the chat `Session` each speaks through.

Only those connections have a lifetime beyond one request: when one closes (a stdio client's
process ends, an HTTP session is closed or idles out), its participants are marked gone and
their rooms are told. 2026-07-28 requests stand alone, so their participants go by silence.
Over HTTP each is also found by its session id, for the short road (`fastcalls.py`), which
serves a session's plain calls without the SDK and must speak through the same `Session`.
"""

from __future__ import annotations

from mcp.server.connection import Connection

from mcp_chat.chat import ChatService
from mcp_chat.mcp.channel import Channels
from mcp_chat.presence import Session

_SESSION_KEY = "mcp_chat.session"


class Connections:
    def __init__(self, chat: ChatService, channels: Channels | None = None) -> None:
        self._chat = chat
        self._channels = channels
        self._by_id: dict[str, tuple[Connection, Session]] = {}

    def session_of(self, connection: Connection) -> Session:
        """The connection's Session, made the first time it is asked for: its participants
        are disconnected when the connection's teardown runs."""
        session = connection.state.get(_SESSION_KEY)
        if isinstance(session, Session):
            return session
        session = connection.state[_SESSION_KEY] = Session()
        connection.exit_stack.push_async_callback(self._chat.heartbeat.disconnect, session)
        if self._channels is not None:
            self._channels.follow_http(connection, session)
        if (session_id := connection.session_id) is not None:
            self._by_id[session_id] = (connection, session)
            connection.exit_stack.callback(self._by_id.pop, session_id, None)
        return session

    def find(self, session_id: str) -> tuple[Connection, Session] | None:
        """The open HTTP session's connection and Session, once its client initialized."""
        found = self._by_id.get(session_id)
        if found is None or not found[0].initialize_accepted:
            return None
        return found
