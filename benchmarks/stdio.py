"""mcp-chat over stdio: send-to-receive latency and server CPU per delivered message. Prints
figures only.

    .venv/bin/python -m benchmarks.stdio [--rounds 300] [--pause 0.02] [--duration 10]
        [--protocol handshake|modern|both]

Two `mcp-chat stdio` processes on one SQLite file in a temporary directory, each spawned by its
own official SDK client (as an assistant spawns its server), both clients in this process: the
handshake family (2025-11-25, `mode="legacy"`) and 2026-07-28 (the client's default), each
with its own pair of processes.

S. one pair: the time from send_message to the waiting recipient's wait_for_message result
   (`--rounds`, the first 20 dropped, an idle pause before each send).
T. one pair ping-ponging for `--duration` seconds: both server processes' CPU time (user +
   system, from /proc/PID/stat) per delivered message. Set it against benchmarks.cpu's figure
   for 2026-07-28 over HTTP (target: within 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from mcp import Client, StdioServerParameters

from benchmarks.cpu import cpu_seconds, ping_pong
from benchmarks.latency import (
    CALL_TIMEOUT,
    FAMILIES,
    WARMUP,
    add_protocol_option,
    call,
    families,
    ms,
    now,
    percentiles,
    texts,
)


def params(store: str, protocol: str) -> StdioServerParameters:
    """The server as an assistant starts it; on 2026-07-28 with `--channel off`, since a
    server that may push offers the handshake family only (see mcp_chat/mcp/stdio.py)."""
    channel = ["--channel", "off"] if protocol == "modern" else []
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_chat", "stdio", "--store", store, "--log-level", "warning", *channel],
        env={**os.environ, "MCP_CHAT_RATE_MESSAGES": "0"},
    )


def servers(store: str) -> list[int]:
    """The pids of the `mcp-chat stdio` processes serving `store`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stdio" in cmdline and store.encode() in cmdline:
            found.append(int(entry.name))
    return found


async def pair(
    stack: AsyncExitStack, store: str, protocol: str
) -> tuple[Client, Client, str, str, str]:
    mode = "legacy" if protocol == "handshake" else "auto"
    a = await stack.enter_async_context(
        Client(params(store, protocol), read_timeout_seconds=CALL_TIMEOUT, mode=mode)
    )
    b = await stack.enter_async_context(
        Client(params(store, protocol), read_timeout_seconds=CALL_TIMEOUT, mode=mode)
    )
    assert a.protocol_version == FAMILIES[protocol], a.protocol_version
    a_in = await call(a, "join_room", display_name="a")
    b_in = await call(b, "join_room", display_name="b", room_id=a_in["room_id"])
    return a, b, a_in["room_id"], a_in["client_id"], b_in["client_id"]


async def latency(store: str, protocol: str, rounds: int, pause: float) -> list[float]:
    async with AsyncExitStack() as stack:
        a, b, room, a_id, b_id = await pair(stack, store, protocol)
        await call(a, "wait_for_message", room_id=room, client_id=a_id, timeout=1)
        seen: list[float] = []
        for i in range(rounds):
            waiting = asyncio.create_task(
                call(a, "wait_for_message", room_id=room, client_id=a_id, timeout=30)
            )
            await asyncio.sleep(pause)  # the wait is blocked by now, as an idle recipient's is
            sent = now()
            await call(b, "send_message", room_id=room, client_id=b_id, message=f"m{i}")
            got = await waiting
            seen.append(now() - sent)
            assert texts(got) == [f"m{i}"], got
        return seen


async def cpu_per_message(store: str, protocol: str, duration: float) -> tuple[int, float]:
    """Delivered messages, and the server processes' CPU seconds, over `duration`."""
    async with AsyncExitStack() as stack:
        players = await pair(stack, store, protocol)
        pids = servers(store)
        assert len(pids) == 2, pids
        start_cpu = sum(cpu_seconds(p) for p in pids)
        delivered = await ping_pong(players, now() + duration)
        return delivered, sum(cpu_seconds(p) for p in pids) - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300, help="figure S rounds (default 300)")
    parser.add_argument("--pause", type=float, default=0.02, help="idle pause, s (default 0.02)")
    parser.add_argument("--duration", type=float, default=10.0, help="figure T time, s")
    add_protocol_option(parser)
    args = parser.parse_args()
    protocols = families(args.protocol)
    print("mcp-chat over stdio: two `mcp-chat stdio` processes on one SQLite file")
    with tempfile.TemporaryDirectory(prefix="mcp-chat-bench-") as tmp:
        print()
        print(f"S. send-to-receive, one pair: {args.rounds} rounds ({WARMUP} warm-up dropped)")
        print("                                       p50      p90      p99  (ms)")
        for protocol in protocols:
            store = f"sqlite:///{tmp}/s-{protocol}.db"
            got = asyncio.run(latency(store, protocol, args.rounds, args.pause))
            p50, p90, p99 = percentiles(got[WARMUP:])
            family = f"{FAMILIES[protocol]} {protocol}"
            print(f"   {family:<21}send-to-receive {ms(p50)} {ms(p90)} {ms(p99)}")
        print()
        print(f"T. one pair ping-ponging for {args.duration:g} s: both server processes' CPU")
        for protocol in protocols:
            store = f"sqlite:///{tmp}/t-{protocol}.db"
            delivered, cpu = asyncio.run(cpu_per_message(store, protocol, args.duration))
            family = f"{FAMILIES[protocol]} {protocol}"
            print(
                f"   {family:<21}{delivered:6d} delivered ({delivered / args.duration:.0f}/s), "
                f"CPU {cpu:5.2f} s, per message {cpu / delivered * 1000:6.3f} ms"
            )
        print("   target: per message within 1.5x of benchmarks.cpu's 2026-07-28 HTTP figure")


if __name__ == "__main__":
    main()
