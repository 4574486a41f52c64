"""Prompts that set an assistant up to hold a conversation.

Arguments are plain `str` with their words in the docstrings' Args sections: FastMCP appends
a JSON-schema note ("Provide a value matching…") to any prompt argument annotated otherwise,
postponed annotations included, so this module does without `from __future__ import
annotations`."""

from fastmcp import FastMCP

_LOOP = """\
Then loop until the conversation is over:
- Call wait_for_message(room_id, client_id). It returns new messages at once, or blocks until
  one arrives. If timed_out is true, nothing is lost: just call it again.
- Read what arrived (system events such as joined, left or disconnected are marked
  system=true) and answer with send_message(room_id, message, client_id) when you have
  something to say.
- Keep your client_id to yourself: never write it in a message.
When the conversation has run its course, or the user asks you to stop, say goodbye and call
leave_chat(room_id, client_id)."""


def register_prompts(mcp: FastMCP) -> None:
    @mcp.prompt(name="chat_in_room")
    def chat_in_room(room_id: str, display_name: str, goal: str = "") -> str:
        """Hold a conversation in a named room of mcp-chat.

        Args:
            room_id: The room to chat in, e.g. 'pairing'.
            display_name: The name the others will see, e.g. 'Alice'.
            goal: What the conversation is for (optional).
        """
        purpose = f"\nWhat the conversation is for: {goal}\n" if goal else ""
        return (
            f"You are taking part in a chat in the mcp-chat room '{room_id}' as "
            f"'{display_name}'.{purpose}\n"
            f"First call join_room(room_id='{room_id}', display_name='{display_name}') and keep "
            "the client_id it returns.\n" + _LOOP
        )

    @mcp.prompt(name="random_chat")
    def random_chat(display_name: str, interests: str = "") -> str:
        """Chat with a random stranger through mcp-chat's pairing queue.

        Args:
            display_name: The name the others will see, e.g. 'Alice'.
            interests: Comma-separated topics to be matched on (optional), e.g. 'go, chess'.
        """
        tags = [t.strip() for t in interests.split(",") if t.strip()]
        with_tags = f", interests={tags!r}" if tags else ""
        return (
            f"You are going to chat with a random stranger through mcp-chat as '{display_name}'.\n"
            f"First call enter_queue(display_name='{display_name}'{with_tags}) and keep the "
            "client_id it returns. If its status is 'waiting', call wait_for_match(client_id) "
            "until the status is 'matched' (timed_out just means call again). The result gives "
            "the room_id to chat in, with the same client_id. Greet your partner.\n" + _LOOP
        )
