"""Hostile input, end to end: no prompt record can steer a worker, and the batch goes on.

Each attack is tried through the producer (a record in a job) and, where the producer
refuses it, straight at the worker (a forged task message on the broker): the worker is
the trust boundary. A listener stands in for an attacker's host; nothing may reach it, no
file outside the media store may be read, and every honest prompt beside the attacks is
answered.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gemini_tasks import runtime
from gemini_tasks.app import GENERATE
from gemini_tasks.errors import ErrorKind
from gemini_tasks.ops import local
from gemini_tasks.producer import submit
from gemini_tasks.result import Result
from tests.conftest import FAKE_KEY, TEST_ENV

pytestmark = pytest.mark.integration


class Listener:
    """A TCP port standing in for an attacker's host: it records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"")
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
def attacker():
    listener = Listener()
    yield listener
    listener.sock.close()


def honest(i: int) -> dict:
    return {"prompt": f"honest prompt {i}", "metadata": {"i": i}}


STEERING = [
    {"httpOptions": {"base_url": "{url}"}},
    {"http_options": {"baseUrl": "{url}", "headers": {"x-goog-api-key": "stolen"}}},
    {"HTTP_OPTIONS": {"base_url": "{url}"}},
    {"baseUrl": "{url}"},
    {"headers": {"Host": "evil"}},
    {"api_version": "../../{url}"},
    {"timeout": 1},
    {"automaticFunctionCalling": {"disable": False}},
    {"cached_content": "cachedContents/someone-elses"},
]


def steer(config: dict, url: str) -> dict:
    return json.loads(json.dumps(config).replace("{url}", url))


def test_records_that_try_to_steer_a_worker_fail_alone(cluster, attacker):
    records = []
    for i, config in enumerate(STEERING):
        records += [
            honest(i),
            {"prompt": "steer", "generation_config": steer(config, attacker.url)},
        ]
    results = list(submit(records).results(timeout=60))

    for result in results[0::2]:
        assert result.ok, result.error
    for result in results[1::2]:
        assert result.error_kind is ErrorKind.INVALID_PROMPT
        assert "is not allowed in a prompt record" in result.error
    assert attacker.received == []
    assert cluster.stats()["by_outcome"] == {"ok": len(STEERING)}


def forged(records: list, queue: str | None = None) -> list[Result]:
    """Send task arguments straight to the broker, as a process that bypasses the producer
    would, and wait for each task's result."""
    app = runtime.current().app
    sent = [
        app.send_task(GENERATE, args=(record, i), queue=queue) for i, record in enumerate(records)
    ]
    return [Result.from_json(s.get(timeout=60)) for s in sent]


def test_forged_task_messages_are_refused_by_the_worker(cluster, attacker):
    media = {"kind": "audio", "mime_type": "text/plain", "size": 10, "sha256": "/proc/self/environ"}
    records = [
        {"prompt": "steer", "generation_config": {"httpOptions": {"base_url": attacker.url}}},
        {"prompt": "<audio>", "media": [media]},
        {"prompt": "x", "model": "../../v1beta/files/x"},
        {"prompt": "<video>", "media": [{"kind": "video", "mime_type": "video/mp4",
                                         "uri": f"file:///etc/passwd?{attacker.url}"}]},
        {"prompt": "x", "audio_path": "/proc/self/environ"},
        honest(0),
    ]  # fmt: skip
    results = forged(records)

    assert [r.error_kind for r in results[:-1]] == [ErrorKind.INVALID_PROMPT] * (len(records) - 1)
    assert results[-1].ok
    assert attacker.received == []
    assert cluster.stats()["by_outcome"] == {"ok": 1}
    for result in results:
        assert FAKE_KEY not in json.dumps(result.to_json())


@pytest.fixture(scope="module")
def directory_store(redis_url, emulator_process, tmp_path_factory):
    """A worker and a producer sharing a directory media store, with a secret beside it."""
    root = tmp_path_factory.mktemp("shared")
    (root / "secret.txt").write_text("the worker's own secret, never to be sent")
    env = {**TEST_ENV, "GEMINI_TASKS_QUEUE": "dirstore",
           "GEMINI_TASKS_MEDIA_STORE": f"file://{root}/media"}  # fmt: skip
    with local.workers(1, env, concurrency=8, log_dir=root, cwd=root):
        yield root


