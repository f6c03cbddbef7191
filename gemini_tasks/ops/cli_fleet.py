"""`gemini-tasks` commands for the fleet: workers, the emulator, the key pool, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gemini_tasks import runtime
from gemini_tasks.keys import load_keys
from gemini_tasks.limits import Limits, LimitTable
from gemini_tasks.ops import metrics as metrics_module
from gemini_tasks.ops.output import stderr
from gemini_tasks.pool import KeyState, KeyStatus, operator_pool


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
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


@click.command()
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


@click.group(invoke_without_command=True)
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
    rt = runtime.current().impatient()
    status = operator_pool(rt).status(model or rt.settings.model)
    if as_json:
        click.echo(json.dumps({s.key_id: s.seed_view() for s in status.keys}, indent=2))
        return
    if not status.keys:
        stderr.print("No keys registered yet: a worker registers its keys when it starts.")
        return
    console = Console()  # lines wrap at the terminal's width
    console.print(_keys_table(status.keys, wide))
    state = status.model
    notes = []
    if state.outage_seconds_left:
        notes.append(
            f"{state.model}: Gemini is failing; calls resume in {state.outage_seconds_left:.0f}s"
        )
    if state.capacity_seconds_left:
        notes.append(
            f"{state.model}: short of capacity; waiting {state.capacity_seconds_left:.0f}s"
        )
    notes += [f"{k.key_id}: {k.status.value}: {k.reason}" for k in status.keys if k.reason]
    for note in notes:
        console.print(Text(note))


# Status names as the narrow table shows them, to fit 80 columns.
_SHORT = {KeyStatus.TEMPORARILY_EXHAUSTED: "TEMP_EXHAUSTED"}


def _keys_table(states: list[KeyState], wide: bool) -> Table:
    """Every key, in 80 columns unless `wide` (labels, counters and tokens too)."""
    if wide:
        table = Table("key id", "label", "project", "status", "left s", "in flight", "ok", "429",
                      "exhausted", "requests", "errors", "tokens")  # fmt: skip
    else:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("key id", no_wrap=True)
        table.add_column("project", max_width=16, no_wrap=True, overflow="ellipsis")
        table.add_column("status", no_wrap=True)
        for name in ("left s", "busy", "ok", "429"):
            table.add_column(name, justify="right", no_wrap=True)
    for s in states:
        status = s.status.value if wide else _SHORT.get(s.status, s.status.value)
        row = [s.key_id, s.project, status, f"{s.seconds_left:.0f}", str(s.in_flight),
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


@click.command()
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 0.0.0.0 exposes the metrics to the network, unauthenticated.",
)
@click.option("--port", type=int, default=9808, show_default=True)
@click.option(
    "--model", default=None, help="The model whose keys to show. [default: GEMINI_TASKS_MODEL]"
)
@click.option("--jobs", type=click.IntRange(min=0), default=20, show_default=True,
              help="Show this many of the most recent jobs.")  # fmt: skip
def metrics(address: str, port: int, model: str | None, jobs: int) -> None:
    """Serve the cluster's metrics for Prometheus at /metrics: keys, jobs, queues.

    \b
    Example:
      gemini-tasks metrics --port 9808 &
      curl -s localhost:9808/metrics | grep gemini_tasks_usable_keys
    """
    rt = runtime.current().impatient()
    metrics_module.serve(rt, model or rt.settings.model, port, address, jobs)
