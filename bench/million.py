"""One million prompts end to end, as a user runs them: `gemini-tasks submit` of a JSONL
file and `gemini-tasks collect` of its job into a results file, with workers running.

The broker, the result backend and the key pool each have a redis-server of their own (a
deployment past one Redis; docs/architecture.md), so what each part of the key layout costs
is read from its own server: commands, CPU and memory per prompt. Their sum is what one
Redis holding all three does, and from it the ceiling of one Redis is projected: how
many prompts a second one Redis core can serve, and how many results it holds per GiB.
`status` is timed every `--status-every` seconds during the run (the Python API the CLI
calls).

    python bench/million.py --prompts 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import redis
from harness import Cluster, cluster, cpu_seconds, rss_mib

from gemini_tasks.ops import local

ROLES = ("broker", "results", "pool")


def counters(client: redis.Redis) -> dict[str, float]:
    """Commands served (inside scripts too), seconds spent in them, CPU seconds in all
    (commands, reading and writing the connections) and memory of one Redis."""
    stats = client.info("commandstats").values()
    cpu = client.info("cpu")
    return {
        "commands": sum(int(v["calls"]) for v in stats),
        # A script's commands count both on their own and in the script's time.
        "executing": sum(float(v["usec"]) for v in stats) / 1e6,
        "cpu": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "memory": float(client.info("memory")["used_memory"]),
    }


def command(running: Cluster, name: str, *args: str) -> subprocess.Popen[bytes]:
    """`gemini-tasks <args>` with the cluster's settings; its log in the run directory."""
    log = (running.run_dir / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "gemini_tasks", *args],
                            env={**os.environ, **running.env}, stdout=subprocess.PIPE,
                            stderr=log)  # fmt: skip


def waited(process: subprocess.Popen[bytes]) -> tuple[float, float, float]:
    """Wait for `process`: when it ended (perf_counter), its peak memory in MiB and the CPU
    seconds it used."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{process.args!r} exited with {process.returncode}")
    return time.perf_counter(), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


class Watch(threading.Thread):
    """Times `status` and samples peak memory while the job runs."""

    def __init__(self, job_id: str, every: float, servers: dict[str, redis.Redis], pids: list[int]):
        super().__init__()
        self.job_id, self.every, self.servers, self.pids = job_id, every, servers, pids
        self.status_ms: list[float] = []
        self.peak = {"workers": sum(rss_mib(pid) for pid in pids), **dict.fromkeys(ROLES, 0.0)}
        self.done = threading.Event()

    def run(self) -> None:
        from gemini_tasks.producer import Job

        job = Job.restore(self.job_id)
        while not self.done.wait(self.every):
            took = time.perf_counter()
            job.status()
            self.status_ms.append((time.perf_counter() - took) * 1000)
            self.peak["workers"] = max(self.peak["workers"], sum(map(rss_mib, self.pids)))
            for role, client in self.servers.items():
                self.peak[role] = max(self.peak[role], client.info("memory")["used_memory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--status-every", type=float, default=10.0)
    args = parser.parse_args()
    n = args.prompts
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemini-million-")))
        for role in ROLES:
            (base / role).mkdir()
        urls = {role: stack.enter_context(local.redis_server(base / role)) for role in ROLES}
        env = {"GEMINI_TASKS_BROKER_URL": urls["broker"],
               "GEMINI_TASKS_RESULT_BACKEND": urls["results"]}  # fmt: skip
        running = stack.enter_context(cluster(env=env, redis_url=urls["pool"]))
        servers = {role: redis.Redis.from_url(url) for role, url in urls.items()}
        prompts, results = running.run_dir / "prompts.jsonl", running.run_dir / "results.jsonl"
        with prompts.open("w") as out:
            for i in range(n):
                out.write(json.dumps({"prompt": f"million {i}", "metadata": {"i": i}}) + "\n")
        running.start_workers(2, args.threads)
        from gemini_tasks.producer import Job, submit

        list(submit([{"prompt": "warm up"}] * 200).results(timeout=120))
        pids = [p.pid for p in running.workers]
        rest = sum(rss_mib(pid) for pid in pids)
        before = {role: counters(client) for role, client in servers.items()}
        cpu_before = cpu_seconds()
        start = time.perf_counter()
        producer = command(running, "submit", "submit", str(prompts))
        assert producer.stdout is not None
        job_id = producer.stdout.readline().decode().strip()  # said before the first prompt
        collector = command(running, "collect", "collect", job_id, "-o", str(results))
        watch = Watch(job_id, args.status_every, servers, pids)
        watch.start()
        submitted, submit_mib, submit_cpu = waited(producer)
        collected, collect_mib, collect_cpu = waited(collector)
        watch.done.set()
        watch.join()
        after = {role: counters(client) for role, client in servers.items()}
        cpu_after = cpu_seconds()
        lines = sum(1 for _ in results.open())
        failed = Job.restore(job_id).status().counts.failed
        results_mib = results.stat().st_size / 2**20

    elapsed = collected - start
    print(f"{n} prompts, 2 workers x {args.threads} threads, zero latency, 3 Redis servers")
    print(f"results written: {lines} lines ({results_mib:.0f} MiB), {failed} failed")
    print(
        f"submit: {n / (submitted - start):.0f} prompts/s while workers ran; producer peak "
        f"{submit_mib:.1f} MiB, {submit_cpu * 1e6 / n:.0f} µs CPU a prompt"
    )
    print(
        f"end to end: {elapsed:.0f} s, {n / elapsed:.1f} prompts/s; last result "
        f"{collected - submitted:.0f} s after submit"
    )
    print(
        f"collect: peak {collect_mib:.1f} MiB, {collect_cpu * 1e6 / n:.0f} µs CPU a prompt "
        "(reading the stream and the results, writing the file)"
    )
    print(f"workers: {rest:.0f} MiB at rest, {watch.peak['workers']:.0f} MiB at most")
    ms = sorted(watch.status_ms) or [0.0]
    print(f"status: median {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} looks)")
    used = {k: cpu_after[k] - cpu_before[k] for k in ("redis", "emulator", "workers")}
    print("CPU a prompt: " + ", ".join(f"{k} {v * 1e6 / n:.0f} µs" for k, v in used.items()))
    total = dict.fromkeys(("commands", "executing", "cpu", "memory"), 0.0)
    for role in ROLES:
        per = {k: (after[role][k] - before[role][k]) / n for k in total}
        total = {k: total[k] + per[k] for k in total}
        print(
            f"redis {role:8} {per['commands']:5.1f} commands, {per['cpu'] * 1e6:4.0f} µs CPU "
            f"({per['executing'] * 1e6:3.0f} in commands), {per['memory']:5.0f} bytes kept "
            f"a prompt; peak {watch.peak[role] / 2**20:7.1f} MiB"
        )
    print(
        f"all three: {total['commands']:.1f} commands, {total['cpu'] * 1e6:.0f} µs of Redis CPU "
        f"({total['executing'] * 1e6:.0f} in commands) and {total['memory']:.0f} bytes kept "
        "a prompt"
    )
    print(
        f"one Redis core's ceiling: {1 / total['cpu']:,.0f} prompts/s; "
        f"{2**30 / total['memory']:,.0f} results held per GiB"
    )


if __name__ == "__main__":
    main()
