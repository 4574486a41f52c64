"""The page's endpoints (/api/...) answer malformed input with a 400 `invalid_argument`, never a
500: a real server on a SQLite file (whose integers are 64-bit) and plain HTTP requests."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.anyio

DEEP = "[" * 100_000 + "]" * 100_000
"""Nested deeper than Python's JSON parser can recurse."""

WRONG: list[Any] = [None, 0, -1, 2**64, 1.5, 1e308, True, "", "x" * 5000, [], [1], {}, {"a": 1}]
"""Values of every JSON type, for fields that want another."""


def invalid(answer: httpx2.Response) -> None:
    assert answer.status_code == 400, (answer.status_code, answer.text)
    body = answer.json()
    assert body["success"] is False and body["code"] == "invalid_argument", body


async def member(http: httpx2.AsyncClient) -> dict[str, str]:
    joined = await http.post("/api/join", json={"room_id": "input", "display_name": "Ada"})
    assert joined.status_code == 200, joined.text
    return {"X-Client-Id": joined.json()["client_id"]}


async def test_json_nested_too_deep_is_a_bad_request(http_server: ServerProcess) -> None:
    async with httpx2.AsyncClient(base_url=http_server.base) as http:
        headers = await member(http)
        for path in ["/api/join", "/api/queue", "/api/rooms/input/messages"]:
            answer = await http.post(
                path, content=DEEP, headers={**headers, "Content-Type": "application/json"}
            )
            invalid(answer)
            assert "JSON object" in answer.json()["error"]
        # and the server goes on serving
        assert (await http.get("/api/rooms")).status_code == 200


async def test_a_history_query_number_beyond_64_bits_is_a_bad_request(
    http_server: ServerProcess,
) -> None:
    async with httpx2.AsyncClient(base_url=http_server.base) as http:
        headers = await member(http)
        for name in ["after", "before"]:
            for value in [2**64, 2**63, -(2**63) - 1, -(2**64)]:
                answer = await http.get(
                    "/api/rooms/input/messages", params={name: str(value)}, headers=headers
                )
                invalid(answer)
                assert name in answer.json()["error"]
            # The largest 64-bit number is still one the store takes.
            fits = await http.get(
                "/api/rooms/input/messages", params={name: str(2**63 - 1)}, headers=headers
            )
            assert fits.status_code == 200, fits.text


async def test_an_event_stream_from_beyond_64_bits_is_a_bad_request_not_a_stream(
    http_server: ServerProcess,
) -> None:
    async with httpx2.AsyncClient(base_url=http_server.base) as http:
        headers = await member(http)
        events = "/api/rooms/input/events"
        params = {"after": str(2**64)}
        async with http.stream("GET", events, params=params, headers=headers) as answer:
            assert answer.status_code == 400  # not an event stream that dies at its first wait
            await answer.aread()
            invalid(answer)


def wrong_bodies() -> list[tuple[str, dict[str, Any]]]:
    """Each POST endpoint's body with one field of a wrong type (or an odd value)."""
    fields = {
        "/api/join": (
            {"room_id": "odd", "display_name": "Bo"},
            ["room_id", "display_name", "capacity", "invite"],
        ),
        "/api/rooms/input/messages": ({"message": "hi"}, ["message", "message_key"]),
        "/api/queue": ({"display_name": "Cy"}, ["display_name", "interests"]),
    }
    cases: list[tuple[str, dict[str, Any]]] = []
    for path, (base, names) in fields.items():
        for name in names:
            cases += [(path, {**base, name: value}) for value in WRONG]
    cases += [("/api/queue", {"display_name": "Cy", "interests": [value]}) for value in WRONG]
    return cases


async def test_no_body_of_any_shape_makes_an_endpoint_fail(http_server: ServerProcess) -> None:
    """Whatever JSON comes, the answer is a success or a failure with its code: never a 500."""
    async with httpx2.AsyncClient(base_url=http_server.base) as http:
        headers = await member(http)
        for path, body in wrong_bodies():
            answer = await http.post(path, content=json.dumps(body), headers=headers)
            assert answer.status_code < 500, (path, body, answer.status_code, answer.text)
            if answer.status_code != 200:
                assert answer.json()["code"], (path, body, answer.text)
        for body_text in ["[]", "1", '"x"', "null", "{", "\xff", '{"a": NaN}']:
            for path in ["/api/join", "/api/queue", "/api/rooms/input/messages"]:
                answer = await http.post(path, content=body_text.encode("latin-1"), headers=headers)
                assert answer.status_code < 500, (path, body_text, answer.text)
        for name in ["after", "before", "limit"]:
            for value in ["", "x", "1.5", "1e3", "9" * 5000, "-1", "0"]:
                answer = await http.get(
                    "/api/rooms/input/messages", params={name: value}, headers=headers
                )
                assert answer.status_code < 500, (name, value, answer.text)
