"""One execution of one prompt: lease a key, call Gemini, apply the decision, repeat.

The rules live in `decide`; this loop only does what they say. Waiting is of two kinds:
for a key (cooldowns, quotas), up to `GEMINI_TASKS_MAX_KEY_WAIT` in all; and through an
outage or a capacity shortage of the model, up to `GEMINI_TASKS_OUTAGE_BUDGET`. Neither
counts against the task's time limit, which bounds the time spent calling and backing
off. A wait for a key longer than a worker thread should sleep (`GEMINI_TASKS_SHORT_KEY_WAIT`)
raises `Park`: the prompt goes back to its job's queue in Redis, with what its next run
goes on from. Each look at the pool also looks at the job: a cancelled job's prompt ends
at once, a paused one's is parked; and before each call the worker's fence says whether it
may still send one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.genai import types

from gemini_tasks import prices
from gemini_tasks.broker import REDIS_TROUBLE
from gemini_tasks.errors import (
    CapacityExhausted,
    ErrorKind,
    GeminiCallError,
    GeminiTasksError,
    InvalidPrompt,
    QuotaExceeded,
    TransientError,
)
from gemini_tasks.keys import redact
from gemini_tasks.media.refs import MediaRef
from gemini_tasks.pool import Lease, NoKeyYet
from gemini_tasks.records import StagedRecord, parse_staged
from gemini_tasks.result import Result, metadata_of
from gemini_tasks.scheduler import JobState, Mode, request_digest
from gemini_tasks.scheduler.answers import CLAIM_RENEW
from gemini_tasks.scheduler.ending import end_unsent
from gemini_tasks.worker import response as responses
from gemini_tasks.worker.caching import CacheUse, Prefix, prefix_of
from gemini_tasks.worker.classify import classify
from gemini_tasks.worker.context import Evicted, WorkerContext
from gemini_tasks.worker.counting import MediaCounts
from gemini_tasks.worker.decide import Action, Call, Decision, PromptState, decide
from gemini_tasks.worker.request import build_request

log = logging.getLogger(__name__)

# Output tokens a call is assumed to cost when it sets no max_output_tokens (for budgets).
OUTPUT_ESTIMATE = 2048
# Longest sleep between two looks at the pool while waiting: a key reset, a quota that
# returns or a worker with new keys is noticed within this.
POLL = 2.0
# An identical request being made by another prompt (`--dedupe`) is waited for in the
# thread this long, looking every FOLLOW_POLL; then the prompt goes to the back of its job's
# queue, and looks again when its turn comes.
FOLLOW_WAIT, FOLLOW_POLL = 5.0, 0.5


class Park(Exception):
    """The prompt must wait longer than a worker thread should (for a key, for its job to
    resume, for an identical request's answer): it goes back to its job's queue."""

    def __init__(
        self, seconds: float, model: str, carry: dict[str, Any], why: str = "", behind: bool = False
    ):
        super().__init__(f"waits {seconds:.1f}s more")
        self.seconds, self.model, self.carry = seconds, model, carry
        self.why = why or (f"waiting {seconds:.0f}s for a key" if seconds else "the job is paused")
        self.behind = behind  # behind the job's other prompts, not ahead of them


class _GiveUp(GeminiTasksError):
    """The prompt cannot go on; `kind` and the message say why."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class _Media:
    """A prompt's media: which refs go through the Files API, and the bytes of those sent
    inline."""

    refs: list[MediaRef]
    to_upload: set[int]
    inline: dict[int, bytes]
    tokens: MediaCounts


class PromptRun:
    """One execution of one prompt; `carry` survives a re-queue."""

    def __init__(
        self,
        ctx: WorkerContext,
        raw_record: Any,
        index: int,
        task_id: str | None,
        carry: dict[str, Any] | None,
        job_id: str | None = None,
        ticket: int | None = None,
    ):
        carry = carry or {}
        self.ctx, self.settings, self.job_id = ctx, ctx.runtime.settings, job_id
        self.ticket = ticket  # its place in line for keys
        self.raw_record = raw_record
        self.result = Result(index=index, metadata=metadata_of(raw_record), task_id=task_id)
        self.result.attempts = carry.get("attempts", 0)
        self.state = PromptState(server_failures=carry.get("server_failures", 0))
        self.key_wait = float(carry.get("key_wait_seconds", 0.0))
        if "parked_at" in carry:
            # Its time in Redis until a key was due was waiting for a key too; not the time
            # after that (queued behind other jobs, or paused).
            until = min(time.time(), float(carry.get("parked_until", time.time())))
            self.key_wait += max(0.0, until - float(carry["parked_at"]))
        self.outage_wait = float(carry.get("outage_wait_seconds", 0.0))
        # A flex prompt's tier: flex until Flex has shed it past the job's fallback wait.
        self.mode = Mode(carry["mode"]) if "mode" in carry else None
        # Seconds Flex has shed it in a row (waiting between shed calls included).
        self.shed_seconds = float(carry.get("shed_seconds", 0.0))
        self.started = float(carry.get("started_at", time.time()))  # its first run's start
        self.price: prices.Price | None = None
        self.call_cost = 0.0
        self.deadline = time.monotonic() + self.settings.task_time_limit
        self.api_seconds = self.backoff_seconds = 0.0
        self.digest: str | None = None  # the request this prompt holds the claim on
        self.renewed_at = 0.0
        self.answered = False  # by an answer stored for its request (--dedupe)
        self.prefix: Prefix | None = None  # what a --cache job's context cache holds of it
        self.cache: CacheUse | None = None  # the cache its last call named

    def carry(self, key_due_in: float | None = None) -> dict[str, Any]:
        """What the prompt's next run goes on from; with `key_due_in` (seconds until the
        pool expects a key), the time until then counts as waiting for a key."""
        carry: dict[str, Any] = {
            "attempts": self.result.attempts,
            "key_wait_seconds": self.key_wait,
            "outage_wait_seconds": self.outage_wait,
            "server_failures": self.state.server_failures,
            "started_at": self.started,
        }
        if self.mode is not None:
            carry["mode"] = self.mode.value
        if self.shed_seconds:
            carry["shed_seconds"] = self.shed_seconds
        if key_due_in is not None:
            carry["parked_at"] = time.time()
            carry["parked_until"] = time.time() + key_due_in
        return carry

    def run(self) -> Result:
        try:
            record = parse_staged(self.raw_record)
            model = record.model or self.settings.model
            self.digest = self._claim(record, model)
            if not self.answered:
                self._answer(record, model)
        except InvalidPrompt as exc:
            self.result.fail(ErrorKind.INVALID_PROMPT, f"invalid prompt: {exc}")
        except _GiveUp as exc:
            self.result.fail(exc.kind, str(exc))
        self.result.timings = {
            "started_at": self.started,
            "finished_at": time.time(),
            "api_seconds": round(self.api_seconds, 6),
            "backoff_seconds": round(self.backoff_seconds, 6),
            "key_wait_seconds": round(self.key_wait, 6),
            "outage_wait_seconds": round(self.outage_wait, 6),
        }
        return self.result

    def _answer(self, record: StagedRecord, model: str) -> None:
        """Make the prompt's request; in a `--dedupe` job, share a good answer."""
        shared = None
        try:
            media = self._media(record)
            try:
                self._until_done(record, media, model)
            finally:  # a prompt parked or ended before its call leaves its counts to others
                _quietly(self.ctx.counter.unclaim, media.tokens)
            responses.parse_json(self.result, record.generation_config)
            shared = self.result.answer() if self.result.ok else None
        except Evicted:
            self.digest = None  # its next run, elsewhere, holds the claim now
            raise
        finally:  # parked, failed or answered: identical requests no longer wait for this one
            if self.digest is not None:
                _quietly(self.ctx.answers.share, self.digest, self._owner, str(self.job_id),
                         shared)  # fmt: skip

    def _claim(self, record: StagedRecord, model: str) -> str | None:
        """In a `--dedupe` job: the request's digest if this prompt is to make the request,
        or None, with the result filled in, when an identical one was answered (by this very
        prompt, if its worker died before recording it). An identical request being made now
        is waited for briefly here, then behind the job's other prompts."""
        job = self.ctx.job_control(self.job_id) if self.job_id else None
        if job is None or not job.dedupe:
            return None
        # The mode is part of the request: a flex answer is not an online one, nor as quick.
        request = {k: v for k, v in record.to_json().items() if k != "metadata"}
        request["mode"] = job.mode.value
        digest = request_digest(model, request)
        patience = time.monotonic() + FOLLOW_WAIT
        while True:
            found = self.ctx.answers.claim(digest, self._owner)
            if found.answer is not None:
                own = found.answer.get("reused_from") == self._owner
                self.result.reuse(found.answer, own)
                self.answered = True
                if own and job.budgeted:
                    self.result.settled = self.result.cost  # settled when its call returned
                return None
            if found.lead:
                self.renewed_at = time.monotonic()
                return digest
            self._check_job(model)
            if time.monotonic() > patience:
                why = f"waiting for the answer of {found.holder}, an identical request"
                raise Park(0.0, model, self.carry(), why, behind=True)
            time.sleep(FOLLOW_POLL)

    def _renew_claim(self) -> None:
        """Keep this prompt's claim on its request while it goes on making it."""
        if self.digest is not None and time.monotonic() - self.renewed_at > CLAIM_RENEW:
            self.ctx.answers.claim(self.digest, self._owner)
            self.renewed_at = time.monotonic()

    @property
    def _owner(self) -> str:
        return self.result.task_id or f"{self.job_id}-{self.result.index}"

    def _media(self, record: StagedRecord) -> _Media:
        uploads = self.ctx.uploads
        refs = list(record.media)
        to_upload = uploads.plan_uploads(refs)
        try:
            inline = uploads.inline_data(refs, to_upload)
        except FileNotFoundError as exc:
            raise InvalidPrompt(f"media unavailable: {exc}; submit the prompt again") from None
        except ValueError as exc:  # the store refused a reference that is not its own
            raise InvalidPrompt(f"media refused: {exc}") from None
        return _Media(refs, to_upload, inline, self.ctx.counter.media(record))

    def _until_done(self, record: StagedRecord, media: _Media, model: str) -> None:
        self.price = prices.price_of(self.settings.prices, model)
        self._count_unsent(record, media, model)
        if self.mode is None:
            job = self.ctx.job_control(self.job_id) if self.job_id else None
            self.mode = job.mode if job else Mode.ONLINE
        if self.job_id is not None and self.ctx.job_control(self.job_id).cache:
            self.prefix = prefix_of(record, model)
        while True:
            tokens = self.ctx.counter.estimate(model, record, media.tokens)
            self._check_job(model)
            self._fall_back()
            if self.deadline - time.monotonic() <= 0:
                raise _GiveUp(
                    ErrorKind.TIME_LIMIT,
                    f"task time limit of {self.settings.task_time_limit:g}s reached after "
                    f"{self.result.attempts} attempts; last error: {self.result.error}",
                )
            lease = self._lease(model, tokens)
            try:
                self.ctx.fence.check()
                reserved = self._reserve(record, model, tokens)
            except (Evicted, _GiveUp):
                self.ctx.pool.give_back(lease)
                raise
            self.result.attempts += 1
            self.result.key_id, self.result.model = lease.key.id, model
            outcome, parts, outage = self._call(lease, record, media, model)
            self._settle(reserved)
            # The mode changes only between calls (`_fall_back`): it is the one just made.
            call = Call(lease.key.project, bool(media.to_upload), outage, self.mode is Mode.FLEX,
                        self.cache is not None)  # fmt: skip
            if self._apply(decide(outcome, self.state, self.ctx.policy, call), lease, media, parts):
                return

    def _count_unsent(self, record: StagedRecord, media: _Media, model: str) -> None:
        """Count the media this prompt claimed before its first lease, so that even its call
        is paced by Gemini's count: countTokens spends no generation quota, so any key of the
        worker will do (if it fails, the call's own key tries again). Parts that go through
        the Files API are counted once uploaded."""
        ready = {
            i: self.ctx.uploads.part(ref, media.inline.get(i), None, "")
            for i, ref in enumerate(media.refs)
            if i in media.tokens.mine and i not in media.to_upload
        }
        if ready:
            key = self.ctx.pool.key_list[0]
            client = self.ctx.client(key)
            self.ctx.counter.count_media(client, model, ready, media.tokens, False)

    def _call(
        self, lease: Lease, record: StagedRecord, media: _Media, model: str
    ) -> tuple[GeminiCallError | responses.Answer, list[types.Part], bool]:
        """One call with `lease`'s key; releases the lease with what the call taught.
        Returns the outcome, the media parts sent, and whether the model is in an outage."""
        started = time.monotonic()
        parts: list[types.Part] = []
        flex = self.mode is Mode.FLEX
        try:
            client = self.ctx.client(lease.key)
            parts = [
                self.ctx.uploads.part(ref, media.inline.get(i), client, lease.key.project)
                for i, ref in enumerate(media.refs)
            ]
            remaining = self.deadline - started
            # The client's own timeout applies unless less time than that is left.
            timeout = remaining if remaining < self.settings.request_timeout else None
            label = str(self.result.task_id or self.result.index)
            self.cache = None
            if self.prefix is not None and self.job_id is not None:
                self.cache = self.ctx.caches.use(self.job_id, self.prefix, lease.key.project,
                                                 client, parts)  # fmt: skip
            request = build_request(record, model, timeout, parts, label, flex, self.cache)
            if media.tokens.mine:  # media counted only once uploaded
                self.ctx.counter.count_media(client, model, dict(enumerate(parts)), media.tokens)
            answer = client.models.generate_content(
                model=request.model, contents=request.content, config=request.config
            )
        except Exception as exc:  # every failure is classified, and the decision handles it
            self.api_seconds += time.monotonic() - started
            error = classify(exc)
            if isinstance(error, (QuotaExceeded, CapacityExhausted)):
                self.result.rate_limited += 1
            if flex and isinstance(error, (CapacityExhausted, TransientError)):
                # Flex's shedding says nothing of the standard tier's capacity or of the
                # model's health: the pool is not told, so online prompts are not held back.
                self.shed_seconds += time.monotonic() - started
                self.ctx.pool.give_back(lease)
                return error, parts, False
            self.shed_seconds = 0.0
            released = self.ctx.pool.release(lease, error)
            return error, parts, released.outage
        self.api_seconds += time.monotonic() - started
        self.shed_seconds = 0.0
        counted = responses.prompt_tokens(answer)
        self.ctx.pool.release(lease, None, counted)
        self.ctx.counter.observe(model, record, media.tokens, counted)
        kind = responses.read(answer)
        responses.fill(self.result, answer, kind)
        self.result.mode = responses.served_mode(answer, str(self.mode or Mode.ONLINE))
        # Gemini bills every answer, with text or without.
        self.call_cost = prices.call_cost(self.price, self.result.usage, self.result.mode)
        self.result.cost += self.call_cost
        return kind, parts, False

    def _reserve(self, record: StagedRecord, model: str, tokens: int) -> float:
        """Set the call's estimated cost aside from the job's budget; 0 if it has none."""
        self.call_cost = 0.0
        if self.job_id is None or not self.ctx.job_control(self.job_id).budgeted:
            return 0.0
        output = int(record.generation_config.get("max_output_tokens") or OUTPUT_ESTIMATE)
        estimate = prices.estimate(self.price, tokens, output, str(self.mode or Mode.ONLINE))
        if self.ctx.outcomes.reserve(self.job_id, estimate):
            return estimate
        why = "budget: the job's budget was spent before this prompt was sent"
        end_unsent(self.ctx.queue, self.ctx.outcomes, self.job_id, JobState.OVER_BUDGET,
                   ErrorKind.BUDGET, why)  # fmt: skip
        raise _GiveUp(ErrorKind.BUDGET, why)

    def _settle(self, reserved: float) -> None:
        """Replace the call's reservation with what it cost (a budgeted job's cost is counted
        per call, so concurrent workers see each other's spending at once)."""
        if reserved and self.job_id is not None:
            self.ctx.outcomes.settle(self.job_id, reserved, self.call_cost)
            self.result.settled += self.call_cost

    def _apply(
        self, decision: Decision, lease: Lease, media: _Media, parts: list[types.Part]
    ) -> bool:
        """Do what `decision` says; True when the prompt is done."""
        self.state = decision.state
        if decision.action is Action.SUCCEED:
            return True
        message = redact(decision.message, self.ctx.pool.key_list)
        self.result.fail(decision.kind or ErrorKind.SERVER, message)
        log.warning(
            "task %s attempt %d with %s failed: %s",
            self.result.task_id, self.result.attempts, lease.key.id, message,
        )  # fmt: skip
        if decision.action is Action.FAIL:
            return True
        if decision.action is Action.REUPLOAD:
            used = {p.file_data.file_uri for p in parts if p.file_data}
            stale = [media.refs[i] for i in media.to_upload]
            self.ctx.uploads.forget(lease.key.project, stale, used)
        elif decision.action is Action.RECACHE and self.prefix and self.cache and self.job_id:
            self.ctx.caches.forget(self.job_id, lease.key.project, self.prefix, self.cache.name)
        elif decision.action is Action.FREE_STORAGE:
            client = self.ctx.client(lease.key)
            freed = self.ctx.uploads.free_storage(client, lease.key.project, self.ctx.job_running)
            log.warning("project %s's file storage is full: deleted %d unneeded uploads",
                        lease.key.project, freed)  # fmt: skip
        elif decision.action is Action.BACKOFF:
            delay = random.uniform(0, decision.backoff_ceiling)
            self._back_off(min(delay, max(0.0, self.deadline - time.monotonic())))
        elif decision.action is Action.SHED:
            self._wait_out_shed(random.uniform(0, decision.backoff_ceiling))
        return False

    def _wait_out_shed(self, delay: float) -> None:
        """Wait before asking Flex again, as through an outage: within the outage budget,
        outside the time limit."""
        budget = self.settings.outage_budget
        if self.outage_wait + delay > budget:
            raise _GiveUp(ErrorKind.CAPACITY, f"Flex shed the prompt for {self.outage_wait:.0f}s,"
                          f" past GEMINI_TASKS_OUTAGE_BUDGET={budget:g}; last error: "
                          f"{self.result.error}")  # fmt: skip
        self._back_off(delay)
        self.deadline += delay
        self.outage_wait += delay
        self.shed_seconds += delay

    def _back_off(self, delay: float) -> None:
        """Sleep before the next attempt, looking at the job as it goes: a cancel ends the
        prompt now, not after a long backoff."""
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, POLL))
            self._check_job(self.result.model or "")
        self.backoff_seconds += delay

    def _lease(self, model: str, tokens: int) -> Lease:
        """A key for the next call, waiting as the pool says; re-queues for long key waits."""
        try:
            return self._wait_for_key(model, tokens)
        except BaseException:  # parked or ended while waiting: its place in line goes too
            _quietly(self.ctx.pool.leave_line, model, self.ticket)
            raise

    def _wait_for_key(self, model: str, tokens: int) -> Lease:
        while True:
            got = self.ctx.pool.acquire(model, tokens, self.ticket)
            if isinstance(got, Lease):
                return got
            self._check_wait(got)
            self._check_job(model)
            if got.reason == "keys" and got.seconds > self.settings.short_key_wait:
                raise Park(got.seconds, model, self.carry(key_due_in=got.seconds))
            # Jitter, so the threads woken for one freed key do not all ask at once.
            pause = min(got.seconds, POLL) + random.uniform(0, 0.05)
            time.sleep(pause)
            self.deadline += pause  # waiting is not working: the time limit does not run
            if got.reason == "keys":
                self.key_wait += pause
            else:
                self.outage_wait += pause

    def _fall_back(self) -> None:
        """Move a flex prompt to the standard tier once Flex has shed it for longer than its
        job allows (`--fallback online --fallback-after`)."""
        if self.mode is not Mode.FLEX or not self.shed_seconds or self.job_id is None:
            return
        after = self.ctx.job_control(self.job_id).fallback_after
        if after and self.shed_seconds >= after:
            log.info("task %s: Flex shed it for %.0fs; it goes on on the standard tier",
                     self.result.task_id, self.shed_seconds)  # fmt: skip
            self.mode = Mode.ONLINE

    def _check_job(self, model: str) -> None:
        """End the prompt if its job was cancelled; park it if the job is paused. (Every wait
        looks here, so its claim on its request is renewed here too.)"""
        if self.job_id is None:
            return
        self._renew_claim()
        state = self.ctx.job_control(self.job_id).state
        if state is JobState.CANCELLED:
            raise _GiveUp(ErrorKind.CANCELLED, "cancelled: the job was cancelled before this "
                          f"prompt's call; last error: {self.result.error}")  # fmt: skip
        if state is JobState.PAUSED:
            raise Park(0.0, model, self.carry())

    def _check_wait(self, got: NoKeyYet) -> None:
        """Give up when the wait the pool names is beyond what this prompt may wait."""
        last = self.result.error
        if got.seconds == float("inf"):
            raise _GiveUp(
                ErrorKind.KEY_INVALID,
                f"no usable API key: all {len(self.ctx.pool.keys)} keys of this worker are "
                f"FAILED_INIT (invalid or revoked); last error: {last}",
            )
        budget = self.settings.outage_budget
        if got.reason != "keys" and self.outage_wait + got.seconds > budget:
            kind = ErrorKind.CAPACITY if got.reason == "capacity" else ErrorKind.SERVER
            raise _GiveUp(
                kind,
                f"Gemini unavailable ({got.reason}) for {self.outage_wait:.0f}s, past "
                f"GEMINI_TASKS_OUTAGE_BUDGET={budget:g}; last error: {last}",
            )
        if got.reason == "keys" and self.key_wait + got.seconds > self.settings.max_key_wait:
            raise _GiveUp(
                ErrorKind.QUOTA,
                f"all keys exhausted: next key usable in {got.seconds:.0f}s, after "
                f"{self.key_wait:.0f}s of waiting (GEMINI_TASKS_MAX_KEY_WAIT="
                f"{self.settings.max_key_wait:g}); last error: {last}",
            )


def _quietly(release: Callable[..., None], *args: Any) -> None:
    """Give back what a prompt held for others (a claim), even if Redis refuses just now: the
    claim then lapses by itself, and the prompt's own outcome is what matters here."""
    try:
        release(*args)
    except REDIS_TROUBLE as exc:
        log.warning("could not release a claim (%s); it will lapse by itself", exc)
