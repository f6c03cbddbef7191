"""The pipeline end to end: producer -> Celery on Redis -> two workers -> emulator -> results."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gemini_tasks import runtime
from gemini_tasks.app import GENERATE
from gemini_tasks.errors import JobNotFound
from gemini_tasks.ops import local
from gemini_tasks.producer import Job, submit
from tests.conftest import TEST_ENV
from tests.integration.conftest import prove_keys

pytestmark = pytest.mark.integration


def _records(n: int, tag: str) -> list[dict]:
    return [{"prompt": f"{tag} prompt number {i}", "metadata": {"i": i}} for i in range(n)]


def test_500_prompts_through_two_workers_come_back_in_order(cluster):
    job = submit(_records(500, "bulk"))
    results = list(job.results(timeout=120))

    assert [r.index for r in results] == list(range(500))
    for i, result in enumerate(results):
        assert result.error is None, result.error
        assert result.response == f"echo: bulk prompt number {i}"
        assert result.metadata == {"i": i}
        assert result.usage["total_token_count"] > 0
        assert result.key_id and result.key_id.startswith("key-")
        assert result.attempts == 1
    assert len({r.worker for r in results}) == 2, "both worker processes should take tasks"
    assert cluster.stats()["by_outcome"] == {"ok": 500}


def test_group_collected_by_id_from_a_fresh_process(cluster, tmp_path: Path):
    job = submit(_records(20, "fresh"))
    out = tmp_path / "results.jsonl"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gemini_tasks",
            "collect",
            job.id,
            "-o",
            str(out),
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["response"] for line in lines] == [
        f"echo: fresh prompt number {i}" for i in range(20)
    ]
    assert "20 of 20 prompts succeeded" in done.stderr


def test_results_as_completed_returns_every_prompt_once(cluster):
    job = submit(_records(50, "completed"))
    results = list(Job.restore(job.id).as_completed(timeout=60))
    assert sorted(r.index for r in results) == list(range(50))


def test_restoring_an_unknown_job_fails_clearly(cluster):
    with pytest.raises(JobNotFound, match="no job with id 'nope'"):
        Job.restore("nope")


def test_server_errors_are_retried_to_success(cluster):
    # Two fifths of the prompts fail their first attempt, half of those their second too.
    cluster.configure(
        rules=[
            {"id": "first", "answer": "500", "attempts": [1, 1], "share": 0.4},
            {"id": "second", "answer": "503", "attempts": [2, 2], "share": 0.5},
        ]
    )
    results = list(submit(_records(60, "flaky")).results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert any(r.attempts > 1 for r in results)
    retried = [r for r in results if r.attempts > 1]
    assert all(r.timings["backoff_seconds"] > 0 for r in retried)
    outcomes = cluster.stats()["by_outcome"]
    assert outcomes["500"] == len(retried) and outcomes["503"] > 0
    assert outcomes["ok"] == 60


def test_persistent_server_error_ends_with_a_clear_error(cluster, run_dir: Path):
    cluster.configure(rules=[{"answer": "503"}])
    job = submit(_records(1, "doomed"))
    [result] = job.results(timeout=60)

    assert result.error_kind == "server"
    assert result.attempts == 5  # GEMINI_TASKS_MAX_RETRIES=4, plus the first attempt
    assert "persistent" in result.error.lower()
    assert "503 UNAVAILABLE" in result.error and "overloaded" in result.error
    # The worker's log lines about this prompt name its task and its job.
    logs = "".join(p.read_text(errors="replace") for p in run_dir.glob("worker-*.log"))
    assert f"[task {job.task_id(0)} job {job.id}]" in logs


def test_invalid_request_is_not_retried(cluster):
    records = [
        {"prompt": "too hot", "generation_config": {"temperature": 5}},
        {"prompt": "which model?", "model": "no-such-model"},
    ]
    hot, unknown_model = submit(records).results(timeout=60)

    assert hot.error_kind == "invalid_request" and hot.attempts == 1
    assert "400 INVALID_ARGUMENT" in hot.error and "temperature" in hot.error
    assert unknown_model.error_kind == "invalid_request" and unknown_model.attempts == 1
    assert "404 NOT_FOUND" in unknown_model.error
    assert cluster.stats()["by_outcome"] == {"400": 1, "404": 1}


@pytest.fixture(scope="module")
def impatient_worker(redis_url, emulator_process, tmp_path_factory):
    """A worker whose calls time out after a second, for calls that hang; its key proven,
    so that its calls go at once, whichever tests ran before."""
    env = {**TEST_ENV, "GEMINI_TASKS_QUEUE": "impatient", "GEMINI_TASKS_REQUEST_TIMEOUT": "1"}
    log_dir = tmp_path_factory.mktemp("impatient")
    with local.workers(1, env, concurrency=40, log_dir=log_dir, cwd=log_dir):
        prove_keys("impatient")
        yield "impatient"


def test_hanging_calls_time_out_and_are_retried(impatient_worker, emulator):
    emulator.configure(rules=[{"answer": "hang", "seconds": 30}])
    [result] = submit(_records(1, "hang"), queue=impatient_worker).results(timeout=60)

    assert result.attempts == 5
    assert "persistent" in result.error and "Timeout" in result.error


def test_a_hanging_gemini_times_out_and_workers_go_on(impatient_worker, emulator):
    # Every call hangs, long past the worker's 1 s timeout, until the test has seen twenty
    # of them (the emulator counts a call as it gives up on it): an outage.
    emulator.configure(rules=[{"answer": "hang", "seconds": 3}])
    job = submit(_records(30, "hang"), queue=impatient_worker)
    # Twenty timeouts in a row open the model's circuit: the calls stop until a probe finds
    # Gemini back, which it does once the test ends the outage.
    emulator.wait_until(lambda s: s["by_outcome"].get("hang", 0) >= 20, "20 calls hang")
    emulator.configure(rules=[])
    results = list(job.results(timeout=120))

    assert [r.response for r in results] == [f"echo: hang prompt number {i}" for i in range(30)]
    assert sum(r.attempts > 1 for r in results) >= 20
    # No thread stalled for good: a later batch goes straight through.
    emulator.configure(rules=[])
    after = list(submit(_records(40, "after"), queue=impatient_worker).results(timeout=60))
    assert all(r.ok and r.attempts == 1 for r in after)


def test_invalid_records_fail_alone(cluster):
    records = [
        {"prompt": "fine"},
        {"metadata": {"no": "prompt"}},
        {"prompt": "extra", "colour": "blue"},
        {"prompt": "bad config", "generation_config": {"temperature": "warm"}},
        {"prompt": "also fine"},
    ]
    results = list(submit(records).results(timeout=60))

    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "'prompt' is required" in results[1].error
    assert results[1].metadata == {"no": "prompt"}
    assert "unknown field(s) 'colour'" in results[2].error
    assert "generation_config" in results[3].error and "temperature" in results[3].error
    assert all(r.error_kind == "invalid_prompt" for r in results[1:4])


def test_cli_run_reports_bad_lines_by_number_and_finishes_the_rest(cluster, tmp_path: Path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "one"}\n'
        '{"prompt": "two"}\n'
        '{"prompt": "three", \n'
        '{"prompt": "four"}\n'
        '{"metadata": {}}\n'
        '{"prompt": "six"}\n'
    )
    out = tmp_path / "results.jsonl"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gemini_tasks",
            "run",
            str(prompts),
            "-o",
            str(out),
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )

    assert done.returncode == 3, done.stderr  # some prompts failed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    assert [line["response"] for line in lines if line["error"] is None] == [
        "echo: one",
        "echo: two",
        "echo: four",
        "echo: six",
    ]
    assert lines[2]["error"].startswith("invalid prompt: line 3: not valid JSON")
    assert lines[4]["error"].startswith("invalid prompt: line 5: 'prompt' is required")
    assert "4 of 6 prompts succeeded, 2 failed" in done.stderr


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gemini_tasks", *args], input=stdin,
                          capture_output=True, timeout=120, env=os.environ)  # fmt: skip


def test_cli_reads_csv_gzip_and_standard_input(cluster, tmp_path: Path):
    questions = tmp_path / "questions.csv"
    questions.write_text('id,question\n1,"Why, really?"\n2,How?\n')
    out = tmp_path / "csv.jsonl"
    done = _cli("run", str(questions), "--prompt-column", "question", "-o", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["response"], r["metadata"]) for r in lines] == [
        ("echo: Why, really?", {"id": "1"}),
        ("echo: How?", {"id": "2"}),
    ]

    piped = gzip.compress(b'{"prompt": "from a pipe"}\n{"prompt": "and more"}\n')
    done = _cli("submit", "-", stdin=piped)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.decode().split()[0]
    results = list(Job.restore(job_id).results(timeout=60))
    assert [r.response for r in results] == ["echo: from a pipe", "echo: and more"]


def test_a_prompt_file_in_the_wrong_format_is_refused_before_any_job(cluster, tmp_path: Path):
    before = {job.id for job in Job.recent(1000)}
    table = tmp_path / "table.jsonl"
    table.write_text("id,prompt\n" + "".join(f"{i},question {i}\n" for i in range(5000)))
    done = _cli("submit", str(table))
    assert done.returncode == 2, done.stderr  # a usage error: nothing was queued
    assert b"is not a JSONL prompt file: line 1: not valid JSON" in done.stderr
    assert b"--format csv" in done.stderr
    assert {job.id for job in Job.recent(1000)} == before


def test_redelivered_task_does_not_call_gemini_again(cluster):
    job = submit(_records(1, "once"))
    [first] = job.results(timeout=60)

    # The message as the scheduler sends it, again, as the broker redelivers it.
    again = runtime.current().app.send_task(
        GENERATE,
        args=({"prompt": "once prompt number 0"}, 0),
        task_id=job.task_id(0),
        group_id=job.id,
    )
    assert again.get(timeout=60) == first.to_json()
    assert cluster.stats()["by_outcome"] == {"ok": 1}


def test_no_secret_reaches_redis_results_or_logs(cluster, redis_url, run_dir: Path):
    from tests.conftest import FAKE_KEY

    cluster.configure(rules=[{"answer": "503", "share": 0.5, "attempts": [1, 2]}])
    list(submit(_records(30, "secret")).results(timeout=120))

    client = runtime.current().results
    for key in client.scan_iter(count=1000):
        assert FAKE_KEY.encode() not in key
        kind = client.type(key)
        if kind == b"string":
            values = [client.get(key)]
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        else:
            values = []
        assert not any(FAKE_KEY.encode() in (v or b"") for v in values), key
    for log in run_dir.glob("worker-*.log"):
        assert FAKE_KEY not in log.read_text(errors="replace"), log


def test_each_worker_process_holds_many_calls_in_flight(cluster):
    cluster.configure(rules=[{"answer": "hold"}])
    job = submit(_records(200, "slow"))
    # Two processes of 50 threads each: every thread of both waits on Gemini at once.
    cluster.wait_until(lambda s: s["held"] == 100, "100 calls held at once")
    cluster.configure(rules=[])
    cluster.release()

    assert all(r.ok for r in job.results(timeout=120))
    assert cluster.stats()["max_in_flight"] == 100


def test_plain_celery_worker_command_works(cluster, run_dir: Path):
    log = run_dir / "celery-worker.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "gemini_tasks",
        "worker",
        "--queues",
        "plain-celery",
        "--hostname",
        "plain@%h",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=run_dir, stdout=out, stderr=subprocess.STDOUT)
    try:
        sent = runtime.current().app.send_task(
            GENERATE, args=({"prompt": "via celery -A"}, 0), queue="plain-celery"
        )
        result = sent.get(timeout=60)
    finally:
        process.terminate()
        process.wait(30)
    assert result["response"] == "echo: via celery -A"
    assert result["worker"].startswith("plain@")
    assert "(thread)" in log.read_text()  # the project's threads pool is the default


def test_the_producer_example_runs(cluster):
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "producer/examples/submit_and_collect.py"),
         str(root / "producer/examples/prompts.jsonl")],
        capture_output=True, text=True, timeout=60, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("job id: ")
    assert lines[1].startswith("#0 {'task_id': 'task_1', 'category': 'geography'}")
    assert lines[1].endswith("echo: What is the capital of France?")
    assert len(lines) == 6
