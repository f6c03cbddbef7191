"""What `gemini-tasks` shows while a job runs and when it ends: a progress bar with done,
failed, rate and ETA that says when the job waits for quota, and a summary.

The bar moves with each result the collector receives; a thread reads the job's counts
every second or so (cheap: counters, not a scan), so the figures stay true while nothing
arrives, and looks at the key pool when nothing has moved for a while.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from gemini_tasks.pool import operator_pool
from gemini_tasks.prices import price_of
from gemini_tasks.producer import Job, JobStatus
from gemini_tasks.scheduler.outcomes import Counts
from gemini_tasks.worker.caching import JobCaches, job_caches

LOOK_EVERY = 1.0
# Nothing finished for this long: say why, if it is the quota.
STILL_AFTER = 5.0


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def waiting_for(job: Job, status: JobStatus) -> str:
    """Why nothing moves, when it is the key pool: "waiting for quota, next key usable in
    N s" (or for Gemini's capacity, or an outage)."""
    if status.state != "running":
        return status.state
    pool = operator_pool(job.rt).status(status.info.model or job.rt.settings.model)
    model = pool.model
    if model.outage_seconds_left:
        return f"Gemini failing: calls resume in {model.outage_seconds_left:.0f}s"
    if model.capacity_seconds_left:
        return f"Gemini short of capacity: waiting {model.capacity_seconds_left:.0f}s"
    wait = pool.seconds_until_usable()
    if wait == float("inf"):
        return "no usable API key: every key has failed"
    if wait > 0:
        return f"waiting for quota, next key usable in {wait:.0f}s"
    return ""


class JobProgress:
    """A progress display for collecting `job`, and its closing summary."""

    def __init__(self, job: Job, console: Console, what: str = "collecting"):
        self.job, self.console = job, console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]}/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=False,
        )
        self.bar: TaskID | None = None
        self.what = what
        self.stopping = threading.Event()
        self.status: JobStatus | None = None
        self.moved = time.monotonic()

    def __enter__(self) -> JobProgress:
        self.progress.start()
        self.bar = self.progress.add_task(
            self.what, total=self.job.total, failed=0, rate="-", eta="-", note=""
        )
        threading.Thread(target=self._watch, name="gemini-tasks-progress", daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self.progress.stop()

    def advance(self) -> None:
        self.moved = time.monotonic()
        if self.bar is not None:
            self.progress.advance(self.bar)

    def _watch(self) -> None:
        while not self.stopping.wait(LOOK_EVERY):
            try:
                self.refresh()
            except Exception:  # Redis away a moment: the next look tries again
                continue

    def refresh(self) -> None:
        status = self.job.status()
        self.status = status
        note = ""
        if time.monotonic() - self.moved > STILL_AFTER:
            note = waiting_for(self.job, status)
        if self.bar is not None:
            self.progress.update(
                self.bar,
                total=status.total,
                failed=status.counts.failed,
                rate=f"{status.rate:.1f}" if status.rate else "-",
                eta=eta_text(status.eta),
                note=note,
            )


def cost_text(counts: Counts, storage: float) -> str:
    """What the job cost so far, its calls and its caches' storage, against its budget and
    what the same calls would have cost online and uncached."""
    total = counts.cost + storage
    text = f"${total:.4f}" + (f" (${storage:.6f} of it cache storage)" if storage else "")
    if counts.budget:
        text += f" of a ${counts.budget:.2f} budget"
    if counts.online_cost > total * 1.001:
        saved = 1 - total / counts.online_cost
        text += f" (${counts.online_cost:.4f} online and uncached: {saved:.0%} saved)"
    return text


def _cache_lines(caches: JobCaches) -> list[str]:
    lines = [f"context caches created: {caches.created}"] if caches.created else []
    for tokens, least in caches.small:
        lines.append(f"warning: a shared prefix of {tokens} tokens is under the model's minimum "
                     f"of {least} for a context cache; its prompts were sent uncached")  # fmt: skip
    return lines


def summary(job: Job, output: str | None = None) -> str:
    """The end-of-run summary: successes, failures by kind, 429s met, tokens and cost."""
    status = job.status()
    counts = status.counts
    lines = [f"{counts.succeeded} of {status.total} prompts succeeded, {counts.failed} failed"]
    if counts.by_kind:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.by_kind.items()))
        lines.append(f"failures: {kinds}")
    lines.append(f"calls answered 429: {counts.rate_limited}")
    if counts.reused:
        lines.append(f"answered by an identical request (--dedupe, no call): {counts.reused}")
    cached = f" ({counts.cached_tokens} from context caches)" if counts.cached_tokens else ""
    lines.append(
        f"tokens: {counts.prompt_tokens} in{cached}, {counts.output_tokens} out, "
        f"{counts.thought_tokens} thinking"
    )
    caches = job_caches(job.rt.redis, job.rt.keys, job.id, job.rt.settings.prices)
    lines.extend(_cache_lines(caches))
    model = status.info.model or job.rt.settings.model
    priced = price_of(job.rt.settings.prices, model) is not None
    cost = cost_text(counts, caches.storage) if priced else f"unknown (no price for {model})"
    lines.append(f"estimated cost: {cost}")
    if output:
        lines.append(f"results in {output}")
    return "\n".join(lines)
