"""Settings from flags, environment and token files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mcp_chat.auth import load_tokens
from mcp_chat.cli import _LIMIT_FLAGS, _parser, settings_from


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_CHAT_RATE_MESSAGES", "7")
    monkeypatch.setenv("MCP_CHAT_MAX_ROOMS", "9")
    monkeypatch.setenv("MCP_CHAT_ALLOWED_HOSTS", '["chat.example.com"]')
    settings = settings_from(_parser().parse_args(["serve", "--max-rooms", "3"]))
    limits = settings.limits()
    assert (limits.rate_messages, limits.max_rooms) == (7, 3)
    assert settings.allowed_hosts == ["chat.example.com"]


def test_every_limit_flag_reaches_the_limits() -> None:
    argv = ["stdio", "--max-name-chars", "10", "--max-room-id-chars", "11", "--max-waits", "2"]
    argv += ["--rate-window", "5", "--message-max-age", "60", "--idle-max-age", "120"]
    limits = settings_from(_parser().parse_args(argv)).limits()
    assert (limits.max_name_chars, limits.max_room_id_chars, limits.max_waits) == (10, 11, 2)
    assert limits.rate_window == 5
    assert (limits.retention.message_age, limits.retention.idle_age) == (60, 120)


def test_channel_push_is_on_for_stdio_and_off_for_serve_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def mode(*argv: str) -> str | None:
        return settings_from(_parser().parse_args(argv)).channel_mode(stdio=argv[0] == "stdio")

    monkeypatch.delenv("MCP_CHAT_CHANNEL", raising=False)
    assert (mode("stdio"), mode("serve")) == ("on", None)
    assert mode("stdio", "--channel", "off") is None
    assert mode("serve", "--channel", "on") == "on"
    monkeypatch.setenv("MCP_CHAT_CHANNEL", "mentions")
    assert (mode("stdio"), mode("serve")) == ("mentions", "mentions")
    assert mode("stdio", "--channel", "off") is None  # the flag wins
    monkeypatch.setenv("MCP_CHAT_CHANNEL", "loud")
    with pytest.raises(ValueError, match="channel"):
        mode("stdio")


def test_the_token_comes_from_the_environment_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_CHAT_AUTH_TOKEN", "from-env")
    settings = settings_from(_parser().parse_args(["serve"]))
    assert settings.auth_token is not None
    assert settings.auth_token.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)


def test_a_token_file_holds_one_token_a_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# the team\nalpha\n\n  beta  \n")
    assert load_tokens("gamma", path) == ["gamma", "alpha", "beta"]
    assert load_tokens(None, None) == []
    assert load_tokens("  ", None) == []


def test_the_http_bounds_come_from_flags_and_the_message_limit() -> None:
    argv = ["serve", "--read-timeout", "4.5", "--max-message-bytes", "1000"]
    argv += ["--max-sessions", "7", "--session-idle-timeout", "90"]
    settings = settings_from(_parser().parse_args(argv))
    assert settings.read_timeout == 4.5
    assert (settings.max_sessions, settings.session_idle_timeout) == (7, 90)
    # The largest message with every byte escaped (six bytes each), and 64 KiB of envelope.
    assert settings.max_body_bytes() == 6 * 1000 + 64 * 1024


def test_every_limit_flag_reaches_the_settings_and_the_core() -> None:
    """Each flag of the limits table, with a value of its own, arrives in Settings under its
    name; those the core keeps arrive in its Limits too."""
    argv = ["serve"]
    given: dict[str, float] = {}
    for number, (flag, kind, _) in enumerate(_LIMIT_FLAGS, start=2):
        value = kind(number if flag != "--default-wait" else 2 + number / 100)
        given[flag[2:].replace("-", "_")] = value
        argv += [flag, str(value)]
    settings = settings_from(_parser().parse_args(argv))
    for name, value in given.items():
        assert getattr(settings, name) == value, name
    limits = settings.limits()
    kept = {f.name for f in dataclasses.fields(limits)} & set(given)
    assert len(kept) >= 10
    for name in kept:
        assert getattr(limits, name) == given[name], name
    assert (limits.retention.message_age, limits.retention.idle_age) == (
        given["message_max_age"],
        given["idle_max_age"],
    )
