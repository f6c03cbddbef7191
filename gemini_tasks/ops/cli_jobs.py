"""`gemini-tasks` commands for jobs: submit, run, collect, status, jobs, and steering a
running job (cancel, pause, resume, retry, priority, budget, forget)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gemini_tasks import runtime
from gemini_tasks.errors import ErrorKind, JobNotFound
from gemini_tasks.ops.dry_run import DryRun
from gemini_tasks.ops.dry_run import dry_run as count_dry_run
from gemini_tasks.ops.local import embedded_cluster
from gemini_tasks.ops.output import (
    EXIT_INTERRUPTED,
    EXIT_PROMPTS_FAILED,
    handle_interrupts,
    on_interrupt,
    stderr,
)
from gemini_tasks.ops.progress import JobProgress, cost_text, eta_text, summary, waiting_for
from gemini_tasks.ops.prompt_files import (
    STDIN,
    FileFormat,
    Read,
    WrongFormat,
    count_records,
    read_records,
    write_results,
)
from gemini_tasks.producer import Job, JobOptions, JobStatus, Mode, Priority
from gemini_tasks.producer import submit as submit_records
from gemini_tasks.result import Result
from gemini_tasks.worker.caching import job_caches

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one JSON result per line, in input order. [default: print a table]",
)
TIMEOUT_OPTION = click.option(
    "--timeout", type=float, default=None, help="Give up after this many seconds."
)


def prompt_file(command: F) -> F:
    """The prompt file argument (`-`: standard input) and how to read it (`PromptSource`)."""
    for option in reversed(
        [
            click.argument("prompts", type=click.Path(exists=True, dir_okay=False,
                                                      allow_dash=True)),
            click.option("--format", "fmt", type=click.Choice([f.value for f in FileFormat]),
                         default=None, help="How to read PROMPTS. [default: csv for .csv "
                         "and .csv.gz, else jsonl; gzip is recognised by its content]"),
            click.option("--prompt-column", default="prompt", show_default=True,
                         help="CSV: the column holding the prompt; the others go to metadata."),
        ]
    ):  # fmt: skip
        command = option(command)
    return command


@dataclass(frozen=True)
class PromptSource:
    """Where a command's prompts come from, as its arguments say."""

    path: str
    fmt: FileFormat | None
    prompt_column: str

    @classmethod
    def of(cls, prompts: str, fmt: str | None, prompt_column: str) -> PromptSource:
        return cls(prompts, FileFormat(fmt) if fmt else None, prompt_column)

    def records(self) -> Iterator[Read]:
        try:
            return read_records(self.path, self.fmt, self.prompt_column)
        except WrongFormat as exc:
            raise click.UsageError(str(exc)) from None

    def count(self) -> int | None:
        return count_records(self.path, self.fmt, self.prompt_column)

    def __str__(self) -> str:
        return self.path if self.path == STDIN else shlex.quote(self.path)


