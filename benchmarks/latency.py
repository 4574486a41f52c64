"""Latency and throughput of mcp-chat over streamable HTTP on 127.0.0.1. Prints figures only.

    .venv/bin/python -m benchmarks.latency [--rounds 300] [--pause 0.02] [--duration 10]
        [--protocol handshake|modern|both]

Each figure runs once per protocol family (`--protocol`, default both), against the same
server, and the families are printed side by side: the handshake family (2025-11-25,
`initialize` and `Mcp-Session-Id`, the official SDK client in `mode="legacy"`, as the
TypeScript SDK 1.x and most editors connect) and 2026-07-28 (the SDK client's default).

A. One pair in two client processes: time from send_message to the waiting recipient's
   wait_for_message result, against the round trip of a no-op tool call measured in the same
   run under the same idle pause.
B. Throughput: 20 pairs (4 processes x 5 pairs, one room and two connections per pair)
   ping-ponging for a fixed time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import platform
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from mcp import Client

from mcp_chat.loop import Choice, run_on_loop

WARMUP = 20
PROCESSES = 4
PAIRS_PER_PROCESS = 5
CALL_TIMEOUT = 45.0  # seconds; any single tool call
CHILD_TIMEOUT = 180.0  # seconds; a whole figure's client processes
ClientJob = Callable[..., Coroutine[Any, Any, Any]]  # an async function a client process runs
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
FAMILIES = {"handshake": "2025-11-25", "modern": "2026-07-28"}
"""The protocol families a client may speak, by `--protocol` name: the version each takes."""


def connect(url: str, protocol: str) -> Client:
    """An official SDK client for `url` on the `protocol` family (a FAMILIES key)."""
    mode = "legacy" if protocol == "handshake" else "auto"
    return Client(url, read_timeout_seconds=CALL_TIMEOUT, mode=mode)


def families(choice: str) -> list[str]:
    """The families a `--protocol` choice names, handshake first."""
    return list(FAMILIES) if choice == "both" else [choice]


def add_protocol_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        choices=[*FAMILIES, "both"],
        default="both",
        help="protocol family: handshake (2025-11-25), modern (2026-07-28) or both (default)",
    )


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


# ---------------------------------------------------------------------------- clients


class CountingHandler(logging.Handler):
    """Client processes print nothing; their library warnings are counted instead."""

    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        CountingHandler.count += 1


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    data: dict[str, Any] | None = result.structured_content
    if result.is_error or not data or not data.get("success"):
        raise RuntimeError(f"{tool} failed: {data or result.content}")
    return data


def texts(waited: dict[str, Any]) -> list[str]:
    """The chat messages (not joined/left events) in a wait_for_message result."""
    return [m["message"] for m in waited.get("messages") or [] if m["kind"] == "message"]


async def recv(conn: Connection, timeout: float = 30.0) -> Any:
    if not await asyncio.to_thread(conn.poll, timeout):
        raise TimeoutError("no word from the other client process")
    return conn.recv()


async def recipient(
    url: str, rounds: int, peer: Connection, protocol: str = "modern"
) -> list[float]:
    """Figure A: waits; for each message, the time from its send to this result, in seconds."""
    async with connect(url, protocol) as client:
        me = await call(client, "join_room", display_name="recipient")
        peer.send(me["room_id"])
        latencies: list[float] = []
        while len(latencies) < rounds:
            waited = await call(
                client,
                "wait_for_message",
                room_id=me["room_id"],
                client_id=me["client_id"],
                timeout=30,
            )
            arrived = now()
            if waited["timed_out"]:
                raise TimeoutError("recipient heard nothing for 30 s")
            for text in texts(waited):
                latencies.append(arrived - float(text.removeprefix("t=")))
                peer.send("ack")
        return latencies


async def sender(
    url: str, rounds: int, pause: float, peer: Connection, protocol: str = "modern"
) -> list[float]:
    """Figure A: sends `rounds` timestamps, each after the recipient acknowledged the last one
    and an idle pause; between sends, times one no-op call after the same pause."""
    async with connect(url, protocol) as client:
        room_id = await recv(peer)
        me = await call(client, "join_room", display_name="sender", room_id=room_id)
        noops: list[float] = []
        for _ in range(rounds):
            await asyncio.sleep(pause)
            message = f"t={now():.9f}"
            await call(
                client, "send_message", room_id=room_id, message=message, client_id=me["client_id"]
            )
            await recv(peer)
            await asyncio.sleep(pause)
            start = now()
            await call(client, "noop")
            noops.append(now() - start)
        return noops


async def queue_waiter(
    url: str, rounds: int, pause: float, peer: Connection, protocol: str
) -> list[float]:
    """Figure C: enters the queue alone, blocks in wait_for_match, and notes when it returns."""
    async with connect(url, protocol) as client:
        arrivals: list[float] = []
        for _ in range(rounds):
            me = await call(client, "enter_queue", display_name="waiter")
            assert me["status"] == "waiting", me
            peer.send("ready")
            matched = await call(client, "wait_for_match", client_id=me["client_id"], timeout=30)
            arrivals.append(now())
            assert matched["status"] == "matched", matched
            await call(client, "leave_chat", room_id=matched["room_id"], client_id=me["client_id"])
            await asyncio.sleep(pause)
        return arrivals


async def queue_entrant(
    url: str, rounds: int, pause: float, peer: Connection, protocol: str
) -> list[float]:
    """Figure C: once the waiter is blocked (its word, then the idle pause), enters the queue."""
    async with connect(url, protocol) as client:
        entered: list[float] = []
        for _ in range(rounds):
            await recv(peer)
            await asyncio.sleep(pause)
            entered.append(now())
            me = await call(client, "enter_queue", display_name="entrant")
            assert me["status"] == "matched", me
        return entered


Pair = tuple[Client, Client, str, str, str]  # a, b, room_id, a's client_id, b's client_id


async def seat(a: Client, b: Client) -> Pair:
    """Figure B: `a` opens a room and `b` joins it."""
    a_in = await call(a, "join_room", display_name="a")
    b_in = await call(b, "join_room", display_name="b", room_id=a_in["room_id"])
    return a, b, a_in["room_id"], a_in["client_id"], b_in["client_id"]


async def ping_pong(pair: Pair, deadline: float) -> int:
    """Figure B: `a` serves, then whoever receives replies at once. Returns the messages
    delivered before `deadline`."""
    a, b, room_id, a_id, b_id = pair

    async def player(client: Client, client_id: str, serve: bool) -> int:
        delivered = 0
        if serve:
            await call(client, "send_message", room_id=room_id, message="ping", client_id=client_id)
        while now() < deadline:
            waited = await call(
                client, "wait_for_message", room_id=room_id, client_id=client_id, timeout=1
            )
            if (got := len(texts(waited))) and now() < deadline:
                delivered += got
                await call(
                    client, "send_message", room_id=room_id, message="pong", client_id=client_id
                )
        return delivered

    return sum(await asyncio.gather(player(a, a_id, True), player(b, b_id, False)))


async def pairs(url: str, n: int, duration: float, barrier: Barrier, protocol: str) -> int:
    """Figure B, one process: `n` pairs, each participant its own connection. All processes
    start playing together, once every pair is in its room."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(url, protocol)) for _ in range(2 * n)]
        seated = await asyncio.gather(*(seat(clients[2 * i], clients[2 * i + 1]) for i in range(n)))
        await asyncio.to_thread(barrier.wait, 60)
        deadline = now() + duration
        return sum(await asyncio.gather(*(ping_pong(pair, deadline) for pair in seated)))


