"""Redis Cluster figures: two server instances on one Redis against two on a Redis Cluster,
and what `min_replicas=1` costs a send.

    .venv/bin/python -m benchmarks.cluster [--rounds 300] [--duration 10] [--sends 2000]
        [--protocol handshake|modern|both]

Starts its own cluster on loopback (3 primaries, 3 replicas: tests/cluster_support.py) and uses
the Redis on 127.0.0.1:6379 (`--redis`). Prints figures only (no pass/fail):

- **J. send-to-receive latency** (as figure D of scale.py): the sender on one instance, the
  recipient on the other; p50/p90/p99.
- **K. throughput** (as figure E): delivered messages per second, the two sides of every pair
  on different instances.
- **L. one send, in-process**: p50/p99 of `store.append` alone, one after the other, and what
  `min_replicas=1` adds to it (a WAIT round trip to the room's primary, which waits for its
  replica).

Each of J and K on: one Redis; the cluster; the cluster with `min_replicas=1`; and once per
protocol family (`--protocol`, default both), as benchmarks.latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import time
from datetime import UTC, datetime
from importlib.metadata import version

import redis
from tests.cluster_support import LocalCluster
from tests.stores_support import enter

from benchmarks.latency import FAMILIES, add_protocol_option, families, ms, percentiles
from benchmarks.scale import latency, servers, throughput
from mcp_chat import messages
from mcp_chat.stores import open_store


async def one_send(url: str, sends: int) -> list[float]:
    """Seconds each of `sends` appends took, one after the other, in a room of two."""
    store = open_store(url)
    await store.start(lambda _: None)
    try:
        sender = await enter(store, f"bench-{secrets.token_hex(3)}", "A")
        taken = []
        for i in range(sends):
            draft = messages.text_draft(sender, f"m{i}", None)
            started = time.perf_counter()
            await store.append(sender.participant_id, draft)
            taken.append(time.perf_counter() - started)
        return taken[20:]
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300, help="latency rounds (default 300)")
    parser.add_argument("--pause", type=float, default=0.02, help="idle pause, s (default 0.02)")
    parser.add_argument("--duration", type=float, default=10.0, help="throughput time, s")
    parser.add_argument("--sends", type=int, default=2000, help="figure L sends (default 2000)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis to use")
    parser.add_argument("--figures", default="JKL", help="which figures (default JKL)")
    add_protocol_option(parser)
    args = parser.parse_args()
    prefix = f"bench-{secrets.token_hex(4)}"
    cluster = LocalCluster()
    try:
        with redis.Redis.from_url(args.redis) as r:
            redis_version = r.info("server")["redis_version"]
        print("mcp-chat Redis Cluster benchmark")
        print(f"  date      {datetime.now(UTC).isoformat(timespec='seconds')}")
        print(f"  python    {platform.python_implementation()} {platform.python_version()}")
        print(f"  machine   {platform.platform()}, {platform.machine()}")
        print(f"  cpus      {os.cpu_count()} (usable {len(os.sched_getaffinity(0))})")
        print(f"  packages  redis-py {version('redis')}; Redis server {redis_version}")
        print("  setups    two instances (benchmarks.server) on: one Redis; a cluster of 3")
        print("            primaries + 3 replicas, all on this machine; the same cluster with")
        print("            min_replicas=1. Clients: official SDK, own processes, on the")
        print("            protocol family in parentheses")
        setups = [
            ("one Redis", f"{args.redis}?prefix={prefix}"),
            ("cluster", cluster.url(prefix)),
            ("cluster, min_replicas=1", cluster.url(prefix, min_replicas="1")),
        ]
        rows: list[tuple[str, list[float]]] = []
        rates: list[tuple[str, float]] = []
        sends: list[tuple[str, list[float]]] = []
        for label, url in setups:
            if "J" in args.figures or "K" in args.figures:
                with servers(url, 2) as urls:
                    pair = (urls[0], urls[1])
                    for protocol in families(args.protocol):
                        named = f"{label} ({FAMILIES[protocol][:4]} {protocol})"
                        if "J" in args.figures:
                            rows.append((named, latency(*pair, args.rounds, args.pause, protocol)))
                        if "K" in args.figures:
                            rates.append((named, throughput(pair, args.duration, protocol)))
            if "L" in args.figures:
                sends.append((label, asyncio.run(one_send(url, args.sends))))
        if rows:
            print("\nJ. send-to-receive latency across two instances, ms   p50      p90      p99")
            for label, values in rows:
                p50, p90, p99 = percentiles(values)
                print(f"   {label:<48} {ms(p50)} {ms(p90)} {ms(p99)}")
        if rates:
            print("\nK. delivered messages per second, two instances")
            for label, rate in rates:
                print(f"   {label:<48} {rate:8.0f}")
        if sends:
            print("\nL. one send (store.append), in-process, ms            p50      p99")
            for label, values in sends:
                p50, _, p99 = percentiles(values)
                print(f"   {label:<48} {ms(p50)} {ms(p99)}")
    finally:
        cluster.close()
        with redis.Redis.from_url(args.redis) as r:
            for key in r.scan_iter(match=f"{prefix}:*", count=1000):
                r.delete(key)


if __name__ == "__main__":
    main()