def job_options(command: F) -> F:
    """The options that say how a job runs on the fleet (`JobOptions`)."""
    for option in reversed(
        [
            click.option("--queue", default=None,
                         help="Send to the workers of this queue. [default: GEMINI_TASKS_QUEUE]"),
            click.option("--priority", type=click.Choice([p.value for p in Priority]),
                         default="normal", show_default=True,
                         help="Higher levels go ahead of lower ones across the cluster."),
            click.option("--weight", type=click.FloatRange(min=0.01), default=1.0,
                         show_default=True, help="Its share beside jobs of its priority."),
            click.option("--max-concurrency", type=click.IntRange(min=0), default=0,
                         help="At most this many of its prompts at once (0: no cap)."),
            click.option("--max-rpm", type=click.IntRange(min=0), default=0,
                         help="At most this many of its prompts started a minute (0: no cap)."),
            click.option("--budget", type=click.FloatRange(min=0), default=0.0,
                         help="Stop sending once its cost reaches this many USD (0: none)."),
            click.option("--dedupe", is_flag=True,
                         help="Send identical requests once, and reuse the answers of "
                              "earlier --dedupe jobs (sampling makes copies differ: opt in)."),
            click.option("--mode", type=click.Choice([m.value for m in Mode]),
                         default="online", show_default=True,
                         help="flex: every call on Gemini's Flex tier, at half the price; "
                              "answers take minutes, and Flex may shed calls under load. "
                              "batch: the prompts go in Batch Mode batches, at half the "
                              "price; answers within 24 hours."),
            click.option("--fallback", type=click.Choice(["online"]), default=None,
                         help="With --mode flex: a prompt Flex keeps shedding runs on the "
                              "standard tier after --fallback-after seconds. With --mode "
                              "batch: once a batch fails, expires or passes --batch-deadline, "
                              "the job goes on online."),
            click.option("--fallback-after", type=click.FloatRange(min=1), default=900.0,
                         show_default=True, help="Seconds of shedding before --fallback."),
            click.option("--batch-deadline", type=click.FloatRange(min=1), default=86400.0,
                         show_default=True,
                         help="With --mode batch: a batch still pending after this many "
                              "seconds is cancelled and its prompts sent again."),
            click.option("--cache", is_flag=True,
                         help="Prompts sharing a prefix (system instruction, tools, leading "
                              "media) name one Gemini context cache per project instead of "
                              "sending it again: those tokens cost the cached price."),
            click.option("--resume", "resume", default=None, metavar="JOB_ID",
                         help="Finish an interrupted submit of this job, from where it stopped."),
        ]
    ):  # fmt: skip
        command = option(command)
    return command


def _options(queue: str | None, priority: str, weight: float, max_concurrency: int,
             max_rpm: int, budget: float, dedupe: bool, mode: str, fallback: str | None,
             fallback_after: float, batch_deadline: float, cache: bool) -> JobOptions:  # fmt: skip
    if fallback and mode == Mode.ONLINE.value:
        raise click.UsageError("--fallback is for --mode flex or --mode batch")
    return JobOptions(queue, Priority(priority), weight, max_concurrency, max_rpm, budget, dedupe,
                      Mode(mode), fallback_after if fallback else 0.0,
                      batch_deadline, cache)  # fmt: skip


def _submit_file(
    source: PromptSource,
    options: JobOptions,
    resume: str | None,
    quiet: bool,
    command: str = "submit",
) -> Job:
    """Submit `source`'s prompts, saying the job id before the first prompt is queued;
    `command` is the one that resumes it."""
    created: list[Job] = []

    def announce(job: Job) -> None:
        created.append(job)
        if not quiet:
            click.echo(job.id)
        stderr.print(f"job id: {job.id}", highlight=False)

    records = source.records()  # a file in the wrong format stops here, before any job
    try:
        with _bar("submitting", source.count()) as advance:
            return submit_records(records, options=options, resume=resume,
                                  on_created=announce, on_submitted=advance)  # fmt: skip
    except (KeyboardInterrupt, WrongFormat) as exc:
        stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        if created:
            job = created[0]
            stderr.print(
                f"{stopped}: job {job.id} is incomplete after {job.total} prompts; finish it "
                f"with `gemini-tasks {command} --resume {job.id} {source}`",
                highlight=False,
            )
        else:
            stderr.print(stopped, highlight=False)
        sys.exit(EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1)


@contextmanager
def _bar(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), console=stderr) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.update(task, completed=n)


@click.command()
@prompt_file
@click.option("--json", "as_json", is_flag=True, help='Print {"job_id", "total"} as JSON.')
@click.option("--dry-run", is_flag=True,
              help="Count tokens and estimate the cost; queue nothing.")  # fmt: skip
@click.option("--answer-tokens", type=click.IntRange(min=0), default=500, show_default=True,
              help="With --dry-run: tokens per answer if max_output_tokens is unset.")  # fmt: skip
