"""A pool spent for the day: prompts queued on keys whose daily quota is gone.

Each key may make one request a day (the emulator's `--rpd 1`), so the first prompts spend
the pool and the rest must wait until tomorrow. For `--seconds` the script samples the
workers' memory and the messages held outside Redis' job queues (the broker's queue and
the messages workers hold unacknowledged); the baseline is the workers' memory at rest
before the job, in the same run. Then the quota returns and every key is reset (`gemini-tasks
keys reset`), and it times how long until answers come again, and the rate over the next
`--after` seconds.

    python bench/spent_pool.py --prompts 100000 --seconds 120
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

from harness import cluster, rss_mib

from gemini_tasks import runtime
from gemini_tasks.keys import key_id
from gemini_tasks.pool import operator_pool
from gemini_tasks.producer import submit


def _configure(url: str, update: dict) -> None:
    request = urllib.request.Request(f"{url}/_emulator/config", data=json.dumps(update).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    urllib.request.urlopen(request, timeout=30).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=2)
    parser.add_argument("--threads", type=int, default=50)
    args = parser.parse_args()
    env = {"GEMINI_TASKS_MAX_KEY_WAIT": str(3 * 86400)}  # a day's wait is no failure
    with cluster(args.keys, ["--rpd", "1"], env) as running:
        running.start_workers(2, args.threads)
        rt = runtime.current()
        while running.redis().hlen(rt.keys.workers()) < 2:  # both workers up and beating
            time.sleep(0.2)
        pids = [p.pid for p in running.workers]
        rest = sum(rss_mib(pid) for pid in pids)
        job = submit({"prompt": f"spent {i}"} for i in range(args.prompts))
        broker, queue = rt.broker, rt.settings.queue
        peak_rss, peak_held, samples = rest, 0, 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            peak_rss = max(peak_rss, sum(rss_mib(pid) for pid in pids))
            peak_held = max(peak_held, broker.llen(queue) + broker.hlen("unacked"))
            samples += 1
            time.sleep(0.5)
        status = job.status()
        before = status.counts.done

        _configure(running.emulator_url, {"limits": {}})
        pool = operator_pool(rt)
        reset_at = time.monotonic()
        for secret in [v for k, v in running.env.items() if k.startswith("GEMINI_API_KEY_")]:
            pool.reset(key_id(secret))
        while job.status().counts.done == before:
            time.sleep(0.05)
        resumed = time.monotonic() - reset_at
        time.sleep(args.after)
        rate = (job.status().counts.done - before) / (time.monotonic() - reset_at)
        running.kill_workers()
    print(f"{args.prompts} prompts on {args.keys} keys spent for the day, 2 workers x "
          f"{args.threads} threads")  # fmt: skip
    print(f"over {args.seconds:g} s ({samples} samples): answered {before}, waiting in Redis "
          f"{status.waiting}, in flight {status.in_flight}")  # fmt: skip
    print(f"messages outside Redis' job queues (broker queue + unacked), at most: {peak_held}")
    print(f"worker memory: {rest:.1f} MiB at rest, {peak_rss:.1f} MiB at most "
          f"({peak_rss - rest:+.1f} MiB)")  # fmt: skip
    print(f"after the keys' reset: first answer in {resumed:.2f} s; "
          f"{rate:.1f} prompts/s over the next {args.after:g} s")  # fmt: skip


if __name__ == "__main__":
    main()
