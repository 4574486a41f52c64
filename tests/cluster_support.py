"""A Redis Cluster of the tests' own on 127.0.0.1: three primaries with one replica each, made
from Debian's `redis-server` and `redis-cli` (which `.ci/run` installs), in a temp dir."""

from __future__ import annotations

import functools
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

from mcp_chat.stores.redis.keys import slot
from tests.conftest import port_holder

NODE_TIMEOUT_MS = 1000
"""How long a primary may be silent before its replica takes over (Redis's default is 15 s)."""


def _held_pair() -> tuple[socket.socket, socket.socket]:
    """Holders of a free port P and of P + 10000, the cluster bus port a node also opens."""
    while True:
        holder = port_holder()
        port = holder.getsockname()[1]
        if port + 10000 <= 65535:
            bus = socket.socket()
            bus.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                bus.bind(("127.0.0.1", port + 10000))
                return holder, bus
            except OSError:
                bus.close()
        holder.close()


def await_condition(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Return once `check()` holds; fail naming `what` if it does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class LocalCluster:
    """Six redis-server processes made one cluster. `kill` stops a node at once (SIGKILL)."""

    def __init__(self, primaries: int = 3) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="redis-cluster-")
        self._holders = [_held_pair() for _ in range(primaries * 2)]
        self.ports = [h.getsockname()[1] for h, _ in self._holders]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for port in self.ports:
                self._start(port)
            for port in self.ports:
                await_condition(functools.partial(self._answers, port), f"node {port} to answer")
            create = ["redis-cli", "--cluster", "create"]
            create += [f"127.0.0.1:{p}" for p in self.ports]
            create += ["--cluster-replicas", "1", "--cluster-yes"]
            subprocess.run(create, check=True, capture_output=True, timeout=60)
            self.wait_healthy()
        except BaseException:
            self.close()
            raise

    def url(self, prefix: str | None = None, **options: str) -> str:
        """A store URL with two seed nodes (the rest are discovered)."""
        query = {"prefix": prefix or f"test-{secrets.token_hex(6)}", **options}
        seeds = ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])
        return f"redis+cluster://{seeds}?" + "&".join(f"{k}={v}" for k, v in query.items())

    def _start(self, port: int) -> None:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        command += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
        # The other shards keep serving while one fails over.
        command += ["--cluster-require-full-coverage", "no"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        command += ["--dir", self._dir.name, "--logfile", f"node-{port}.log"]
        self.procs[port] = subprocess.Popen(command)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def _answers(self, port: int) -> bool:
        try:
            with self.client(port) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def info(self, port: int, section: str) -> dict[str, str]:
        with self.client(port) as c:
            text = str(c.execute_command("CLUSTER", "INFO" if section == "cluster" else section))
        return dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#"
        )

    def replication(self, port: int) -> dict[str, str]:
        with self.client(port) as c:
            return {str(k): str(v) for k, v in c.info("replication").items()}

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def primaries(self) -> list[int]:
        return [p for p in self.alive() if self.replication(p)["role"] == "master"]

    def healthy(self) -> bool:
        """Every live node says the cluster is ok, and every primary has a replica in sync."""
        try:
            live = self.alive()
            if not all(self.info(p, "cluster")["cluster_state"] == "ok" for p in live):
                return False
            for p in live:
                role = self.replication(p)
                if role["role"] == "slave" and role.get("master_link_status") != "up":
                    return False
            return True
        except redis.RedisError:
            return False

    def wait_healthy(self, replicas_per_primary: int = 1) -> None:
        def ready() -> bool:
            primaries = self.primaries()
            return (
                self.healthy()
                and len(primaries) == len(self.ports) // 2
                and all(
                    int(self.replication(p)["connected_slaves"]) >= replicas_per_primary
                    for p in primaries
                )
            )

        await_condition(ready, "the cluster to be ok with its replicas attached")

    def wait_promoted(self) -> None:
        """Return once the cluster has all its primaries again, one of them a promoted replica
        (after a primary was killed)."""
        await_condition(
            lambda: len(self.primaries()) == len(self.ports) // 2 and self.healthy(),
            "a replica to take over",
        )

    def owner(self, key: str) -> int:
        """The port of the primary that owns `key`'s slot now."""
        want = slot(key)
        with self.client(self.primaries()[0]) as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= want <= int(end):
                    return int(primary[1])
        raise AssertionError(f"no primary owns slot {want}")

    def replica_of(self, primary: int) -> int:
        return next(
            p for p in self.alive() if self.replication(p).get("master_port") == str(primary)
        )

    def kill(self, port: int) -> None:
        self.procs[port].kill()
        self.procs[port].wait(timeout=30)

    def stop(self, port: int) -> None:
        """Stop a node gracefully (SIGTERM)."""
        self.procs[port].terminate()
        self.procs[port].wait(timeout=30)

    def restart(self, port: int) -> None:
        """Start a stopped node again on its port, with its cluster config (it rejoins)."""
        self._start(port)
        await_condition(lambda: self._answers(port), f"node {port} to answer")

    def delete_prefix(self, prefix: str) -> None:
        for port in self.primaries():
            with self.client(port) as c:
                keys = list(c.scan_iter(match=f"{prefix}:*", count=1000))
                for key in keys:  # one at a time: keys of many slots
                    c.delete(key)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for holder, bus in self._holders:
            holder.close()
            bus.close()
        self._dir.cleanup()

    @property
    def dir(self) -> Path:
        return Path(self._dir.name)


def local_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster()
    try:
        yield cluster
    finally:
        cluster.close()