@job_options
def submit(
    prompts: str, fmt: str | None, prompt_column: str, as_json: bool, dry_run: bool,
    answer_tokens: int, resume: str | None, **options: Any,
) -> None:  # fmt: skip
    """Queue every prompt of a file (JSONL or CSV, maybe gzipped; `-`: standard input)
    as a job, and print the job id (first).

    \b
    Examples:
      JOB=$(gemini-tasks submit prompts.jsonl) && gemini-tasks collect "$JOB" -o out.jsonl
      gemini-tasks submit big.jsonl --priority low --max-rpm 100 --budget 20
      gemini-tasks submit --resume 3f2c...e1 big.jsonl   # after an interrupted submit
      gemini-tasks submit --dry-run big.jsonl            # tokens and cost, nothing sent
      gemini-tasks submit questions.csv --prompt-column question
      zcat part-*.jsonl.gz | gemini-tasks submit -
    """
    source = PromptSource.of(prompts, fmt, prompt_column)
    if dry_run:
        _print_dry_run(count_dry_run(source.records(), runtime.current().settings,
                                     answer_tokens), as_json)  # fmt: skip
        return
    job = _submit_file(source, _options(**options), resume, quiet=as_json)
    if as_json:
        click.echo(json.dumps({"job_id": job.id, "total": job.total}))


def _print_dry_run(found: DryRun, as_json: bool) -> None:
    view = {
        "prompts": found.prompts, "invalid": found.refused,
        "input_tokens": found.input_tokens, "output_tokens": found.output_tokens,
        "media_counted": found.media_counted, "media_estimated": found.media_estimated,
        "cost_usd": round(found.cost, 6), "unpriced_models": sorted(found.unpriced),
    }  # fmt: skip
    if as_json:
        click.echo(json.dumps(view))
        return
    lines = [
        f"{found.prompts} prompts ({found.refused} invalid), nothing sent",
        f"input: {found.input_tokens:,} tokens (media: {found.media_counted} files counted "
        f"by Gemini, {found.media_estimated} estimated)",
        f"output: {found.output_tokens:,} tokens at most",
        f"estimated cost: up to ${found.cost:.4f}",
    ]
    if found.unpriced:
        lines.append(f"no price for {', '.join(sorted(found.unpriced))}: set GEMINI_TASKS_PRICES")
    click.echo("\n".join(lines))


def _collect(
    job: Job, output: Path | None, timeout: float | None, as_completed: bool, again: str = ""
) -> int:
    """Write or show the job's results and its summary; the exit code. `again` is the
    command that goes on after an interrupt (default: `collect`)."""
    failed = 0
    shown: list[Result] = []
    target = f" -o {output}" if output else ""
    hint = f"interrupted; collect it with `gemini-tasks {again or f'collect {job.id}'}{target}`"
    on_interrupt(hint)
    try:
        with ExitStack() as stack:
            out = stack.enter_context(output.open("w", encoding="utf-8")) if output else None
            progress = stack.enter_context(JobProgress(job, stderr))
            results = job.as_completed(timeout) if as_completed else job.results(timeout)
            if out is not None:
                results = write_results(results, out)
            for result in results:
                failed += not result.ok
                progress.advance()
                if out is None:
                    shown.append(result)
    except KeyboardInterrupt:
        stderr.print(hint, highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    if shown:
        _print_table(shown)
    stderr.print(summary(job, str(output) if output else None), highlight=False)
    return EXIT_PROMPTS_FAILED if failed else 0


def _print_table(results: list[Result]) -> None:
    table = Table("#", "metadata", "response or error", "key", show_lines=False)
    for r in results:
        # Text cells, not markup: responses may contain [brackets] of their own.
        text = Text((r.response or "")[:120]) if r.ok else Text((r.error or "")[:120], style="red")
        table.add_row(str(r.index), Text(json.dumps(r.metadata)), text, r.key_id or "")
    Console().print(table)


@click.command()
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
    handle_interrupts()
    sys.exit(_collect(Job.restore(job_id), output, timeout, as_completed))


@contextmanager
def _cluster_for_run(workers: int, concurrency: int | None) -> Iterator[None]:
    """Local mode: with no REDIS_URL, an embedded Redis and local workers for this run."""
    settings = runtime.current().settings
    if settings.redis_url_configured:
        handle_interrupts()  # nothing of its own to stop
        yield
        return
    with embedded_cluster(
        workers,
        concurrency or settings.concurrency,
        emulator_without_keys=True,
        announce=lambda message: stderr.print(message, highlight=False),
        data_dir=settings.local_dir,
    ):
        yield


@click.command()
@prompt_file
@OUTPUT_OPTION
@TIMEOUT_OPTION
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Local worker processes (local mode only).")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Threads per local worker (local mode only).")  # fmt: skip
@job_options
def run(
    prompts: str,
    fmt: str | None,
    prompt_column: str,
    output: Path | None,
    timeout: float | None,
    workers: int,
    concurrency: int | None,
    resume: str | None,
    **options: Any,
) -> None:
    """Submit a prompt file and collect its results: `submit` and `collect` in one.

    With no REDIS_URL configured it runs locally: it starts redis-server (its data kept in
    GEMINI_TASKS_LOCAL_DIR, so an interrupted run can be finished with --resume), worker
    processes and (with no API keys) the emulator, and stops them all at the end.

    \b
    Examples:
      gemini-tasks run producer/examples/prompts.jsonl -o results.jsonl
      gemini-tasks run --resume 3f2c...e1 prompts.jsonl -o results.jsonl  # after Ctrl-C
    """
    source = PromptSource.of(prompts, fmt, prompt_column)
    with _cluster_for_run(workers, concurrency):
        earlier = Job.restore(resume) if resume is not None else None
        if earlier is not None and earlier.state() != "incomplete":
            job = earlier  # every prompt was queued: only its results are left
        else:
            job = _submit_file(source, _options(**options), resume, quiet=True, command="run")
        again = f"run --resume {job.id} {source}"
        code = _collect(job, output, timeout, as_completed=False, again=again)
    sys.exit(code)


