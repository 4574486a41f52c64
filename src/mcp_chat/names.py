"""Rules for the names people choose: display names and room ids."""

from __future__ import annotations

import re
import unicodedata

from mcp_chat.errors import invalid

MAX_NAME_CHARS = 64
MAX_ROOM_ID_CHARS = 64
_ROOM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def clean_display_name(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """Trimmed display name, or an error saying what is wrong with it."""
    if not isinstance(name, str):
        raise invalid("display_name must be a string.")
    cleaned = name.strip()
    if not cleaned:
        raise invalid("display_name is empty. Give the name others should see, e.g. 'Alice'.")
    if len(cleaned) > max_chars:
        raise invalid(f"display_name is longer than {max_chars} characters. Choose a shorter one.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in cleaned):
        raise invalid(
            "display_name contains control or invisible characters. Use letters, digits, "
            "spaces and punctuation only."
        )
    return cleaned


def check_room_id(room_id: str, max_chars: int = MAX_ROOM_ID_CHARS) -> str:
    """A room id as given, or an error saying what a valid one looks like."""
    if not isinstance(room_id, str):
        raise invalid("room_id must be a string.")
    if not room_id:
        raise invalid("room_id is empty.")
    if len(room_id) > max_chars or not _ROOM_ID.fullmatch(room_id):
        raise invalid(
            f"room_id '{_preview(room_id)}' is not valid. Use 1 to {max_chars} "
            "letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    return room_id


def _preview(text: str, limit: int = 40) -> str:
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return shown + ("…" if len(text) > limit else "")
