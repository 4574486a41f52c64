"""The rules, alone: names, room ids, capacity, message text, secrets."""

from __future__ import annotations

import dataclasses

import pytest

from mcp_chat import credentials, messages, names, rooms
from mcp_chat.errors import ChatError, Code
from mcp_chat.types import Participant, Room


def test_display_name_is_trimmed() -> None:
    assert names.clean_display_name("  Alice ") == "Alice"


@pytest.mark.parametrize(
    "bad", ["", "   ", "x" * 65, "Al\x00ice", "Bob\x1b[31m", "Eve\u200b", "new\nline"]
)
def test_bad_display_names_are_refused(bad: str) -> None:
    with pytest.raises(ChatError) as err:
        names.clean_display_name(bad)
    assert err.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize("good", ["lobby", "a", "room-1.b_2", "X" * 64])
def test_room_ids_accepted(good: str) -> None:
    assert names.check_room_id(good) == good


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "x" * 65, "../etc", "é"])
def test_room_ids_refused(bad: str) -> None:
    with pytest.raises(ChatError) as err:
        names.check_room_id(bad)
    assert err.value.code is Code.INVALID_ARGUMENT


def test_capacity_defaults_to_two_and_is_bounded() -> None:
    assert rooms.check_capacity(None, 10) == 2
    assert rooms.check_capacity(10, 10) == 10
    for bad in (1, 11, 0, -3):
        with pytest.raises(ChatError):
            rooms.check_capacity(bad, 10)


def test_full_or_ended_rooms_refuse_joiners() -> None:
    room = Room("r", capacity=2, created_at="", last_seq=0, ended=False)
    rooms.check_join(room, 1)
    with pytest.raises(ChatError) as full:
        rooms.check_join(room, 2)
    assert full.value.code is Code.ROOM_FULL
    ended = Room("r", capacity=5, created_at="", last_seq=3, ended=True)
    with pytest.raises(ChatError) as over:
        rooms.check_join(ended, 0)
    assert over.value.code is Code.CHAT_ENDED


def test_room_of_two_ends_when_either_leaves_but_groups_live_on() -> None:
    pair = Room("p", 2, "", 0, False)
    group = Room("g", 5, "", 0, False)
    assert rooms.ends_after_leave(pair, 1, seated_others=1)
    assert rooms.ends_after_leave(pair, 1, seated_others=0)  # the other is gone: ends too
    assert not rooms.ends_after_leave(group, 1, seated_others=1)
    assert not rooms.ends_after_leave(group, 1, seated_others=0)  # gone ones may come back
    assert rooms.ends_after_leave(group, 0, seated_others=0)
    # A gone member whose seat a newcomer took leaves: the two in the pair go on.
    assert not rooms.ends_after_leave(pair, 2, seated_others=2)


def member(gone: bool) -> Participant:
    return Participant("p-1", "r", "Ann", "h", 0, "", left=False, gone=gone)


def test_members_marked_gone_hold_no_seat() -> None:
    assert rooms.holds_seat(member(gone=False)) and not rooms.holds_seat(member(gone=True))
    assert rooms.seated([member(False), member(True), member(True)]) == 1
    pair = Room("p", 2, "", 0, False)
    rooms.check_join(pair, rooms.seated([member(True), member(True)]))  # both gone: two free
    rooms.check_join(pair, rooms.seated([member(False), member(True)]))
    with pytest.raises(ChatError) as full:
        rooms.check_join(pair, rooms.seated([member(False), member(False), member(True)]))
    assert full.value.code is Code.ROOM_FULL


def test_one_gone_comes_back_to_a_free_seat_only() -> None:
    group = Room("g", 3, "", 0, False)
    assert rooms.may_come_back(group, member(gone=True))
    assert not rooms.may_come_back(group, member(gone=False))
    assert not rooms.may_come_back(dataclasses.replace(group, ended=True), member(gone=True))
    rooms.check_return(group, seated_others=2)
    with pytest.raises(ChatError) as full:
        rooms.check_return(group, seated_others=3)
    assert full.value.code is Code.ROOM_FULL
    assert "while you were gone" in full.value.message


def test_rooms_are_listed_while_someone_in_them_is_not_gone() -> None:
    room = Room("r", 3, "", 0, False)
    assert rooms.listed(room, 1) and not rooms.listed(room, 0)
    assert not rooms.listed(dataclasses.replace(room, ended=True), 1)
    assert not rooms.listed(dataclasses.replace(room, invite_hash="h"), 1)


def test_message_text_limits() -> None:
    assert messages.check_text("hé", 3) == "hé"
    with pytest.raises(ChatError) as big:
        messages.check_text("héé", 4)  # 5 bytes in UTF-8
    assert big.value.code is Code.MESSAGE_TOO_LARGE
    for bad in ("", "  \n", "a\x00b"):
        with pytest.raises(ChatError):
            messages.check_text(bad, 100)


def test_timestamps_are_utc_iso8601() -> None:
    stamp = messages.utc_now()
    assert stamp.endswith("Z") and "T" in stamp


def test_client_secrets_are_long_random_and_redacted() -> None:
    a, b = credentials.new_client_secret(), credentials.new_client_secret()
    assert a != b
    # 24 random bytes, base64url: at least 128 bits of entropy.
    assert len(a) - len("mcc_") >= 32
    assert credentials.matches(credentials.hash_secret(a), a)
    assert not credentials.matches(credentials.hash_secret(a), b)
    shown = credentials.redact(a)
    assert a not in shown and len(shown) < 12


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@db:6379/0", "redis://:***@db:6379/0"),
        ("redis://app:hunter2@db:6379/1?prefix=x", "redis://app:***@db:6379/1?prefix=x"),
        ("redis://db:6379/0", "redis://db:6379/0"),
        ("sqlite:///tmp/chat.db", "sqlite:///tmp/chat.db"),
    ],
)
def test_store_urls_are_logged_without_their_password(url: str, shown: str) -> None:
    assert credentials.redact_url(url) == shown


def test_an_ended_room_is_set_aside_under_an_id_no_caller_can_choose() -> None:
    assert rooms.starts_anew(Room("lobby", 2, "", 3, ended=True))
    assert not rooms.starts_anew(Room("lobby", 2, "", 3, ended=False))
    first, second = rooms.archive_id("lobby"), rooms.archive_id("lobby")
    assert first != second and first.startswith("lobby")
    for archived in (first, rooms.archive_id(first)):
        assert rooms.public_id(archived) == "lobby"
        with pytest.raises(ChatError):
            names.check_room_id(archived)
    assert rooms.public_id("lobby") == "lobby"


def test_an_invite_needs_a_private_room_and_its_own_secret() -> None:
    public = Room("team", 5, "", 0, False)
    private = Room("team", 5, "", 0, False, invite_hash="h1")
    rooms.check_join(public, 1)
    rooms.check_join(private, 1, "h1")
    with pytest.raises(ChatError) as taken:
        rooms.check_join(public, 1, "h1")
    assert taken.value.code is Code.ROOM_NOT_PRIVATE
    for wrong in (None, "h2"):
        with pytest.raises(ChatError) as refused:
            rooms.check_join(private, 1, wrong)
        assert refused.value.code is Code.INVITE_REQUIRED