def _status_json(job: Job, status: JobStatus) -> dict[str, Any]:
    counts = status.counts
    caches = job_caches(job.rt.redis, job.rt.keys, job.id, job.rt.settings.prices)
    return {
        "job_id": status.id,
        "state": status.state,
        "created_at": status.info.created_at,
        "priority": status.info.priority.value,
        "mode": status.info.options.get("mode", Mode.ONLINE.value),
        "weight": status.info.weight,
        "total": status.total,
        "done": counts.done,
        "succeeded": counts.succeeded,
        "failed": counts.failed,
        "failed_by_kind": counts.by_kind,
        "waiting": status.waiting,
        "in_flight": status.in_flight,
        "batched": status.batched,
        "rate_limited": counts.rate_limited,
        "reused": counts.reused,
        "tokens": {"input": counts.prompt_tokens, "output": counts.output_tokens,
                   "thinking": counts.thought_tokens, "cached": counts.cached_tokens},
        "cost_usd": round(counts.cost + caches.storage, 6),
        "cache_storage_usd": round(caches.storage, 6),
        "online_cost_usd": round(counts.online_cost, 6),
        "budget_usd": counts.budget or None,
        "elapsed_seconds": round(time.time() - status.info.created_at, 1),
        "rate_per_second": round(status.rate, 3),
        "eta_seconds": None if status.eta is None else round(status.eta),
    }  # fmt: skip


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """A job's state, counts by outcome and error kind, tokens, cost, rate and ETA.

    \b
    Example:
      gemini-tasks status 3f2c...e1 --json
    """
    job = Job.restore(job_id)
    state = job.status()
    view = _status_json(job, state)
    view["waiting_for"] = waiting_for(job, state) if state.state == "running" else ""
    storage = float(view["cache_storage_usd"])
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(state.counts.by_kind.items())) or "none"
    lines = [
        f"{job_id}: {state.state}, {state.counts.done} of {state.total} done "
        f"({state.counts.succeeded} ok, {state.counts.failed} failed: {kinds})",
        f"waiting {state.waiting}, in flight {state.in_flight}, "
        + (f"in batches {state.batched}, " if state.batched else "")
        + f"{view['rate_per_second']}/s, ETA {eta_text(state.eta)}",
        f"tokens {state.counts.prompt_tokens} in"
        + (f" ({state.counts.cached_tokens} cached)" if state.counts.cached_tokens else "")
        + f" / {state.counts.output_tokens} out / "
        f"{state.counts.thought_tokens} thinking, cost {cost_text(state.counts, storage)}",
    ]
    if view["waiting_for"]:
        lines.append(view["waiting_for"])
    click.echo("\n".join(lines))


