"""Overhead: prompts per second end to end through gemini_tasks, against a bare Celery task.

Unlimited quota and a zero-latency emulator, so what is measured is gemini_tasks itself:
the same Redis, the same two worker processes, the same single HTTP call per prompt; the
bare task (bench/bare_task.py) has no key pool, no staging, no retries, no dedupe check.
Each side runs twice, alternating, and the better run counts.

    python bench/overhead.py --prompts 2000
"""

from __future__ import annotations

import argparse
import time
import uuid

from harness import cluster, wait_for_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with cluster() as running:
        running.start_workers(2, args.concurrency, include="bare_task")
        from bare_task import bare_generate

        from gemini_tasks import runtime
        from gemini_tasks.producer import submit

        app = runtime.current().app

        client = running.redis()

        def ours() -> float:
            start = time.perf_counter()
            job = submit({"prompt": f"overhead {i}"} for i in range(args.prompts))
            wait_for_results(client, [job.task_id(i) for i in range(args.prompts)])
            return args.prompts / (time.perf_counter() - start)

        def bare() -> float:
            start = time.perf_counter()
            group_id = uuid.uuid4().hex
            ids = [f"{group_id}-{i}" for i in range(args.prompts)]
            with app.producer_or_acquire() as producer:
                for i, task_id in enumerate(ids):
                    bare_generate.apply_async(
                        args=(f"overhead {i}",), task_id=task_id, producer=producer
                    )
            wait_for_results(client, ids)
            return args.prompts / (time.perf_counter() - start)

        ours(), bare()  # warm up: imports, connections, clients
        rates = {"bare": [], "ours": []}
        for _ in range(2):
            rates["bare"].append(bare())
            rates["ours"].append(ours())
    best = {name: max(values) for name, values in rates.items()}
    print(f"{args.prompts} prompts, 2 workers x {args.concurrency} threads, zero latency")
    print(f"bare Celery task:  {best['bare']:8.1f} prompts/s  (runs: {rates['bare']})")
    print(f"gemini_tasks:      {best['ours']:8.1f} prompts/s  (runs: {rates['ours']})")
    print(f"gemini_tasks / bare: {best['ours'] / best['bare']:.2f}  (aim: >= 0.90)")


if __name__ == "__main__":
    main()
