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
from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY, TEST_ENV
from tests.integration.conftest import own_worker, poll

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
        url = f"http://127.0.0.1:{port}"
        # Flower subscribes to the workers' events after it listens: it has once their
        # heartbeats show on its workers page (which only events fill).
        poll(lambda: get(f"{url}/workers?json=1"),
             lambda got: got[0] == 200 and bool(json.loads(got[1])["data"]),
             "the workers' events in Flower")  # fmt: skip
        yield url
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


WAIT_QUEUE = "flower-wait"
WAIT_ENV = {
    **TEST_ENV,
    "GEMINI_API_KEY_2": OTHER_PROJECT_KEY,
    "GEMINI_TASKS_QUEUE": WAIT_QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "flower_wait",
    # Each key usable once a second, and a wait longer than 0.3 s waits in Redis: most
    # prompts of a batch are parked and fed again, some several times.
    "GEMINI_TASKS_KEY_COOLDOWN_SECONDS": "1",
    "GEMINI_TASKS_SHORT_KEY_WAIT": "0.3",
}


@pytest.fixture(scope="module")
def waiting_worker(redis_url, emulator_process, run_dir):
    with own_worker(WAIT_ENV, "flowerwait", 6, run_dir) as rt:
        yield rt, run_dir / "flowerwait.log"


def _worker_counts(flower: str, ready) -> dict:
    """The waiting worker's counters in Flower, once `ready(counters)` holds."""
    deadline = time.monotonic() + 30
    while True:
        status, body = get(f"{flower}/workers?json=1")
        workers = json.loads(body)["data"] if status == 200 else []
        ours = [w for w in workers if w["hostname"].startswith("flowerwait@")]
        if ours and ready(ours[0]):
            return ours[0]
        assert time.monotonic() < deadline, ours
        time.sleep(0.5)


def _browser(url: str, *args: str) -> str:
    """What a real (headless) Chromium shows at `url`, scripts run: its DOM."""
    command = ["chromium-headless-shell", "--no-sandbox", "--disable-gpu",
               "--virtual-time-budget=5000", *args, url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_flower_counts_each_prompt_once_however_long_it_waits_and_failures_fail(
    flower, waiting_worker, emulator, run_dir
):
    rt, log = waiting_worker
    emulator.configure(rules=[{"answer": "block_prompt", "contains": "unsafe", "reason": "SAFETY"}])
    records = [{"prompt": f"waits {i}"} for i in range(12)]
    records += [{"prompt": f"unsafe {i}"} for i in range(3)]
    records.append({"metadata": {"no": "prompt"}})  # refused at submit
    before = _worker_counts(flower, lambda c: c.get("task-succeeded", 0) >= 1)  # the warm-up
    job = submit(records, queue=WAIT_QUEUE, rt=rt)
    results = list(job.results(timeout=120))
    assert [r.ok for r in results] == [True] * 12 + [False] * 4
    assert "waits in Redis: waiting" in log.read_text()  # prompts were parked and fed again

    def ended() -> dict:
        status, body = get(f"{flower}/api/tasks?limit=1000")
        tasks = json.loads(body) if status == 200 else {}
        return {tid: t for tid, t in tasks.items() if tid.startswith(job.id)}

    deadline = time.monotonic() + 30
    while len(ours := ended()) < 16 or any(
        t["state"] not in ("SUCCESS", "FAILURE") for t in ours.values()
    ):
        assert time.monotonic() < deadline, {t: v["state"] for t, v in ours.items()}
        time.sleep(0.5)

    states = {int(tid.rsplit("-", 1)[1]): t["state"] for tid, t in ours.items()}
    assert states == {i: "SUCCESS" if i < 12 else "FAILURE" for i in range(16)}
    assert "blocked" in ours[job.task_id(12)]["exception"]
    assert "refused at submit" in ours[job.task_id(15)]["args"]
    assert all("waits" not in t["kwargs"] or t["kwargs"].startswith(("{}", "(resumed"))
               for t in ours.values())  # fmt: skip

    # The worker's counters, as Flower's Workers page shows them: one task per prompt.
    def moved(counts: dict) -> dict:
        names = ("task-received", "task-succeeded", "task-failed", "task-retried")
        return {k: counts.get(k, 0) - before.get(k, 0) for k in names}

    after = _worker_counts(flower, lambda c: sum(list(moved(c).values())[1:3]) >= 16)
    moved = moved(after)
    assert moved["task-received"] == 16, moved
    assert (moved["task-succeeded"], moved["task-failed"]) == (12, 4), moved
    assert moved["task-retried"] >= 1, moved  # each wait in Redis, shown as RETRY

    # The pages, as an operator's browser shows them.
    signed_in = flower.replace("http://", f"http://{AUTH}@")
    page = _browser(f"{signed_in}/task/{job.task_id(12)}", "--dump-dom")
    assert "text-bg-danger" in page and ">FAILURE<" in page
    assert "PromptFailed" in page and "blocked:" in page  # the error kind, and why
    page = _browser(f"{signed_in}/workers", "--dump-dom")
    assert after["hostname"] in page
    shot = run_dir / "flower-workers.png"
    _browser(f"{signed_in}/workers", f"--screenshot={shot}", "--window-size=1400,900")
    assert shot.stat().st_size > 10_000


def test_flowers_broker_page_and_queue_lengths_work_with_the_broker(flower, waiting_worker):
    # Flower learns a worker's queues by asking the workers; one started after it is asked
    # on a refresh (each waits a second for replies: a late one comes in at the next).
    deadline = time.monotonic() + 60
    while True:
        assert get(f"{flower}/api/workers?refresh=1")[0] == 200
        status, body = get(f"{flower}/api/queues/length")
        assert status == 200, body
        lengths = {q["name"]: q["messages"] for q in json.loads(body)["active_queues"]}
        if {"gemini_tasks", WAIT_QUEUE} <= set(lengths):
            break
        assert time.monotonic() < deadline, lengths
        time.sleep(0.5)
    assert all(isinstance(n, int) for n in lengths.values())
    status, body = get(f"{flower}/broker")
    assert status == 200 and WAIT_QUEUE.encode() in body


def test_flower_refuses_requests_without_credentials(flower):
    assert get(f"{flower}/api/tasks", auth=None)[0] == 401
    assert get(f"{flower}/api/tasks", auth="operator:wrong")[0] == 401
