"""Fault injection: many clients chat over HTTP while the server is killed with SIGKILL and
restarted on the same SQLite file, several times. At the end, every acknowledged message must
have been delivered exactly once to every other member of its room, in order.

    .venv/bin/python -m benchmarks.fault [--rooms 4] [--members 3] [--kills 5]

Clients do what the tool descriptions teach: a send is retried with the same message_key
until it is acknowledged (a retry of a stored message answers duplicate=true); a wait passes
`after`, the position it has processed, so a response lost with the server is read again.
Talks only to 127.0.0.1; bounded to about two minutes. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client

HOST = "127.0.0.1"
CALL_TIMEOUT = 10.0
"""No single call may hang longer than this (a wait blocks at most WAIT seconds)."""
WAIT = 2
DEADLINE = 110.0
"""Seconds after which the run gives up, whatever is left."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """`mcp-chat serve` on a fixed port and SQLite file, killed and started again at will."""

    def __init__(self, db: Path, port: int) -> None:
        self.db, self.port = db, port
        self.url = f"http://{HOST}:{port}/mcp"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcp_chat",
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--store",
                f"sqlite:///{self.db}",
                "--log-level",
                "error",
                "--rate-messages",
                "0",
                "--rate-joins",
                "0",
            ],
            stdout=subprocess.DEVNULL,
        )
        self.starts += 1
        async with httpx2.AsyncClient() as http:
            for _ in range(300):
                with contextlib.suppress(httpx2.HTTPError):
                    ready = await http.get(f"http://{HOST}:{self.port}/readyz", timeout=1)
                    if ready.status_code == 200:
                        return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@dataclass
class Tally:
    calls: int = 0
    failures: int = 0
    """Calls that failed in transport, or found the store busy or the server stopping."""
    duplicates: int = 0
    """Retried sends that the server had stored already: their first answer was lost."""


@dataclass
class Member:
    name: str
    room: str
    client_id: str = ""
    participant_id: str = ""
    next_message: int = 0
    position: int = 0
    """The seq up to which its waits' answers have been processed: the `after` of the next."""
    acknowledged: list[tuple[int, str]] = field(default_factory=list)
    """(seq, text) of each of its sends that the server acknowledged."""
    received: list[tuple[int, str, str]] = field(default_factory=list)
    """(seq, sender id, text) of every text message its waits returned."""


class Retry(Exception):
    pass


async def call(client: Client, tally: Tally, tool: str, **args: Any) -> dict[str, Any]:
    tally.calls += 1
    async with asyncio.timeout(CALL_TIMEOUT):
        result = await client.call_tool(tool, args)
    data = result.structured_content
    if not isinstance(data, dict):
        raise Retry(f"{tool}: no structured result")
    if data.get("code") in ("store_unavailable", "server_restarting"):
        raise Retry(data["code"])
    if not data["success"]:
        raise RuntimeError(f"{tool} refused: {data}")
    return data


Step = Callable[[Client], Awaitable[bool]]


async def keep_calling(url: str, tally: Tally, step: Step) -> None:
    """Run `step` until it returns True, in a session made afresh after any failure.

    The session is opened and closed around the steps, in this task: an MCP client's task
    group cancels the task that opened it when its server dies, and only a lexically enclosing
    `async with` turns that into an exception here."""
    finished = False
    while not finished:
        try:
            async with Client(url) as client:
                while not finished:
                    finished = await step(client)
        except RuntimeError:
            raise
        except Exception:
            if finished:
                return  # closing the session failed; the work is done
            tally.failures += 1
            await asyncio.sleep(0.1)


def sender(member: Member, stop: asyncio.Event, tally: Tally) -> Step:
    async def step(client: Client) -> bool:
        if stop.is_set():
            return True
        i = member.next_message
        text = f"{member.name}#{i}"
        sent = await call(
            client,
            tally,
            "send_message",
            room_id=member.room,
            client_id=member.client_id,
            message=text,
            message_key=f"{member.name}-{i}",
        )
        tally.duplicates += bool(sent["duplicate"])
        member.acknowledged.append((sent["seq"], text))
        member.next_message += 1
        await asyncio.sleep(random.uniform(0.0, 0.03))
        return False

    return step


