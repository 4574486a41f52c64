"""What all text from a caller must be: valid Unicode, which every store can keep and every
answer can carry. JSON lets a caller send a lone surrogate ("\\ud800"), which no UTF-8
encoder accepts; refused at the door, it cannot break a store or a later reader's answer."""

from __future__ import annotations

import re

from mcp_chat import errors

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_unicode(value: str, what: str) -> str:
    """`value` unchanged, or invalid_argument naming `what` if it holds a lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.invalid(
            f"{what} is not valid Unicode: it holds a lone surrogate (such as \\ud800). "
            "Send text that encodes as UTF-8."
        ) from None
    return value


def displayable(value: str) -> str:
    """`value`, or a copy with any lone surrogate replaced by U+FFFD: what is shown of text
    kept before `check_unicode` guarded the door, so one bad message cannot stop an answer.
    Runs on every delivered message: ASCII text (a flag CPython keeps) is not copied."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value
