"""Every Redis key gemini_tasks uses, named in one place.

All of the project's own keys start with one hash tag, `{GEMINI_TASKS_KEY_PREFIX}` (`{p}`
below), so a Lua script that touches several of them also runs on Redis Cluster. Scripts
build per-key names inside Lua; each package's `lua/prelude.lua` defines those names with
the same patterns as the methods below, and tests check that both agree.

  The key pool, under REDIS_URL:

    {p}:keys                        hash   key id -> {"label", "project"} of every registered key
    {p}:config                      hash   the pool's settings (cooldown, waits, circuit, ...)
    {p}:limits                      hash   configured limits: pm:<project>:<model>, p:<project>,
                                           m:<model>, default -> "rpm tpm rpd"; default_model
    {p}:learned:<project>:<model>   hash   rpm, tpm, rpd the project's 429s named
    {p}:models                      set    models any key was leased for
    {p}:keyset:<set>                set    key ids of one worker's keys (a key set)
    {p}:holders:<key>               set    key sets holding the key
    {p}:members:<project>           set    key ids of the project
    {p}:ready:<set>:<model>         zset   key id -> when it is usable (least recently used
                                           first): the index acquire reads, O(log n)
    {p}:key:<key>                   hash   project, failed_reason, failed_at
    {p}:key:<key>:<model>           hash   cooldown_until, last_used, in_flight, counters
    {p}:project:<project>:<model>   hash   exhausted_until, exhausted_kind, exhausted_count,
                                           exhausted_at, reason
    {p}:rpm:<project>:<model>       zset   lease id -> when it was granted (sliding minute)
    {p}:tpm:<project>:<model>       hash   second -> tokens granted in it (sliding minute)
    {p}:rpd:<project>:<model>:<t>   string requests before the daily reset at epoch t
    {p}:model:<model>               hash   the model's circuit (open_until, probe, history,
                                           level) and capacity backoff (backoff_until,
                                           capacity_level, capacity_at)
    {p}:leases                      zset   lease id -> expiry (Redis clock); a worker's lease
                                           ids are <worker id>/<uuid>
    {p}:lease:<lease>               string key, model, project, tokens, second, acquired_at,
                                           probe (tab-separated)
    {p}:line:<set>:<model>          zset   ticket -> ticket of each prompt waiting in a thread
                                           for a key (served lowest ticket first)
    {p}:line:<set>:<model>:due      zset   ticket -> when that waiter is to ask again
  The scheduler, in the broker's Redis (gemini_tasks/scheduler/lua/prelude.lua names these,
  but for {p}:lost and {p}:lost-sweep, which only the heartbeat uses):

    {p}:jobs                        zset   job id -> when it was created
    {p}:active                      set    jobs with prompts in flight (for the lost-message sweep)
    {p}:lost                        set    "<job>:<index>" of the prompts the last look for
                                           lost messages found lost (fed again if the next
                                           look finds them lost too)
    {p}:lost-sweep                  string held by the worker looking for lost messages
    {p}:job:<job>                   hash   state, total, created_at, queue, priority, weight,
                                           model, caps (max_concurrency, max_rpm), blocking
    {p}:job:<job>:args              hash   index -> task argument, until the prompt succeeds
    {p}:job:<job>:todo              list   indexes waiting to be fed to the broker, in order
    {p}:job:<job>:inflight          zset   index -> when it was fed, until it finishes
    {p}:job:<job>:rpm               zset   index -> when it was fed (the job's minute, for max_rpm)
    {p}:job:<job>:carry             hash   index -> what a parked prompt's next run goes on from
    {p}:submitter:<job>             string present while a producer is still submitting
    {p}:sched:<queue>:<priority>    zset   job id -> its virtual time (fair share: least first)
    {p}:tickets                     string the last ticket given to a prompt chosen to run
    {p}:batch:<batch>               hash   a Batch Mode batch: job, state (formed, creating,
                                           pending), indexes (JSON), round, formed_at, owner,
                                           project, key_id, name (Gemini's), submitted_at,
                                           polls, model, input_file
    {p}:batches                     zset   batch id -> when it is next due for a look (a
                                           worker holding it pushes this out)
    {p}:job:<job>:batches           set    the job's batches
    {p}:holding:<worker>            set    the batches a worker holds (due at once if it dies)
    {p}:batch_quota:<project>       hash   batch id -> "<tokens>|<model>": the project's
                                           batches counted against its Batch Mode limits
    {p}:workers                     hash   worker id -> its last heartbeat (Redis clock)
    {p}:held:<worker>               set    delivery tags of the messages the worker holds
    {p}:transit:<worker>            hash   "<job>:<index>" -> when fed, until published
    {p}:evicted:<worker>            string a worker taken for dead, so it stops if it was not

  The results, in the result backend's Redis:

    celery-task-meta-<job>-<index>  string one prompt's result (Celery's format; our Result)
    {p}:job:<job>:counts            hash   done, failed, kind:<kind>, tokens, cost, budget...
    {p}:job:<job>:events            stream one entry per finished prompt: i (index), k (kind)
    {p}:job:<job>:failed:<kind>     set    indexes that failed with that kind (for retry)
    {p}:job:<job>:metrics           hash   for Prometheus, only ever added to: p:<model>:<outcome>,
                                           prompt:<le>, prompt_sum, api:<le>, api_sum
    {p}:answer:<request>            string a --dedupe job's answer to a request (its digest:
                                           model, contents with media by hash, config), for
                                           identical requests of any --dedupe job
    {p}:answer:<request>:claim      string the task id of the prompt making that request now
    {p}:job:<job>:answers           set    requests whose answers the job's calls stored

  Media and uploads, under REDIS_URL:

    {p}:job:<job>:media             set    content hashes the job's prompts use
    {p}:media:<sha>:jobs            set    jobs holding that media
    {p}:media:<sha>:uploads         hash   project -> uploaded file name
    {p}:blob:<sha>                  hash   chunks, size of staged media (Redis media store)
    {p}:blob:<sha>:<n>              string its n-th chunk of 1 MiB
    {p}:upload:<project>:<sha>      string {"name", "uri"} of the media's file in that project
    {p}:upload:<project>:<sha>:lock string the lock held while one worker uploads it
    {p}:uploads:<project>           set    content hashes uploaded in that project
    {p}:caches:<job>                hash   a --cache job's context caches: c|<project>|<prefix>
                                           -> {"name", "model", "expires"}; small|<prefix> ->
                                           [tokens, minimum] of a prefix too small to cache;
                                           created -> how many it made
    {p}:cache_jobs                  set    jobs with caches a worker may have to delete
    {p}:cache:<job>:<project>:<prefix>:lock      string held while one worker creates it
    {p}:cache:<job>:<project>:<prefix>:renewing  string held while one worker renews it
    {p}:tokens:<media>              string Gemini's token count of one media part (its
                                           content, video metadata and resolution hashed),
                                           "counting" while a worker asks countTokens, or
                                           "uncounted" for a while after that failed

Celery and kombu own the rest, in their own layout: `celery-task-meta-<task id>` (one
result each, in the result backend), and in the broker the queue lists (`gemini_tasks`),
`unacked`, `unacked_index`, `unacked_mutex` and `_kombu.binding.*`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keyspace:
    """The key names under one `GEMINI_TASKS_KEY_PREFIX`."""

    prefix: str

    @property
    def tag(self) -> str:
        """The hash tag every key starts with."""
        return "{" + self.prefix + "}"

    # -- the key pool (the same names as the `K` table of pool/lua/prelude.lua) ---------
    def key_registry(self) -> str:
        return f"{self.tag}:keys"

    def pool_config(self) -> str:
        return f"{self.tag}:config"

    def limits(self) -> str:
        return f"{self.tag}:limits"

    def learned(self, project: str, model: str) -> str:
        return f"{self.tag}:learned:{project}:{model}"

    def models(self) -> str:
        return f"{self.tag}:models"

    def keyset(self, keyset: str) -> str:
        return f"{self.tag}:keyset:{keyset}"

    def holders(self, key_id: str) -> str:
        return f"{self.tag}:holders:{key_id}"

    def members(self, project: str) -> str:
        return f"{self.tag}:members:{project}"

    def ready(self, keyset: str, model: str) -> str:
        return f"{self.tag}:ready:{keyset}:{model}"

    def key(self, key_id: str) -> str:
        return f"{self.tag}:key:{key_id}"

    def key_state(self, key_id: str, model: str) -> str:
        return f"{self.tag}:key:{key_id}:{model}"

    def project_state(self, project: str, model: str) -> str:
        return f"{self.tag}:project:{project}:{model}"

    def rpm_window(self, project: str, model: str) -> str:
        return f"{self.tag}:rpm:{project}:{model}"

    def tpm_window(self, project: str, model: str) -> str:
        return f"{self.tag}:tpm:{project}:{model}"

    def rpd_count(self, project: str, model: str, reset: int) -> str:
        return f"{self.tag}:rpd:{project}:{model}:{reset}"

    def model_state(self, model: str) -> str:
        return f"{self.tag}:model:{model}"

    def leases(self) -> str:
        return f"{self.tag}:leases"

    def lease(self, lease_id: str) -> str:
        return f"{self.tag}:lease:{lease_id}"

    def line(self, keyset: str, model: str) -> str:
        return f"{self.tag}:line:{keyset}:{model}"

    def line_due(self, keyset: str, model: str) -> str:
        return f"{self.line(keyset, model)}:due"

    # -- the scheduler (the same names as pool/scheduler/lua/prelude.lua's `K`) ---------
    def jobs(self) -> str:
        return f"{self.tag}:jobs"

    def active(self) -> str:
        return f"{self.tag}:active"

    def lost(self) -> str:
        return f"{self.tag}:lost"

    def lost_sweep(self) -> str:
        return f"{self.tag}:lost-sweep"

    def job(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}"

    def job_args(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:args"

    def job_todo(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:todo"

    def job_inflight(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:inflight"

    def job_rpm(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:rpm"

    def job_carry(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:carry"

    def submitter(self, job_id: str) -> str:
        return f"{self.tag}:submitter:{job_id}"

    def tickets(self) -> str:
        return f"{self.tag}:tickets"

    def batch(self, batch_id: str) -> str:
        return f"{self.tag}:batch:{batch_id}"

    def batches(self) -> str:
        return f"{self.tag}:batches"

    def job_batches(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:batches"

    def holding(self, worker: str) -> str:
        return f"{self.tag}:holding:{worker}"

    def batch_quota(self, project: str) -> str:
        return f"{self.tag}:batch_quota:{project}"

    def sched(self, queue: str, priority: str) -> str:
        return f"{self.tag}:sched:{queue}:{priority}"

    def workers(self) -> str:
        return f"{self.tag}:workers"

    def held(self, worker: str) -> str:
        return f"{self.tag}:held:{worker}"

    def transit(self, worker: str) -> str:
        return f"{self.tag}:transit:{worker}"

    def evicted(self, worker: str) -> str:
        return f"{self.tag}:evicted:{worker}"

    def job_counts(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:counts"

    def job_events(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:events"

    def job_failed(self, job_id: str, kind: str) -> str:
        return f"{self.tag}:job:{job_id}:failed:{kind}"

    def job_metrics(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:metrics"

    def answer(self, digest: str) -> str:
        return f"{self.tag}:answer:{digest}"

    def claim(self, digest: str) -> str:
        return f"{self.answer(digest)}:claim"

    def job_answers(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:answers"

    # -- media holds ----------------------------------------------------------------------
    def job_media(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:media"

    # -- media --------------------------------------------------------------------------
    def media_jobs(self, sha256: str) -> str:
        return f"{self.tag}:media:{sha256}:jobs"

    def media_uploads(self, sha256: str) -> str:
        return f"{self.tag}:media:{sha256}:uploads"

    def blob(self, sha256: str) -> str:
        return f"{self.tag}:blob:{sha256}"

    def blob_chunk(self, sha256: str, n: int) -> str:
        return f"{self.tag}:blob:{sha256}:{n}"

    def upload(self, project: str, sha256: str) -> str:
        return f"{self.tag}:upload:{project}:{sha256}"

    def upload_lock(self, project: str, sha256: str) -> str:
        return f"{self.upload(project, sha256)}:lock"

    def project_uploads(self, project: str) -> str:
        return f"{self.tag}:uploads:{project}"

    def job_caches(self, job_id: str) -> str:
        return f"{self.tag}:caches:{job_id}"

    def cache_jobs(self) -> str:
        return f"{self.tag}:cache_jobs"

    def cache_lock(self, job_id: str, project: str, digest: str) -> str:
        return f"{self.tag}:cache:{job_id}:{project}:{digest}:lock"

    def cache_renewing(self, job_id: str, project: str, digest: str) -> str:
        return f"{self.tag}:cache:{job_id}:{project}:{digest}:renewing"

    def media_tokens(self, identity: str) -> str:
        return f"{self.tag}:tokens:{identity}"
