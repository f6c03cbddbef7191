"""When the feeder looks at the jobs' queues (`worker.feeder.due`)."""

from gemini_tasks.worker.feeder import TICK, due


def test_a_thread_that_ends_waits_for_a_batch_to_be_taken():
    assert not due(0.01, taken=2, batch=6, starved=False)
    assert due(0.01, taken=6, batch=6, starved=False)


def test_the_feeder_looks_at_least_every_tick_however_often_threads_end():
    assert due(TICK, taken=0, batch=6, starved=False)


def test_a_thread_that_ends_after_a_look_found_too_little_looks_again_at_once():
    # A capped job's freed slot, a job waiting for keys: every end may let one more in.
    assert due(0.01, taken=0, batch=6, starved=True)