def child(
    name: str, fn: ClientJob, args: tuple[Any, ...], out: Queue[Any], event_loop: Choice
) -> None:
    """Entry point of a client process: runs `fn` and reports (name, result, error, warnings)."""
    logging.getLogger().handlers[:] = [CountingHandler(logging.WARNING)]
    try:
        out.put((name, run_on_loop(fn(*args), event_loop), None, CountingHandler.count))
    except BaseException:
        out.put((name, None, traceback.format_exc(limit=4), CountingHandler.count))


def run_children(
    jobs: list[tuple[str, ClientJob, tuple[Any, ...]]], event_loop: Choice = "asyncio"
) -> dict[str, Any]:
    """Runs each job in its own spawned process, on `event_loop` (the SDK clients on
    asyncio, as assistants run them); returns results by name, raises on any error."""
    ctx = mp.get_context("spawn")
    out: Queue[Any] = ctx.Queue()
    procs = [ctx.Process(target=child, args=(*job, out, event_loop), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    results: dict[str, Any] = {}
    warnings = 0
    deadline = now() + CHILD_TIMEOUT
    try:
        for _ in jobs:
            try:
                name, result, error, logged = out.get(timeout=max(0.1, deadline - now()))
            except queue.Empty:
                raise TimeoutError(
                    f"client processes still busy after {CHILD_TIMEOUT:g} s"
                ) from None
            warnings += logged
            if error:
                raise RuntimeError(f"client process {name} failed:\n{error}")
            results[name] = result
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    results["client log warnings"] = warnings
    return results


# ---------------------------------------------------------------------------- server


class Server:
    """The server subprocess (benchmarks.server: mcp-chat plus a noop tool); its stderr lines
    are kept for the report."""

    def __init__(self, store: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", "--port", "0", "--store", store],
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.log: list[str] = []
        try:
            self.port = self._await_port(timeout=30)
        except BaseException:
            self.stop()
            raise

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip())

    def _await_port(self, timeout: float) -> int:
        deadline = now() + timeout
        while now() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log.append(line)
            if found := READY.search(line):
                return int(found.group(1))
        raise RuntimeError("server did not start:\n" + "\n".join(self.log))

    def problems(self) -> list[str]:
        """Server log lines since start-up at WARNING or above."""
        while not self.lines.empty():
            self.log.append(self.lines.get())
        return [line for line in self.log if " INFO " not in line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.reader.join(timeout=5)


# ---------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]


def header(port: int, store: str = "sqlite") -> None:
    print("mcp-chat latency benchmark")
    print(f"  date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"  python    {platform.python_implementation()} {platform.python_version()}")
    print(f"  machine   {platform.platform()}, {platform.machine()}")
    print(f"  cpus      {os.cpu_count()} (usable {len(os.sched_getaffinity(0))})")
    print(f"  packages  fastmcp {version('fastmcp')}, mcp {version('mcp')}")
    print(f"  server    http://127.0.0.1:{port}/mcp, {store} store, log warning")


def figure_a(url: str, rounds: int, pause: float, protocols: list[str]) -> int:
    ctx = mp.get_context("spawn")
    warnings = 0
    print()
    print(f"A. one pair, two client processes: {rounds} rounds ({WARMUP} warm-up dropped),")
    print(f"   idle pause {pause * 1000:g} ms before each send and each no-op call")
    print("                                       p50      p90      p99  (ms)")
    for protocol in protocols:
        peer_r, peer_s = ctx.Pipe()
        got = run_children(
            [
                ("recipient", recipient, (url, rounds, peer_r, protocol)),
                ("sender", sender, (url, rounds, pause, peer_s, protocol)),
            ]
        )
        warnings += int(got["client log warnings"])
        delivery = percentiles(got["recipient"][WARMUP:])
        noop = percentiles(got["sender"][WARMUP:])
        family = f"{FAMILIES[protocol]} {protocol}"
        print(
            f"   {family:<21}send-to-receive {ms(delivery[0])} {ms(delivery[1])} {ms(delivery[2])}"
        )
        print(f"   {'':<21}no-op round trip{ms(noop[0])} {ms(noop[1])} {ms(noop[2])}")
        print(
            f"   {'':<21}ratio           {delivery[0] / noop[0]:8.2f}          "
            f"{delivery[2] / noop[2]:8.2f}"
        )
    print("   target, each family: p50 ratio <= 1.0, p99 ratio <= 1.5")
    return warnings


def figure_b(url: str, duration: float, protocols: list[str]) -> int:
    ctx = mp.get_context("spawn")
    warnings = 0
    rates: dict[str, float] = {}
    print()
    print(
        f"B. throughput: {PROCESSES * PAIRS_PER_PROCESS} pairs ping-ponging "
        f"({PROCESSES} processes x {PAIRS_PER_PROCESS} pairs, one connection each) "
        f"for {duration:g} s"
    )
    print("                          delivered  messages/s")
    for protocol in protocols:
        barrier = ctx.Barrier(PROCESSES)
        got = run_children(
            [
                (f"p{i}", pairs, (url, PAIRS_PER_PROCESS, duration, barrier, protocol))
                for i in range(PROCESSES)
            ]
        )
        warnings += int(got["client log warnings"])
        delivered = sum(got[f"p{i}"] for i in range(PROCESSES))
        rates[protocol] = delivered / duration
        family = f"{FAMILIES[protocol]} {protocol}"
        print(f"   {family:<21}{delivered:9d}  {rates[protocol]:10.1f}")
    if len(rates) == 2:
        ratio = rates["handshake"] / rates["modern"]
        print(f"   handshake / 2026-07-28   {ratio:8.2f}   (target >= 0.9)")
    return warnings


def figure_c(url: str, rounds: int, pause: float, protocols: list[str]) -> int:
    ctx = mp.get_context("spawn")
    warnings = 0
    print()
    print(f"C. random pairing, two client processes: {rounds} matches ({WARMUP} warm-up dropped)")
    print("   from the second person's enter_queue call to the first person's")
    print("   wait_for_match returning with the match")
    print("                                       p50      p90      p99  (ms)")
    for protocol in protocols:
        waiter_end, entrant_end = ctx.Pipe()
        got = run_children(
            [
                ("waiter", queue_waiter, (url, rounds, pause, waiter_end, protocol)),
                ("entrant", queue_entrant, (url, rounds, pause, entrant_end, protocol)),
            ]
        )
        warnings += int(got["client log warnings"])
        gaps = [a - e for a, e in zip(got["waiter"], got["entrant"], strict=True)][WARMUP:]
        p50, p90, p99 = percentiles(gaps)
        family = f"{FAMILIES[protocol]} {protocol}"
        print(f"   {family:<21}enter-to-matched{ms(p50)} {ms(p90)} {ms(p99)}")
    return warnings


def report_warnings(server: Server, client_warnings: int) -> None:
    """The closing lines of every benchmark: what the server and the clients logged."""
    problems = server.problems()
    print()
    print(f"log warnings: server {len(problems)}, clients {client_warnings}")
    for line in problems[:5]:
        print(f"   {line}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300, help="figure A rounds (default 300)")
    parser.add_argument("--pause", type=float, default=0.02, help="idle pause, s (default 0.02)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="figure B time, s (default 10)"
    )
    parser.add_argument(
        "--store", help="the server's store URL (default: SQLite in a temporary directory)"
    )
    parser.add_argument(
        "--figures", default="ABC", help="which figures to run, e.g. A or AB (default ABC)"
    )
    add_protocol_option(parser)
    args = parser.parse_args()
    protocols = families(args.protocol)
    if args.rounds <= WARMUP + 1:
        parser.error(f"--rounds must exceed {WARMUP + 1}")

    with tempfile.TemporaryDirectory(prefix="mcp-chat-bench-") as tmp:
        server = Server(args.store or f"sqlite:///{tmp}/bench.db")
        try:
            url = f"http://127.0.0.1:{server.port}/mcp"
            header(server.port, (args.store or "sqlite:").split(":")[0])
            warnings = 0
            if "A" in args.figures:
                warnings += figure_a(url, args.rounds, args.pause, protocols)
            if "B" in args.figures:
                warnings += figure_b(url, args.duration, protocols)
            if "C" in args.figures:
                rounds = max(WARMUP + 2, args.rounds // 3)
                warnings += figure_c(url, rounds, args.pause, protocols)
        finally:
            server.stop()
        report_warnings(server, warnings)


if __name__ == "__main__":
    main()
