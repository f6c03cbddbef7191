"""What every benchmark needs: a Redis, the emulator and workers, started and stopped."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from gemini_tasks import runtime
from gemini_tasks.ops import local

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Cluster:
    run_dir: Path
    redis_url: str
    emulator_url: str
    env: dict[str, str]
    workers: list = field(default_factory=list)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def emulator_stats(self, calls: bool = False) -> dict:
        url = f"{self.emulator_url}/_emulator/stats?calls={int(calls)}"
        with urllib.request.urlopen(url, timeout=60) as response:
            return json.load(response)

    def start_workers(
        self, count: int, concurrency: int, extra_env: dict | None = None, include: str = ""
    ) -> None:
        """Start workers; `include` names a module of bench/ with more tasks to register."""
        for _ in range(count):
            name = f"bench{len(self.workers)}"
            self.workers.append(local.start_worker(
                {**self.env, **(extra_env or {})}, name, concurrency,
                self.run_dir / f"{name}.log", cwd=self.run_dir,
                celery_args=["--include", include] if include else (),
            ))  # fmt: skip

    def kill_workers(self) -> None:
        """SIGKILL: for runs whose backlog would keep a warm shutdown waiting."""
        for process in self.workers:
            process.kill()
            process.wait()
        self.workers.clear()

    def stop_workers(self) -> None:
        for process in self.workers:
            local.stop_process(process, timeout=30)
        self.workers.clear()


@contextmanager
def cluster(
    keys: int = 1,
    emulator_args: Sequence[str] = (),
    env: dict | None = None,
    redis_url: str | None = None,
) -> Iterator[Cluster]:
    """Redis (or the one at `redis_url`) and the emulator with `keys` fake keys; this
    process's REDIS_URL points there.

    The process's runtime is rebuilt on entry, so gemini_tasks talks to this cluster.
    """
    secrets = {f"bench-fake-key-{i}": f"bench-project-{i}" for i in range(keys)}
    with ExitStack() as stack:
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemini-bench-")))
        redis_url = redis_url or stack.enter_context(local.redis_server(run_dir))
        emulator_url = stack.enter_context(
            local.emulator(secrets, emulator_args, log_path=run_dir / "emulator.log")
        )
        cluster_env = {
            "REDIS_URL": redis_url,
            "GOOGLE_GEMINI_BASE_URL": emulator_url,
            "GEMINI_TASKS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(BENCH_DIR),
            **{f"GEMINI_API_KEY_{i + 1}": s for i, s in enumerate(secrets)},
            # Only the fake keys above, whatever else this environment holds.
            "GEMINI_TASKS_API_KEY_NAMES": ",".join(f"GEMINI_API_KEY_{i + 1}" for i in range(keys)),
            **(env or {}),
        }
        # The environment is this cluster's until it stops: a setting one run makes must not
        # leak into the next (the unconfigured quota run would be configured after all).
        saved = dict(os.environ)
        stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
        os.environ.update(cluster_env)
        runtime.reset()
        running = Cluster(run_dir, redis_url, emulator_url, cluster_env)
        stack.callback(running.stop_workers)
        yield running


def wait_for_results(
    client: redis.Redis, task_ids: list[str], poll: float = 0.05, timeout: float = 600
) -> float:
    """Seconds until every task has a SUCCESS result, read the way the producer does.

    Looks at a window of the first tasks still pending, moving on as they finish (tasks
    finish roughly in the order sent), so the waiting costs Redis the same whatever the
    number pending: a look at every pending result on every pass would itself load Redis
    and the two cores in proportion to the batch.
    """
    start = time.perf_counter()
    pending = [f"celery-task-meta-{t}".encode() for t in task_ids]
    while pending:
        window = pending[:WINDOW]
        done = {
            key for key, value in zip(window, client.mget(window), strict=True)
            if value is not None and b'"SUCCESS"' in value
        }  # fmt: skip
        pending = [key for key in window if key not in done] + pending[WINDOW:]
        if len(done) < len(window):
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{len(pending)} tasks without a result after {timeout:g}s")
            time.sleep(poll)
    return time.perf_counter() - start


WINDOW = 200


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user and system) used so far by this process and each process it
    started, by role: the bench itself (producer and collector), redis, emulator, workers."""
    tick = os.sysconf("SC_CLK_TCK")
    times = os.times()
    roles = {"bench": times.user + times.system, "redis": 0.0, "emulator": 0.0, "workers": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid():
                continue
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        used = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        role = ("redis" if "redis-server" in command else "emulator" if " emulator" in command
                else "workers" if " worker" in command else "bench")  # fmt: skip
        roles[role] += used
    return roles


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def python() -> str:
    return sys.executable
