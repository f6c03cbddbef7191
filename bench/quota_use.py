"""Quota use: K keys at R requests per minute, two worker processes, against the emulator.

Prints the share of the aggregate quota used (the physical limit is K x R per minute) and
the share of calls answered 429, for the shared Redis key pool and for a baseline run in
the same process: the same workers with key state kept separately in each process, as
the seed library's in-memory key manager does. Only the sharing differs. A third run
configures no limit at all: the pool learns it from Gemini's 429s (their quota value),
and is measured after its first minute, and over the steady minute after that.

    python bench/quota_use.py --keys 3 --rpm 20 --seconds 150
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

from harness import cluster

MODEL = "gemini-2.5-flash"


def run(mode: str, keys: int, rpm: int, seconds: float, workers: int, concurrency: int) -> dict:
    env = {"GEMINI_TASKS_MODEL": MODEL, "GEMINI_TASKS_MAX_KEY_WAIT": str(10 * seconds)}
    if mode != "unconfigured":
        env["GEMINI_TASKS_RPM"] = str(rpm)
    with cluster(keys, ["--rpm", str(rpm)], env) as running:
        # Separate key state is separate key prefixes, each with its own job and worker.
        prefixes = [f"bench_private_{i}" for i in range(workers)] if mode == "private" else []
        for i in range(workers):
            prefix = prefixes[i] if prefixes else f"bench_{mode}"
            running.start_workers(1, concurrency, {"GEMINI_TASKS_KEY_PREFIX": prefix})
        backlog = keys * rpm * (math.ceil(seconds / 60) + 1)
        prompts = running.run_dir / "prompts.jsonl"
        prompts.write_text(
            "".join(json.dumps({"prompt": f"bench prompt {i}"}) + "\n" for i in range(backlog))
        )
        for prefix in prefixes or [f"bench_{mode}"]:
            subprocess.run(
                [sys.executable, "-m", "gemini_tasks", "submit", str(prompts)],
                check=True, capture_output=True, cwd=running.run_dir,
                env={**os.environ, "GEMINI_TASKS_KEY_PREFIX": prefix},
            )  # fmt: skip
        start = time.monotonic()
        while not running.emulator_stats()["total"] and time.monotonic() - start < 60:
            time.sleep(0.2)
        time.sleep(seconds + 2)
        calls = running.emulator_stats(calls=True)["calls"]
        running.kill_workers()
    first = min(c["t"] for c in calls)
    window = [c for c in calls if c["t"] < first + seconds]
    ok = sum(c["outcome"] == "ok" for c in window)
    limited = sum(c["outcome"] == "429" for c in window)
    # A 60-second sliding window that starts empty admits K x R at once, then K x R again
    # each minute: that is everything the keys could have served in the measured time.
    possible = keys * rpm * math.ceil(seconds / 60)
    later = [c for c in window if c["t"] >= first + 60]
    steady = [c for c in later if c["t"] < first + 120 and c["outcome"] == "ok"]
    return {
        "share_429_after_first_minute": (
            sum(c["outcome"] == "429" for c in later) / len(later) if later else 0.0
        ),
        "steady_minute_used": len(steady) / (keys * rpm),
        "mode": mode,
        "ok": ok,
        "429": limited,
        "calls": len(window),
        "quota_used": ok / possible,
        "share_429": limited / len(window) if window else 0.0,
        "possible": possible,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--rpm", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(
        f"{args.keys} keys x {args.rpm} requests/minute, {args.workers} worker processes, "
        f"{args.seconds:g} s measured"
    )
    results = [
        run(mode, args.keys, args.rpm, args.seconds, args.workers, args.concurrency)
        for mode in ("shared", "private", "unconfigured")
    ]
    print(f"{'key state':<28}{'ok':>6}{'429':>6}{'quota used':>12}{'429 share':>11}")
    names = {
        "shared": "shared Redis pool",
        "private": "separate per process (seed)",
        "unconfigured": "shared, no limit configured",
    }
    for r in results:
        print(
            f"{names[r['mode']]:<28}{r['ok']:>6}{r['429']:>6}"
            f"{r['quota_used']:>11.1%}{r['share_429']:>11.1%}"
        )
    shared, private, learned = results
    print(f"quota used, shared / separate: {shared['quota_used'] / private['quota_used']:.2f}x")
    print(
        f"aim: quota used >= 95% and 429 share < 1% -> "
        f"{'met' if shared['quota_used'] >= 0.95 and shared['share_429'] < 0.01 else 'NOT met'}"
    )
    after, steady = learned["share_429_after_first_minute"], learned["steady_minute_used"]
    print(
        f"unconfigured: {after:.1%} of calls answered 429 after the first minute, "
        f"{steady:.1%} of the quota used in the second minute; aim < 3% and >= 90% -> "
        f"{'met' if after < 0.03 and steady >= 0.9 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
