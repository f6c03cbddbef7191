"""Key pool cost against the number of keys: Redis time per pool script (from Redis' own
INFO commandstats) and acquire+release pairs per second, for 1, 10, 100 and 1,000 keys,
each against a fresh redis-server. The baseline is the 1-key pool in the same run.

    python bench/pool_cost.py --seconds 5 --threads 8
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import redis

from gemini_tasks.keys import ApiKey
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.limits import Limits, LimitTable
from gemini_tasks.ops import local
from gemini_tasks.pool import KeyPool, Lease, PoolConfig

MODEL = "bench-model"


def measure(keys: int, seconds: float, threads: int) -> tuple[float, float]:
    """(Redis microseconds per pool script, pairs per second) for a pool of `keys`."""
    with tempfile.TemporaryDirectory() as tmp, local.redis_server(Path(tmp)) as url:
        client = redis.Redis.from_url(url, max_connections=threads + 4)
        # Pacing on, as key-rotation users run it: every key its own project, 10 RPM each.
        config = PoolConfig(0, 60, 43200, 3, LimitTable(MODEL, Limits(rpm=10_000)), 30)
        api_keys = [ApiKey(f"GEMINI_API_KEY_{i}", f"bench-fake-cost-key-{i}") for i in range(keys)]
        pool = KeyPool(client, api_keys, config, Keyspace("bench_cost"))
        pool.register()
        pool.release(pool.acquire(MODEL), None, 1)  # the ready index is built once, here
        client.config_resetstat()
        pairs = 0
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def loop() -> None:
            nonlocal pairs
            mine = 0
            while time.monotonic() < deadline:
                lease = pool.acquire(MODEL)
                if isinstance(lease, Lease):
                    pool.release(lease, None, 1)
                    mine += 1
            with lock:
                pairs += mine

        workers = [threading.Thread(target=loop) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        stats = client.info("commandstats")["cmdstat_evalsha"]
        return stats["usec_per_call"], pairs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    results = {n: measure(n, args.seconds, args.threads) for n in (1, 10, 100, 1000)}
    base_usec, base_rate = results[1]
    print(f"{args.threads} callers, {args.seconds:g} s per pool size; baseline: the 1-key pool")
    print("keys   Redis µs/script   pairs/s   vs 1 key (time, rate)")
    for n, (usec, rate) in results.items():
        ratios = f"{usec / base_usec:5.2f}x  {rate / base_rate:5.2f}x"
        print(f"{n:5d}   {usec:14.1f}   {rate:7.0f}   {ratios}")


if __name__ == "__main__":
    main()