@click.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def jobs(limit: int, as_json: bool) -> None:
    """Recent jobs: state, when created, priority and share (weight), done, failed,
    cancelled, pending, cost.

    \b
    Example:
      gemini-tasks jobs --limit 5
    """
    views = []
    for job in Job.recent(limit):
        try:
            views.append(_status_json(job, job.status()))
        except JobNotFound:  # expired between listing and reading
            continue
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        stderr.print("No jobs yet.")
        return
    table = Table("job", "state", "created", "priority", "share", "done", "failed", "cancelled",
                  "pending", "cost $", box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for v in views:
        created = time.strftime("%m-%d %H:%M", time.localtime(v["created_at"]))
        cancelled = v["failed_by_kind"].get(ErrorKind.CANCELLED.value, 0)
        pending = max(0, v["total"] - v["done"])
        table.add_row(v["job_id"][:12], v["state"], created, v["priority"], f"{v['weight']:g}",
                      f"{v['done']}/{v['total']}", str(v["failed"]), str(cancelled),
                      str(pending), f"{v['cost_usd']:.4f}")  # fmt: skip
    Console().print(table)


@click.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Stop a job: no new call starts; every unsent prompt ends as `cancelled`.

    \b
    Example:
      gemini-tasks cancel 3f2c...e1
    """
    ended = Job.restore(job_id).cancel()
    click.echo(f"cancelled {job_id}: {ended} unsent prompt(s) ended; calls in flight finish")


@click.command()
@click.argument("job_id")
def pause(job_id: str) -> None:
    """Hold a job: none of its prompts is sent until `resume` (calls in flight finish).

    \b
    Example:
      gemini-tasks pause 3f2c...e1
    """
    Job.restore(job_id).pause()
    click.echo(f"paused {job_id}")


@click.command()
@click.argument("job_id")
def resume(job_id: str) -> None:
    """Release a paused job where it stopped.

    \b
    Example:
      gemini-tasks resume 3f2c...e1
    """
    Job.restore(job_id).resume()
    click.echo(f"resumed {job_id}")


@click.command()
@click.argument("job_id")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice([k.value for k in ErrorKind]),
    help="Only prompts that failed with this kind (repeatable). [default: all]",
)
def retry(job_id: str, kinds: tuple[str, ...]) -> None:
    """Run a job's failed prompts again, in place (same indexes, same job id).

    \b
    Example:
      gemini-tasks retry 3f2c...e1 --kind server --kind quota
    """
    again = Job.restore(job_id).retry([ErrorKind(k) for k in kinds] or None)
    click.echo(f"{again} prompt(s) of {job_id} run again")


@click.command()
@click.argument("job_id")
@click.argument("level", type=click.Choice([p.value for p in Priority]))
def priority(job_id: str, level: str) -> None:
    """Change a running job's priority (its queued prompts move with it).

    \b
    Example:
      gemini-tasks priority 3f2c...e1 high
    """
    Job.restore(job_id).set_priority(Priority(level))
    click.echo(f"{job_id} is now {level} priority")


@click.command()
@click.argument("job_id")
@click.argument("usd", type=click.FloatRange(min=0))
def budget(job_id: str, usd: float) -> None:
    """Set or raise a job's budget; prompts the old one stopped run again.

    \b
    Example:
      gemini-tasks budget 3f2c...e1 25
    """
    Job.restore(job_id).set_budget(usd)
    click.echo(f"{job_id}: budget ${usd:.2f}")


@click.command()
@click.argument("job_id")
@click.option("--cancel", "force", is_flag=True, help="Cancel the job first if it is running.")
def forget(job_id: str, force: bool) -> None:
    """Delete a job's results, and the media no other job uses (with its uploaded files).

    \b
    Example:
      gemini-tasks forget 3f2c...e1
    """
    Job.restore(job_id).forget(force=force)
    click.echo(f"forgot {job_id}")
