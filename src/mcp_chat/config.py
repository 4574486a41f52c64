"""Settings, from flags and MCP_CHAT_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_chat.chat import Limits


def default_store_url() -> str:
    return f"sqlite:///{Path(user_data_dir('mcp-chat', appauthor=False)) / 'mcp-chat.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCP_CHAT_", extra="ignore")

    store: str = Field(default_factory=default_store_url)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_message_bytes: int = Field(default=64 * 1024, ge=1)
    max_capacity: int = Field(default=50, ge=2)
    default_wait: float = Field(default=30.0, ge=1, le=300)

    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_capacity=self.max_capacity,
            default_wait=self.default_wait,
        )
