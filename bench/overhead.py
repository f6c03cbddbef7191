"""Overhead: prompts per second end to end through gemini_tasks, against a bare Celery task.

Unlimited quota and a zero-latency emulator, so what is measured is gemini_tasks itself:
the same Redis, the same two worker processes, the same single HTTP call per prompt; the
bare task (bench/bare_task.py) has no key pool, no scheduler, no retries. Ours is timed
from submit to the last result collected (`Job.results`); the bare task's from its first
message sent to its last result read. Each side runs `--runs` times, alternating, and its
best run counts (this machine's speed varies from minute to minute). With every process
on the same two cores, the rate is the CPU a prompt costs: the CPU each kind of process
spent per prompt is printed too, which is where the time goes.

    python bench/overhead.py --prompts 4000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from harness import cluster, cpu_seconds, wait_for_results


def measured(run: Callable[[], None], prompts: int) -> tuple[float, dict[str, float]]:
    """The rate of `run`, and the CPU milliseconds per prompt each kind of process spent."""
    before = cpu_seconds()
    start = time.perf_counter()
    run()
    rate = prompts / (time.perf_counter() - start)
    after = cpu_seconds()
    return rate, {role: (after[role] - before[role]) * 1000 / prompts for role in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="runs of each side, alternating")
    args = parser.parse_args()
    with cluster() as running:
        running.start_workers(2, args.concurrency, include="bare_task")
        from bare_task import send_bare

        from gemini_tasks.producer import submit

        client = running.redis()

        def ours(prompts: int = args.prompts) -> None:
            job = submit({"prompt": f"overhead {i}"} for i in range(prompts))
            assert sum(r.ok for r in job.results(timeout=600)) == prompts

        def bare(prompts: int = args.prompts) -> None:
            wait_for_results(client, send_bare([f"overhead {i}" for i in range(prompts)]))

        ours(200), bare(200)  # warm up: imports, connections, clients
        runs: dict[str, list[tuple[float, dict[str, float]]]] = {"bare": [], "ours": []}
        for _ in range(args.runs):
            runs["bare"].append(measured(bare, args.prompts))
            runs["ours"].append(measured(ours, args.prompts))
    best = {name: max(results, key=lambda r: r[0]) for name, results in runs.items()}
    print(f"{args.prompts} prompts, 2 workers x {args.concurrency} threads, zero latency")
    for name, label in (("bare", "bare Celery task"), ("ours", "gemini_tasks")):
        rate, cpu = best[name]
        rates = ", ".join(f"{r:.1f}" for r, _ in runs[name])
        print(f"{label + ':':18} {rate:8.1f} prompts/s  (runs: {rates})")
        print(f"{'':18} CPU ms a prompt: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
              + f", all {sum(cpu.values()):.2f}")  # fmt: skip
    print(f"gemini_tasks / bare: {best['ours'][0] / best['bare'][0]:.2f}  (aim: >= 0.90)")


if __name__ == "__main__":
    main()
