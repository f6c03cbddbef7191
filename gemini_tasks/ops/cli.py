"""The `gemini-tasks` command: run workers and the emulator, submit and collect jobs.

Exit codes: 0 every prompt succeeded; 1 the command could not do its work (Redis
unreachable, unknown job, timeout, bad setting); 2 usage error; 3 some prompts failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from gemini_tasks import runtime
from gemini_tasks import settings as settings_module
from gemini_tasks.errors import GeminiTasksError
from gemini_tasks.keys import load_keys
from gemini_tasks.limits import Limits, LimitTable
from gemini_tasks.ops import metrics as metrics_module
from gemini_tasks.ops.jsonl import count_records, read_records, write_results
from gemini_tasks.ops.local import embedded_cluster
from gemini_tasks.pool import KeyState, operator_pool
from gemini_tasks.producer import Job
from gemini_tasks.producer import submit as submit_records
from gemini_tasks.result import Result

EXIT_ERROR = 1
EXIT_PROMPTS_FAILED = 3

stderr = Console(stderr=True)


class _Group(click.Group):
    """Prints gemini_tasks' own errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeminiTasksError as exc:
            stderr.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(EXIT_ERROR)


@click.group(cls=_Group)
@click.version_option(package_name="gemini-tasks")
def main() -> None:
    """Run large batches of Gemini prompts on a fleet of Celery workers.

    \b
    Examples:
      gemini-tasks run prompts.jsonl -o results.jsonl   # local Redis + workers if no REDIS_URL
      gemini-tasks worker --concurrency 200             # on each worker machine
      gemini-tasks submit prompts.jsonl                 # prints the job (group) id
      gemini-tasks collect JOB_ID -o results.jsonl
    """


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Gemini calls in flight in this worker. [default: GEMINI_TASKS_CONCURRENCY]",
)
@click.option("--hostname", "-n", default=None, help="Celery node name, e.g. worker1@%h.")
@click.option("--loglevel", "-l", default=None, help="Log level. [default: GEMINI_TASKS_LOG_LEVEL]")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    concurrency: int | None,
    hostname: str | None,
    loglevel: str | None,
    celery_args: tuple[str, ...],
) -> None:
    """Start a worker with the project's defaults (a threads pool).

    Extra arguments go to `celery worker` unchanged. A worker without API keys refuses to
    start.

    \b
    Example:
      gemini-tasks worker --concurrency 200 -n gpu-box-1@%h
    """
    from gemini_tasks.celery import app

    settings = runtime.current().settings
    # Said here, at once and plainly; the worker's own start-up check covers `celery -A`.
    load_keys(settings.api_key_names or None, projects=settings.projects)
    argv = [
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency or settings.concurrency),
        "--queues",
        settings.queue,
        "--loglevel",
        loglevel or settings.log_level,
    ]
    if hostname:
        argv += ["--hostname", hostname]
    app.worker_main([*argv, *celery_args])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="SECRET[@PROJECT]",
    help="A key the emulator accepts, and its project (default: its own project).",
)
@click.option("--any-key", is_flag=True, help="Accept every key, each in its own project.")
@click.option("--rpm", type=int, default=0, help="Requests per minute per project and model.")
@click.option("--tpm", type=int, default=0, help="Input tokens per minute per project and model.")
@click.option("--rpd", type=int, default=0, help="Requests per day per project and model.")
@click.option("--latency", type=float, default=0.0, help="Seconds added to every call.")
@click.option("--latency-jitter", type=float, default=0.0, help="Up to this many seconds more.")
@click.option("--error-500-rate", type=float, default=0.0, help="Share of calls answered 500.")
@click.option("--error-503-rate", type=float, default=0.0, help="Share of calls answered 503.")
@click.option("--hang-rate", type=float, default=0.0, help="Share of calls that hang.")
@click.option("--hang-seconds", type=float, default=600.0, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed for the latency jitter.")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A JSON file of rules, quotas and revoked keys (what POST /_emulator/config takes).",
)
def emulator(
    host: str,
    port: int,
    keys: tuple[str, ...],
    any_key: bool,
    rpm: int,
    tpm: int,
    rpd: int,
    latency: float,
    latency_jitter: float,
    error_500_rate: float,
    error_503_rate: float,
    hang_rate: float,
    hang_seconds: float,
    seed: int | None,
    scenario: Path | None,
) -> None:
    """Serve the Gemini API emulator for offline runs and tests.

    \b
    Example:
      gemini-tasks emulator --port 8765 --key fake-key-1@proj-a --rpm 10
      GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8765 gemini-tasks worker
    """
    # Imported here: only this command needs the emulator (and aiohttp).
    from gemini_tasks.emulator import EmulatorConfig, serve
    from gemini_tasks.emulator.config import load_scenario
    from gemini_tasks.emulator.rules import rates

    key_projects = {}
    for i, spec in enumerate(keys):
        secret, _, project = spec.partition("@")
        key_projects[secret] = project or f"project-{i + 1}"
    config = EmulatorConfig(
        keys=key_projects,
        any_key=any_key,
        limits=LimitTable(None, Limits(rpm=rpm, tpm=tpm, rpd=rpd)),
        rules=rates(error_500_rate, error_503_rate, hang_rate, hang_seconds),
        latency=latency,
        latency_jitter=latency_jitter,
        seed=seed,
    )
    if scenario is not None:
        load_scenario(scenario, config)
    serve(config, host, port)


OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one JSON result per line, in input order. [default: print a table]",
)
TIMEOUT_OPTION = click.option(
    "--timeout", type=float, default=None, help="Give up after this many seconds."
)
QUEUE_OPTION = click.option(
    "--queue", default=None, help="Send to the workers of this queue. [default: GEMINI_TASKS_QUEUE]"
)


def _submit_file(path: Path, queue: str | None) -> Job:
    total = count_records(path)
    with _progress() as progress:
        bar = progress.add_task("submitting", total=total)
        job = submit_records(
            read_records(path),
            on_submitted=lambda n: progress.update(bar, completed=n),
            queue=queue,
        )
    return job


@main.command()
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"job_id", "total"} as JSON.')
@QUEUE_OPTION
def submit(prompts: Path, as_json: bool, queue: str | None) -> None:
    """Queue every prompt of a JSONL file and print the job (group) id.

    \b
    Example:
      JOB=$(gemini-tasks submit prompts.jsonl) && gemini-tasks collect "$JOB" -o out.jsonl
    """
    job = _submit_file(prompts, queue)
    click.echo(json.dumps({"job_id": job.id, "total": job.total}) if as_json else job.id)


def _collect(job: Job, output: Path | None, timeout: float | None, as_completed: bool) -> int:
    total = job.total
    failed = 0
    shown = []
    with ExitStack() as stack:
        out = stack.enter_context(output.open("w", encoding="utf-8")) if output else None
        progress = stack.enter_context(_progress())
        bar = progress.add_task("collecting", total=total)
        results = job.as_completed(timeout) if as_completed else job.results(timeout)
        if out is not None:
            results = write_results(results, out)
        for result in results:
            failed += not result.ok
            progress.advance(bar)
            if out is None:
                shown.append(result)
    if shown:
        _print_table(shown)
    stderr.print(
        f"{total - failed} of {total} prompts succeeded, {failed} failed"
        + (f"; results in {output}" if output else ""),
        highlight=False,
    )
    return EXIT_PROMPTS_FAILED if failed else 0


def _print_table(results: list[Result]) -> None:
    table = Table("#", "metadata", "response or error", "key", show_lines=False)
    for r in results:
        # Text cells, not markup: responses may contain [brackets] of their own.
        text = Text((r.response or "")[:120]) if r.ok else Text((r.error or "")[:120], style="red")
        table.add_row(str(r.index), Text(json.dumps(r.metadata)), text, r.key_id or "")
    Console().print(table)


@main.command()
@click.argument("job_id")
@OUTPUT_OPTION
@TIMEOUT_OPTION
@click.option("--as-completed", is_flag=True, help="Write results as they finish, not in order.")
def collect(job_id: str, output: Path | None, timeout: float | None, as_completed: bool) -> None:
    """Wait for a job's results and write them in input order.

    \b
    Example:
      gemini-tasks collect 3f2c...e1 -o results.jsonl --timeout 3600
    """
    sys.exit(_collect(Job.restore(job_id), output, timeout, as_completed))


@contextmanager
def _cluster_for_run(workers: int, concurrency: int | None) -> Iterator[None]:
    """Local mode: with no REDIS_URL, an embedded Redis and local workers for this run."""
    settings = settings_module.load()
    if settings.redis_url_configured:
        yield
        return
    with embedded_cluster(
        workers,
        concurrency or settings.concurrency,
        emulator_without_keys=True,
        announce=lambda message: stderr.print(message, highlight=False),
    ):
        yield


