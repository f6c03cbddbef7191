"""Every Redis key gemini_tasks uses, named in one place.

All of the project's own keys start with one hash tag, `{GEMINI_TASKS_KEY_PREFIX}`, so a
Lua script that touches several of them also runs on Redis Cluster. The pool's scripts
build per-key names inside Lua; `pool/lua/prelude.lua` defines those names with the same
patterns as the methods below, and a test checks that both agree.


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
    {p}:model:<model>               hash   the model's circuit (open_until, probe, failures,
                                           level) and capacity backoff (backoff_until, level)
    {p}:leases                      zset   lease id -> expiry (Redis clock)
    {p}:lease:<lease>               string key, model, project, tokens, second, acquired_at,
                                           probe (tab-separated)
    {p}:job:<job>                   hash   state, total, created_at, queue of one job
    {p}:job:<job>:args              hash   index -> task argument, until that task starts
    {p}:job:<job>:media             set    content hashes the job's prompts use
    {p}:media:<sha>:jobs            set    jobs holding that media
    {p}:media:<sha>:uploads         hash   project -> uploaded file name
    {p}:blob:<sha>                  hash   chunks, size of staged media (Redis media store)
    {p}:blob:<sha>:<n>              string its n-th chunk of 1 MiB
    {p}:upload:<project>:<sha>      string {"name", "uri"} of the media's file in that project
    {p}:upload:<project>:<sha>:lock string the lock held while one worker uploads it
    {p}:uploads:<project>           set    content hashes uploaded in that project

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

    # -- jobs ---------------------------------------------------------------------------
    def job(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}"

    def job_args(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}:args"

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
