"""Which jobs hold which staged media, so forgetting a job deletes only what no other uses."""

from __future__ import annotations

from gemini_tasks.connections import text
from gemini_tasks.media.store import MediaStore
from gemini_tasks.runtime import Runtime


def hold(rt: Runtime, job_id: str, sha256: str) -> None:
    """Record that `job_id` uses the staged media `sha256`."""
    keys, ttl = rt.keys, rt.settings.result_expires
    pipe = rt.redis.pipeline()
    pipe.sadd(keys.job_media(job_id), sha256)
    pipe.expire(keys.job_media(job_id), ttl)
    pipe.sadd(keys.media_jobs(sha256), job_id)
    pipe.expire(keys.media_jobs(sha256), ttl)
    pipe.execute()


def release(rt: Runtime, job_id: str, store: MediaStore) -> list[tuple[str, str]]:
    """Drop the job's holds; delete the media no other job holds. Returns the uploaded
    files (project, file name) of the deleted media, for workers to delete from Gemini."""
    keys, client = rt.keys, rt.redis
    files: list[tuple[str, str]] = []
    for raw in client.smembers(keys.job_media(job_id)):
        sha256 = text(raw)
        holders = keys.media_jobs(sha256)
        client.srem(holders, job_id)
        if client.scard(holders):
            continue
        store.delete(sha256)
        for raw_project, name in client.hgetall(keys.media_uploads(sha256)).items():
            project = text(raw_project)
            files.append((project, text(name)))
            client.delete(keys.upload(project, sha256))
        client.delete(keys.media_uploads(sha256))
    client.delete(keys.job_media(job_id))
    return files