def receiver(member: Member, done: asyncio.Event, tally: Tally) -> Step:
    """Reads until `done` is set and a wait comes back empty."""

    async def step(client: Client) -> bool:
        got = await call(
            client,
            tally,
            "wait_for_message",
            room_id=member.room,
            client_id=member.client_id,
            timeout=WAIT,
            after=member.position,
        )
        for m in got["messages"]:
            if m["kind"] == "message":
                member.received.append((m["seq"], m["sender_id"], m["message"]))
        member.position = got["position"]
        return done.is_set() and not got["messages"] and not got["has_more"]

    return step


async def killer(server: Server, kills: int, pause: tuple[float, float]) -> None:
    for _ in range(kills):
        await asyncio.sleep(random.uniform(*pause))
        server.kill()
        await asyncio.sleep(random.uniform(0.0, 0.3))  # clients meet a dead port for a while
        await server.start()


def check(members: list[Member]) -> dict[str, int]:
    """Every acknowledged message, once, in seq order, at every other member of its room."""
    figures = {"expected": 0, "delivered": 0, "missing": 0, "duplicated": 0, "out_of_order": 0}
    for member in members:
        expected = {
            (seq, other.participant_id, text)
            for other in members
            if other.room == member.room and other is not member
            for seq, text in other.acknowledged
        }
        got = member.received
        figures["expected"] += len(expected)
        figures["delivered"] += len(set(got) & expected)
        figures["missing"] += len(expected - set(got))
        figures["duplicated"] += len(got) - len(set(got))
        seqs = [seq for seq, _, _ in got]
        figures["out_of_order"] += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
    return figures


async def run(rooms: int, members_per_room: int, kills: int) -> int:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="mcp-chat-fault-"))
    server = Server(tmp / "fault.db", free_port())
    await server.start()
    tally = Tally()
    members = [
        Member(f"r{r}m{m}", f"fault-{r}") for r in range(rooms) for m in range(members_per_room)
    ]
    stop_sending, done = asyncio.Event(), asyncio.Event()
    try:
        # Joins first, while the server is up: a join is not idempotent, and a lost answer
        # would leave an unknown member holding a place.
        async with Client(server.url) as client:
            for member in members:
                joined = await call(
                    client,
                    tally,
                    "join_room",
                    room_id=member.room,
                    display_name=member.name,
                    capacity=members_per_room,
                )
                member.client_id = joined["client_id"]
                member.participant_id = joined["participant_id"]
        async with asyncio.timeout(DEADLINE):
            senders = [
                asyncio.create_task(keep_calling(server.url, tally, sender(m, stop_sending, tally)))
                for m in members
            ]
            receivers = [
                asyncio.create_task(keep_calling(server.url, tally, receiver(m, done, tally)))
                for m in members
            ]
            await killer(server, kills, pause=(1.5, 3.5))
            await asyncio.sleep(1.0)  # some traffic on the last server before stopping
            stop_sending.set()
            await asyncio.gather(*senders)
            done.set()
            await asyncio.gather(*receivers)
    finally:
        exit_code = server.stop()

    figures = check(members)
    elapsed = time.monotonic() - started
    ok = (
        figures["missing"] == 0
        and figures["duplicated"] == 0
        and figures["out_of_order"] == 0
        and figures["delivered"] == figures["expected"]
    )
    acknowledged = sum(len(m.acknowledged) for m in members)
    print(f"mcp-chat fault run: {rooms} rooms x {members_per_room} members, SQLite, 127.0.0.1")
    print(f"  server kill -9 + restart   {kills} (server processes started: {server.starts})")
    print(f"  messages acknowledged      {acknowledged}")
    print(f"  retried sends found stored {tally.duplicates} (answer lost with the server)")
    print(f"  calls made / failed, retried {tally.calls} / {tally.failures}")
    print(f"  deliveries expected        {figures['expected']}")
    print(f"  deliveries made            {figures['delivered']}")
    print(f"  missing                    {figures['missing']}")
    print(f"  duplicated                 {figures['duplicated']}")
    print(f"  out of order               {figures['out_of_order']}")
    print(f"  final SIGTERM exit status  {exit_code}")
    print(f"  elapsed                    {elapsed:.1f} s")
    print("  result                     " + ("OK" if ok and exit_code == 0 else "FAILED"))
    return 0 if ok and exit_code == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--members", type=int, default=3, help="members per room (2-50)")
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.rooms, args.members, args.kills)))


if __name__ == "__main__":
    main()
