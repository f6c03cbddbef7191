"""The worker's batcher: a thread that carries `--mode batch` jobs through Gemini's Batch
Mode (half the price, answers within 24 hours: ai.google.dev/gemini-api/docs/batch-mode).

It forms batches from the front of batch jobs' queues, creates each with a key the pool
leases (its media uploaded in that key's project) from inline requests, or, when they pass
`GEMINI_TASKS_BATCH_INLINE_BYTES`, from a JSONL file uploaded with that key, looks at pending
batches ever less often, and writes every answer or error to its own prompt's result,
matched by the index each request carries (in its metadata inline, as its line's key in a
file), not by position. Every step is recorded in Redis first
(`gemini_tasks.scheduler.BatchBook`), so any worker goes on from where a dead one stopped: a
batch whose creation may have reached Gemini is looked for by its display name before it is
created again. A batch that fails, expires or is still pending past its job's
`--batch-deadline` is cancelled and its prompts go back to their job's queue: batched again,
or, with `--fallback online`, the job goes on online.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import uuid
from typing import IO, Any

from google.genai import _common, types
from google.genai import batches as genai_batches
from google.genai import errors as genai_errors

from gemini_tasks import prices
from gemini_tasks.errors import (
    CapacityExhausted,
    ErrorKind,
    GeminiCallError,
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
from gemini_tasks.worker.caching import Prefix, prefix_of
from gemini_tasks.worker.classify import classify, classify_status
from gemini_tasks.worker.context import WorkerContext
from gemini_tasks.worker.counting import MediaCounts
from gemini_tasks.worker.decide import Action, Call, PromptState, decide
from gemini_tasks.worker.request import build_request

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks for batches to form or due for a look
FIRST_LOOK = 1.0  # a new batch is looked at after this, then twice as late each time
MAX_ROUNDS = 3  # batches a prompt may be in that failed or expired before it fails
# A file batch's requests in all, at most: half of Gemini's 2 GB limit on an input file
# (ai.google.dev/gemini-api/docs/batch-mode). The file is written to the worker's disk and
# uploaded in one step, it counts against the project's 20 GB of Files storage beside its
# media and its other batches' files, and a batch that fails is sent again whole.
FILE_BYTES = 1024**3
# Bytes a second a file batch's upload is allowed at least while the batch stays this
# worker's: past its hold, another worker would take the batch up and create it again.
UPLOAD_RATE = 1024**2
# Gemini's Batch Mode ends SUCCEEDED; the SDK's states have PARTIALLY_SUCCEEDED too (Vertex's):
# both have answers to read, and what is unanswered goes in another batch.
DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
# A batch is cut at this share of the enqueued-token limit: its tokens are estimated, and
# Gemini counts them.
TOKEN_SHARE = 0.8
# Creations Gemini refused for quota in a row before the batch is halved (what its quota
# takes may be more than the estimate said), or, a batch of one, its prompt fails.
REFUSALS = 5
ENDED = {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


class Dropped(Exception):
    """Another worker dropped the batch (its job was cancelled) while this one built it."""


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
        except Dropped:
            log.info("batch %s of job %s: dropped by another worker; let go", batch.id, batch.job)
        except Exception as exc:
            error = redact(str(exc), self.ctx.pool.key_list)
            log.warning("batch %s of job %s: %s; looking again later", batch.id, batch.job, error)
            self.ctx.batches.look_again(batch.id, self._later(batch))

    # -- creating a batch ---------------------------------------------------------------

    def _submit(self, batch: BatchRecord) -> None:
        # A file named while formed was uploaded, or not, by a worker that stopped: no
        # batch of Gemini's reads it.
        if batch.input_file:
            self._forget_input(batch, self._project_client(batch))
        staged = self._staged(batch)
        if not staged:
            self._drop(batch)
            return
        model = next(iter(staged.values())).model or self.settings.model
        lease = self.ctx.pool.acquire(model, 1, self.ctx.queue.ticket())
        if isinstance(lease, NoKeyYet):
            if lease.seconds == float("inf"):
                why = f"no usable API key: all {len(self.ctx.pool.keys)} keys are FAILED_INIT"
                self._fail(batch.job, list(staged), ErrorKind.KEY_INVALID, why)
                self._drop(batch)
                return
            self.ctx.batches.look_again(batch.id, min(lease.seconds, self.settings.batch_poll))
            return
        try:
            client = self.ctx.client(lease.key)
            token_limit = int(self.settings.batch_tokens * TOKEN_SHARE)
            with BatchInput(self.settings.batch_inline_bytes, token_limit) as built:
                later = self._requests(batch, staged, model, client, lease.key, built)
                if not self._room(batch, lease.key, model, built):
                    self.ctx.pool.give_back(lease)
                    return
                source = self._source(batch, client, built)
        except BaseException:
            self.ctx.pool.give_back(lease)
            raise
        sent = built.indexes
        batch.state, batch.indexes = BatchState.CREATING, sent
        batch.input_file = source if isinstance(source, str) else ""
        batch.submitted_at = time.time()
        # Prompts of another model, or past the size of one batch, go in the next one;
        # parked before the record lets them go: a worker dying between may get one
        # answered twice (its first result stands), never leave one in no place.
        if later:
            self.ctx.queue.park(batch.job, later, carry=_carry(batch.round))
        if sent and not self.ctx.batches.save(batch):
            self.ctx.pool.give_back(lease)  # dropped meanwhile: nothing of it is created
            self._forget_input(batch, client)
            return
        if not sent:
            self.ctx.pool.give_back(lease)
            self._drop(batch)
            return
        self.ctx.batches.look_again(batch.id, self.hold)  # renewed: creating is the long step
        self._create(batch, client, lease, source)

    def _room(self, batch: BatchRecord, key: ApiKey, model: str, built: BatchInput) -> bool:
        """Record the project the batch goes to, then count it against that project's Batch
        Mode limits; False when it must wait (unchanged, its prompts in it) while the
        project's other batches use them up, or when another worker dropped it meanwhile."""
        if batch.project and batch.project != key.project:
            self.ctx.batches.dequeue(batch)  # counted where an earlier try meant to send it
        batch.project, batch.key_id, batch.model = key.project, key.id, model
        batch.tokens = built.tokens
        if not self.ctx.batches.save(batch):
            return False
        if not built.indexes or self.ctx.batches.enqueue(
            batch, key.project, self.settings.batch_tokens, self.settings.batch_concurrent
        ):
            return True
        log.info("batch %s: project %s has no room for %d more enqueued tokens of %s or "
                 "another batch; waiting", batch.id, key.project, batch.tokens,
                 batch.model)  # fmt: skip
        self.ctx.batches.look_again(batch.id, self.settings.batch_poll)
        return False

    def _requests(
        self,
        batch: BatchRecord,
        staged: dict[int, StagedRecord],
        model: str,
        client: Any,
        key: ApiKey,
        built: BatchInput,
    ) -> list[int]:
        """Build the batch's requests into `built`, each with its JSONL line, whose length
        counts towards the limits (those of `model`, up to FILE_BYTES in all); the prompts
        left for the next batch."""
        later: list[int] = []
        full = False
        for index, record in staged.items():
            if full or (record.model or self.settings.model) != model:
                later.append(index)
                continue
            request = self._request(batch.job, index, record, model, client, key)
            if record.media:  # uploads take time: the batch stays this worker's meanwhile
                self.ctx.batches.look_again(batch.id, self.hold)
            if request is None:
                continue
            line = file_line(client, index, request)
            unknown = MediaCounts([None] * len(record.media))  # estimated by their sizes
            tokens = self.ctx.counter.estimate(model, record, unknown)
            full = not built.fits(line, tokens)
            if full:
                later.append(index)
            else:
                built.add(index, request, line, tokens)
        return later

    def _source(
        self, batch: BatchRecord, client: Any, built: BatchInput
    ) -> list[types.InlinedRequest] | str:
        """What the batch is created from: its inline requests, or, past the inline limit,
        the name of the JSONL file they are uploaded as with the batch's key."""
        if not built.as_file:
            return built.inline
        # The file's name is ours and recorded first: a worker dying as it uploads leaves a
        # file the next worker to take the batch up deletes.
        name = f"files/gemini-tasks-{batch.id}-{uuid.uuid4().hex[:8]}"
        batch.input_file = name
        if not self.ctx.batches.save(batch):
            raise Dropped(f"batch {batch.id} was dropped while it was built")
        self.ctx.batches.look_again(batch.id, self.hold + built.size / UPLOAD_RATE)
        built.lines.seek(0)
        uploaded = client.files.upload(file=built.lines, config=types.UploadFileConfig(
            name=name, mime_type="application/jsonl",
            display_name=batch.display_name))  # fmt: skip
        log.info("batch %s: %d requests (%d bytes) uploaded as %s", batch.id,
                 len(built.indexes), built.size, uploaded.name)  # fmt: skip
        return str(uploaded.name)

    def _create(
        self,
        batch: BatchRecord,
        client: Any,
        lease: Lease,
        source: list[types.InlinedRequest] | str,
    ) -> None:
        try:
            self.ctx.fence.check()  # a worker taken for dead creates nothing
            created = client.batches.create(
                model=batch.model, src=source,
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
                self._drop(batch, client)
                return
            self._not_created(batch, client, error)
            return
        self.ctx.pool.release(lease, None)
        batch.state, batch.name, batch.polls = BatchState.PENDING, str(created.name), 0
        if not self.ctx.batches.save(batch):  # its job was cancelled as it was created
            client.batches.cancel(name=batch.name)
            return
        self.ctx.batches.look_again(batch.id, FIRST_LOOK)
        log.info("job %s: batch %s of %d prompts created as %s in project %s from %s",
                 batch.job, batch.id, len(batch.indexes), created.name, batch.project,
                 batch.input_file or "inline requests")  # fmt: skip

    def _not_created(self, batch: BatchRecord, client: Any, error: GeminiCallError) -> None:
        """Refused (a 429, a key refused): created again, its requests built and uploaded
        again; refused for quota again and again, in halves, or, alone, its prompt fails.
        A timeout or a 5xx may have reached Gemini: it stays `creating`, its file kept, so
        it is looked for by name first."""
        message = redact(str(error), self.ctx.pool.key_list)
        if isinstance(error, (QuotaExceeded, CapacityExhausted, KeyInvalid)):
            self._uncreated(batch, client)
        batch.polls += 1
        if isinstance(error, QuotaExceeded) and batch.polls >= REFUSALS:
            if len(batch.indexes) == 1:
                why = f"Gemini refused its batch {batch.polls} times for quota: {message}"
                self._fail(batch.job, batch.indexes, ErrorKind.QUOTA, why)
                self._drop(batch, client)
                return
            half = len(batch.indexes) // 2
            # Parked before the record shrinks: a worker dying between may get a prompt
            # answered twice (its first result stands), never leave one in no place.
            self.ctx.queue.park(batch.job, batch.indexes[half:], carry=_carry(batch.round))
            batch.indexes, batch.polls = batch.indexes[:half], 0
            log.warning("batch %s: refused %d times for quota; halved", batch.id, REFUSALS)
        self.ctx.batches.save(batch)
        self.ctx.batches.look_again(batch.id, self._later(batch))
        log.warning("batch %s: creating it failed (%s); trying again", batch.id, message)

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
        cache = None
        control = self.ctx.job_control(job)
        if control.cache and (prefix := prefix_of(record, model)) is not None:
            # The cache outlives the batch's upload and deadline: Gemini may answer that late.
            lasting = control.batch_deadline + self.hold + FILE_BYTES / UPLOAD_RATE
            try:
                cache = self.ctx.caches.use(job, prefix, key.project, client, parts, lasting)
            except genai_errors.APIError as exc:  # the prompt goes uncached, not the batch stuck
                log.warning("job %s: caching a prefix in project %s failed (%s); sent uncached",
                            job, key.project, exc.code)  # fmt: skip
        request = build_request(record, model, None, parts, cache=cache)
        return types.InlinedRequest(
            contents=[request.content], config=request.config, metadata={"index": str(index)}
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
        self._uncreated(batch, client)
        self.ctx.batches.save(batch)
        self._submit(batch)

    def _uncreated(self, batch: BatchRecord, client: Any) -> None:
        """Gemini has no batch of this record: it goes back to `formed`, to be created
        again, maybe in another project; no batch of Gemini's reads its file."""
        batch.state = BatchState.FORMED
        self._forget_input(batch, client)
        self.ctx.batches.dequeue(batch)

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
            self._collect(batch, control, found, client)
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

    def _collect(
        self, batch: BatchRecord, control: Control, found: types.BatchJob, client: Any
    ) -> None:
        """Every answer to its own prompt's result, inline or read from the batch's responses
        file; prompts Gemini did not answer, or answered with what another try may fix, go
        back."""
        try:
            answers = _answers(client, found)
        except genai_errors.ClientError as exc:  # it will not be read however often we ask
            why = f"its responses file could not be read ({exc.code})"
            self._send_back(batch, control, batch.indexes, why)
            return
        price = prices.price_of(self.settings.prices, batch.model)
        raws = self.ctx.queue.records(batch.job, batch.indexes)
        again: list[int] = []
        answered: set[int] = set()
        # Prefixes whose cache Gemini said it had not, and the prompts that named it.
        stale: dict[str, tuple[Prefix, list[int]]] = {}
        for item in answers:
            index = int((item.metadata or {}).get("index", -1))
            if index not in raws or index in answered:
                continue
            answered.add(index)
            raw = raws[index]
            if raw is None:
                continue
            action = self._settle(batch, index, raw, item, price, control.cache)
            if action is Action.RECACHE and (prefix := prefix_of(parse_staged(raw), batch.model)):
                stale.setdefault(prefix.digest, (prefix, []))[1].append(index)
            elif action is not None:
                again.append(index)
        for prefix, indexes in stale.values():  # the cache is made again for their next batch
            self.ctx.caches.verify(batch.job, batch.project, prefix, client)
            # Not the batch's failure: batched again, whatever the job's fallback.
            self.ctx.queue.park(batch.job, indexes, carry=_carry(batch.round + 1))
        again += [i for i in batch.indexes if i not in answered]
        if again:
            self._send_back(batch, control, again, "Gemini's batch did not answer them")
        else:
            self._drop(batch, client)
        if found.dest and found.dest.file_name:  # once nothing needs it again
            self._delete_file(client, found.dest.file_name)

    def _settle(
        self,
        batch: BatchRecord,
        index: int,
        raw: Any,
        item: types.InlinedResponse,
        price: prices.Price | None,
        cached: bool,
    ) -> Action | None:
        """Write the batch's answer or error for prompt `index` to its result; or, when it
        goes in another batch instead, what the rules decided for it."""
        result = self._result(batch.job, index, raw)
        result.attempts, result.key_id = batch.round + 1, batch.key_id
        result.model, result.mode = batch.model, Mode.BATCH.value
        result.timings = {"started_at": batch.submitted_at, "finished_at": time.time()}
        call = Call(batch.project, False, cached=cached)
        if item.error is not None:
            error = classify_status(item.error.code or 0, item.error.message or "")
            decision = decide(error, PromptState(), self.ctx.policy, call)
        else:
            response = item.response or types.GenerateContentResponse()
            answer = responses.read(response)
            responses.fill(result, response, answer)
            result.cost = prices.call_cost(price, result.usage, Mode.BATCH.value)
            decision = decide(answer, PromptState(), self.ctx.policy, call)
        if decision.action is Action.SUCCEED:
            responses.parse_json(result, parse_staged(raw).generation_config)
            self._record(batch.job, result)
        elif decision.action is Action.FAIL or batch.round + 1 >= MAX_ROUNDS:
            message = redact(decision.message, self.ctx.pool.key_list)
            self._end(batch.job, result, decision.kind or ErrorKind.SERVER, message)
        else:
            return decision.action
        return None

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
        self._drop(batch)

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
        self._drop(batch, client)

    # -- helpers ------------------------------------------------------------------------

    def _drop(self, batch: BatchRecord, client: Any | None = None) -> None:
        """Forget the batch, then delete its input file: a worker dying between the two
        leaves a file Gemini deletes after 48 hours, not a record naming a file gone."""
        self.ctx.batches.drop(batch)
        if batch.input_file:
            self._forget_input(batch, client or self._project_client(batch))

    def _forget_input(self, batch: BatchRecord, client: Any | None) -> None:
        """Delete the file the batch's requests were uploaded as, with a client of its
        project if this worker has one (else Gemini deletes it after 48 hours)."""
        if batch.input_file and client is not None:
            self._delete_file(client, batch.input_file)
        batch.input_file = ""

    def _delete_file(self, client: Any, name: str) -> None:
        # Best effort: nothing waits on it. Gemini refuses today to delete the responses
        # file of a batch (googleapis/python-genai#1759) and deletes every file in 48 hours.
        try:
            client.files.delete(name=name)
        except Exception as exc:
            log.info("could not delete %s: %s", name, redact(str(exc), self.ctx.pool.key_list))

    def _later(self, batch: BatchRecord) -> float:
        return min(self.settings.batch_poll, FIRST_LOOK * 2.0 ** min(batch.polls, 16))

    def _project_client(self, batch: BatchRecord) -> Any | None:
        """A client with a key of the batch's project (the batch is the project's): the key
        that created it if this worker holds it."""
        creator = next((k for k in self.ctx.pool.key_list if k.id == batch.key_id), None)
        return self.ctx.client(creator) if creator else self.ctx.client_of(batch.project)

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


class BatchInput:
    """A batch's requests as they are built: each one's JSONL line, in a file on the worker's
    disk, and the requests themselves while they all still fit inline."""

    def __init__(self, inline_limit: int, token_limit: int) -> None:
        self.inline_limit, self.token_limit = inline_limit, token_limit
        self.inline: list[types.InlinedRequest] = []
        self.lines: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (__exit__ closes it)
        self.size = 0
        self.tokens = 0  # the requests' input tokens, estimated
        self.indexes: list[int] = []

    def __enter__(self) -> BatchInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lines.close()

    @property
    def as_file(self) -> bool:
        return self.size > self.inline_limit

    def fits(self, line: bytes, tokens: int) -> bool:
        """Whether `line`, of `tokens` input tokens, may join: a batch holds up to FILE_BYTES
        and the token limit (one line, any)."""
        if not self.indexes:
            return True
        return self.size + len(line) <= FILE_BYTES and self.tokens + tokens <= self.token_limit

    def add(self, index: int, request: types.InlinedRequest, line: bytes, tokens: int) -> None:
        self.lines.write(line)
        self.size += len(line)
        self.tokens += tokens
        self.indexes.append(index)
        if self.as_file:
            self.inline.clear()  # only its lines are sent: the requests need not be held
        else:
            self.inline.append(request)


def file_line(client: Any, index: int, request: types.InlinedRequest) -> bytes:
    """`request` as a line of a file batch, `{"key": index, "request": ...}`: the request is
    the GenerateContentRequest JSON google-genai sends for it inline (generation settings
    under `generationConfig`; the system instruction, tools and safety settings beside
    `contents`; schemas normalised; bytes in base64), so Gemini is asked the same either
    way. Its length is about what the request adds to an inline batch's body too."""
    # google-genai's own conversion, not public API: tests/unit/test_batch_files.py checks
    # the line against what `client.batches.create` sends inline, so a change shows there.
    sent = genai_batches._InlinedRequest_to_mldev(client._api_client, request)["request"]
    body = _common.encode_unserializable_types(_common.convert_to_dict(sent))
    return (json.dumps({"key": str(index), "request": body}) + "\n").encode()


def _answers(client: Any, found: types.BatchJob) -> list[types.InlinedResponse]:
    """A finished batch's answers, each with its prompt's index in its metadata: inline, or
    every line of its responses file."""
    dest = found.dest
    if dest is None or not dest.file_name:
        return list(dest.inlined_responses or []) if dest else []
    lines = client.files.download(file=dest.file_name).splitlines()
    return [answer for answer in map(line_answer, lines) if answer is not None]


def line_answer(line: bytes) -> types.InlinedResponse | None:
    """A line of a responses file (`{"key", "response"}` or `{"key", "error"}`) as the inline
    answer it stands for, its key as the index; None for a line that is no JSON object."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    answer = {k: entry[k] for k in ("response", "error") if entry.get(k) is not None}
    answer["metadata"] = {"index": str(entry.get("key", -1))}
    # Read as google-genai reads an inline answer: fields it does not know are dropped.
    return types.InlinedResponse._from_response(response=answer, kwargs={})
