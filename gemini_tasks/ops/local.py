"""Local processes: an embedded redis-server, the emulator and worker processes.

Local mode (`gemini-tasks run` with no `REDIS_URL`) and the test suite start the same
real processes through these context managers, and both leave nothing running.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from gemini_tasks import runtime
from gemini_tasks.errors import GeminiTasksError
from gemini_tasks.keys import key_variable_names
from gemini_tasks.settings import load_env_file

INSTALL_HINT = (
    "redis-server is not installed. On Debian or Ubuntu run: "
    "apt-get update && apt-get install -y redis-server "
    "(or set REDIS_URL to use a Redis server elsewhere)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise GeminiTasksError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise GeminiTasksError(f"nothing listening on port {port} after {timeout:g}s")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (a Celery worker's warm shutdown), then SIGKILL if it does not exit."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisServer:
    """A redis-server process on loopback, in `workdir`; restartable in place."""

    def __init__(self, workdir: Path, port: int | None = None, appendonly: bool = False):
        binary = shutil.which("redis-server")
        if binary is None:
            raise GeminiTasksError(INSTALL_HINT)
        self.workdir, self.port = workdir, port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "yes" if appendonly else "no",
            "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 10, self.process)

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        if self.process is not None:
            stop_process(self.process)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server(
    workdir: Path | None = None, port: int | None = None, appendonly: bool = False
) -> Iterator[str]:
    """A redis-server on loopback, stopped on exit; yields its URL."""
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemini-redis-")))
        server = RedisServer(workdir, port, appendonly)
        server.start()
        stack.callback(server.stop)
        yield server.url


def _python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", "gemini_tasks", *args]


@contextmanager
def emulator(
    keys: Mapping[str, str],
    args: Sequence[str] = (),
    port: int | None = None,
    log_path: Path | None = None,
) -> Iterator[str]:
    """The Gemini API emulator knowing `keys` (secret -> project); yields its base URL."""
    port = port or free_port()
    command = _python_module("emulator", "--port", str(port), *args)
    for secret, project in keys.items():
        command += ["--key", f"{secret}@{project}"]
    with ExitStack() as stack:
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        if log_path:
            stack.callback(log.close)  # type: ignore[union-attr]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(stop_process, process)
        wait_for_port(port, 20, process)
        url = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(f"{url}/_emulator/stats", timeout=5).close()
        yield url


def start_worker(
    env: Mapping[str, str],
    name: str,
    concurrency: int,
    log_path: Path | None = None,
    cwd: Path | None = None,
    celery_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """One worker process (`gemini-tasks worker`) with `env` added to this environment.

    `cwd` decides which `.env` file the worker reads, if any; `celery_args` go to Celery.
    """
    command = _python_module(
        "worker",
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        *celery_args,
    )
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
        )
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]


@contextmanager
def workers(
    count: int,
    env: Mapping[str, str],
    concurrency: int,
    log_dir: Path | None = None,
    cwd: Path | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` worker processes, stopped (warm shutdown) on exit."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            log_path = log_dir / f"worker-{i}.log" if log_dir else None
            processes.append(start_worker(env, f"worker{i}", concurrency, log_path, cwd))
        yield processes
    finally:
        # Signal them all first so their warm shutdowns run side by side.
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            stop_process(process)


LOCAL_EMULATOR_KEY = "local-emulator-key"


@contextmanager
def embedded_cluster(
    workers_count: int,
    concurrency: int,
    worker_env: Mapping[str, str] | None = None,
    emulator_without_keys: bool = False,
    announce: Callable[[str], None] = lambda message: None,
    data_dir: Path | None = None,
) -> Iterator[dict[str, str]]:
    """Local mode: redis-server and worker processes on this machine.

    With `data_dir`, Redis keeps its data there (append-only), so jobs outlive the run and
    a later one can finish them; one local cluster uses a directory at a time. Without, a
    temporary directory that goes with the cluster. With `emulator_without_keys` and no
    `GEMINI_API_KEY_*` configured, the workers talk to the emulator. This process's
    environment gets the cluster's `REDIS_URL` for as long as the cluster runs, and its
    runtime is rebuilt on entry and on exit, so it talks to the cluster inside and to
    nothing stale after.
    """
    load_env_file()
    with ExitStack() as stack:
        if data_dir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gemini-tasks-")))
        else:
            workdir = data_dir
            stack.enter_context(_only_user(workdir))
        url = stack.enter_context(redis_server(workdir, appendonly=data_dir is not None))
        env = {**(worker_env or {}), "REDIS_URL": url}
        if emulator_without_keys and not key_variable_names(os.environ):
            announce("No GEMINI_API_KEY_* configured: using the local Gemini emulator.")
            env["GOOGLE_GEMINI_BASE_URL"] = stack.enter_context(
                emulator({LOCAL_EMULATOR_KEY: "local"}, log_path=workdir / "emulator.log")
            )
            env["GEMINI_API_KEY_1"] = LOCAL_EMULATOR_KEY
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        runtime.reset()
        stack.callback(_restore_environment, saved)
        announce(f"Local mode: Redis and {workers_count} worker(s), data and logs in {workdir}")
        stack.enter_context(workers(workers_count, env, concurrency, workdir))
        yield env


@contextmanager
def _only_user(directory: Path) -> Iterator[None]:
    """Hold `directory` for this process alone: two Redis servers on one data directory
    would overwrite each other's files."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (directory / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GeminiTasksError(
                f"another local run is using {directory}; wait for it to end, or give this "
                "one its own GEMINI_TASKS_LOCAL_DIR"
            ) from None
        yield


def _restore_environment(saved: Mapping[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    runtime.reset()
