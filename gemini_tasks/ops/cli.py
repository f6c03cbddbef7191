"""The `gemini-tasks` command: run workers and the emulator, submit, collect and steer jobs.

Exit codes: 0 every prompt succeeded; 1 the command could not do its work (Redis
unreachable, unknown job, timeout, bad setting); 2 usage error; 3 some prompts failed;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from redis import RedisError

from gemini_tasks.errors import GeminiTasksError
from gemini_tasks.ops import cli_fleet, cli_jobs
from gemini_tasks.ops.output import EXIT_ERROR, EXIT_INTERRUPTED, stderr


class _Group(click.Group):
    """Prints gemini_tasks' own errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeminiTasksError as exc:
            stderr.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(EXIT_ERROR)
        except RedisError as exc:  # an operator's command fails at once when Redis is away
            stderr.print(f"[red]error:[/red] Redis unavailable: {exc}", highlight=False)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            stderr.print("interrupted", highlight=False)
            sys.exit(EXIT_INTERRUPTED)


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
      gemini-tasks jobs                                 # recent jobs and their state
    """


for command in (
    cli_fleet.worker, cli_fleet.emulator, cli_fleet.keys, cli_fleet.metrics,
    cli_jobs.submit, cli_jobs.run, cli_jobs.collect, cli_jobs.status, cli_jobs.jobs,
    cli_jobs.cancel, cli_jobs.pause, cli_jobs.resume, cli_jobs.retry, cli_jobs.priority,
    cli_jobs.budget, cli_jobs.forget,
):  # fmt: skip
    main.add_command(command)
