"""Settings, from flags and MCP_CHAT_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_chat import names
from mcp_chat.limits import Limits
from mcp_chat.loop import Choice
from mcp_chat.matching import MatchPolicy
from mcp_chat.presence import PresencePolicy
from mcp_chat.push import Mode
from mcp_chat.retention import Retention

ESCAPE_FACTOR = 6
"""A byte of a message may take six in a JSON body (`\\u0001`)."""
ENVELOPE_BYTES = 64 * 1024
"""Room in a body for everything besides the message: the JSON-RPC envelope and `_meta`,
room id, client id, message key, also escaped."""


def default_store_url() -> str:
    return f"sqlite:///{Path(user_data_dir('mcp-chat', appauthor=False)) / 'mcp-chat.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCP_CHAT_", extra="ignore")

    store: str = Field(default_factory=default_store_url)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["plain", "json"] = "plain"
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    max_sessions: int = Field(default=1000, ge=1)
    """Handshake-era HTTP sessions open at once; at the cap the longest-idle one is closed for a
    new one (mcp/sessions.py)."""
    session_idle_timeout: float = Field(default=600.0, gt=0)
    """Seconds a handshake-era HTTP session may go without a request in flight (a blocked wait
    and an open GET stream are requests in flight) before it is closed."""
    read_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client has to send a request's headers, and again its body (see bounds.py)."""
    max_message_bytes: int = Field(default=64 * 1024, ge=1)
    max_capacity: int = Field(default=50, ge=2)
    max_name_chars: int = Field(default=names.MAX_NAME_CHARS, ge=1)
    max_room_id_chars: int = Field(default=names.MAX_ROOM_ID_CHARS, ge=1)
    max_rooms: int = Field(default=10_000, ge=0)
    rate_messages: int = Field(default=120, ge=0)
    rate_window: float = Field(default=60.0, gt=0)
    rate_joins: int = Field(default=60, ge=0)
    max_waits: int = Field(default=4, ge=0)
    default_wait: float = Field(default=30.0, ge=1, le=300)
    message_max_age: float = Field(default=0.0, ge=0)
    idle_max_age: float = Field(default=0.0, ge=0)
    retention_interval: float = Field(default=300.0, gt=0)
    match_fallback: float = Field(default=30.0, ge=0)
    queue_stale_after: float = Field(default=30.0, gt=0)
    heartbeat: float = Field(default=5.0, gt=0)
    away_after: float = Field(default=60.0, gt=0)
    gone_after: float = Field(default=600.0, gt=0)
    keepalive: float = Field(default=10.0, ge=0)
    channel: Literal["on", "off", "mentions"] | None = None
    """Claude Code channel push: new messages written to the client as they arrive, on
    connections that can take them. Unset: on for `stdio`, off for `serve` (see `channel_mode`).
    """
    fast_calls: bool = True
    """Serve plain 2026-07-28 send_message and wait_for_message calls without the SDK's
    per-request stack (mcp/fastcalls.py); off only to compare the two."""
    event_loop: Choice = "auto"
    """The asyncio event loop the server runs on: uvloop where it is installed ("auto"), or the
    standard library's."""

    @model_validator(mode="after")
    def _heartbeat_fits(self) -> Settings:
        shortest = min(self.queue_stale_after, self.away_after, self.gone_after)
        if self.heartbeat >= shortest:
            raise ValueError(
                f"heartbeat ({self.heartbeat:g} s) must be shorter than queue_stale_after, "
                f"away_after and gone_after (shortest: {shortest:g} s), or the living look silent."
            )
        return self

    def max_body_bytes(self) -> int:
        """The largest request body `serve` reads: the largest legitimate one is a send of the
        largest message with every byte escaped, plus its envelope."""
        return ESCAPE_FACTOR * self.max_message_bytes + ENVELOPE_BYTES

    def channel_mode(self, stdio: bool) -> Mode | None:
        """What pushes do here (None: none). Unset, stdio pushes: its client is the one that
        started it, Claude Code's channel. `serve` does not: a shared server's handshake-era
        clients mostly read with wait_for_message, and every message pushed to a client that
        does not show it would be taken from them."""
        chosen = self.channel or ("on" if stdio else "off")
        return None if chosen == "off" else chosen

    def matching_policy(self) -> MatchPolicy:
        return MatchPolicy(fallback_after=self.match_fallback, stale_after=self.queue_stale_after)

    def presence_policy(self) -> PresencePolicy:
        return PresencePolicy(
            heartbeat=self.heartbeat, away_after=self.away_after, gone_after=self.gone_after
        )

    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_capacity=self.max_capacity,
            max_name_chars=self.max_name_chars,
            max_room_id_chars=self.max_room_id_chars,
            max_rooms=self.max_rooms,
            rate_messages=self.rate_messages,
            rate_window=self.rate_window,
            rate_joins=self.rate_joins,
            max_waits=self.max_waits,
            default_wait=self.default_wait,
            retention=Retention(self.message_max_age, self.idle_max_age),
            retention_interval=self.retention_interval,
        )
