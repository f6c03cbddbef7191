"""Steering a job while it runs, from the Python API and the CLI: cancel, pause and resume,
retry what failed, a budget that stops the job, an interrupted submit finished later, and a
status and job list that tell the truth. Real workers, real Redis, the emulator.

A job is steered while the emulator holds its calls, so what is in flight when the test
acts is known, not a matter of timing.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gemini_tasks.errors import ErrorKind
from gemini_tasks.producer import Job, JobIncomplete, JobOptions, JobRunning, submit
from gemini_tasks.worker.context import STATE_EVERY

pytestmark = pytest.mark.integration


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gemini_tasks", *args],
        capture_output=True, text=True, timeout=timeout, env=os.environ,
    )  # fmt: skip


def _wait(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)
    return found


def _settled(job: Job, emulator) -> bool:
    """Whether every prompt of the job without a result is a call the emulator holds."""
    status = job.status()
    return status.counts.done + emulator.stats()["held"] == status.total


def _calls_per_prompt(emulator) -> Counter:
    return Counter(c["request_sha256"] for c in emulator.stats(calls=True)["calls"])


def test_cancel_sends_nothing_more_and_ends_every_unsent_prompt(cluster):
    # Prompts waiting for Gemini's capacity (a 429 naming no quota holds their model back),
    # and many more than the workers' threads, whose calls the emulator holds.
    cluster.configure(
        rules=[{"answer": "429_capacity", "contains": "capacity"}, {"answer": "hold"}]
    )
    waiting = [{"prompt": f"capacity {i}", "model": "gemini-2.5-flash-lite"} for i in range(3)]
    job = submit(waiting + [{"prompt": f"held {i}"} for i in range(400)])
    cluster.wait_until(
        lambda s: s["held"] >= 20 and s["by_outcome"].get("429_capacity", 0) >= 3,
        "calls held and prompts waiting for capacity",
    )

    done = _cli("cancel", job.id)
    assert done.returncode == 0, done.stderr
    cancelled_at = time.time()
    _wait(lambda: _settled(job, cluster), "every unsent prompt ended")
    held = cluster.stats()["held"]
    cluster.release()
    results = list(job.results(timeout=60))

    kinds = Counter(r.error_kind for r in results)
    assert kinds == {None: held, ErrorKind.CANCELLED: 403 - held}
    assert all(r.error_kind is ErrorKind.CANCELLED for r in results[:3])
    calls = cluster.stats(calls=True)["calls"]
    late = [c for c in calls if c["started"] > cancelled_at + 5]
    assert not late, f"calls started more than 5 s after the cancel: {late}"
    assert Counter(c["outcome"] for c in calls)["ok"] == held  # those in flight finished
    assert job.state() == "cancelled"
    after = sum(c["started"] > cancelled_at for c in calls)
    print(f"cancel: {held} calls in flight finished, {403 - held} prompts cancelled, "
          f"{after} calls started after the cancel")  # fmt: skip


def test_pause_holds_the_job_and_resume_sends_each_prompt_once(cluster):
    cluster.configure(rules=[{"answer": "hold"}])
    job = submit([{"prompt": f"paused {i}"} for i in range(300)])
    cluster.wait_until(lambda s: s["held"] >= 20, "calls held")

    job.pause()
    assert job.state() == "paused"
    # A worker reads a job's state at most STATE_EVERY seconds late: by then every prompt
    # fed before the pause is a held call, parked, or a message the workers fetched ahead of
    # their threads (the feeder's PREFETCH) that no thread is free to take.
    time.sleep(STATE_EVERY + 1)
    queue = job.info().queue

    def settled() -> bool:
        ahead = job.rt.broker.llen(queue)
        return job.status().in_flight == cluster.stats()["held"] + ahead

    _wait(settled, "the job's prompts held or waiting in the broker")
    held = cluster.stats()["held"]
    cluster.configure(rules=[])
    cluster.release()
    _wait(lambda: job.status().counts.done == held, "the held calls recorded")
    _wait(lambda: job.status().in_flight == 0, "the prompts fetched ahead parked")
    time.sleep(2)  # long enough for any feeder to have fed a paused job's prompt (a bug)
    status = job.status()
    assert status.state == "paused" and status.in_flight == 0
    assert status.counts.done == held and status.waiting == 300 - held
    assert cluster.stats()["total"] == held

    assert _cli("resume", job.id).returncode == 0
    results = list(job.results(timeout=120))
    assert [r.error for r in results] == [None] * 300
    assert set(_calls_per_prompt(cluster).values()) == {1}  # no prompt was sent twice
    assert job.state() == "finished"


def test_retry_sends_again_only_what_failed_by_kind(cluster, tmp_path: Path):
    cluster.configure(
        rules=[
            {"answer": "block_prompt", "contains": "unsafe", "reason": "SAFETY"},
            {"answer": "empty_stop", "contains": "empty"},
        ]
    )
    records = [{"prompt": f"fine {i}"} for i in range(40)]
    records[5] = {"prompt": "unsafe 5"}
    records[17] = {"prompt": "unsafe 17"}
    records[30] = {"prompt": "empty 30"}
    job = submit(records)
    first = list(job.results(timeout=60))
    assert {r.index: r.error_kind for r in first if r.error} == {
        5: ErrorKind.BLOCKED,
        17: ErrorKind.BLOCKED,
        30: ErrorKind.NO_CONTENT,
    }
    status = json.loads(_cli("status", job.id, "--json").stdout)
    assert status["state"] == "finished" and status["failed"] == 3
    assert status["failed_by_kind"] == {"blocked": 2, "no_content": 1}

    cluster.configure(rules=[])
    done = _cli("retry", job.id, "--kind", "blocked")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "results.jsonl"
    done = _cli("collect", job.id, "-o", str(out), "--timeout", "60")
    assert done.returncode == 3, done.stderr  # index 30 still failed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(40))
    assert [i for i, line in enumerate(lines) if line["error"]] == [30]
    assert lines[5]["response"] == "echo: unsafe 5"

    assert job.retry() == 1
    assert [r.error for r in job.results(timeout=60)] == [None] * 40
    sent = _calls_per_prompt(cluster)
    # What succeeded was never sent again; an empty answer is tried more than once.
    assert sorted(sent.values()) == [1] * 37 + [2, 2, first[30].attempts + 1]
    print(f"retry: {sum(sent.values())} calls for 40 prompts, 3 failed then answered")


def test_a_budget_stops_the_job_and_a_raised_one_lets_it_finish(cluster):
    records = [
        {"prompt": f"budgeted {i}", "generation_config": {"max_output_tokens": 20}}
        for i in range(200)
    ]
    budget = 0.001
    job = submit(records, options=JobOptions(budget=budget))
    results = list(job.results(timeout=120))

    spent = sum(r.cost for r in results)
    ok = [r for r in results if r.ok]
    stopped = [r for r in results if r.error_kind is ErrorKind.BUDGET]
    assert ok and stopped and len(ok) + len(stopped) == 200
    assert spent <= budget  # every call's estimate was reserved before it was sent
    assert job.state() == "over_budget"
    assert cluster.stats()["total"] == len(ok)  # a stopped prompt never reached Gemini
    print(f"budget: {len(ok)} prompts cost ${spent:.6f} of ${budget}, {len(stopped)} stopped")

    assert _cli("budget", job.id, "1").returncode == 0
    again = list(job.results(timeout=120))
    assert [r.error for r in again] == [None] * 200
    assert job.state() == "finished"
    assert sum(r.cost for r in again) <= 1


def test_an_interrupted_submit_is_incomplete_and_resumes_where_it_stopped(cluster, tmp_path: Path):
    records = [{"prompt": f"resumed {i}"} for i in range(100)]
    created: list[Job] = []

    def interrupted():
        yield from records[:30]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        submit(interrupted(), on_created=created.append)
    [job] = created
    with pytest.raises(JobIncomplete, match="submit --resume"):
        list(job.results(timeout=60))
    status = json.loads(_cli("status", job.id, "--json").stdout)
    assert status["state"] == "incomplete" and status["total"] == status["done"] == 30

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = _cli("submit", "--resume", job.id, str(prompts))
    assert done.returncode == 0, done.stderr
    results = list(job.results(timeout=60))
    assert [r.response for r in results] == [f"echo: resumed {i}" for i in range(100)]
    assert set(_calls_per_prompt(cluster).values()) == {1}


def test_jobs_lists_recent_jobs_and_forget_refuses_a_running_one(cluster):
    finished = submit([{"prompt": "listed"}])
    list(finished.results(timeout=60))
    cluster.configure(rules=[{"answer": "hold"}])
    running = submit([{"prompt": f"running {i}"} for i in range(5)])
    cluster.wait_until(lambda s: s["held"] == 5, "the running job's calls held")

    listed = {j["job_id"]: j for j in json.loads(_cli("jobs", "--json").stdout)}
    assert listed[finished.id]["state"] == "finished" and listed[finished.id]["done"] == 1
    assert listed[running.id]["state"] == "running" and listed[running.id]["done"] == 0
    wide = {**os.environ, "COLUMNS": "200"}
    table = subprocess.run([sys.executable, "-m", "gemini_tasks", "jobs"], capture_output=True,
                           text=True, timeout=60, env=wide).stdout  # fmt: skip
    rows = [line.split() for line in table.splitlines() if line.strip().startswith(running.id[:12])]
    assert len(rows) == 1, table
    [row] = rows
    assert row[2:] == [*row[2:4], "normal", "1", "0/5", "0", "0", "5", "0.0000"], table
    with pytest.raises(JobRunning):
        running.forget()
    done = _cli("forget", running.id)
    assert done.returncode == 1 and "cancel it first" in done.stderr

    cluster.release()
    assert _cli("forget", "--cancel", running.id).returncode == 0
    assert running.id not in {j["job_id"] for j in json.loads(_cli("jobs", "--json").stdout)}


def test_an_interrupted_local_run_is_finished_by_run_resume(tmp_path: Path):
    """Local mode keeps its Redis data in GEMINI_TASKS_LOCAL_DIR: Ctrl-C, wherever it lands
    (submitting, collecting, or after the end), leaves a job `run --resume` finishes."""
    cluster = ("REDIS_URL", "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cluster)}
    env["GEMINI_TASKS_LOCAL_DIR"] = str(tmp_path / "local")
    prompts, out, log = tmp_path / "prompts.jsonl", tmp_path / "out.jsonl", tmp_path / "err"
    prompts.write_text("".join(json.dumps({"prompt": f"local {i}"}) + "\n" for i in range(1000)))
    command = [sys.executable, "-m", "gemini_tasks", "run", str(prompts), "-o", str(out)]

    with log.open("w") as stderr:
        first = subprocess.Popen(command, env=env, stderr=stderr, cwd=tmp_path)
        found = _wait(lambda: re.search(r"job id: (\w+)", log.read_text()), "the job id")
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) in (0, 130), log.read_text()
    job_id = found.group(1)
    if first.returncode == 130:
        assert f"run --resume {job_id} {prompts}" in log.read_text()

    done = subprocess.run([*command[:4], "--resume", job_id, *command[4:]], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "local") in done.stderr  # says where its data is
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["response"] for line in lines] == [f"echo: local {i}" for i in range(1000)]


def test_a_dry_run_counts_each_media_file_once_and_sends_nothing(cluster, tmp_path: Path):
    audio = []
    for seconds in (10, 60):
        path = tmp_path / f"{seconds}s.mp3"
        path.write_bytes(f"EMULATED-MEDIA seconds={seconds}\n".encode() + b"\0" * 1000)
        audio.append(str(path))
    records = [{"prompt": f"text only {i}"} for i in range(50)]
    records += [{"prompt": "summarise", "audio_path": audio[i % 2]} for i in range(10)]
    records.append({"prompt": "capped", "generation_config": {"max_output_tokens": 7}})
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in records) + "{broken\n")

    done = _cli("submit", "--dry-run", "--json", "--answer-tokens", "100", str(prompts))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["prompts"] == 62 and found["invalid"] == 1
    assert found["media_counted"] == 2 and found["media_estimated"] == 0
    assert found["output_tokens"] == 60 * 100 + 7
    assert found["input_tokens"] >= 5 * (10 + 60) * 32  # the emulator counts audio by length
    assert found["cost_usd"] > 0
    stats = cluster.stats(calls=True)
    assert stats["by_outcome"] == {"count": 2}  # two countTokens calls; nothing generated
    assert all(c["request_sha256"] is None for c in stats["calls"])
