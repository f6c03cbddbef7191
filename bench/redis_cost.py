"""What one prompt costs Redis: commands and Redis CPU time per prompt, submit to collect.

Runs `--prompts` prompts through 2 workers at zero latency and reads Redis' own counters
(`INFO commandstats`, `INFO cpu`) before and after: every command the producer, the
feeder, the workers, Celery and the collector sent, divided by the prompts. The baseline
is the same figures for a bare Celery task making the same google-genai call, in the same
run.

    python bench/redis_cost.py --prompts 2000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import redis
from harness import cluster, wait_for_results

from gemini_tasks.producer import submit


def _counters(client: redis.Redis) -> tuple[dict[str, int], float]:
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    cpu = client.info("cpu")
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def _cost(
    client: redis.Redis, run: Callable[[], None], prompts: int
) -> tuple[dict[str, float], float]:
    """Commands per prompt by command, and Redis CPU microseconds per prompt, of `run()`."""
    before, cpu_before = _counters(client)
    run()
    after, cpu_after = _counters(client)
    per = {n: (c - before.get(n, 0)) / prompts for n, c in after.items()}
    return {n: v for n, v in per.items() if v > 0.001}, (cpu_after - cpu_before) * 1e6 / prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    args = parser.parse_args()
    with cluster() as running:
        running.start_workers(2, 50, include="bare_task")
        list(submit([{"prompt": "warm up"}] * 20).results(timeout=120))
        client = running.redis()
        from bare_task import send_bare

        def ours() -> None:
            job = submit({"prompt": f"cost {i}"} for i in range(args.prompts))
            results = list(job.results(timeout=600))
            assert all(r.ok for r in results)

        def bare() -> None:
            wait_for_results(client, send_bare([f"bare {i}" for i in range(args.prompts)]))

        time.sleep(1)
        mine, mine_cpu = _cost(client, ours, args.prompts)
        theirs, theirs_cpu = _cost(client, bare, args.prompts)
    total, bare_total = sum(mine.values()), sum(theirs.values())
    print(f"{args.prompts} prompts, 2 workers x 50 threads, zero latency")
    print(f"gemini_tasks:     {total:6.1f} Redis commands/prompt, {mine_cpu:6.0f} µs Redis CPU")
    print(f"bare Celery task: {bare_total:6.1f} Redis commands/prompt, {theirs_cpu:6.0f} µs")
    print(f"ratio: {total / bare_total:.2f} commands, {mine_cpu / theirs_cpu:.2f} CPU")
    print("gemini_tasks by command:", ", ".join(
        f"{n} {v:.1f}" for n, v in sorted(mine.items(), key=lambda kv: -kv[1])))  # fmt: skip
    print("bare task by command:   ", ", ".join(
        f"{n} {v:.1f}" for n, v in sorted(theirs.items(), key=lambda kv: -kv[1])))  # fmt: skip


if __name__ == "__main__":
    main()
