"""Fair share: how long a small job submitted behind a large one takes to finish.

K keys at R requests a minute (quota is the bottleneck, paced by the pool), two workers. A
large job of several minutes' quota is submitted, and a small one D seconds later. Two runs
on fresh clusters: first come first served (the small job at a lower priority than the
large one, so it runs only once nothing of the large one is left, as a plain FIFO queue
would order them), then fair share (both at the same priority: the scheduler alternates
between them). Prints the small job's time from its submit to its last result in each,
and their ratio.

    python bench/fair_share.py --keys 3 --rpm 20 --large 300 --small 20 --delay 20
"""

from __future__ import annotations

import argparse
import time

from harness import cluster

from gemini_tasks.producer import JobOptions, Priority, submit

QUEUE = "fair"


def run(priority: Priority, args: argparse.Namespace) -> dict:
    env = {"GEMINI_TASKS_RPM": str(args.rpm), "GEMINI_TASKS_QUEUE": QUEUE,
           "GEMINI_TASKS_MAX_KEY_WAIT": "3600"}  # fmt: skip
    if args.short_key_wait is not None:
        env["GEMINI_TASKS_SHORT_KEY_WAIT"] = str(args.short_key_wait)
    with cluster(args.keys, ["--rpm", str(args.rpm)], env) as running:
        running.start_workers(2, 20)
        large = submit([{"prompt": f"large {i}"} for i in range(args.large)],
                       options=JobOptions(queue=QUEUE))  # fmt: skip
        time.sleep(args.delay)
        started = time.monotonic()
        small = submit([{"prompt": f"small {i}"} for i in range(args.small)],
                       options=JobOptions(queue=QUEUE, priority=priority))  # fmt: skip
        results = list(small.results(timeout=3600))
        took = time.monotonic() - started
        large_done = large.status().counts.done
        large.cancel()
        running.kill_workers()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return {"seconds": took, "large_done": large_done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--rpm", type=int, default=20)
    parser.add_argument("--large", type=int, default=300)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--delay", type=float, default=20.0)
    parser.add_argument(
        "--short-key-wait",
        type=float,
        default=None,
        help="GEMINI_TASKS_SHORT_KEY_WAIT for the workers (default: its own)",
    )
    args = parser.parse_args()
    print(f"{args.keys} keys x {args.rpm} requests/minute; a {args.large}-prompt job, then a "
          f"{args.small}-prompt job {args.delay:g} s later")  # fmt: skip
    fifo = run(Priority.LOW, args)
    fair = run(Priority.NORMAL, args)
    for name, r in (("first come, first served", fifo), ("fair share", fair)):
        print(f"{name:<26} small job finished in {r['seconds']:6.1f} s, "
              f"with {r['large_done']} of the large job's prompts done")  # fmt: skip
    print(f"small job's time, fair share / first come first served: "
          f"{fair['seconds'] / fifo['seconds']:.2f}")  # fmt: skip
    rate = args.keys * args.rpm / 60
    print(f"its fair share (half the fleet's {rate:g} requests/s): about "
          f"{args.small / (rate / 2):.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
