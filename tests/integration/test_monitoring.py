"""Monitoring as operators run it: a real Prometheus (Debian's package) scraping
`gemini-tasks metrics` while a job runs, and every expression of the Grafana dashboard in the
repository asked of it; and the metrics and `keys` when Redis is away."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gemini_tasks.ops import local
from gemini_tasks.producer import JobOptions, submit
from tests.conftest import TEST_ENV
from tests.integration.conftest import own_worker

pytestmark = pytest.mark.integration

ROOT = Path(os.environ.get("SOURCE_CHECKOUT", Path(__file__).resolve().parents[2]))
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "gemini-tasks.json"


def _metrics_server(env: dict, run_dir: Path, name: str) -> tuple[subprocess.Popen, int]:
    port = local.free_port()
    command = [sys.executable, "-m", "gemini_tasks", "metrics", "--port", str(port)]
    with (run_dir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    local.wait_for_port(port, 30, process)
    return process, port


@pytest.fixture(scope="module")
def prometheus(cluster_metrics, run_dir):
    port = local.free_port()
    config = run_dir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: gemini-tasks\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{cluster_metrics}']}}]\n"
    )
    command = ["prometheus", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
               f"--storage.tsdb.path={run_dir / 'prometheus-data'}"]  # fmt: skip
    with (run_dir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        local.wait_for_port(port, 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        local.stop_process(process)


@pytest.fixture(scope="module")
def cluster_metrics(worker_processes, run_dir):
    process, port = _metrics_server({}, run_dir, "metrics")
    try:
        yield port
    finally:
        local.stop_process(process)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _query(prometheus: str, expr: str) -> list:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = _get(url)
    assert status == 200, (expr, body)
    return json.loads(body)["data"]["result"]


def _dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_prometheus_scrapes_a_running_job_and_every_dashboard_query_has_data(
    prometheus, cluster_metrics, emulator
):
    # A job that lasts several scrapes (about 8 s: 10 calls at a time, each taking 0.4 s);
    # some prompts blocked, some calls answered 429.
    emulator.configure(
        latency=0.4,
        rules=[
            {"answer": "block_prompt", "contains": "unsafe", "reason": "SAFETY"},
            {"answer": "429_capacity", "times": 3},
        ],
    )
    records = [{"prompt": f"unsafe {i}" if i % 10 == 0 else f"watched {i}"} for i in range(200)]
    job = submit(records, options=JobOptions(max_concurrency=10))

    def job_series() -> list:
        return _query(prometheus, f'gemini_tasks_job_in_flight{{job_id="{job.id}"}}')

    deadline = time.monotonic() + 60
    while not job_series():  # scraped while it runs
        assert time.monotonic() < deadline, "Prometheus never saw the job"
        time.sleep(0.5)
    results = list(job.results(timeout=120))
    assert sum(not r.ok for r in results) == 20

    done = f'gemini_tasks_prompts_total{{job_id="{job.id}"}}'
    deadline = time.monotonic() + 60
    while sum(float(s["value"][1]) for s in _query(prometheus, done)) < 200:
        assert time.monotonic() < deadline, _query(prometheus, done)
        time.sleep(0.5)
    outcomes = {s["metric"]["outcome"]: float(s["value"][1]) for s in _query(prometheus, done)}
    assert outcomes == {"ok": 180, "blocked": 20}

    for expr in _dashboard_expressions():
        deadline = time.monotonic() + 30
        while True:
            found = _query(prometheus, expr)
            values = [float(s["value"][1]) for s in found]
            if values and not any(math.isnan(v) for v in values):
                break
            assert time.monotonic() < deadline, f"no data for {expr!r}: {found}"
            time.sleep(1)


def test_metrics_name_the_job_and_its_latencies(cluster_metrics, cluster):
    job = submit([{"prompt": f"measured {i}"} for i in range(5)])
    assert all(r.ok for r in job.results(timeout=60))
    status, body = _get(f"http://127.0.0.1:{cluster_metrics}/metrics")
    assert status == 200
    text = body.decode()
    assert (
        f'gemini_tasks_prompts_total{{job_id="{job.id}",model="gemini-2.5-flash",outcome="ok"}} 5.0'
        in text
    )
    assert f'gemini_tasks_prompt_seconds_count{{job_id="{job.id}"}} 5.0' in text
    assert f'gemini_tasks_api_seconds_bucket{{job_id="{job.id}",le="+Inf"}} 5.0' in text
    assert (
        f'gemini_tasks_job_state{{job_id="{job.id}",priority="normal",state="finished"}} 1.0'
        in text
    )
    assert 'gemini_tasks_broker_queue_length{queue="gemini_tasks"}' in text


def test_with_redis_away_metrics_answer_503_and_keys_fail_within_seconds(run_dir):
    away = {"REDIS_URL": f"redis://127.0.0.1:{local.free_port()}/0"}  # nothing listens
    process, port = _metrics_server(away, run_dir, "metrics-away")
    try:
        started = time.monotonic()
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 503 and b"Redis unavailable" in body
        # Bounds far above what it takes (well under a second) and far below the half minute
        # a patient client spends reconnecting: a loaded machine cannot fail them.
        print(f"scrape answered 503 in {time.monotonic() - started:.2f}s")
    finally:
        local.stop_process(process)

    started = time.monotonic()
    env = {**os.environ, **TEST_ENV, **away}
    done = subprocess.run([sys.executable, "-m", "gemini_tasks", "keys"], capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Redis unavailable" in done.stderr and "Traceback" not in done.stderr
    took = time.monotonic() - started
    print(f"keys failed in {took:.2f}s, the interpreter's start included")
    assert took < 20


WATCH_ENV = {**TEST_ENV, "GEMINI_TASKS_QUEUE": "watch", "GEMINI_TASKS_KEY_PREFIX": "watch"}


@pytest.fixture(scope="module")
def watched_worker(redis_url, emulator_process, run_dir):
    with own_worker(WATCH_ENV, "watch", 10, run_dir) as rt:
        yield rt


def _drain(stream, into: bytearray) -> None:
    while chunk := os.read(stream.fileno(), 65536):
        into.extend(chunk)


def test_progress_says_when_a_job_waits_for_quota_and_ctrl_c_stops_at_once(
    watched_worker, emulator
):
    # One request a minute for the key's project: after the first, the job waits for quota.
    emulator.configure(limits={"rpm": 1})
    job = submit([{"prompt": f"slow {i}"} for i in range(6)], queue="watch", rt=watched_worker)
    env = {**os.environ, **WATCH_ENV, "FORCE_COLOR": "1", "COLUMNS": "160"}
    command = [sys.executable, "-m", "gemini_tasks", "collect", job.id]
    collect = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Read its stderr all along: a pipe nobody drains would block the live display, and
    # with it the interrupt.
    seen = bytearray()
    reader = threading.Thread(target=_drain, args=(collect.stderr, seen), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while b"waiting for quota, next key usable in" not in seen:
            assert time.monotonic() < deadline, bytes(seen[-2000:])
            time.sleep(0.2)
        assert b"failed" in seen and b"ETA" in seen
        started = time.monotonic()
        collect.send_signal(signal.SIGINT)
        # It used to take 30 s; the bound is generous so that a loaded machine cannot fail it.
        assert collect.wait(timeout=20) == 130
        print(f"collect stopped {time.monotonic() - started:.2f}s after SIGINT")
        reader.join(10)
        assert f"collect it with `gemini-tasks collect {job.id}`".encode() in seen
    finally:
        collect.kill()
        job.cancel()

    env = {**os.environ, **WATCH_ENV, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "gemini_tasks", "keys"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TEMP_EXHAUSTED" in done.stdout and "Please retry in" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80, done.stdout
