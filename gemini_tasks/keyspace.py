"""Every Redis key gemini_tasks uses, named in one place.

All of the project's own keys start with one hash tag, `{GEMINI_TASKS_KEY_PREFIX}`, so a
Lua script that touches several of them also runs on Redis Cluster. The pool's scripts
build per-key names inside Lua; `pool/lua/prelude.lua` defines those names with the same
patterns as the methods below, and a test checks that both agree.

    {p}:keys                        hash   key id -> {"label", "project"} of every registered key
    {p}:models                      set    models any key was leased for
    {p}:leases                      zset   lease id -> expiry (Redis clock)
    {p}:lease:<lease>               hash   key, model, project, tokens, second of one lease
    {p}:key:<key>                   hash   failed_reason, failed_at (for every model)
    {p}:key:<key>:<model>           hash   cooldown_until, last_used, in_flight, counters
    {p}:project:<project>:<model>   hash   exhausted_until, exhausted_kind, exhausted_count
    {p}:rpm:<project>:<model>       zset   lease id -> when it was granted (sliding minute)
    {p}:tpm:<project>:<model>       hash   second -> tokens granted in it (sliding minute)
    {p}:rpd:<project>:<model>:<t>   string requests before the daily reset at epoch t
    {p}:job:<job>                   hash   state, total, created_at, queue of one job
    {p}:job:<job>:args              hash   index -> task argument, until that task starts
    {p}:job:<job>:media             set    content hashes the job's prompts use
    {p}:media:<sha>:jobs            set    jobs holding that media
    {p}:media:<sha>:uploads         hash   project -> uploaded file name
    {p}:blob:<sha>                  hash   chunks, size of staged media (Redis media store)
    {p}:blob:<sha>:<n>              string its n-th chunk of 1 MiB
    {p}:upload:<project>:<sha>      string {"name", "uri"} of the media's file in that project
    {p}:upload:<project>:<sha>:lock string the lock held while one worker uploads it

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

    # -- the key pool -------------------------------------------------------------------
    def key_registry(self) -> str:
        return f"{self.tag}:keys"

    def leases(self) -> str:
        return f"{self.tag}:leases"

    def key_state(self, key_id: str, model: str) -> str:
        return f"{self.tag}:key:{key_id}:{model}"

    def rpm_window(self, project: str, model: str) -> str:
        return f"{self.tag}:rpm:{project}:{model}"

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
