"""Many blocked waits on one server, and whether memory comes back. Prints figures only.

    .venv/bin/python -m benchmarks.waits [--waits 10000] [--processes 4] [--timeout 90]
        [--rounds 200] [--clients 10000] [--only G|H] [--plot docs/latency.png]
        [--malloc jemalloc|system]

The load generator is raw HTTP/1.1 over asyncio streams (no SDK client: one SDK client per wait
is too heavy to hold 10,000): each request is one 2026-07-28 `tools/call` on its own TCP
connection (`Connection: close`), byte for byte what `mcp.Client` sends (the same headers and
`_meta` envelope), spread over `--processes` processes. The active pair is the official SDK
client in two processes, as in benchmarks.latency figure A.

G. `--waits` participants join beforehand (rooms of 50: one "poker" and 49 waiters; each
   waiter then reads the join events so it has nothing pending). Then every waiter blocks in
   one wait_for_message (`--timeout` s). Printed: the server's RSS growth per blocked wait,
   the active pair's send-to-receive latency while they are held against idle (before they
   were), and, after the poker of every even room sends one message, how many waits were
   answered correctly: the message in even rooms, a timeout in odd ones.
H. On a fresh server, after a warm-up: `--clients` clients come and go (pairs: both join a
   room, one sends, the other receives it, both leave; every request on its own connection).
   Printed: the server's RSS before, at its peak, and 5 s and 15 s after the last one left.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import multiprocessing as mp
import os
import queue
import resource
import statistics
import tempfile
import threading
import time
import traceback
import urllib.request
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from benchmarks.latency import (
    WARMUP,
    Server,
    header,
    ms,
    now,
    percentiles,
    recipient,
    run_children,
    sender,
)

PROTOCOL = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "mcp-chat-bench-raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
GROUP = 49  # waiters per room; with the poker, 50 = the default max_capacity
CONNECTING = 200  # connections being opened at once, per process
SETUP_TIMEOUT = 900.0  # seconds; joining everyone


def allocator_env(name: str) -> dict[str, str]:
    """The server's environment for `--malloc`: jemalloc as scripts/serve sets it up, or the
    usual allocators."""
    if name == "system":
        return {}
    found = sorted(glob.glob("/usr/lib/*-linux-gnu/libjemalloc.so.2"))
    if not found:
        raise SystemExit(
            "--malloc jemalloc: libjemalloc.so.2 not found (apt-get install libjemalloc2)"
        )
    return {
        "LD_PRELOAD": found[0],
        "PYTHONMALLOC": "malloc",
        "MALLOC_CONF": "narenas:1,tcache:false,dirty_decay_ms:500,muzzy_decay_ms:0,"
        "background_thread:true",
    }


def rss_kb(pid: int) -> int:
    """Resident set size of process `pid`, in KiB (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------------------- raw client


def raw_request(port: int, tool: str, arguments: dict[str, Any], keep_alive: bool) -> bytes:
    """One 2026-07-28 tools/call as HTTP/1.1 bytes, byte for byte what `mcp.Client` sends."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": META},
        },
        separators=(",", ":"),
    ).encode()
    return (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        f"Mcp-Protocol-Version: {PROTOCOL}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def structured(tool: str, head: bytes, payload: bytes) -> dict[str, Any]:
    """The structured result of a tools/call response; raises if the call failed."""
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        raise RuntimeError(f"{tool}: HTTP {status} {payload[:200]!r}")
    if b"text/event-stream" in head.lower():
        datas = [ln[5:] for ln in payload.splitlines() if ln.startswith(b"data:")]
        payload = datas[-1]
    message = json.loads(payload)
    data: dict[str, Any] | None = message.get("result", {}).get("structuredContent")
    if not data or not data.get("success"):
        raise RuntimeError(f"{tool} failed: {message}")
    return data


class RawCall:
    """One tools/call of the 2026-07-28 protocol on its own HTTP/1.1 connection."""

    def __init__(self, port: int, tool: str, arguments: dict[str, Any]) -> None:
        self.port = port
        self.request = raw_request(port, tool, arguments, keep_alive=False)
        self.tool = tool
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, connecting: asyncio.Semaphore) -> None:
        async with connecting:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(self.request)
            await self.writer.drain()

    async def result(self) -> dict[str, Any]:
        """The call's structured result; raises if the call failed."""
        assert self.reader is not None and self.writer is not None
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            payload = await self.reader.read()  # Connection: close, so up to EOF
        finally:
            self.writer.close()
        return structured(self.tool, head, payload)


async def rpc(
    port: int, connecting: asyncio.Semaphore, tool: str, **arguments: Any
) -> dict[str, Any]:
    raw = RawCall(port, tool, arguments)
    await raw.send(connecting)
    return await raw.result()


def texts(waited: dict[str, Any]) -> list[str]:
    return [m["message"] for m in waited.get("messages") or [] if m["kind"] == "message"]


# ---------------------------------------------------------------------------- figure G


async def hold_waits(
    port: int, count: int, timeout: float, hold: Event, poke: Event, out: Queue[Any]
) -> dict[str, int]:
    """One load-generator process: `count` waiters in rooms of GROUP, joined and drained;
    then, on `hold`, one blocked wait each; on `poke`, a message into every even room."""
    connecting = asyncio.Semaphore(CONNECTING)
    working = asyncio.Semaphore(50)  # setup calls in flight at once

    async def setup(tool: str, **arguments: Any) -> dict[str, Any]:
        async with working:
            return await rpc(port, connecting, tool, **arguments)

    rooms = (count + GROUP - 1) // GROUP
    pokers = await asyncio.gather(
        *(setup("join_room", display_name="poker", capacity=GROUP + 1) for _ in range(rooms))
    )
    members = [(i % rooms, pokers[i % rooms]["room_id"]) for i in range(count)]
    joined = await asyncio.gather(
        *(setup("join_room", display_name="waiter", room_id=room_id) for _, room_id in members)
    )

    async def drain(me: dict[str, Any]) -> None:
        while True:
            got = await setup(
                "wait_for_message", room_id=me["room_id"], client_id=me["client_id"], timeout=1
            )
            if got["timed_out"] or not got["has_more"]:
                return

    await asyncio.gather(*(drain(me) for me in joined))
    out.put(("ready", count))

    await asyncio.to_thread(hold.wait)
    waits = [
        RawCall(
            port,
            "wait_for_message",
            {"room_id": me["room_id"], "client_id": me["client_id"], "timeout": timeout},
        )
        for me in joined
    ]
    await asyncio.gather(*(w.send(connecting) for w in waits))
    out.put(("held", count))
    answers = [asyncio.ensure_future(w.result()) for w in waits]

    await asyncio.to_thread(poke.wait)
    await asyncio.gather(
        *(
            setup(
                "send_message",
                room_id=p["room_id"],
                client_id=p["client_id"],
                message=f"poke {p['room_id']}",
            )
            for r, p in enumerate(pokers)
            if r % 2 == 0
        )
    )
    tally = {"message": 0, "timeout": 0, "wrong": 0, "error": 0}
    for (room, room_id), answer in zip(members, answers, strict=True):
        try:
            got = await answer
        except Exception:
            tally["error"] += 1
            continue
        if room % 2 == 0 and not got["timed_out"] and texts(got) == [f"poke {room_id}"]:
            tally["message"] += 1
        elif room % 2 == 1 and got["timed_out"] and not got["messages"]:
            tally["timeout"] += 1
        else:
            tally["wrong"] += 1
    return tally


def loadgen(name: str, fn: Any, args: tuple[Any, ...], out: Queue[Any]) -> None:
    """Entry point of a load-generator process: reports ("done", name, result, error)."""
    raise_open_files()
    try:
        out.put(("done", name, asyncio.run(fn(*args, out)), None))
    except BaseException:
        out.put(("done", name, None, traceback.format_exc(limit=6)))


def expect(out: Queue[Any], kind: str, n: int, timeout: float) -> list[Any]:
    """The next `n` reports of `kind` from the load generators; raises on a failed one."""
    got: list[Any] = []
    deadline = now() + timeout
    while len(got) < n:
        try:
            report = out.get(timeout=max(0.1, deadline - now()))
        except queue.Empty:
            raise TimeoutError(f"{len(got)}/{n} load generators reported {kind!r}") from None
        if report[0] == "done" and report[3]:
            raise RuntimeError(f"load generator {report[1]} failed:\n{report[3]}")
        if report[0] != kind:
            raise RuntimeError(f"expected {kind!r}, got {report!r}")
        got.append(report)
    return got


def blocked_waits(port: int) -> int:
    """The server's own count of blocked waits (from /metrics), or -1 if it did not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("mcp_chat_blocked_waits"):
                    return int(float(line.split()[-1]))
    except OSError:
        pass
    return -1


def progress(text: str) -> None:
    print(f"   ... {text}", flush=True)


def pair_latency(url: str, rounds: int, pause: float) -> tuple[list[float], list[float]]:
    """Figure A's pair: send-to-receive latencies and no-op round trips, warm-up dropped."""
    ctx = mp.get_context("spawn")
    peer_r, peer_s = ctx.Pipe()
    got = run_children(
        [
            ("recipient", recipient, (url, rounds, peer_r)),
            ("sender", sender, (url, rounds, pause, peer_s)),
        ]
    )
    return got["recipient"][WARMUP:], got["sender"][WARMUP:]


def row(label: str, values: list[float]) -> str:
    p50, p90, p99 = percentiles(values)
    return f"   {label:<30}{ms(p50)} {ms(p90)} {ms(p99)}"


def figure_g(
    server: Server, waits: int, processes: int, timeout: float, rounds: int, pause: float
) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{server.port}/mcp"
    ctx = mp.get_context("spawn")
    out: Queue[Any] = ctx.Queue()
    hold, poke = ctx.Event(), ctx.Event()
    shares = [waits // processes + (1 if i < waits % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=loadgen,
            args=(f"g{i}", hold_waits, (server.port, share, timeout, hold, poke), out),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    rss_start = rss_kb(server.proc.pid)
    started = now()
    for p in procs:
        p.start()
    try:
        expect(out, "ready", processes, SETUP_TIMEOUT)
        setup_s = now() - started
        progress(f"{waits} joined and drained in {setup_s:.1f} s")
        time.sleep(2)
        rss_idle = rss_kb(server.proc.pid)
        idle, idle_noop = pair_latency(url, rounds, pause)
        progress(f"idle pair p50 {statistics.median(idle) * 1000:.2f} ms; holding the waits")

        hold.set()
        held_at = now()
        expect(out, "held", processes, 300)
        while (blocked := blocked_waits(server.port)) < waits and now() - held_at < 60:
            time.sleep(0.5)
        hold_s = now() - held_at
        progress(f"{blocked} blocked after {hold_s:.1f} s")
        time.sleep(2)
        rss_held = rss_kb(server.proc.pid)
        loaded, loaded_noop = pair_latency(url, rounds, pause)
        blocked_after = blocked_waits(server.port)
        poke.set()
        poked_after = now() - held_at
        reports = expect(out, "done", processes, timeout + 120)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    rss_after = rss_kb(server.proc.pid)
    tally = {k: sum(r[2][k] for r in reports) for k in ("message", "timeout", "wrong", "error")}
    growth = rss_held - rss_idle
    print()
    print(f"G. {waits} blocked waits on one server, load generator: raw HTTP/1.1 (asyncio")
    print(f"   streams), one 2026-07-28 tools/call per TCP connection, {processes} processes;")
    print(f"   rooms of {GROUP} waiters + 1 poker; wait timeout {timeout:g} s")
    print(f"   joined and drained in {setup_s:.1f} s; all waits sent in {hold_s:.1f} s")
    print(f"   blocked waits (server /metrics): {blocked} once held, {blocked_after} after pair")
    print(
        f"   server RSS: start {rss_start / 1024:.1f} MiB, idle with all joined "
        f"{rss_idle / 1024:.1f} MiB, {waits} held {rss_held / 1024:.1f} MiB, "
        f"after {rss_after / 1024:.1f} MiB"
    )
    print(f"   RSS growth per blocked wait  {growth / waits:.1f} KiB   (target <= 30 KB)")
    print(f"   active pair, {rounds} rounds ({WARMUP} warm-up dropped), pause {pause * 1000:g} ms")
    print("                                      p50      p90      p99  (ms)")
    print(row("send-to-receive, idle", idle))
    print(row(f"send-to-receive, {waits} held", loaded))
    print(row("no-op round trip, idle", idle_noop))
    print(row(f"no-op round trip, {waits} held", loaded_noop))
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"   held/idle p50 ratio           {ratio:8.2f}   (target <= 2)")
    print(f"   messages sent to even rooms {poked_after:.1f} s after the waits started")
    print(
        f"   answers: {tally['message']} got their room's message, {tally['timeout']} timed "
        f"out as expected, {tally['wrong']} wrong, {tally['error']} failed "
        f"({tally['message'] + tally['timeout']}/{waits} correct)"
    )
    return {
        "send-to-receive, idle": idle,
        f"send-to-receive, {waits} waits held": loaded,
        "no-op round trip, idle": idle_noop,
    }


# ---------------------------------------------------------------------------- figure H


async def come_and_go(port: int, pairs: int, out: Queue[Any]) -> dict[str, int]:
    """One load-generator process: `pairs` pairs, each joins a room, one sends, the other
    receives it, both leave. All start at once; every request is its own connection."""
    connecting = asyncio.Semaphore(CONNECTING)
    working = asyncio.Semaphore(500)

    async def pair(i: int) -> bool:
        async with working:
            a = await rpc(port, connecting, "join_room", display_name=f"a{i}")
            b = await rpc(port, connecting, "join_room", display_name=f"b{i}", room_id=a["room_id"])
            await rpc(
                port,
                connecting,
                "send_message",
                room_id=a["room_id"],
                client_id=a["client_id"],
                message=f"hello {i}",
            )
            heard: list[str] = []
            for _ in range(3):
                got = await rpc(
                    port,
                    connecting,
                    "wait_for_message",
                    room_id=b["room_id"],
                    client_id=b["client_id"],
                    timeout=5,
                )
                heard += texts(got)
                if heard or got["timed_out"]:
                    break
            await rpc(
                port, connecting, "leave_chat", room_id=a["room_id"], client_id=a["client_id"]
            )
            await rpc(
                port, connecting, "leave_chat", room_id=b["room_id"], client_id=b["client_id"]
            )
            return heard == [f"hello {i}"]

    results = await asyncio.gather(*(pair(i) for i in range(pairs)), return_exceptions=True)
    return {
        "ok": sum(r is True for r in results),
        "wrong": sum(r is False for r in results),
        "error": sum(isinstance(r, BaseException) for r in results),
    }


def run_come_and_go(server: Server, clients: int, processes: int) -> dict[str, int]:
    ctx = mp.get_context("spawn")
    out: Queue[Any] = ctx.Queue()
    pairs = clients // 2
    shares = [pairs // processes + (1 if i < pairs % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=loadgen, args=(f"h{i}", come_and_go, (server.port, share), out), daemon=True
        )
        for i, share in enumerate(shares)
    ]
    for p in procs:
        p.start()
    try:
        reports = expect(out, "done", processes, SETUP_TIMEOUT)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    return {k: sum(r[2][k] for r in reports) for k in ("ok", "wrong", "error")}


