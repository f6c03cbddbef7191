"""JobQueue's scripts against a real Redis: what a feeder is given, and when a message is
taken for lost. Each test has a scheduler of its own: its own key prefix, and a broker
queue named after it."""

import json

import redis

from gemini_tasks.keyspace import Keyspace
from gemini_tasks.scheduler import JobQueue, JobState, Suspect


def _scheduler(redis_url: str, name: str) -> JobQueue:
    client = redis.Redis.from_url(redis_url)
    client.delete(name)
    return JobQueue(client, Keyspace(name), 3600)


def _job(queue: JobQueue, job_id: str, prompts: int, **caps: int) -> None:
    fields = {"queue": queue.keys.prefix, "priority": "normal", "weight": 1, **caps}
    queue.create(job_id, fields)
    queue.add(job_id, [(i, json.dumps({"prompt": f"p{i}"})) for i in range(prompts)], prompts)
    queue.finish_submitting(job_id, JobState.SUBMITTED)


def test_a_feeder_is_given_its_free_threads_and_the_prompts_it_may_hold_ahead(redis_url):
    queue = _scheduler(redis_url, "jq-ahead")
    broker = queue.keys.prefix
    _job(queue, "ahead", 100)
    first = queue.dispatch(broker, 4, 6, "w", None, least=3)
    assert first.room == 10 and len(first.fed) == 10 and not first.starved(3)
    queue.redis.rpush(broker, *["message"] * 8)  # published, and two of them taken since
    # Room for two only: less than a batch, so nothing this time, and not for want of work.
    second = queue.dispatch(broker, 0, 10, "w", None, least=3)
    assert second.room == 2 and second.fed == [] and not second.starved(3)
    queue.redis.delete(broker)
    third = queue.dispatch(broker, 0, 10, "w", None, least=3)
    assert [f.index for f in third.fed] == list(range(10, 20))


def test_a_capped_job_is_fed_only_for_free_threads_and_says_so(redis_url):
    queue = _scheduler(redis_url, "jq-capped")
    broker = queue.keys.prefix
    _job(queue, "capped", 100, max_concurrency=50)
    alone = queue.dispatch(broker, 2, 10, "w", None, least=1)
    # Its prompts start as they are counted against its cap: none waits in the broker, and
    # the feeder knows it had less to feed than room for.
    assert len(alone.fed) == 2 and alone.starved(1)
    _job(queue, "free", 100)
    both = queue.dispatch(broker, 2, 10, "w", None, least=1)
    capped = [f for f in both.fed if f.job == "capped"]
    assert len(capped) <= 2 and len(both.fed) == 12 and not both.starved(1)


def test_a_message_is_lost_once_two_looks_apart_found_it_neither_queued_nor_held(redis_url):
    queue = _scheduler(redis_url, "jq-lost")
    popped, lost = Suspect("j", 1, 100.0), Suspect("j", 2, 100.0)
    assert queue.suspected_lost({popped, lost}, apart=0) == set()  # either may be in a pop
    # A look too soon after confirms nothing (another worker's, its lock just expired).
    assert queue.suspected_lost({lost}, apart=3600) == set()
    assert queue.suspected_lost({lost}, apart=0) == {lost}  # still nowhere: lost
    assert queue.suspected_lost({lost}, apart=0) == set()  # fed again: a new suspicion
    refed = Suspect("j", 2, 200.0)  # fed again since: what the last look saw is gone
    assert queue.suspected_lost({refed}, apart=0) == set()
    assert queue.suspected_lost({refed}, apart=0) == {refed}
