"""Server CPU time per delivered message against two no-op tool calls. Prints figures only.

    .venv/bin/python -m benchmarks.cpu [--duration 10] [--protocol handshake|modern|both]

F. One server (benchmarks.server, as in benchmarks.latency), 20 pairs (4 client processes x 5
   pairs, official SDK client, one connection per participant, a room per pair). In one run:
   phase 1, the pairs ping-pong messages for `--duration` seconds (every delivered message
   counted); phase 2, the same clients call `noop` for `--duration` seconds, each pair taking
   turns (one call in flight per pair, as in phase 1). The server process's CPU time (user +
   system, from /proc/PID/stat) is read before and after each phase. A delivered message costs
   two tool calls (send_message and the wait_for_message that returns it), so its CPU time is
   set against that of two no-op calls (target: ratio <= 0.5). Run once per protocol family
   (`--protocol`, default both: the handshake family 2025-11-25, then 2026-07-28), each with
   its own clients against the same server; the handshake figure is set against 2026-07-28's
   (target: <= 1.25).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import threading
from contextlib import AsyncExitStack
from multiprocessing.synchronize import Barrier

from mcp import Client

from benchmarks.latency import (
    FAMILIES,
    PAIRS_PER_PROCESS,
    PROCESSES,
    Pair,
    Server,
    add_protocol_option,
    call,
    connect,
    families,
    header,
    now,
    report_warnings,
    run_children,
    seat,
    texts,
)

BARRIER_TIMEOUT = 120.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


async def ping_pong(pair: Pair, deadline: float) -> int:
    """Phase 1: `a` serves, whoever receives replies at once until `deadline`; then each side
    waits until nothing more comes. Returns every message delivered."""
    a, b, room_id, a_id, b_id = pair

    async def player(client: Client, client_id: str, serve: bool) -> int:
        delivered = 0
        if serve:
            await call(client, "send_message", room_id=room_id, message="ping", client_id=client_id)
        while True:
            waited = await call(
                client, "wait_for_message", room_id=room_id, client_id=client_id, timeout=1
            )
            got = len(texts(waited))
            delivered += got
            if waited["timed_out"] and now() >= deadline:
                return delivered
            if got and now() < deadline:
                await call(
                    client, "send_message", room_id=room_id, message="pong", client_id=client_id
                )

    return sum(await asyncio.gather(player(a, a_id, True), player(b, b_id, False)))


async def noops(pair: Pair, deadline: float) -> int:
    """Phase 2: the pair's two clients take turns calling noop until `deadline`."""
    a, b, *_ = pair
    made = 0
    while now() < deadline:
        await call(a if made % 2 == 0 else b, "noop")
        made += 1
    return made


async def both_phases(
    url: str, n: int, duration: float, barrier: Barrier, protocol: str
) -> tuple[int, int]:
    """One client process: seats `n` pairs, then runs phase 1 and phase 2, each between two
    waits on `barrier` (shared with the other processes and the main process, which reads the
    server's CPU time at each)."""

    async def sync() -> None:
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)

    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(url, protocol)) for _ in range(2 * n)]
        seated = await asyncio.gather(*(seat(clients[2 * i], clients[2 * i + 1]) for i in range(n)))
        # Warm-up: every client makes one call of each kind before anything is measured.
        await asyncio.gather(*(call(c, "noop") for c in clients))
        await sync()
        deadline = now() + duration
        delivered = sum(await asyncio.gather(*(ping_pong(p, deadline) for p in seated)))
        await sync()
        await sync()
        deadline = now() + duration
        made = sum(await asyncio.gather(*(noops(p, deadline) for p in seated)))
        await sync()
        return delivered, made


def figure_f(server: Server, url: str, duration: float, protocol: str) -> tuple[float, int]:
    """One family's run: prints its lines; returns its CPU per delivered message and the
    clients' log warnings."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    marks: list[float] = []

    def mark() -> None:
        barrier.wait(BARRIER_TIMEOUT)
        marks.append(cpu_seconds(server.proc.pid))

    def marker() -> None:
        for _ in range(4):
            mark()

    thread = threading.Thread(target=marker, daemon=True)
    thread.start()
    got = run_children(
        [
            (f"p{i}", both_phases, (url, PAIRS_PER_PROCESS, duration, barrier, protocol))
            for i in range(PROCESSES)
        ]
    )
    thread.join(timeout=10)
    delivered = sum(got[f"p{i}"][0] for i in range(PROCESSES))
    made = sum(got[f"p{i}"][1] for i in range(PROCESSES))
    phase1 = marks[1] - marks[0]
    phase2 = marks[3] - marks[2]
    per_message = phase1 / delivered
    per_two_noops = 2 * phase2 / made
    print(f"   {FAMILIES[protocol]} ({protocol})")
    print(
        f"   phase 1 ping-pong   {delivered:7d} delivered messages, server CPU {phase1:6.2f} s "
        f"({delivered / duration:.0f}/s)"
    )
    print(
        f"   phase 2 no-op calls {made:7d} calls,              server CPU {phase2:6.2f} s "
        f"({made / duration:.0f}/s)"
    )
    print(f"   CPU per delivered message   {per_message * 1000:7.3f} ms")
    print(f"   CPU per two no-op calls     {per_two_noops * 1000:7.3f} ms")
    print(f"   ratio                       {per_message / per_two_noops:7.2f}   (target <= 0.5)")
    return per_message, int(got["client log warnings"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per phase (default 10)"
    )
    add_protocol_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcp-chat-bench-") as tmp:
        server = Server(f"sqlite:///{tmp}/bench.db")
        try:
            header(server.port)
            url = f"http://127.0.0.1:{server.port}/mcp"
            pairs = PROCESSES * PAIRS_PER_PROCESS
            print()
            print(
                f"F. server CPU time, {pairs} pairs ({PROCESSES} processes x {PAIRS_PER_PROCESS}),"
            )
            print(f"   {args.duration:g} s per phase, server CPU (user+system) from /proc/PID/stat")
            per_message: dict[str, float] = {}
            warnings = 0
            for protocol in families(args.protocol):
                per_message[protocol], logged = figure_f(server, url, args.duration, protocol)
                warnings += logged
            if len(per_message) == 2:
                ratio = per_message["handshake"] / per_message["modern"]
                print(
                    f"   CPU per message, handshake / 2026-07-28  {ratio:5.2f}   (target <= 1.25)"
                )
        finally:
            server.stop()
        report_warnings(server, warnings)


if __name__ == "__main__":
    main()
