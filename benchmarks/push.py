"""Channel push latency across processes. Prints figures only.

    .venv/bin/python -m benchmarks.push [--rounds 300] [--pause 0.02]

Two `mcp-chat stdio` processes on one SQLite file in a temporary directory, spoken to as
Claude Code speaks (newline-delimited JSON-RPC on stdin/stdout, handshake era): Alice joins in
the first, which pushes; Bob joins in the second (pushes off) and sends. F. push latency: from
writing Bob's send_message request into the second process's stdin to reading the
`notifications/claude/channel` line with that text from the first process's stdout, one clock
(this process's) at both ends; beside it, the round trip of Bob's send_message itself. The
first 20 rounds are dropped; each send follows the same idle pause (`--pause`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

WARMUP = 20
LIMIT = 30.0  # seconds any one line may take


class Stdio:
    """One `mcp-chat stdio` process; answers by id, pushes into a queue with their arrival."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pushes: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.answers: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.ids = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, store: str, channel: str) -> Stdio:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "mcp_chat", "stdio", "--store", store),
            *("--channel", channel, "--log-level", "warning", "--rate-messages", "0"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        server = cls(proc)
        await server.request("initialize", {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "benchmark", "version": "0"},
        })  # fmt: skip
        server.write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return server

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            arrived = time.perf_counter()
            message = json.loads(raw)
            if "id" in message and "method" not in message:
                self.answers.pop(message["id"]).set_result((arrived, message))
            elif message.get("method") == "notifications/claude/channel":
                self.pushes.put_nowait((arrived, message["params"]))

    def write(self, message: dict[str, Any]) -> float:
        assert self.proc.stdin is not None
        sent = time.perf_counter()
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        return sent

    async def request(self, method: str, params: dict[str, Any]) -> tuple[float, float, Any]:
        """(sent, answered, result)."""
        self.ids += 1
        answer = asyncio.get_running_loop().create_future()
        self.answers[self.ids] = answer
        sent = self.write({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        async with asyncio.timeout(LIMIT):
            answered, message = await answer
        return sent, answered, message["result"]

    async def tool(self, name: str, **arguments: Any) -> tuple[float, float, dict[str, Any]]:
        sent, answered, result = await self.request(
            "tools/call", {"name": name, "arguments": arguments}
        )
        return sent, answered, result["structuredContent"]

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()
        await self.reader


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]


async def measure(rounds: int, pause: float) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="mcp-chat-push-") as tmp:
        store = f"sqlite:///{os.path.join(tmp, 'push.db')}"
        claude = await Stdio.start(store, "on")
        other = await Stdio.start(store, "off")
        try:
            await claude.tool("join_room", room_id="bench", display_name="Alice")
            *_, joined = await other.tool("join_room", room_id="bench", display_name="Bob")
            bob = joined["client_id"]
            async with asyncio.timeout(LIMIT):
                await claude.pushes.get()  # "Bob joined the room."
            pushes, sends = [], []
            for i in range(rounds):
                await asyncio.sleep(pause)
                sent, answered, _ = await other.tool(
                    "send_message", room_id="bench", message=f"r{i}", client_id=bob
                )
                async with asyncio.timeout(LIMIT):
                    arrived, params = await claude.pushes.get()
                assert params["content"] == f"r{i}", params
                pushes.append(arrived - sent)
                sends.append(answered - sent)
            return pushes[WARMUP:], sends[WARMUP:]
        finally:
            await claude.close()
            await other.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.02)
    args = parser.parse_args()
    print(
        f"mcp-chat push benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"fastmcp {version('fastmcp')}, mcp {version('mcp')}; SQLite store, stdio"
    )
    pushes, sends = asyncio.run(measure(args.rounds, args.pause))
    print(f"F. {len(pushes)} rounds after {WARMUP} warm-up, pause {args.pause * 1000:.0f} ms")
    for label, values in (
        ("send in process B -> push line out of process A", pushes),
        ("send_message round trip in process B (same run)", sends),
    ):
        p50, p90, p99 = (v * 1000 for v in percentiles(values))
        print(f"   {label}: p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
