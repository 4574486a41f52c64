"""The mention rule (mcp_chat.mentions) on its own: who `@Name` marks, and what addresses whom."""

from __future__ import annotations

import pytest

from mcp_chat import credentials, mentions, messages
from mcp_chat.types import Kind, Message, Participant


def member(name: str) -> Participant:
    return Participant(
        participant_id=credentials.new_public_id("p-"),
        room_id="r",
        display_name=name,
        secret_hash="h",
        cursor=0,
        joined_at=messages.utc_now(),
        left=False,
    )


ANN, ANN_LEE, BOB, DR = member("Ann"), member("Ann Lee"), member("Bob"), member("Dr. Who?")
ROOM = [ANN, ANN_LEE, BOB, DR]
SENDER = member("Zoe")


def named(text: str, members: list[Participant] = ROOM, sender: Participant = SENDER) -> list[str]:
    """The display names `text` mentions, in the order found."""
    by_id = {m.participant_id: m.display_name for m in members}
    return [by_id[pid] for pid in mentions.find(text, [*members, sender], sender.participant_id)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Ann Lee can you look?", ["Ann Lee"]),  # the longest name that fits wins
        ("@Ann Lee", ["Ann Lee"]),  # up to the end of the text
        ("@Ann Smith, can you?", ["Ann"]),  # "Ann Lee" does not fit: the next longest does
        ("@Ann Leeds is a city", ["Ann"]),  # "Ann Lee" is followed by a word character
        ("@Ann  Lee", ["Ann"]),  # two spaces are not the name's one
        ("@Dr. Who? are you there", ["Dr. Who?"]),  # punctuation inside and at the end
    ],
)
def test_names_with_spaces_and_punctuation_take_the_longest_that_fits(
    text: str, expected: list[str]
) -> None:
    assert named(text) == expected


@pytest.mark.parametrize("text", ["@ann lee?", "@ANN LEE!", "@aNn LeE"])
def test_names_are_matched_whatever_their_case(text: str) -> None:
    assert named(text) == ["Ann Lee"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Annabel said so", []),  # a longer word is another name
        ("@Bob_2 said so", []),  # "_" is a word character
        ("@Bob's idea", ["Bob"]),
        ("(@Bob)", ["Bob"]),
        ("@Bob, @Bob.", ["Bob"]),  # once, however often
        ("hi @Bob\nthere", ["Bob"]),
    ],
)
def test_a_name_must_end_where_a_word_ends(text: str, expected: list[str]) -> None:
    assert named(text) == expected


@pytest.mark.parametrize(
    "text",
    ["@Zed, are you there?", "@", "@ Bob", "email@", "no at sign at all", "@@", "Bob"],
)
def test_a_name_that_is_no_members_mentions_nobody(text: str) -> None:
    assert named(text) == []


def test_several_members_are_mentioned_in_the_order_first_named() -> None:
    assert named("@bob and @Ann Lee, then @Ann and @BOB again") == ["Bob", "Ann Lee", "Ann"]


@pytest.mark.parametrize(
    "text", ["write to bob@example.com", "ann@Ann", "x@Bob", "see Ann.Lee@Bob.example"]
)
def test_an_at_sign_inside_a_word_such_as_an_email_address_is_no_mention(text: str) -> None:
    assert named(text) == []


def test_an_at_sign_after_punctuation_or_another_at_sign_is_one() -> None:
    assert named("@@Bob") == ["Bob"]
    assert named("cc:@Bob") == ["Bob"]


def test_members_sharing_a_name_are_all_mentioned() -> None:
    sam, other_sam = member("Sam"), member("sam")
    mentioned = mentions.find("@SAM hello", [sam, other_sam], SENDER.participant_id)
    assert mentioned == (sam.participant_id, other_sam.participant_id)


def test_names_are_taken_literally_not_as_patterns() -> None:
    odd = [member("a+b"), member("(x)"), member("c.d")]
    assert named("@a+b @(x) @cxd", odd) == ["a+b", "(x)"]


def test_the_sender_is_never_mentioned_but_its_name_still_counts_as_the_longest() -> None:
    assert named("@Ann Lee, note to self", ROOM, sender=ANN_LEE) == []
    assert named("@Ann, @Ann Lee here", ROOM, sender=ANN_LEE) == ["Ann"]


def message(sender: Participant, mentioned: tuple[str, ...], kind: Kind = Kind.MESSAGE) -> Message:
    return Message(
        "r", 1, "m_1", sender.participant_id, sender.display_name, kind, "x", "t", mentioned
    )


def test_a_message_addresses_whom_it_mentions_and_never_its_sender() -> None:
    to_bob = message(ANN, (BOB.participant_id,))
    assert mentions.addresses(to_bob, BOB.participant_id)
    assert not mentions.addresses(to_bob, ANN_LEE.participant_id)
    assert not mentions.addresses(message(ANN, ()), BOB.participant_id)
    assert not mentions.addresses(message(ANN, (ANN.participant_id,)), ANN.participant_id)


def test_system_events_address_a_partner_when_they_change_the_conversation() -> None:
    joined = messages.event_draft(Kind.MATCHED, ANN)
    assert mentions.matched(joined, BOB.participant_id).mentions == (BOB.participant_id,)
    left = messages.event_draft(Kind.LEFT, ANN)
    assert mentions.left(left, [BOB.participant_id], ends_room=True).mentions == (
        BOB.participant_id,
    )
    # A leave from a room that lives on is the room's comings and goings: for nobody.
    assert mentions.left(left, [BOB.participant_id], ends_room=False).mentions == ()
    assert messages.event_draft(Kind.JOINED, ANN).mentions == ()
