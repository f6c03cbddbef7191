"""Execution modes: the same prompts online, on the Flex tier and in Batch Mode.

One cluster (K keys, 2 workers, the emulator answering each call in L seconds and each batch
in B seconds), N prompts submitted in each mode in turn, each collected to its last result.
Prints each mode's wall time (submit to last result), the HTTP requests the emulator served
(generateContent calls, batch creations, batch looks are not counted: the emulator counts
what it answers), and the job's cost beside what it would have cost online. Online is the
baseline.

    python bench/modes.py --prompts 10000 --keys 3 --latency 0.2 --batch-seconds 20
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

from harness import cluster

from gemini_tasks.producer import JobOptions, Mode, submit

MODEL = "gemini-2.5-flash"


def _configure(url: str, update: dict) -> None:
    request = urllib.request.Request(
        f"{url}/_emulator/config", data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=30).read()


def run(mode: Mode, args: argparse.Namespace) -> dict:
    env = {"GEMINI_TASKS_MODEL": MODEL, "GEMINI_TASKS_BATCH_POLL": "5"}
    with cluster(args.keys, ["--latency", str(args.latency)], env) as running:
        _configure(running.emulator_url, {"batch_seconds": args.batch_seconds})
        running.start_workers(2, args.concurrency)
        records = [{"prompt": f"Summarise item {i} of the catalogue in one line."}
                   for i in range(args.prompts)]  # fmt: skip
        started = time.monotonic()
        job = submit(records, options=JobOptions(mode=mode))
        results = list(job.results(timeout=3600))
        took = time.monotonic() - started
        counts = job.status().counts
        stats = running.emulator_stats()
        running.stop_workers()
    failed = sum(not r.ok for r in results)
    by_outcome = stats["by_outcome"]
    return {
        "mode": mode.value, "seconds": took, "failed": failed,
        "answers": by_outcome.get("ok", 0), "creates": by_outcome.get("batch_create", 0),
        "cost": counts.cost, "online_cost": counts.online_cost,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--batch-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(f"{args.prompts} prompts, {args.keys} keys, 2 workers x {args.concurrency} threads, "
          f"{args.latency:g} s a call, {args.batch_seconds:g} s a batch")  # fmt: skip
    rows = [run(mode, args) for mode in (Mode.ONLINE, Mode.FLEX, Mode.BATCH)]
    print(f"{'mode':<8}{'seconds':>9}{'failed':>8}{'answered':>10}{'batches':>9}"
          f"{'cost $':>10}{'online $':>10}")  # fmt: skip
    for r in rows:
        print(f"{r['mode']:<8}{r['seconds']:>9.1f}{r['failed']:>8}{r['answers']:>10}"
              f"{r['creates']:>9}{r['cost']:>10.4f}{r['online_cost']:>10.4f}")  # fmt: skip
    online = rows[0]
    for r in rows[1:]:
        print(f"{r['mode']}: cost / online {r['cost'] / max(online['cost'], 1e-12):.2f}, "
              f"time / online {r['seconds'] / online['seconds']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
