"""The same batch on a 1-key cluster and on a many-key one: prompts per second end to end.

Each cluster is fresh (Redis, the emulator with its keys, 2 workers holding all of them),
at zero latency with no quota configured, so what differs is only the pool's size. The
first batch proves every key and makes most of the workers' clients for them (one per key
in each worker); the second shows the cost once they are made. The baseline is the 1-key
cluster in the same run.

    python bench/key_count.py --prompts 2000 --keys 1000
"""

from __future__ import annotations

import argparse
import time

from harness import cluster

from gemini_tasks.producer import submit


def batch(prompts: int, tag: str) -> tuple[float, int]:
    """(prompts per second, keys used) of one job of `prompts`."""
    started = time.perf_counter()
    job = submit({"prompt": f"{tag} {i}"} for i in range(prompts))
    results = list(job.results(timeout=1800))
    took = time.perf_counter() - started
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return prompts / took, len({r.key_id for r in results})


def rate(keys: int, prompts: int) -> float:
    """The rate of the second batch; the first's, which proves every key, is printed too."""
    with cluster(keys) as running:
        running.start_workers(2, 50)
        cold, used = batch(prompts, "cold")
        warm, _ = batch(prompts, "warm")
    print(f"{keys:5d} keys: first batch {cold:7.1f} prompts/s ({used} keys used), "
          f"then {warm:7.1f} prompts/s")  # fmt: skip
    return warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    one = rate(1, args.prompts)
    many = rate(args.keys, args.prompts)
    print(f"{args.keys} keys / 1 key, warm: {many / one:.2f}")


if __name__ == "__main__":
    main()
