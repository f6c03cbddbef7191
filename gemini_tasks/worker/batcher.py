"""The worker's batcher: a thread that carries `--mode batch` jobs through Gemini's Batch
Mode (half the price, answers within 24 hours: ai.google.dev/gemini-api/docs/batch-mode).

It forms batches from the front of batch jobs' queues, creates each with a key the pool
leases (its media uploaded in that key's project), looks at pending batches ever less often,
and writes every answer or error to its own prompt's result, matched by the index each
request carries in its metadata, not by position. Every step is recorded in Redis first
(`gemini_tasks.scheduler.BatchBook`), so any worker goes on from where a dead one stopped: a
batch whose creation may have reached Gemini is looked for by its display name before it is
created again. A batch that fails, expires or is still pending past its job's
`--batch-deadline` is cancelled and its prompts go back to their job's queue: batched again,
or, with `--fallback online`, the job goes on online.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from google.genai import errors as genai_errors
from google.genai import types

from gemini_tasks import prices
from gemini_tasks.errors import (
    CapacityExhausted,
    ErrorKind,
    InvalidPrompt,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
)
from gemini_tasks.keys import ApiKey, redact
from gemini_tasks.messages import task_id
from gemini_tasks.pool import Lease, NoKeyYet
from gemini_tasks.records import StagedRecord, parse_staged
from gemini_tasks.result import Result, metadata_of
from gemini_tasks.scheduler import BatchRecord, BatchState, Control, JobState, Mode
from gemini_tasks.worker import response as responses
from gemini_tasks.worker.classify import classify, classify_status
from gemini_tasks.worker.clients import client_for
from gemini_tasks.worker.context import WorkerContext
from gemini_tasks.worker.decide import Action, Call, PromptState, decide
from gemini_tasks.worker.request import build_request

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks for batches to form or due for a look
FIRST_LOOK = 1.0  # a new batch is looked at after this, then twice as late each time
MAX_ROUNDS = 3  # batches a prompt may be in that failed or expired before it fails
# Inline requests of one batch in all, under Gemini's 20 MB limit on a request.
BATCH_BYTES = 16 * 1024 * 1024
DONE = {"JOB_STATE_SUCCEEDED"}
ENDED = {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


class Batcher(threading.Thread):
    def __init__(self, ctx: WorkerContext, queues: list[str]):
        super().__init__(name="gemini-tasks-batcher", daemon=True)
        self.ctx, self.queues = ctx, queues
        self.settings = ctx.runtime.settings
        # A batch a worker holds stays its own past its longest step, the create call.
        self.hold = self.settings.request_timeout + 60
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(TICK):
            if self.ctx.fence.evicted:
                return
            try:
                self.tick()
            except Exception:  # Redis away, say: the next tick tries again
                log.warning("carrying batches on failed; trying again")

    def stop(self) -> None:
        self.stopping.set()

    def tick(self) -> None:
        worker = self.ctx.worker_id
        for queue in self.queues:
            while (formed := self.ctx.batches.form(queue, worker, self.settings.batch_size,
                                                   self.hold)) is not None:  # fmt: skip
                self.carry_on(formed)
        # One at a time: a batch claimed waits for no other batch's step while held.
        while claimed := self.ctx.batches.claim(worker, self.hold, most=1):
            batch = self.ctx.batches.get(claimed[0])
            if batch is not None:
                self.carry_on(batch)

    def carry_on(self, batch: BatchRecord) -> None:
        """Take the batch one step on, as far as it can go now."""
        try:
            control = self.ctx.queue.control(batch.job)
            if control.state in (None, JobState.CANCELLED):
                self._cancel(batch)
            elif batch.state is BatchState.FORMED:
                self._submit(batch)
            elif batch.state is BatchState.CREATING:
                self._find(batch, control)
            else:
                self._look(batch, control)
        except Exception as exc:
            error = redact(str(exc), self.ctx.pool.key_list)
            log.warning("batch %s of job %s: %s; looking again later", batch.id, batch.job, error)
            self.ctx.batches.look_again(batch.id, self._later(batch))

    # -- creating a batch ---------------------------------------------------------------

    def _submit(self, batch: BatchRecord) -> None:
        staged = self._staged(batch)
        if not staged:
            self.ctx.batches.drop(batch)
            return
        model = next(iter(staged.values())).model or self.settings.model
        lease = self.ctx.pool.acquire(model, 1, self.ctx.queue.ticket())
        if isinstance(lease, NoKeyYet):
            if lease.seconds == float("inf"):
                why = f"no usable API key: all {len(self.ctx.pool.keys)} keys are FAILED_INIT"
                self._fail(batch.job, list(staged), ErrorKind.KEY_INVALID, why)
                self.ctx.batches.drop(batch)
                return
            self.ctx.batches.look_again(batch.id, min(lease.seconds, self.settings.batch_poll))
            return
        try:
            client = self._client(lease.key)
            requests, later = self._requests(batch.id, batch.job, staged, model, client,
                                             lease.key)  # fmt: skip
        except BaseException:
            self.ctx.pool.give_back(lease)
            raise
        sent = [int(r.metadata["index"]) for r in requests if r.metadata]
        batch.state, batch.indexes, batch.model = BatchState.CREATING, sent, model
        batch.project, batch.key_id = lease.key.project, lease.key.id
        batch.submitted_at = time.time()
        # The record first: a worker dying between the two leaves no prompt in two places.
        if sent:
            self.ctx.batches.save(batch)
        # Prompts of another model, or past the size of one batch, go in the next one.
        if later:
            self.ctx.queue.park(batch.job, later, carry=_carry(batch.round))
        if not sent:
            self.ctx.pool.give_back(lease)
            self.ctx.batches.drop(batch)
            return
        self.ctx.batches.look_again(batch.id, self.hold)  # renewed: creating is the long step
        self._create(batch, client, lease, requests)

    def _requests(
        self,
        batch_id: str,
        job: str,
        staged: dict[int, StagedRecord],
        model: str,
        client: Any,
        key: ApiKey,
    ) -> tuple[list[types.InlinedRequest], list[int]]:
        """The batch's requests (of `model`, up to BATCH_BYTES), and the prompts left for
        the next batch."""
        requests: list[types.InlinedRequest] = []
        later: list[int] = []
        size = 0
        for index, record in staged.items():
            if (record.model or self.settings.model) != model or size > BATCH_BYTES:
                later.append(index)
                continue
            request = self._request(job, index, record, model, client, key)
            if record.media:  # uploads take time: the batch stays this worker's meanwhile
                self.ctx.batches.look_again(batch_id, self.hold)
            if request is not None:
                requests.append(request)
                size += record_size(record)
        return requests, later

    def _create(
        self, batch: BatchRecord, client: Any, lease: Lease, requests: list[types.InlinedRequest]
    ) -> None:
        try:
            self.ctx.fence.check()  # a worker taken for dead creates nothing
            created = client.batches.create(
                model=batch.model, src=requests,
                config=types.CreateBatchJobConfig(display_name=batch.display_name),
            )  # fmt: skip
        except Exception as exc:
            error = classify(exc)
            if isinstance(error, KeyInvalid):
                self.ctx.pool.release(lease, error)
            else:
                # Batch Mode has its own limits: its 429s and outages say nothing of the
                # interactive quota or of the model's health for online calls.
                self.ctx.pool.give_back(lease)
            if isinstance(error, InvalidRequest):
                message = redact(f"Gemini refused the batch: {error}", self.ctx.pool.key_list)
                self._fail(batch.job, batch.indexes, ErrorKind.INVALID_REQUEST, message)
                self.ctx.batches.drop(batch)
                return
            # Refused (a 429, a key refused): created again. A timeout or a 5xx may have
            # reached Gemini: it stays `creating`, so it is looked for by name first.
            if isinstance(error, (QuotaExceeded, CapacityExhausted, KeyInvalid)):
                batch.state = BatchState.FORMED
            batch.polls += 1
            self.ctx.batches.save(batch)
            self.ctx.batches.look_again(batch.id, self._later(batch))
            log.warning("batch %s: creating it failed (%s); trying again", batch.id,
                        redact(str(error), self.ctx.pool.key_list))  # fmt: skip
            return
        self.ctx.pool.release(lease, None)
        batch.state, batch.name, batch.polls = BatchState.PENDING, str(created.name), 0
        self.ctx.batches.save(batch)
        self.ctx.batches.look_again(batch.id, FIRST_LOOK)
        log.info("job %s: batch %s of %d prompts created as %s in project %s", batch.job,
                 batch.id, len(batch.indexes), created.name, batch.project)  # fmt: skip

    def _staged(self, batch: BatchRecord) -> dict[int, StagedRecord]:
        """The batch's prompts that can go: those whose record is bad end here, with why."""
        staged: dict[int, StagedRecord] = {}
        for index, raw in self.ctx.queue.records(batch.job, batch.indexes).items():
            if raw is None:
                continue  # it has its result already
            try:
                if isinstance(raw, dict) and "refused" in raw:
                    raise InvalidPrompt(str(raw["refused"]))
                staged[index] = parse_staged(raw)
            except InvalidPrompt as exc:
                self._end(batch.job, self._result(batch.job, index, raw), ErrorKind.INVALID_PROMPT,
                          f"invalid prompt: {exc}")  # fmt: skip
        return staged

    def _request(
        self, job: str, index: int, record: StagedRecord, model: str, client: Any, key: ApiKey
    ) -> types.InlinedRequest | None:
        uploads = self.ctx.uploads
        refs = list(record.media)
        to_upload = uploads.plan_uploads(refs)
        try:
            inline = uploads.inline_data(refs, to_upload)
        except (FileNotFoundError, ValueError) as exc:
            result = self._result(job, index, record.to_json())
            self._end(job, result, ErrorKind.INVALID_PROMPT, f"media unavailable: {exc}")
            return None
        parts = [
            uploads.part(ref, inline.get(i), client, key.project) for i, ref in enumerate(refs)
        ]
        request = build_request(record, model, None, parts)
        return types.InlinedRequest(
            contents=request.contents, config=request.config, metadata={"index": str(index)}
        )

    def _find(self, batch: BatchRecord, control: Control) -> None:
        """The worker creating the batch stopped before it said whether Gemini has it: look
        for it by its display name, and create it only if Gemini does not have it."""
        client = self._project_client(batch)
        if client is None:
            self.ctx.batches.look_again(batch.id, self.hold)  # a worker with its keys will
            return
        name = self._named(client, batch)
        if name:
            batch.state, batch.name = BatchState.PENDING, name
            self.ctx.batches.save(batch)
            self._look(batch, control)
            return
        batch.state = BatchState.FORMED
        self.ctx.batches.save(batch)
        self._submit(batch)

    def _named(self, client: Any, batch: BatchRecord) -> str | None:
        """Gemini's name of the batch created under this record's display name, if any."""
        for found in client.batches.list(config=types.ListBatchJobsConfig(page_size=100)):
            if found.display_name == batch.display_name:
                return str(found.name)
        return None

    # -- a pending batch ----------------------------------------------------------------

    def _look(self, batch: BatchRecord, control: Control) -> None:
        client = self._project_client(batch)
        if client is None:
            if time.time() - batch.submitted_at > control.batch_deadline:
                why = f"no worker holds a key of project {batch.project} any more"
                self._send_back(batch, control, batch.indexes, why)
            else:  # a worker with a key of its project will look
                self.ctx.batches.look_again(batch.id, self.hold)
            return
        try:
            found = client.batches.get(name=batch.name)
        except genai_errors.ClientError as exc:
            if exc.code != 404:
                raise
            self._send_back(batch, control, batch.indexes, f"Gemini has no batch {batch.name}")
            return
        state = str(found.state.name if found.state else "")
        if state in DONE:
            self._collect(batch, control, found)
        elif state in ENDED:
            why = f"its batch {batch.name} ended {state.removeprefix('JOB_STATE_')}"
            self._send_back(batch, control, batch.indexes, why)
        elif time.time() - batch.submitted_at > control.batch_deadline:
            client.batches.cancel(name=batch.name)
            why = (f"its batch {batch.name} was still {state.removeprefix('JOB_STATE_')} after "
                   f"the job's --batch-deadline of {control.batch_deadline:g}s")  # fmt: skip
            self._send_back(batch, control, batch.indexes, why)
        else:
            batch.polls += 1
            self.ctx.batches.save(batch)
            self.ctx.batches.look_again(batch.id, self._later(batch))

    def _collect(self, batch: BatchRecord, control: Control, found: types.BatchJob) -> None:
        """Every answer to its own prompt's result; prompts Gemini did not answer, or answered
        with what another try may fix, go back."""
        price = prices.price_of(self.settings.prices, batch.model)
        raws = self.ctx.queue.records(batch.job, batch.indexes)
        again: list[int] = []
        answered: set[int] = set()
        for item in (found.dest.inlined_responses if found.dest else None) or []:
            index = int((item.metadata or {}).get("index", -1))
            if index not in raws or index in answered:
                continue
            answered.add(index)
            if raws[index] is None:
                continue  # it has its result already
            result = self._result(batch.job, index, raws[index])
            result.attempts, result.key_id = batch.round + 1, batch.key_id
            result.model, result.mode = batch.model, Mode.BATCH.value
            result.timings = {"started_at": batch.submitted_at, "finished_at": time.time()}
            call = Call(batch.project, False)
            if item.error is not None:
                error = classify_status(item.error.code or 0, item.error.message or "")
                decision = decide(error, PromptState(), self.ctx.policy, call)
            else:
                answer = responses.read(item.response or types.GenerateContentResponse())
                responses.fill(result, item.response or types.GenerateContentResponse(), answer)
                result.cost = prices.call_cost(price, result.usage, Mode.BATCH.value)
                decision = decide(answer, PromptState(), self.ctx.policy, call)
            if decision.action is Action.SUCCEED:
                record = parse_staged(raws[index])
                responses.parse_json(result, record.generation_config)
                self._record(batch.job, result)
            elif decision.action is Action.FAIL or batch.round + 1 >= MAX_ROUNDS:
                message = redact(decision.message, self.ctx.pool.key_list)
                self._end(batch.job, result, decision.kind or ErrorKind.SERVER, message)
            else:
                again.append(index)
        again += [i for i in batch.indexes if i not in answered]
        if again:
            self._send_back(batch, control, again, "Gemini's batch did not answer them")
        else:
            self.ctx.batches.drop(batch)

    def _send_back(
        self, batch: BatchRecord, control: Control, indexes: list[int], why: str
    ) -> None:
        """Prompts of a batch that failed them: online if the job falls back, batched again
        otherwise, or failed after MAX_ROUNDS batches."""
        rounds = batch.round + 1
        if control.fallback_after > 0:
            self.ctx.queue.update(batch.job, mode=Mode.ONLINE.value)
            self.ctx.queue.park(batch.job, indexes, carry=_carry(rounds))
            log.warning("job %s: %d prompt(s) go on online: %s", batch.job, len(indexes), why)
        elif rounds >= MAX_ROUNDS:
            self._fail(batch.job, indexes, ErrorKind.SERVER, f"{why}; {rounds} batches failed it")
        else:
            self.ctx.queue.park(batch.job, indexes, carry=_carry(rounds))
            log.warning("job %s: %d prompt(s) go in another batch: %s", batch.job, len(indexes),
                        why)  # fmt: skip
        self.ctx.batches.drop(batch)

    def _cancel(self, batch: BatchRecord) -> None:
        """The job was cancelled (or forgotten): so is its batch, and its prompts end."""
        client = self._project_client(batch) if batch.project else None
        if client is not None and not batch.name:  # its creation may have reached Gemini
            batch.name = self._named(client, batch) or ""
        if client is not None and batch.name:
            try:
                client.batches.cancel(name=batch.name)
            except genai_errors.APIError as exc:
                log.info("batch %s: cancelling it at Gemini failed: %s", batch.name, exc.code)
        why = "cancelled: the job was cancelled while its batch was waiting"
        self._fail(batch.job, batch.indexes, ErrorKind.CANCELLED, why)
        self.ctx.batches.drop(batch)

    # -- helpers ------------------------------------------------------------------------

    def _later(self, batch: BatchRecord) -> float:
        return min(self.settings.batch_poll, FIRST_LOOK * 2.0 ** min(batch.polls, 16))

    def _client(self, key: ApiKey) -> Any:
        return client_for(key, self.settings.gemini_base_url, self.settings.request_timeout,
                          self.ctx.threads)  # fmt: skip

    def _project_client(self, batch: BatchRecord) -> Any | None:
        """A client with a key of the batch's project (the batch is the project's): the key
        that created it if this worker holds it."""
        keys = self.ctx.pool.key_list
        mine = [k for k in keys if k.id == batch.key_id] or [
            k for k in keys if k.project == batch.project
        ]
        return self._client(mine[0]) if mine else None

    def _result(self, job: str, index: int, raw: Any) -> Result:
        result = Result(index=index, metadata=metadata_of(raw), task_id=task_id(job, index))
        result.worker = self.ctx.worker_id
        return result

    def _end(self, job: str, result: Result, kind: ErrorKind, message: str) -> None:
        result.fail(kind, message)
        self._record(job, result)

    def _record(self, job: str, result: Result) -> None:
        if self.ctx.outcomes.finish(job, result):
            self.ctx.queue.done(job, result.index, result.ok)

    def _fail(self, job: str, indexes: list[int], kind: ErrorKind, message: str) -> None:
        """End every prompt of `indexes` that has no result yet with `kind`."""
        for index, raw in self.ctx.queue.records(job, indexes).items():
            if raw is not None:
                self._end(job, self._result(job, index, raw), kind, message)


def _carry(rounds: int) -> str:
    """What a prompt sent back from a batch goes on from (form.lua reads the rounds)."""
    return json.dumps({"batch_rounds": rounds})


def record_size(record: StagedRecord) -> int:
    """About what a record adds to a batch request: its text and its inline media."""
    return (
        len(record.prompt or "")
        + len(record.system_instruction or "")
        + sum(m.size for m in record.media if m.sha256)
    )
