"""Message text as safe Markdown for the terminal: emphasis, inline code, code blocks, lists
and links become styles on plain text. Nothing in a message is ever taken as markup of the
terminal or of Rich ("[bold]" stays "[bold]"), and raw HTML is shown as the text it is."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.style import Style
from rich.text import Text

# CommonMark with HTML off: a tag is text. markdown-it also refuses link targets such as
# javascript: (they stay text), and only http(s) and mailto targets get a terminal link.
_PARSER = MarkdownIt("commonmark", {"html": False}).disable("image")
_LINKABLE = ("http://", "https://", "mailto:")
_CODE = Style(color="cyan")


def to_text(source: str) -> Text:
    """`source` rendered for the terminal, as one Text (blocks on their own lines)."""
    out = Text()
    lists: list[list[int]] = []  # per open list: [next number] (ordered) or [] (bullets)
    quote = 0
    item_started = False  # a list item's marker is written: its first block goes after it
    heading = False
    for token in _PARSER.parse(source):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            lists.append([int(token.attrs.get("start") or 1)] if kind[0] == "o" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            _new_block(out)
            indent = "  " * (len(lists) - 1)
            numbering = lists[-1] if lists else []
            if numbering:
                out.append(f"{indent}{numbering[0]}. ")
                numbering[0] += 1
            else:
                out.append(f"{indent}• ")
            item_started = True
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind in ("paragraph_open", "heading_open"):
            heading = kind == "heading_open"
            if not item_started:
                _new_block(out)
                if quote:
                    out.append("> " * quote, style="dim")
            item_started = False
        elif kind == "inline":
            _inline(out, token.children or [], Style(bold=True) if heading else Style())
        elif kind == "heading_close":
            heading = False
        elif kind in ("fence", "code_block"):
            _new_block(out)
            out.append(token.content.rstrip("\n"), style=_CODE)
            item_started = False
        elif kind == "hr":
            _new_block(out)
            out.append("───", style="dim")
    return out


def _new_block(out: Text) -> None:
    if out.plain and not out.plain.endswith("\n"):
        out.append("\n")


def _inline(out: Text, children: list[Token], base: Style) -> None:
    styles = [base]
    href: str | None = None
    label_from = 0
    for child in children:
        kind = child.type
        if kind == "text":
            out.append(child.content, style=styles[-1])
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "code_inline":
            out.append(child.content, style=styles[-1] + _CODE)
        elif kind == "em_open":
            styles.append(styles[-1] + Style(italic=True))
        elif kind == "strong_open":
            styles.append(styles[-1] + Style(bold=True))
        elif kind in ("em_close", "strong_close", "link_close"):
            if len(styles) > 1:
                styles.pop()
            if kind == "link_close" and href is not None:
                if out.plain[label_from:] != href:  # the address too, unless the label is it
                    out.append(f" ({href})", style=Style(dim=True))
                href = None
        elif kind == "link_open":
            href = str(child.attrs.get("href", ""))
            label_from = len(out.plain)
            link = Style(underline=True, link=href if href.startswith(_LINKABLE) else None)
            styles.append(styles[-1] + link)
        else:  # anything else is shown as the text it came from
            out.append(child.content, style=styles[-1])