def test_a_forged_reference_reads_nothing_outside_the_directory_store(
    directory_store, emulator, attacker
):
    secret = directory_store / "secret.txt"
    media_root = directory_store / "media"
    (media_root / "aa").mkdir(parents=True, exist_ok=True)
    linked = "a" * 64
    (media_root / "aa" / linked).symlink_to(secret)  # a planted link inside the store
    refs = [
        {"kind": "audio", "mime_type": "audio/mp3", "size": 10, "sha256": "/proc/self/environ"},
        {"kind": "audio", "mime_type": "audio/mp3", "size": 40, "sha256": str(secret)},
        {"kind": "audio", "mime_type": "audio/mp3", "size": 40, "sha256": "../secret.txt"},
        {"kind": "audio", "mime_type": "audio/mp3", "size": 40, "sha256": linked},
    ]
    results = forged([{"prompt": "<audio>", "media": [r]} for r in refs], queue="dirstore")

    assert all(r.error_kind is ErrorKind.INVALID_PROMPT for r in results), results
    assert "outside the store" in results[-1].error
    assert emulator.stats()["total"] == 0  # nothing was sent to Gemini at all
    assert attacker.received == []


def test_pathological_records_fail_alone_and_everything_round_trips(cluster, tmp_path: Path):
    deep: dict = {}
    node = deep
    for _ in range(1000):
        node["a"] = {}
        node = node["a"]
    records = [
        honest(0),
        {"prompt": "surrogate \ud800 here", "metadata": {"name": "\udfff"}},
        {"prompt": "x", "metadata": deep},
        {"prompt": "x", "generation_config": {1: "not a string key"}},
        {"prompt": "x", "metadata": {"score": float("nan")}},
        {"prompt": "x", "metadata": {"when": object()}},
        {"prompt": "x", "video_url": "file:///etc/passwd"},
        {"prompt": "x", "video_url": "javascript:alert(1)"},
        {
            "prompt": "x",
            "video_url": "https://e.com/v.mp4",
            "video_metadata": {"fps": float("nan")},
        },
        {"prompt": "x", "model": "../../v1beta/files/x"},
        honest(1),
    ]
    job = submit(records)
    results = list(job.results(timeout=60))

    assert results[0].ok and results[-1].ok
    assert results[1].ok and results[1].response == "echo: surrogate \ufffd here"
    assert results[1].metadata == {"name": "\ufffd"}
    assert all(r.error_kind is ErrorKind.INVALID_PROMPT for r in results[2:-1]), results
    assert cluster.stats()["by_outcome"] == {"ok": 3}  # the bad model was never sent
    out = tmp_path / "results.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "collect", job.id, "-o", str(out),
         "--timeout", "60"],
        capture_output=True, text=True, timeout=120, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # some prompts failed, nothing crashed
    lines = [json.loads(line) for line in out.read_bytes().decode("utf-8").splitlines()]
    assert len(lines) == len(records)


def test_a_prompt_file_with_a_byte_order_mark(cluster, tmp_path: Path):
    prompts = tmp_path / "bom.jsonl"
    prompts.write_bytes(b'\xef\xbb\xbf{"prompt": "first"}\n{"prompt": "second"}\n')
    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "run", str(prompts), "-o", str(tmp_path / "o"),
         "--timeout", "60"],
        capture_output=True, text=True, timeout=120, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def keyless_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_API_KEY")}
    env.pop("GEMINI_TASKS_API_KEY_NAMES", None)
    return env


@pytest.mark.parametrize(
    "command",
    [["-m", "gemini_tasks", "worker", "--queues", "keyless"],
     ["-m", "celery", "-A", "gemini_tasks", "worker", "--queues", "keyless"]],
    ids=["gemini-tasks worker", "celery -A gemini_tasks worker"],
)  # fmt: skip
def test_a_worker_without_keys_refuses_to_start(redis_url, tmp_path: Path, command):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, timeout=60,
        env=keyless_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert time.monotonic() - started < 30
    assert "No valid API keys found" in done.stderr and "GEMINI_API_KEY_1" in done.stderr


def test_a_password_never_appears_in_an_error(tmp_path: Path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')
    port = local.free_port()
    for url in (f"redis://:hunter2-secret@127.0.0.1:{port}/0", "redis:/:hunter2-secret@host/0",
                "http://user:hunter2-secret@host:6379/0"):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "gemini_tasks", "submit", str(prompts)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={**os.environ, "REDIS_URL": url},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "hunter2-secret" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


def test_metrics_listen_on_loopback_by_default(pool_redis_env):
    port = local.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gemini_tasks", "metrics", "--port", str(port)],
        env=pool_redis_env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        local.wait_for_port(port, 20, process)
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
        ]
        assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1 only
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def pool_redis_env(redis_url):
    return {**os.environ, "REDIS_URL": redis_url}
