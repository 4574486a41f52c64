"""The page's random pairing in a real browser, with an agent over MCP entering the queue."""

from __future__ import annotations

import pytest
from mcp import Client
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call
from tests.e2e.test_web import CHROMIUM, agent_says, browser, person_says

__all__ = ["browser"]  # the fixture, shared with the room tests

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


async def wait_on_page(page: Page, server: ServerProcess, name: str, interests: str = "") -> str:
    """The person enters the queue from the lobby; the page waits. Their client_id."""
    await page.goto(server.base + "/")
    await page.fill("#name", name)
    await page.fill("#interests", interests)
    await page.click("#random")
    await expect(page.locator("#waiting")).to_be_visible()
    await expect(page.locator("#queue-position")).to_have_text(
        "Position 1 in the queue: you are next."
    )
    client_id = await page.evaluate("JSON.parse(sessionStorage['mcp-chat.session']).client_id")
    assert isinstance(client_id, str)
    return client_id


async def test_a_person_waiting_on_the_page_is_matched_with_an_agent_and_they_chat(
    db_url: str, browser: Browser, held_port: int
) -> None:
    first = ServerProcess(db_url, port=held_port)
    second: ServerProcess | None = None
    page = await browser.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    try:
        client_id = await wait_on_page(page, first, "Ada", "Chess, go")
        await expect(page.locator("#queue-interests")).to_have_text("Interests: Chess, go")
        # A reload while waiting carries on with the same place in the queue.
        await page.reload()
        await expect(page.locator("#queue-position")).to_contain_text("Position 1")
        # So does a graceful restart of the server: the page reconnects and waits on.
        first.stop()
        position = page.locator("#queue-position")
        await expect(position).to_have_text("Connection lost; reconnecting…")
        second = ServerProcess(db_url, port=held_port)
        await expect(position).to_contain_text("Position 1")
        await chat_after_match(page, second, client_id)
    finally:
        first.kill()
        if second is not None:
            second.stop()
    await page.close()
    assert not [u for u in urls if client_id in u or client_id[4:] in u]
    assert client_id not in first.log + second.log


async def chat_after_match(page: Page, http_server: ServerProcess, client_id: str) -> None:
    """An agent enters the queue and is matched with the waiting page; they talk."""
    async with Client(http_server.url) as agent:
        matched = await call(agent, "enter_queue", display_name="Agent", interests=["go"])
        assert matched["status"] == "matched", matched
        assert matched["partner"]["display_name"] == "Ada"
        room, agent_id = matched["room_id"], matched["client_id"]
        await expect(page.locator("#room-name")).to_have_text(room)
        await expect(page.locator("#members")).to_contain_text("Agent")
        await expect(page.locator("#members")).to_contain_text("Ada")
        session = await page.evaluate("JSON.parse(sessionStorage['mcp-chat.session'])")
        assert session["client_id"] == client_id and session["room_id"] == room

        await agent_says(agent, agent_id, page, "Hello stranger! Chess or go?", room)
        await person_says(page, agent, agent_id, "Go, please.", room)
        await agent_says(agent, agent_id, page, "Then go it is.", room)
        await page.click("#leave")
        await expect(page.locator("#lobby")).to_be_visible()


async def test_dropped_the_page_enters_again_cancel_leaves_and_a_new_entry_matches(
    http_server: ServerProcess, browser: Browser
) -> None:
    page = await browser.new_page()
    dropped = await wait_on_page(page, http_server, "Bea")
    await expect(page.locator("#queue-interests")).to_have_text("Anyone will do.")
    # Dropped from the queue (as when silent too long): the page enters it again.
    async with Client(http_server.url) as agent:
        assert (await call(agent, "leave_queue", client_id=dropped))["success"]
    await expect(page.locator("#queue-interests")).to_contain_text("entered it again")
    await expect(page.locator("#queue-position")).to_contain_text("Position 1")
    client_id = await page.evaluate("JSON.parse(sessionStorage['mcp-chat.session']).client_id")
    assert client_id != dropped
    await page.click("#cancel")
    await expect(page.locator("#lobby")).to_be_visible()
    assert await page.evaluate("sessionStorage['mcp-chat.session']") is None
    async with Client(http_server.url) as agent:
        later = await call(agent, "enter_queue", display_name="Agent")
        assert later["status"] == "waiting" and later["position"] == 1, later
        # Entering again now: matched at once with the agent who waits.
        await page.click("#random")
        await expect(page.locator("#members")).to_contain_text("Agent")
        found = await call(agent, "wait_for_match", client_id=later["client_id"], timeout=30)
        assert found["partner"]["display_name"] == "Bea", found
        await expect(page.locator("#room-name")).to_have_text(found["room_id"])
    bad = await page.request.post(
        http_server.base + "/api/queue", data={"display_name": "Bea", "interests": 5}
    )
    assert bad.status == 400 and "interests" in (await bad.json())["error"]
    # The page's entry is gone for good: its stream is refused.
    gone = await page.request.get(
        http_server.base + "/api/queue/events", headers={"X-Client-Id": client_id}
    )
    assert gone.status == 404
    assert (await gone.json())["code"] == "not_in_queue"
    await page.close()
