"""The page for people, in a real browser against real servers: safe Markdown, the unread
count and @mention notifications while the tab is hidden, messages kept through a lost
connection, and another random chat after one ends."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, Dialog, Page, expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, hear, join, texts
from tests.e2e.test_presence import SILENCE, presences
from tests.e2e.test_web import CHROMIUM, browser
from tests.e2e.test_web_queue import wait_on_page

__all__ = ["browser"]  # the fixture, shared with the room tests

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]

HOSTILE = (
    "**bold** and *em* and `code` <script>window.pwned = 1</script> "
    "[click](javascript:window.pwned=2) [docs](https://example.com/a?b=1) "
    '<img src=x onerror="window.pwned=3"> <a href="javascript:window.pwned=4">raw</a>\n\n'
    "- one\n- two\n\n1. first\n2. second\n\n```\n<b>not bold</b>\n```"
)

FAKE_NOTIFICATIONS = """
window.__notes = [];
window.__asked = 0;
class FakeNotification {
  constructor(title, options) { window.__notes.push({ title, body: options && options.body }); }
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = async () => {
  window.__asked += 1;
  FakeNotification.permission = "granted";
  return "granted";
};
window.Notification = FakeNotification;
"""


async def enter_room(page: Page, server: ServerProcess, room: str, name: str = "Ada") -> None:
    await page.goto(server.base + "/")
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join")
    await expect(page.locator("#room-name")).to_have_text(room)
    await expect(page.locator("#members")).to_contain_text(name)  # the room is loaded


async def set_hidden(page: Page, hidden: bool) -> None:
    """As when the person switches to another tab (or back): the browser's visibility."""
    await page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
            Object.defineProperty(document, "visibilityState", {
                configurable: true, get: () => (hidden ? "hidden" : "visible"),
            });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


async def test_messages_are_safe_markdown_on_the_page(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    async with Client(http_server.url) as agent:
        agent_id = await join(agent, "md", "Agent")
        await enter_room(page, http_server, "md")
        await call(agent, "send_message", room_id="md", message=HOSTILE, client_id=agent_id)
        bubble = page.locator("#messages .msg:not(.own) .bubble").last
        await expect(bubble.locator("pre code")).to_have_text("<b>not bold</b>")
        await expect(bubble.locator("strong")).to_have_text("bold")
        await expect(bubble.locator("em")).to_have_text("em")
        await expect(bubble.locator("p > code")).to_have_text("code")
        await expect(bubble.locator("ul li")).to_have_text(["one", "two"])
        await expect(bubble.locator("ol li")).to_have_text(["first", "second"])
        links = bubble.locator("a")
        await expect(links).to_have_count(1)
        await expect(links).to_have_text("docs")
        await expect(links).to_have_attribute("href", "https://example.com/a?b=1")
        await expect(links).to_have_attribute("rel", "noopener noreferrer")
        await expect(links).to_have_attribute("target", "_blank")
        # Everything hostile is text, shown as typed; nothing of it became an element.
        for shown in ("<script>window.pwned = 1</script>", "[click](javascript:", "<img src=x"):
            await expect(bubble).to_contain_text(shown)
        assert await page.locator("#messages script, #messages img, #messages b").count() == 0
        assert await page.evaluate("window.pwned") is None
        # The person's own Markdown is shown the same way.
        await page.fill("#text", "see *this*")
        await page.press("#text", "Enter")
        await expect(page.locator("#messages .own .bubble em").last).to_have_text("this")
        await hear(agent, "md", agent_id, "see *this*")
    assert dialogs == []
    await page.close()


async def test_a_hidden_tab_counts_unread_in_its_title_and_notifies_of_mentions(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.add_init_script(FAKE_NOTIFICATIONS)
    async with Client(http_server.url) as agent:
        agent_id = await join(agent, "web", "Agent")
        await enter_room(page, http_server, "web")
        await expect(page).to_have_title("#web · mcp-chat")
        assert await page.evaluate("window.__asked") == 0  # never asked on load
        notify = page.locator("#notify")
        await expect(notify).to_have_text("Notify me of @mentions")
        await notify.click()
        await expect(notify).to_have_text("Notifying you of @mentions")
        assert await page.evaluate("window.__asked") == 1  # asked on the click

        await set_hidden(page, True)
        for text in ("one", "hey @Ada, look", "@Adam is someone else"):
            await call(agent, "send_message", room_id="web", message=text, client_id=agent_id)
        await expect(page).to_have_title("(3) #web · mcp-chat")
        notes = await page.evaluate("window.__notes")
        assert notes == [{"title": "Agent mentioned you in #web", "body": "hey @Ada, look"}]

        await set_hidden(page, False)
        await expect(page).to_have_title("#web · mcp-chat")
        await page.fill("#text", "mine")
        await page.press("#text", "Enter")
        await hear(agent, "web", agent_id, "mine")
        await set_hidden(page, True)
        await call(agent, "send_message", room_id="web", message="two", client_id=agent_id)
        await expect(page).to_have_title("(1) #web · mcp-chat")
        assert len(await page.evaluate("window.__notes")) == 1
    await page.close()


async def test_what_is_typed_while_the_connection_is_lost_is_sent_once_it_is_back(
    db_url: str, browser: Browser, held_port: int
) -> None:
    first = ServerProcess(db_url, port=held_port)
    second: ServerProcess | None = None
    page = await browser.new_page()
    try:
        async with Client(first.url) as agent:
            agent_id = await join(agent, "keep", "Agent")
        await enter_room(page, first, "keep")
        first.stop()
        await expect(page.locator("#status")).to_have_text("Connection lost; reconnecting…")
        await page.fill("#text", "typed while it was down")
        await page.press("#text", "Enter")
        pending = page.locator("#messages .pending")
        await expect(pending).to_have_text("typed while it was downsending…")
        second = ServerProcess(db_url, port=held_port)
        await expect(pending).to_have_count(0, timeout=30_000)  # the page retries with backoff
        own = page.locator("#messages .own .bubble")
        await expect(own).to_have_text(["typed while it was down"])
        async with Client(second.url) as agent:
            got = await hear(agent, "keep", agent_id, "typed while it was down")
            assert texts(got).count("typed while it was down") == 1
            # Still in the room, its stream open again: what is said now shows up.
            await call(agent, "send_message", room_id="keep", client_id=agent_id, message="back")
            await expect(page.locator("#messages .bubble").last).to_have_text("back")
            await expect(page.locator("#room-name")).to_have_text("keep")
            await expect(page.locator("#status")).to_have_text("")
            page_messages = await call(
                agent, "get_messages", room_id="keep", client_id=agent_id, limit=100
            )
            assert texts(page_messages).count("typed while it was down") == 1
    finally:
        first.kill()
        if second is not None:
            second.stop()
    await page.close()


async def test_after_a_random_chat_ends_the_page_finds_someone_else_with_the_same_interests(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    client_id = await wait_on_page(page, http_server, "Ada", "Chess, go")
    async with Client(http_server.url) as agent:
        first = await call(agent, "enter_queue", display_name="Agent", interests=["go"])
        assert first["status"] == "matched", first
        events = page.locator("#messages .event")
        await expect(events.filter(has_text="Agent was matched")).to_contain_text(
            "Agent was matched with you: you share an interest, go. Say hello!"
        )
        next_chat = page.locator("#next")
        await expect(next_chat).to_be_hidden()
        await call(agent, "leave_chat", room_id=first["room_id"], client_id=first["client_id"])
        await expect(page.locator("#status")).to_contain_text("The chat has ended.")
        await next_chat.click()
        await expect(page.locator("#waiting")).to_be_visible()
        await expect(page.locator("#queue-interests")).to_have_text("Interests: Chess, go")
        await expect(page.locator("#queue-position")).to_contain_text("Position 1")
        second = await call(agent, "enter_queue", display_name="Second", interests=["chess"])
        assert second["status"] == "matched" and second["partner"]["display_name"] == "Ada"
        await expect(page.locator("#room-name")).to_have_text(second["room_id"])
        await expect(events.filter(has_text="Second was matched")).to_contain_text(
            "you share an interest, chess"
        )
        session = await page.evaluate("JSON.parse(sessionStorage['mcp-chat.session'])")
        assert session["client_id"] != client_id and session["interests"] == ["Chess", "go"]
    await page.close()


async def test_a_connection_lost_as_the_room_opens_keeps_the_person_in_it(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    async with Client(http_server.url) as agent:
        agent_id = await join(agent, "shaky", "Agent")
        await call(agent, "send_message", room_id="shaky", message="before", client_id=agent_id)
        # The history request dies on the way, as when the network drops at that moment.
        await page.route("**/api/rooms/shaky/messages?limit=100", lambda route: route.abort())
        await page.goto(http_server.base + "/")
        await page.fill("#name", "Ada")
        await page.fill("#room", "shaky")
        await page.click("#join")
        # It stays in the room, and the live stream brings what was said, and who is there.
        await expect(page.locator("#messages .bubble")).to_have_text(["before"])
        await expect(page.locator("#members")).to_contain_text("Agent")
        await expect(page.locator("#lobby")).to_be_hidden()
        await expect(page.locator("#join-error")).to_have_text("")
    await page.close()


async def test_the_page_shows_who_is_away_and_who_is_gone(db_url: str, browser: Browser) -> None:
    """Bob (a 2026-07-28 agent, which has no session) says nothing: the page that enters
    then shows him away, and gone once the room hears he is; the gone hold no place."""
    # Gone after eight seconds of silence: time for the page to open while Bob is away.
    server = ServerProcess(db_url, env={**SILENCE, "MCP_CHAT_GONE_AFTER": "8"})
    page = await browser.new_page()
    try:
        async with Client(server.url) as silent, Client(server.url) as watcher:
            await call(silent, "join_room", room_id="p", display_name="Bob", capacity=3)
            cy = await join(watcher, "p", "Cy")
            async with asyncio.timeout(30):  # Cy asks (a sign of life) until Bob is away
                while (await presences(watcher, "p", cy))["Bob"] != "away":
                    await asyncio.sleep(0.05)
            await enter_room(page, server, "p")
            await expect(page.locator("#members li", has_text="Bob")).to_have_class("presence-away")
            await expect(page.locator("#members li", has_text="Ada")).to_have_class(
                "presence-present"
            )
            await expect(page.locator("#places")).to_have_text("3 of 3 places taken")
            # Gone: the room is told, and the page shows it without being asked.
            await expect(page.locator("#members li", has_text="Bob")).to_have_class(
                "presence-gone", timeout=30_000
            )
            await expect(page.locator("#places")).to_have_text("2 of 3 places taken")
    finally:
        await page.close()
        server.stop()


async def test_the_page_asks_for_the_token_after_a_401(db_url: str, browser: Browser) -> None:
    """Against --auth-token, a page opened without one is refused (401) and asks for it; a
    wrong one is refused again and asked for again; the right one lets the person in."""
    token = "tok-page-5c1d"
    server = ServerProcess(db_url, "--auth-token", token)
    page = await browser.new_page()
    answers = iter(["nope", token])
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept(next(answers))

    page.on("dialog", answer)
    try:
        await enter_room(page, server, "locked")
        assert asked == ["This server needs an access token:"] * 2
        stored = await page.evaluate("sessionStorage.getItem('mcp-chat.token')")
        assert stored == token
        async with Client(
            streamable_http_client(
                server.url,
                http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}),
            )
        ) as agent:
            agent_id = await join(agent, "locked", "Agent")
            who = await call(agent, "list_participants", room_id="locked", client_id=agent_id)
            assert [m["display_name"] for m in who["members"]] == ["Ada", "Agent"]
    finally:
        await page.close()
        server.stop()