@main.command()
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@OUTPUT_OPTION
@TIMEOUT_OPTION
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Local worker processes (local mode only).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Threads per local worker (local mode only).",
)
@QUEUE_OPTION
def run(
    prompts: Path,
    output: Path | None,
    timeout: float | None,
    workers: int,
    concurrency: int | None,
    queue: str | None,
) -> None:
    """Submit a JSONL file and collect its results: `submit` and `collect` in one.

    With no REDIS_URL configured it runs locally: it starts redis-server, worker
    processes and (with no API keys) the emulator, and stops them all at the end.

    \b
    Example:
      gemini-tasks run producer/examples/prompts.jsonl -o results.jsonl
    """
    with _cluster_for_run(workers, concurrency):
        job = _submit_file(prompts, queue)
        stderr.print(f"job id: {job.id}", highlight=False)
        code = _collect(job, output, timeout, as_completed=False)
    sys.exit(code)


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """How many of a job's prompts have finished.

    \b
    Example:
      gemini-tasks status 3f2c...e1 --json
    """
    status = Job.restore(job_id).status()
    done, total, state = status.counts.done, status.total, status.state
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "state": state, "done": done, "total": total}))
    else:
        click.echo(f"{job_id}: {state}, {done} of {total} done")


@main.command()
@click.argument("job_id")
def forget(job_id: str) -> None:
    """Delete a job's results, and the media no other job uses (with its uploaded files).

    \b
    Example:
      gemini-tasks forget 3f2c...e1
    """
    Job.restore(job_id).forget()
    click.echo(f"forgot {job_id}")


@main.group(invoke_without_command=True)
@click.option(
    "--model", default=None, help="The model whose state to show. [default: GEMINI_TASKS_MODEL]"
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--wide", is_flag=True, help="Every column: labels, counters and tokens.")
@click.pass_context
def keys(ctx: click.Context, model: str | None, as_json: bool, wide: bool) -> None:
    """Show every API key's state in the cluster (by key id; secrets never leave workers).

    \b
    Examples:
      gemini-tasks keys
      gemini-tasks keys --model gemini-2.5-pro --json
      gemini-tasks keys reset key-1a2b3c4d5e6f
    """
    if ctx.invoked_subcommand:
        return
    rt = runtime.current()
    status = operator_pool(rt).status(model or rt.settings.model)
    if as_json:
        click.echo(json.dumps({s.key_id: s.seed_view() for s in status.keys}, indent=2))
        return
    if not status.keys:
        stderr.print("No keys registered yet: a worker registers its keys when it starts.")
        return
    Console().print(_keys_table(status.keys, wide))
    state = status.model
    if state.outage_seconds_left:
        click.echo(
            f"{state.model}: Gemini is failing; calls resume in {state.outage_seconds_left:.0f}s"
        )
    if state.capacity_seconds_left:
        click.echo(f"{state.model}: short of capacity; waiting {state.capacity_seconds_left:.0f}s")
    for key in status.keys:
        if key.reason:
            click.echo(f"{key.key_id}: {key.status.value}: {key.reason}")


def _keys_table(states: list[KeyState], wide: bool) -> Table:
    columns = ["key id", "project", "status", "left s", "in flight", "ok", "429"]
    if wide:
        columns[1:1] = ["label"]
        columns += ["exhausted", "requests", "errors", "tokens"]
    table = Table(*columns)
    for s in states:
        row = [s.key_id, s.project, s.status.value, f"{s.seconds_left:.0f}", str(s.in_flight),
               str(s.successes), str(s.quota_errors)]  # fmt: skip
        if wide:
            row[1:1] = [s.label]
            row += [str(s.exhausted_count), str(s.requests), str(s.failures), str(s.tokens)]
        table.add_row(*row)
    return table


@keys.command("reset")
@click.argument("key_id")
def keys_reset(key_id: str) -> None:
    """Return a key to AVAILABLE (after replacing a revoked key, or a quota increase).

    \b
    Example:
      gemini-tasks keys reset key-1a2b3c4d5e6f
    """
    if not operator_pool().reset(key_id):
        raise click.BadParameter(f"no key {key_id!r} is registered", param_hint="KEY_ID")
    click.echo(f"{key_id} is AVAILABLE")


@main.command()
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 0.0.0.0 exposes the metrics to the network, unauthenticated.",
)
@click.option("--port", type=int, default=9808, show_default=True)
@click.option(
    "--model", default=None, help="The model whose state to show. [default: GEMINI_TASKS_MODEL]"
)
def metrics(address: str, port: int, model: str | None) -> None:
    """Serve the key pool's metrics for Prometheus at /metrics.

    \b
    Example:
      gemini-tasks metrics --port 9808 &
      curl -s localhost:9808/metrics | grep gemini_tasks_usable_keys
    """
    rt = runtime.current()
    metrics_module.serve(operator_pool(rt), model or rt.settings.model, port, address)
