"""Concurrency: how close two worker processes come to the ideal rate with slow calls, and
to a bare Celery task making the same calls with the same threads.

The emulator answers after `--latency` seconds, quota is unlimited. The ideal rate is the
calls in flight divided by the latency (2 workers x threads / latency); the achieved rate
is measured from the emulator's own log of calls, for gemini_tasks and, in the same run
and on the same workers, for the bare task of bench/overhead.py (alternating, best of
`--runs`). Worker memory per call in flight is the workers' resident memory at the peak of
gemini_tasks' runs, less at rest, over the calls in flight.

    python bench/concurrency.py --prompts 2000 --threads 100 --latency 1
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from harness import Cluster, cluster, rss_mib, wait_for_results


def calls_per_second(running: Cluster, run: Callable[[], None], prompts: int) -> float:
    """The rate at which the emulator answered the calls `run` made."""
    seen = len(running.emulator_stats(calls=True)["calls"])
    run()
    calls = [c for c in running.emulator_stats(calls=True)["calls"][seen:] if c["outcome"] == "ok"]
    assert len(calls) >= prompts, f"{len(calls)} calls answered for {prompts} prompts"
    return len(calls) / (max(c["t"] for c in calls) - min(c["started"] for c in calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    workers = 2
    with cluster(emulator_args=["--latency", str(args.latency)]) as running:
        running.start_workers(workers, args.threads, include="bare_task")
        from bare_task import send_bare

        from gemini_tasks.producer import submit

        client = running.redis()
        failed = 0

        def ours() -> None:
            nonlocal failed
            results = list(submit({"prompt": f"slow {i}"} for i in range(args.prompts))
                           .results(timeout=600))  # fmt: skip
            failed += sum(not r.ok for r in results)

        def bare() -> None:
            wait_for_results(client, send_bare([f"slow {i}" for i in range(args.prompts)]))

        list(submit([{"prompt": "warm up"}] * 20).results(timeout=120))
        pids = [p.pid for p in running.workers]
        rest = sum(rss_mib(pid) for pid in pids)
        peak = [rest]
        sampling = threading.Event()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                if sampling.is_set():
                    peak.append(sum(rss_mib(pid) for pid in pids))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        rates: dict[str, list[float]] = {"bare": [], "ours": []}
        for _ in range(args.runs):
            rates["bare"].append(calls_per_second(running, bare, args.prompts))
            sampling.set()
            rates["ours"].append(calls_per_second(running, ours, args.prompts))
            sampling.clear()
        done.set()
        sampler.join()
        in_flight = running.emulator_stats()["max_in_flight"]
    ideal = workers * args.threads / args.latency
    achieved, baseline = max(rates["ours"]), max(rates["bare"])
    print(
        f"{args.prompts} prompts, {workers} workers x {args.threads} threads, "
        f"{args.latency:g} s latency, {failed} failed"
    )
    print(f"calls in flight at most:   {in_flight} ({in_flight / workers:.0f} per process)")
    print(f"gemini_tasks:              {achieved:8.1f} calls/s  (runs: "
          + ", ".join(f"{r:.1f}" for r in rates["ours"]) + ")")  # fmt: skip
    print(f"bare Celery task:          {baseline:8.1f} calls/s  (runs: "
          + ", ".join(f"{r:.1f}" for r in rates["bare"]) + ")")  # fmt: skip
    print(f"ideal rate:                {ideal:8.1f} calls/s")
    print(f"gemini_tasks / bare:       {achieved / baseline:8.2f}  (aim: >= 0.90)")
    print(f"gemini_tasks / ideal:      {achieved / ideal:8.2f}")
    print(f"bare / ideal:              {baseline / ideal:8.2f}")
    print(f"worker memory at rest:     {rest:8.1f} MiB (both processes)")
    print(f"worker memory at peak:     {max(peak):8.1f} MiB")
    print(f"memory per call in flight: {(max(peak) - rest) * 1024 / max(in_flight, 1):8.1f} KiB")


if __name__ == "__main__":
    main()
