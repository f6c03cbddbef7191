"""Flower, run the way operators run it, watching a batch through its HTTP API."""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from gemini_tasks.ops import local
from gemini_tasks.producer import submit
from tests.conftest import FAKE_KEY

pytestmark = pytest.mark.integration

AUTH = "operator:fake-flower-password"


@pytest.fixture(scope="module")
def flower(worker_processes, run_dir):
    port = local.free_port()
    command = [sys.executable, "-m", "celery", "-A", "gemini_tasks", "flower",
               f"--port={port}", "--address=127.0.0.1", f"--basic-auth={AUTH}"]  # fmt: skip
    with (run_dir / "flower.log").open("wb") as log:
        process = subprocess.Popen(command, env=os.environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        local.wait_for_port(port, 30, process)
        time.sleep(2)  # Flower subscribes to the workers' events after it listens
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def get(url: str, auth: str | None = AUTH) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_flower_shows_the_batch_without_secrets_or_media(flower, cluster):
    video = os.urandom(4096)
    records = [{"prompt": f"flower {i}", "metadata": {"i": i}} for i in range(5)]
    records.append({"prompt": "a clip: <video>", "video_bytes": video})
    job = submit(records)
    assert all(r.ok for r in job.results(timeout=60))

    deadline = time.monotonic() + 30
    while True:
        status, body = get(f"{flower}/api/tasks?limit=1000")
        tasks = json.loads(body) if status == 200 else {}
        ours = {tid: t for tid, t in tasks.items() if tid.startswith(job.id)}
        if len(ours) == 6 and all(t["state"] == "SUCCESS" for t in ours.values()):
            break
        assert time.monotonic() < deadline, f"Flower saw {len(ours)} of 6 tasks: {status}"
        time.sleep(0.5)

    for task in ours.values():
        assert task["name"] == "gemini_tasks.generate"
        assert "prompt #" in task["args"]
    media_task = ours[job.task_id(5)]
    assert "video video/mp4 " in media_task["args"]  # a short reference to the staged video
    seen = json.dumps(ours)
    assert FAKE_KEY not in seen
    assert base64.b64encode(video).decode()[:40] not in seen and video.hex()[:40] not in seen


def test_flower_refuses_requests_without_credentials(flower):
    assert get(f"{flower}/api/tasks", auth=None)[0] == 401
    assert get(f"{flower}/api/tasks", auth="operator:wrong")[0] == 401
