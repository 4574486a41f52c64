"""The web page in a real browser (Debian's Chromium, driven by Playwright) with an agent
over MCP in the same room."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, hear, join
from tests.e2e.test_tui import gone_from

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<img src=x onerror=alert(1)>"

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def agent_says(
    agent: Client, agent_id: str, page: Page, text: str, room: str = "web"
) -> None:
    """The agent sends over MCP; the page shows it as the newest message, as text."""
    await call(agent, "send_message", room_id=room, message=text, client_id=agent_id)
    await expect(page.locator("#messages .msg:not(.own) .bubble").last).to_have_text(text)


async def person_says(
    page: Page, agent: Client, agent_id: str, text: str, room: str = "web"
) -> None:
    """The person types and presses Enter; the page shows it, and the agent hears it."""
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await expect(page.locator("#messages .own .bubble").last).to_have_text(text)
    await hear(agent, room, agent_id, text)


async def test_a_person_on_the_page_and_an_agent_chat(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page(viewport={"width": 1100, "height": 720})
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))

    async with Client(http_server.url) as agent:
        agent_id = await join(agent, "web", "Agent")
        await page.goto(http_server.base + "/")
        await page.fill("#name", "Ada")
        await page.locator("#rooms .room").filter(has_text="web").click()
        await expect(page.locator("#room-name")).to_have_text("web")
        await expect(page.locator("#members")).to_contain_text("Agent")
        client_id = await page.evaluate("JSON.parse(sessionStorage['mcp-chat.session']).client_id")

        await agent_says(agent, agent_id, page, "Hi Ada! I am the build agent.")
        await person_says(page, agent, agent_id, "Hello agent, how is the build?")
        await expect(page.locator("#messages .own .bubble")).to_have_text(
            ["Hello agent, how is the build?"]
        )
        # Markup in a message is text, never markup.
        await agent_says(agent, agent_id, page, XSS)
        assert await page.locator("#messages img").count() == 0
        markdown = "Green: **212 tests** passed; `main` is ready to merge."
        await call(agent, "send_message", room_id="web", message=markdown, client_id=agent_id)
        newest = page.locator("#messages .msg:not(.own) .bubble").last
        await expect(newest).to_have_text("Green: 212 tests passed; main is ready to merge.")
        await expect(newest.locator("strong")).to_have_text("212 tests")
        await person_says(page, agent, agent_id, "Great, thanks!")
        if target := os.environ.get("MCP_CHAT_SCREENSHOT"):
            await page.screenshot(path=target)

        # A reload resumes from sessionStorage; nothing shows twice.
        await page.reload()
        await expect(page.locator("#messages .bubble").last).to_have_text("Great, thanks!")
        await expect(page.locator("#messages .bubble")).to_have_count(5)
        await agent_says(agent, agent_id, page, "Still here after your reload.")
        # More than the window holds: the newest stays in view.
        for i in range(15):
            await call(
                agent, "send_message", room_id="web", message=f"line {i}", client_id=agent_id
            )
        newest = page.locator("#messages .bubble").last
        await expect(newest).to_have_text("line 14")
        await expect(newest).to_be_in_viewport()

        # Only those in the room can read it; the client_id is never in an address.
        other = await page.request.get(http_server.base + "/api/rooms/web/messages")
        assert other.status == 400
        forged = await page.request.get(
            http_server.base + "/api/rooms/web/messages", headers={"X-Client-Id": client_id + "x"}
        )
        assert forged.status == 401
        assert not [u for u in urls if client_id in u or client_id[4:] in u]

        await page.click("#leave")
        await expect(page.locator("#lobby")).to_be_visible()
        left = await call(agent, "wait_for_message", room_id="web", client_id=agent_id, timeout=30)
        assert [m["kind"] for m in left["messages"]] == ["left"]
    await page.close()
    assert dialogs == []
    assert client_id not in http_server.log


async def test_a_page_reads_only_rooms_it_joined(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    bearer: list[str | None] = []
    page.on(
        "request",
        lambda r: bearer.append(r.headers.get("authorization")) if "/api/" in r.url else None,
    )
    async with Client(http_server.url) as agent:
        await join(agent, "secret-room", "Agent")
        # The auth hook: a token given in the address leaves it and rides on every API call.
        await page.goto(http_server.base + "/?token=tok-123")
        await expect(page).to_have_url(http_server.base + "/")
        await page.fill("#name", "Eve")
        await page.fill("#room", "elsewhere")
        await page.click("#join")
        await expect(page.locator("#room-name")).to_have_text("elsewhere")
        eve = await page.evaluate("JSON.parse(sessionStorage['mcp-chat.session']).client_id")
        # A private room: not listed, and entered only with its invite.
        await call(
            agent, "join_room", room_id="hidden", display_name="Agent", invite="sesame", capacity=3
        )
        await page.click("#leave")
        await expect(page.locator("#lobby")).to_be_visible()
        await expect(page.locator("#rooms")).not_to_contain_text("hidden")
        await page.fill("#room", "hidden")
        await page.click("#join")
        await expect(page.locator("#join-error")).to_contain_text("invite")
        await page.fill("#invite", "sesame")
        await page.click("#join")
        await expect(page.locator("#members")).to_contain_text("Agent")
        await page.click("#leave")
        await expect(page.locator("#lobby")).to_be_visible()
        stray = await page.request.get(f"{http_server.base}/static/routes.py")
        assert stray.status == 404  # only the page's own files are served
        for path in ("messages", "members", "events"):
            peek = await page.request.get(
                f"{http_server.base}/api/rooms/secret-room/{path}", headers={"X-Client-Id": eve}
            )
            assert peek.status == 403, path
            assert (await peek.json())["code"] == "not_in_room"
        # Stopping with the page's stream open (it is in a room again): the stream is ended,
        # not waited out, and the page sees it end.
        await page.fill("#room", "elsewhere")
        await page.click("#join")
        await expect(page.locator("#room-name")).to_have_text("elsewhere")
        await expect(page.locator("#status")).to_have_text("")
    http_server.stop()
    assert http_server.proc.returncode == 0
    await expect(page.locator("#status")).to_have_text("Connection lost; reconnecting…")
    assert "Finished server process" in http_server.log
    assert "graceful shutdown exceeded" not in http_server.log
    await page.close()
    assert len(bearer) >= 4 and set(bearer) == {"Bearer tok-123"}, bearer


async def test_the_page_offers_only_rooms_with_someone_in_them_and_seats_of_the_gone_are_free(
    db_url: str, browser: Browser
) -> None:
    await gone_from(db_url, "duo", "Ann", "Ben")
    server = ServerProcess(db_url)
    page = await browser.new_page()
    try:
        async with Client(server.url) as agent:
            agent_id = await join(agent, "lively", "Agent")
            await page.goto(server.base + "/")
            await expect(page.locator("#rooms")).to_contain_text("lively")
            await expect(page.locator("#rooms .room")).to_have_count(1)  # not duo: all gone
            listed = await call(agent, "list_rooms")
            assert [r["room_id"] for r in listed["rooms"]] == ["lively"], listed

            await page.fill("#name", "Ada")
            await page.fill("#room", "duo")
            await page.click("#join")  # "Room 'duo' is full" before
            await expect(page.locator("#room-name")).to_have_text("duo")
            await expect(page.locator("#places")).to_have_text("1 of 2 places taken")
            await expect(page.locator("#members .presence-gone")).to_have_count(2)
            listed = await call(agent, "list_rooms")
            assert [(r["room_id"], r["members"]) for r in listed["rooms"]] == [
                ("lively", 1),
                ("duo", 1),  # made first, by those now gone
            ], listed
            await call(agent, "leave_chat", room_id="lively", client_id=agent_id)
    finally:
        server.stop()
    await page.close()


async def test_the_page_says_things_in_its_own_words_and_explains_the_room_name(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    async with Client(http_server.url) as agent:
        await join(agent, "full", "Ann")
        await join(agent, "full", "Ben")
        await page.goto(http_server.base + "/")
        await page.fill("#name", "Ada")
        rule = page.locator("#room-rule")
        await expect(rule).to_contain_text("starting with a letter or digit")
        await page.fill("#room", "bad room!")
        await page.click("#join")
        said = await page.eval_on_selector("#room", "box => box.validationMessage")
        assert said.startswith("A room name is letters, digits"), said
        await expect(rule).to_have_class(re.compile("broken"))
        await expect(page.locator("#lobby")).to_be_visible()

        await page.fill("#room", "full")
        await expect(rule).not_to_have_class(re.compile("broken"))
        await page.click("#join")
        await expect(page.locator("#join-error")).to_have_text(
            "Room “full” is full. Pick another room, or name a new one."
        )
    await page.fill("#room", "mine")
    await page.click("#join")
    await expect(page.locator("#room-name")).to_have_text("mine")
    await page.close()


async def test_a_restart_that_forgot_the_room_is_told_in_words_for_people(
    browser: Browser,
    held_port: int,
) -> None:
    first = ServerProcess("memory://", port=held_port)
    second: ServerProcess | None = None
    page = await browser.new_page()
    try:
        await page.goto(first.base + "/")
        await page.fill("#name", "Ada")
        await page.fill("#room", "mem")
        await page.click("#join")
        await expect(page.locator("#room-name")).to_have_text("mem")
        await expect(page.locator("#members")).to_contain_text("Ada")  # the room is loaded
        first.stop()
        await expect(page.locator("#status")).to_have_text("Connection lost; reconnecting…")
        second = ServerProcess("memory://", port=held_port)
        # The page tries again with backoff (up to 8 s apart): wait past a few of those.
        await expect(page.locator("#status")).to_have_text(
            "The server no longer knows you here (it may have restarted). Join again. "
            "Leave to go back to the rooms.",
            timeout=30_000,
        )
        await expect(page.locator("#status")).not_to_contain_text("client_id")
    finally:
        first.kill()
        if second is not None:
            second.stop()
    await page.close()
