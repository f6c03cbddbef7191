"""Concurrency: how close two worker processes come to the ideal rate with slow calls.

The emulator answers after `--latency` seconds, quota is unlimited. The ideal rate is the
calls in flight divided by the latency (2 workers x threads / latency); the achieved rate
is measured from the emulator's own log of calls. Worker memory per call in flight is the
workers' resident memory at the peak of the run, less at rest, over the calls in flight.

    python bench/concurrency.py --prompts 2000 --threads 200 --latency 1
"""

from __future__ import annotations

import argparse
import threading
import time

from harness import cluster, rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()
    workers = 2
    with cluster(emulator_args=["--latency", str(args.latency)]) as running:
        running.start_workers(workers, args.threads)
        from gemini_tasks.producer import submit

        list(submit([{"prompt": "warm up"}] * 20).results(timeout=120))
        pids = [p.pid for p in running.workers]
        rest = sum(rss_mib(pid) for pid in pids)
        peak = [rest]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(sum(rss_mib(pid) for pid in pids))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        job = submit({"prompt": f"slow {i}"} for i in range(args.prompts))
        results = list(job.results(timeout=600))
        done.set()
        sampler.join()
        stats = running.emulator_stats(calls=True)
    calls = [c for c in stats["calls"] if c["outcome"] == "ok"][-args.prompts :]
    elapsed = max(c["t"] for c in calls) - min(c["started"] for c in calls)
    achieved = len(calls) / elapsed
    ideal = workers * args.threads / args.latency
    in_flight = stats["max_in_flight"]
    failed = sum(not r.ok for r in results)
    print(
        f"{args.prompts} prompts, {workers} workers x {args.threads} threads, "
        f"{args.latency:g} s latency, {failed} failed"
    )
    print(f"calls in flight at most:   {in_flight} ({in_flight / workers:.0f} per process)")
    print(f"achieved rate:             {achieved:8.1f} calls/s")
    print(f"ideal rate:                {ideal:8.1f} calls/s")
    print(f"achieved / ideal:          {achieved / ideal:8.2f}  (aim: >= 0.90)")
    print(f"worker memory at rest:     {rest:8.1f} MiB (both processes)")
    print(f"worker memory at peak:     {max(peak):8.1f} MiB")
    print(f"memory per call in flight: {(max(peak) - rest) * 1024 / max(in_flight, 1):8.1f} KiB")


if __name__ == "__main__":
    main()
