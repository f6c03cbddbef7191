"""BatchBook's scripts against a real Redis: a dropped batch stays dropped, and a project's
Batch Mode limits count only batches that still exist."""

import redis

from gemini_tasks.keyspace import Keyspace
from gemini_tasks.scheduler import BatchBook, BatchRecord, BatchState

KEYS = Keyspace("batch_book")


def _formed(client: redis.Redis, batch_id: str, tokens: int) -> BatchRecord:
    client.hset(KEYS.batch(batch_id), mapping={"job": "j", "state": "formed"})  # as form.lua
    return BatchRecord(batch_id, "j", BatchState.FORMED, [0], model="m", tokens=tokens)


def test_a_dropped_batch_is_not_brought_back_by_a_late_save(redis_url):
    client = redis.Redis.from_url(redis_url)
    book = BatchBook(client, KEYS)
    batch = _formed(client, "late", 10)
    batch.project = "p"
    assert book.save(batch) and book.get("late").project == "p"
    book.drop(batch)  # another worker ended it: its job was cancelled
    batch.state = BatchState.PENDING
    assert not book.save(batch) and not client.exists(KEYS.batch("late"))
    assert not book.enqueue(batch, "p", 100, 10)  # nor counted against its project


def test_a_projects_limits_count_the_batches_that_still_exist(redis_url):
    client = redis.Redis.from_url(redis_url)
    book = BatchBook(client, KEYS)
    first, second, third = (_formed(client, f"b{i}", 60) for i in range(3))
    assert book.enqueue(first, "q", 100, 10)
    assert not book.enqueue(second, "q", 100, 10)  # 120 tokens of model m: over 100
    book.drop(first)
    assert book.enqueue(second, "q", 100, 10)
    client.delete(KEYS.batch("b1"))  # a worker died as it dropped it: its entry goes too
    third.tokens = 100
    assert book.enqueue(third, "q", 100, 10)
    fourth = _formed(client, "b4", 1)
    assert not book.enqueue(fourth, "q", 1000, 1)  # one unfinished batch a project, at most