def figure_h(server: Server, clients: int, processes: int) -> None:
    pid = server.proc.pid
    warm = run_come_and_go(server, 1000, processes)
    time.sleep(5)
    before = rss_kb(pid)
    peak = before
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = now()
    tally = run_come_and_go(server, clients, processes)
    took = now() - started
    time.sleep(5)
    sampling = False
    sampler.join()
    after5 = rss_kb(pid)
    time.sleep(10)
    after15 = rss_kb(pid)
    print()
    print(f"H. {clients} clients come and go ({clients // 2} pairs: join, send, receive, leave;")
    print(f"   every request its own connection, closed after), {processes} load processes,")
    print(f"   raw HTTP as in G; after a warm-up of 1000 clients ({warm['ok']} pairs ok)")
    print(
        f"   took {took:.1f} s; pairs: {tally['ok']} ok, {tally['wrong']} wrong, "
        f"{tally['error']} failed"
    )
    print(
        f"   server RSS: before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
        f"5 s after {after5 / 1024:.1f} MiB, 15 s after {after15 / 1024:.1f} MiB"
    )
    print(
        f"   after/before: {after5 / before:.3f} at 5 s, {after15 / before:.3f} at 15 s "
        "(target <= 1.10)"
    )


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=10_000, help="G: blocked waits")
    parser.add_argument("--processes", type=int, default=4, help="load processes (default 4)")
    parser.add_argument("--timeout", type=float, default=90.0, help="G: wait timeout, s")
    parser.add_argument("--rounds", type=int, default=200, help="G: active pair rounds")
    parser.add_argument("--pause", type=float, default=0.02, help="G: idle pause, s")
    parser.add_argument("--clients", type=int, default=10_000, help="H: clients")
    parser.add_argument("--only", choices=["G", "H"], help="run one figure")
    parser.add_argument("--plot", help="G: write the latency distributions to this PNG")
    parser.add_argument(
        "--malloc",
        choices=["jemalloc", "system"],
        default="jemalloc",
        help="the server's allocator (default jemalloc, as scripts/serve runs it)",
    )
    args = parser.parse_args()
    limit = raise_open_files()
    # Everyone joins beforehand: more rooms than the default limit of 10,000 may be made.
    os.environ["MCP_CHAT_MAX_ROOMS"] = "0"
    os.environ["MCP_CHAT_RATE_JOINS"] = "0"  # all load comes from one address
    with tempfile.TemporaryDirectory(prefix="mcp-chat-bench-") as tmp:
        if args.only != "H":
            server = Server(f"sqlite:///{tmp}/g.db", allocator_env(args.malloc))
            try:
                header(server.port)
                print(f"  open files  limit {limit} (server and load processes)")
                print(f"  allocator {args.malloc}")
                series = figure_g(
                    server, args.waits, args.processes, args.timeout, args.rounds, args.pause
                )
            finally:
                server.stop()
            report(server)
            if args.plot:
                from benchmarks.plot import latency_png

                latency_png(args.plot, series, f"mcp-chat, one pair, {args.rounds} rounds")
                print(f"   plot written to {args.plot}")
        if args.only != "G":
            server = Server(f"sqlite:///{tmp}/h.db", allocator_env(args.malloc))
            try:
                if args.only == "H":
                    header(server.port)
                    print(f"  allocator {args.malloc}")
                figure_h(server, args.clients, args.processes)
            finally:
                server.stop()
            report(server)


def report(server: Server) -> None:
    problems = server.problems()
    print(f"   server log warnings: {len(problems)}")
    for line in problems[:5]:
        print(f"      {line}")


if __name__ == "__main__":
    main()
