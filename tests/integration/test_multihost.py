"""A small cluster across machines: a Redis host, a Gemini host, two worker hosts and a
producer host, each a network namespace with its own address and its own private /tmp.

The workers are started as the README's "Running workers on several machines" says (keys
in `.env`, `REDIS_URL` with a password, `gemini-tasks worker -n ...`), from the installed
package when the suite runs on the wheel; the producer's media file exists only on its own
disk, so it can reach the workers only through the media store.
"""

import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.hosts import Hosts

pytestmark = pytest.mark.integration

PASSWORD = "fake-redis-password-for-hosts"
KEY = "fake-key-multihost-0001"
PROMPTS = 24
PRODUCER = """
import hashlib, json, os, sys
from gemini_tasks.producer import submit
video = "/tmp/lecture.mp4"
with open(video, "wb") as f:
    f.write(os.urandom(50_000))
digest = hashlib.sha256(open(video, "rb").read()).hexdigest()[:16]
# One answered prompt first: the pool lends a key that never succeeded to one call at a time.
[warm] = submit([{"prompt": "warm up"}]).results(timeout=240)
assert warm.ok, warm.error
job = submit({"prompt": f"Part {i}: <video>", "video_path": video} for i in range(int(sys.argv[1])))
results = [r.to_json() for r in job.results(timeout=240)]
print(json.dumps({"digest": digest, "results": results}))
"""


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _clean_env(**extra: str) -> dict[str, str]:
    """A machine's own environment: nothing of the test's Redis, keys or emulator."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    return {**keep, "PATH": f"{Path(sys.executable).parent}:{keep.get('PATH', '/usr/bin:/bin')}",
            **extra}  # fmt: skip


def _emulator(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, method="GET" if body is None else "POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _wait(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


@pytest.fixture
def hosts(tmp_path_factory):
    reason = Hosts.available()
    if reason:
        pytest.skip(f"several machines need network namespaces here: {reason}")
    # Outside /tmp: every host mounts a /tmp of its own.
    workdir = Path("/var/tmp") / f"gemini-tasks-hosts-{os.getpid()}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    machines = Hosts(["redis-host", "gemini-host", "worker-1", "worker-2", "producer"], workdir)
    try:
        machines.start()
        yield machines
    finally:
        machines.stop()
        for log in workdir.glob("*/*.log"):
            print(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}")
        shutil.rmtree(workdir, ignore_errors=True)


def _listening(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def test_a_cluster_across_machines_answers_every_prompt(hosts: Hosts):
    base = hosts.workdir
    for name in hosts.namespaces:
        (base / name).mkdir()
    redis_ip, gemini_ip = hosts.addresses["redis-host"], hosts.addresses["gemini-host"]
    hosts.run(
        "redis-host",
        [shutil.which("redis-server") or "redis-server", "--bind", redis_ip, "--port", "6379",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"],
        _clean_env(), base / "redis-host", base / "redis-host" / "redis.log",
    )  # fmt: skip
    hosts.run(
        "gemini-host",
        [_bin("gemini-tasks"), "emulator", "--host", gemini_ip, "--port", "8765",
         "--key", f"{KEY}@project-hosts"],
        _clean_env(), base / "gemini-host", base / "gemini-host" / "emulator.log",
    )  # fmt: skip
    _wait(lambda: _listening(redis_ip, 6379) and _listening(gemini_ip, 8765), "Redis and Gemini")
    emulator = f"http://{gemini_ip}:8765"
    # Every call of the job waits until both workers hold theirs: each machine provably
    # takes work.
    _emulator(emulator, "/_emulator/config", {"rules": [{"answer": "hold", "contains": "Part"}]})

    redis_url = f"redis://:{PASSWORD}@redis-host:6379/0"
    for i, worker in enumerate(["worker-1", "worker-2"], start=1):
        workdir = base / worker
        (workdir / ".env").write_text(
            f"GEMINI_API_KEY_1={KEY}\nGOOGLE_GEMINI_BASE_URL=http://gemini-host:8765\n"
        )
        hosts.run(
            worker,
            [_bin("gemini-tasks"), "worker", "--concurrency", "4", "-n", f"w{i}@%h"],
            _clean_env(REDIS_URL=redis_url), workdir, workdir / "worker.log",
        )  # fmt: skip

    producer_dir = base / "producer"
    (producer_dir / "produce.py").write_text(PRODUCER)
    producer = hosts.run(
        "producer",
        [sys.executable, "produce.py", str(PROMPTS)],
        _clean_env(REDIS_URL=redis_url), producer_dir, producer_dir / "out.json",
    )  # fmt: skip
    held = lambda: _emulator(emulator, "/_emulator/stats")["held"] == 8  # noqa: E731
    _wait(held, "both workers' 4 threads holding a call", timeout=120)
    _emulator(emulator, "/_emulator/config", {"rules": []})
    _emulator(emulator, "/_emulator/release", {})
    assert producer.wait(240) == 0, (producer_dir / "out.json").read_text()

    output = json.loads((producer_dir / "out.json").read_text().splitlines()[-1])
    results = output["results"]
    assert [r["index"] for r in results] == list(range(PROMPTS))
    for i, result in enumerate(results):
        assert result["error"] is None, result["error"]
        assert (
            result["response"] == f"echo: Part {i}: | [inline video/mp4 sha256:{output['digest']}]"
        )
    assert {r["worker"].split("@")[0] for r in results} == {"w1", "w2"}
    # The producer's file was never on a worker's disk: it travelled through Redis.
    assert not (base / "worker-1" / "lecture.mp4").exists()
