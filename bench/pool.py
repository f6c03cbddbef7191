"""Key pool: acquire/release round trips per second and p99 latency, 200 concurrent callers,
against plain Redis PING from the same callers in the same run.

    python bench/pool.py --callers 200 --seconds 10 --keys 10
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path

import redis

from gemini_tasks.keys import ApiKey
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.limits import LimitTable
from gemini_tasks.ops import local
from gemini_tasks.pool import KeyPool, Lease, PoolConfig

PROCESSES = 4


def _caller_process(url: str, mode: str, threads: int, seconds: float, keys: int, out) -> None:
    client = redis.Redis.from_url(url, max_connections=threads + 4)
    config = PoolConfig(0, 60, 43200, 3, LimitTable("bench-model"), 30)
    api_keys = [ApiKey(f"GEMINI_API_KEY_{i}", f"bench-fake-pool-key-{i}") for i in range(keys)]
    pool = KeyPool(client, api_keys, config, Keyspace("bench_pool"))
    pool.register()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        mine = []
        while time.monotonic() < deadline:
            start = time.perf_counter()
            if mode == "ping":
                client.ping()
            else:
                lease = pool.acquire("bench-model")
                if isinstance(lease, Lease):
                    pool.release(lease, None, 1)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    out.put(latencies)


def measure(url: str, mode: str, callers: int, seconds: float, keys: int) -> tuple[float, float]:
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    procs = [
        spawn.Process(target=_caller_process,
                      args=(url, mode, callers // PROCESSES, seconds, keys, out))
        for _ in range(PROCESSES)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    latencies = sorted(x for _ in procs for x in out.get())
    for proc in procs:
        proc.join()
    return len(latencies) / seconds, latencies[int(len(latencies) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, local.redis_server(Path(tmp)) as url:
        ping_rate, ping_p99 = measure(url, "ping", args.callers, args.seconds, args.keys)
        pool_rate, pool_p99 = measure(url, "pool", args.callers, args.seconds, args.keys)
    print(
        f"{args.callers} callers ({PROCESSES} processes), {args.keys} keys, {args.seconds:g} s each"
    )
    print(f"PING:             {ping_rate:9.0f} /s   p99 {ping_p99:6.2f} ms")
    print(f"acquire+release:  {pool_rate:9.0f} /s   p99 {pool_p99:6.2f} ms  (two scripts each)")
    print(f"pool pairs / PINGs: {pool_rate / ping_rate:.2f}")


if __name__ == "__main__":
    main()
