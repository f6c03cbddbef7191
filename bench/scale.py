"""Scale: 100,000 prompts from a JSONL file, submitted and collected by job id.

Prints the producer's peak memory (at 10,000 and at 100,000 prompts: flat means the same),
the submit rate against Celery's own `group(...).apply_async()` of the same tasks, and the
Redis memory each stored result takes once the batch is done.

    python bench/scale.py --prompts 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness import cluster


def child(kind: str, path: Path, limit: int) -> None:
    """Run one submission in this process and report its time and peak memory."""
    from itertools import islice

    from celery import group

    from gemini_tasks import runtime
    from gemini_tasks.app import GENERATE
    from gemini_tasks.ops.prompt_files import read_records
    from gemini_tasks.producer import submit

    start = time.perf_counter()
    records = islice(read_records(path), limit)
    if kind == "ours":
        job_id = submit(records, queue="scale").id
    else:
        app = runtime.current().app
        # Records without media: the task argument is the record's fields as given.
        signatures = [
            app.signature(GENERATE, args=({"prompt": r.prompt, "metadata": r.metadata}, i))
            for i, r in enumerate(records)
        ]
        job_id = group(signatures).apply_async(queue="plain").id
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"job_id": job_id, "seconds": elapsed, "peak_mib": peak}))


def run_child(kind: str, path: Path, limit: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--file", str(path), "--prompts", str(limit)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--child", choices=["ours", "celery"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.prompts)
        return
    n = args.prompts
    with cluster(env={"GEMINI_TASKS_QUEUE": "scale"}) as running:
        path = running.run_dir / "prompts.jsonl"
        path.write_text("".join(
            json.dumps({"prompt": f"scale prompt {i}", "metadata": {"i": i}}) + "\n"
            for i in range(n)
        ))  # fmt: skip
        client = running.redis()
        before = client.info("memory")["used_memory"]
        small = run_child("ours", path, n // 10)
        plain = run_child("celery", path, n)
        client.delete("plain")
        ours = run_child("ours", path, n)
        running.start_workers(2, 100)
        from gemini_tasks.producer import Job

        start = time.perf_counter()
        for job_id in (small["job_id"], ours["job_id"]):
            results = list(Job.restore(job_id).results(timeout=3600))
            assert all(r.ok for r in results)
        collect = time.perf_counter() - start
        running.stop_workers()
        after = client.info("memory")["used_memory"]
    stored = n + n // 10
    print(f"{n} prompts from a JSONL file, 2 workers x 100 threads")
    print(f"producer peak memory, {n // 10} prompts:   {small['peak_mib']:7.1f} MiB")
    print(f"producer peak memory, {n} prompts:  {ours['peak_mib']:7.1f} MiB")
    print(f"plain Celery group, {n} prompts:    {plain['peak_mib']:7.1f} MiB")
    print(f"submit rate, gemini_tasks:   {n / ours['seconds']:8.0f} prompts/s")
    print(f"submit rate, Celery group:   {n / plain['seconds']:8.0f} prompts/s")
    print(f"gemini_tasks / Celery group: {plain['seconds'] / ours['seconds']:8.2f}")
    print(f"collected {stored} results in {collect:.0f} s")
    print(f"Redis memory per stored result: {(after - before) / stored:.0f} bytes")


if __name__ == "__main__":
    main()
