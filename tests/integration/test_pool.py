"""Each transition of each key-pool script, against a real redis-server."""

import time
import uuid

import pytest
import redis

from gemini_tasks.errors import (
    CapacityExhausted,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    QuotaViolation,
    StorageExhausted,
    TransientError,
)
from gemini_tasks.keys import ApiKey
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.limits import Limits, LimitTable, next_daily_reset
from gemini_tasks.pool import WINDOW, KeyPool, Lease, NoKeyYet, PoolConfig
from gemini_tasks.scripts import text

pytestmark = pytest.mark.integration

MODEL = "gemini-test"
A = ApiKey("GEMINI_API_KEY_1", "fake-pool-secret-a")
B = ApiKey("GEMINI_API_KEY_2", "fake-pool-secret-b", "shared")
C = ApiKey("GEMINI_API_KEY_3", "fake-pool-secret-c", "shared")
NO_LIMITS = Limits()


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def make_pool(client: redis.Redis):
    prefix = f"pooltest-{uuid.uuid4().hex[:8]}"

    def make(keys=(A,), limits=NO_LIMITS, holder="", **overrides) -> KeyPool:
        config = dict(
            cooldown=0.0,
            exhausted_wait=60.0,
            fully_exhausted_wait=43200.0,
            max_exhausted_retries=3,
            limits=LimitTable(MODEL, limits),
            lease_seconds=30.0,
        )
        config.update(overrides)
        pool = KeyPool(client, list(keys), PoolConfig(**config), Keyspace(prefix), holder)
        pool.register()
        return pool

    return make


def minute(limit: int = 10) -> QuotaViolation:
    return QuotaViolation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", limit)


def day(limit: int = 100) -> QuotaViolation:
    return QuotaViolation("GenerateRequestsPerDayPerProjectPerModel-FreeTier", limit)


def states(pool: KeyPool) -> dict[str, dict]:
    """The seed's view of every key, by id."""
    return {state.key_id: state.seed_view() for state in pool.status(MODEL).keys}


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def labels(pool: KeyPool, n: int) -> list[str]:
    got = [pool.acquire(MODEL) for _ in range(n)]
    return [g.key.label[-1] if isinstance(g, Lease) else "-" for g in got]


def prove(pool: KeyPool, *keys: ApiKey) -> None:
    """Give each key the one success that ends its probation."""
    while keys:
        lease = pool.acquire(MODEL)
        if isinstance(lease, NoKeyYet):
            time.sleep(lease.seconds)
            continue
        pool.release(lease, None, 1)
        keys = tuple(k for k in keys if k.id != lease.key.id)


def test_least_recently_used_key_goes_first(make_pool):
    pool = make_pool([A, B, C])
    prove(pool, A, B, C)
    order = labels(pool, 6)
    assert sorted(order[:3]) == ["1", "2", "3"] and order[3:] == order[:3]


def test_an_unproven_key_gets_one_call_at_a_time(make_pool):
    pool = make_pool([A, B])
    got = labels(pool, 3)
    assert sorted(got[:2]) == ["1", "2"] and got[2] == "-"
    wait = pool.acquire(MODEL)
    assert isinstance(wait, NoKeyYet) and wait.seconds == pytest.approx(0.2, abs=0.01)


def test_cooldown_after_each_use(make_pool):
    pool = make_pool([A, B], cooldown=0.4)
    prove(pool, A, B)
    time.sleep(0.4)
    order = labels(pool, 2)
    assert sorted(order) == ["1", "2"]
    wait = pool.acquire(MODEL)
    assert isinstance(wait, NoKeyYet) and 0 < wait.seconds <= 0.4
    assert states(pool)[A.id]["status"] == "COOLDOWN"
    time.sleep(wait.seconds)
    assert labels(pool, 1) == order[:1]  # the first to cool down


def test_requests_per_minute_is_a_sliding_window(make_pool, client):
    pool = make_pool([A], Limits(rpm=2))
    # Two requests made 59.5 s ago: the window frees its first slot 1.5 s from now.
    old = redis_now(client) - 59.5
    client.zadd(pool.keyspace.rpm_window(A.project, MODEL), {"old-1": old, "old-2": old + 0.2})
    wait = pool.acquire(MODEL)
    assert isinstance(wait, NoKeyYet)
    # Redis' clock moved on a little between the test's ZADD and the acquire.
    assert WINDOW - 59.5 - 1 < wait.seconds <= WINDOW - 59.5
    assert states(pool)[A.id]["status"] == "COOLDOWN"


def test_rpm_counts_every_key_of_a_project(make_pool):
    pool = make_pool([A, B, C], Limits(rpm=1))
    # B and C share a project, so its one request a minute goes to B and C must wait.
    got = labels(pool, 3)
    assert got[2] == "-" and "1" in got[:2] and len({"2", "3"} & set(got[:2])) == 1


def test_tokens_per_minute_with_correction_at_release(make_pool):
    pool = make_pool([A], Limits(tpm=100))
    first = pool.acquire(MODEL, tokens=60)
    assert isinstance(first, Lease)
    refused = pool.acquire(MODEL, tokens=60)
    # Tokens are counted by the second: the window frees the first one's in up to a second
    # more or less than WINDOW, as the two calls fall in one second or straddle two.
    assert isinstance(refused, NoKeyYet) and WINDOW - 1 < refused.seconds <= WINDOW + 1
    pool.release(first, None, tokens_used=5)  # Gemini counted far fewer than estimated
    assert isinstance(pool.acquire(MODEL, tokens=60), Lease)
    assert states(pool)[A.id]["project_tokens_last_minute"] == 65


def test_requests_per_day_wait_for_the_pacific_midnight(make_pool, client, quota_day):
    pool = make_pool([A], Limits(rpd=1))
    assert isinstance(pool.acquire(MODEL), Lease)
    wait = pool.acquire(MODEL)
    now = redis_now(client)
    assert isinstance(wait, NoKeyYet)
    assert wait.seconds == pytest.approx(next_daily_reset(now) - now, abs=30)
    assert states(pool)[A.id]["project_requests_today"] == 1


def test_per_minute_429_waits_for_retry_info_when_longer(make_pool):
    pool = make_pool([A], exhausted_wait=5.0)
    lease = pool.acquire(MODEL)
    quota = QuotaExceeded("429", retry_delay=30, violations=(minute(),))
    assert pool.release(lease, quota).exhausted_count == 1
    status = states(pool)[A.id]
    assert status["status"] == "TEMPORARILY_EXHAUSTED"
    assert 20 < status["seconds_left"] <= 30
    assert status["quota_errors"] == 1 and status["exhausted_count"] == 1
    assert isinstance(pool.acquire(MODEL), NoKeyYet)


def test_our_own_wait_when_retry_info_is_shorter_or_absent(make_pool):
    pool = make_pool([A], exhausted_wait=5.0)
    # A quota 429 that names no limit: the pool cannot pace by it.
    pool.release(pool.acquire(MODEL), QuotaExceeded("429", retry_delay=1, violations=()))
    assert 1 < states(pool)[A.id]["seconds_left"] <= 5


def test_a_per_minute_limit_the_pool_paces_by_waits_only_as_long_as_gemini_says(make_pool):
    pool = make_pool([A], exhausted_wait=60.0)
    pool.release(pool.acquire(MODEL), QuotaExceeded("429", retry_delay=2, violations=(minute(),)))
    status = states(pool)[A.id]
    assert status["status"] == "TEMPORARILY_EXHAUSTED" and status["seconds_left"] <= 2
    assert status["limits"]["rpm"] == 10  # learned: pacing keeps it under from now on


def test_daily_quota_exhausts_fully_until_the_reset(make_pool, client, quota_day):
    pool = make_pool([A])
    quota = QuotaExceeded("429", retry_delay=10, violations=(day(),))
    pool.release(pool.acquire(MODEL), quota)
    status = states(pool)[A.id]
    now = redis_now(client)
    assert status["status"] == "FULLY_EXHAUSTED"
    assert status["seconds_left"] == pytest.approx(next_daily_reset(now) - now, abs=30)


def test_a_reset_forgets_the_limits_429s_taught_as_after_a_quota_increase(make_pool):
    pool = make_pool([A])
    pool.release(pool.acquire(MODEL), QuotaExceeded("429", retry_delay=10, violations=(day(1),)))
    assert states(pool)[A.id]["limits"]["rpd"] == 1  # learned: nothing more goes today
    assert pool.reset(A.id)
    status = states(pool)[A.id]
    assert status["status"] == "AVAILABLE" and status["limits"]["rpd"] == 0
    assert isinstance(pool.acquire(MODEL), Lease)  # today's count no longer holds it back


def test_fully_exhausted_after_max_exhaustions_in_a_row(make_pool):
    pool = make_pool([A], exhausted_wait=0.05, max_exhausted_retries=2, fully_exhausted_wait=500)
    pool.release(pool.acquire(MODEL), QuotaExceeded("429", violations=(minute(),)))
    assert states(pool)[A.id]["status"] == "TEMPORARILY_EXHAUSTED"
    time.sleep(0.1)
    again = pool.release(pool.acquire(MODEL), QuotaExceeded("429", violations=(minute(),)))
    assert again.exhausted_count == 2
    status = states(pool)[A.id]
    assert status["status"] == "FULLY_EXHAUSTED"
    assert 450 < status["seconds_left"] <= 500


def test_a_success_resets_the_exhaustion_count(make_pool):
    pool = make_pool([A], exhausted_wait=0.05, max_exhausted_retries=2)
    pool.release(pool.acquire(MODEL), QuotaExceeded("429", violations=(minute(),)))
    time.sleep(0.1)
    pool.release(pool.acquire(MODEL), None, tokens_used=3)
    status = states(pool)[A.id]
    assert status["exhausted_count"] == 0 and status["status"] == "AVAILABLE"
    assert status["successes"] == 1 and status["tokens"] == 3


def test_429s_of_calls_already_in_flight_are_one_exhaustion(make_pool):
    pool = make_pool([A], max_exhausted_retries=2)
    prove(pool, A)
    in_flight = [pool.acquire(MODEL) for _ in range(5)]
    quota = QuotaExceeded("429", violations=(minute(),))
    counts = [pool.release(lease, quota).exhausted_count for lease in in_flight]
    assert counts == [1, 1, 1, 1, 1]
    assert states(pool)[A.id]["status"] == "TEMPORARILY_EXHAUSTED"


def test_keys_of_one_project_share_its_exhaustion(make_pool):
    pool = make_pool([A, B, C])
    prove(pool, A, B, C)
    leases = {lease.key.label: lease for lease in (pool.acquire(MODEL) for _ in range(3))}
    pool.release(
        leases["GEMINI_API_KEY_2"], QuotaExceeded("429", retry_delay=30, violations=(minute(),))
    )
    assert labels(pool, 3) == ["1", "1", "1"]
    status = states(pool)
    assert status[C.id]["status"] == "TEMPORARILY_EXHAUSTED"  # C never got a 429 itself


def test_invalid_key_is_dead_for_every_machine_until_reset(make_pool):
    machine_1 = make_pool([A, B])
    machine_2 = make_pool([A, B])
    lease = machine_1.acquire(MODEL)
    machine_1.release(lease, KeyInvalid("400 INVALID_ARGUMENT: API key not valid."))
    dead = lease.key.label[-1]
    assert dead not in labels(machine_2, 4)
    status = states(machine_2)[lease.key.id]
    assert status["status"] == "FAILED_INIT"
    assert "API key not valid" in status["failed_reason"]
    assert machine_2.reset(lease.key.id)
    assert states(machine_2)[lease.key.id]["status"] == "AVAILABLE"


def test_every_key_failed_means_no_key_ever(make_pool):
    pool = make_pool([A])
    pool.release(pool.acquire(MODEL), KeyInvalid("revoked"))
    assert pool.acquire(MODEL) == NoKeyYet(float("inf"))


def test_server_errors_and_bad_requests_leave_the_key_usable(make_pool):
    pool = make_pool([A])
    pool.release(pool.acquire(MODEL), TransientError("503"))
    pool.release(pool.acquire(MODEL), InvalidRequest("400"))
    status = states(pool)[A.id]
    assert status["status"] == "AVAILABLE"
    assert (status["failures"], status["invalid_requests"], status["requests"]) == (1, 1, 2)


def test_a_machine_never_leases_a_key_it_lacks(make_pool):
    make_pool([A, B])  # another machine registered both
    only_a = make_pool([A])
    prove(only_a, A)
    assert labels(only_a, 3) == ["1", "1", "1"]
    assert set(states(only_a)) == {A.id, B.id}


def test_lost_leases_expire_and_give_back_their_slot(make_pool):
    pool = make_pool([A], lease_seconds=0.2)
    lost = pool.acquire(MODEL)  # its worker "dies" holding it
    assert states(pool)[A.id]["in_flight"] == 1
    time.sleep(0.3)
    fresh = pool.acquire(MODEL)
    assert states(pool)[A.id]["in_flight"] == 1
    pool.release(lost, None, 1)  # a late release of the expired lease changes nothing
    pool.release(fresh, None, 1)
    assert states(pool)[A.id]["in_flight"] == 0


def test_a_dead_workers_leases_are_given_back_at_once(make_pool):
    dead, alive = make_pool([A], holder="w-dead"), make_pool([A], holder="w-alive")
    probe = dead.acquire(MODEL)  # an unproven key's one call; its worker dies holding it
    assert isinstance(probe, Lease) and isinstance(alive.acquire(MODEL), NoKeyYet)
    assert alive.forfeit("w-dea") == 0  # a holder is its whole id
    assert alive.forfeit("w-dead") == 1  # as the worker that took it for dead does
    fresh = alive.acquire(MODEL)
    if isinstance(fresh, NoKeyYet):  # the index looks at an unproven key every probe_wait
        assert fresh.seconds <= 0.2
        time.sleep(fresh.seconds)
        fresh = alive.acquire(MODEL)
    assert isinstance(fresh, Lease)
    dead.release(probe, None, 1)  # if it was only frozen, its late release changes nothing
    assert states(alive)[A.id]["in_flight"] == 1


def test_scripts_reload_after_script_flush(make_pool, client):
    pool = make_pool([A])
    client.script_flush()
    assert isinstance(pool.acquire(MODEL), Lease)


def test_reset_of_an_unknown_key(make_pool):
    assert not make_pool([A]).reset("key-000000000000")


def test_all_pool_keys_share_one_hash_tag_and_hold_no_secret(make_pool, client):
    pool = make_pool([A, B, C], Limits(rpm=5, tpm=1000, rpd=10))
    for lease in [pool.acquire(MODEL) for _ in range(3)]:
        pool.release(lease, None, 2)
    names = list(client.scan_iter(match=f"*{pool.keyspace.tag}*"))
    assert names and all(n.startswith(pool.keyspace.tag.encode()) for n in names)
    dump = b" ".join(client.dump(n) or b"" for n in names) + b" ".join(names)
    for key in (A, B, C):
        assert key.secret.encode() not in dump


def test_the_scripts_name_every_key_as_the_keyspace_does(make_pool, client):
    pool = make_pool([A])
    keys = pool.keyspace
    lua = (
        text("gemini_tasks.pool", "prelude")
        + """
        return {K.registry(), K.config(), K.limits(), K.models(), K.leases(), K.lease('L'),
          K.keyset('S'), K.key('k'), K.key_state('k', 'm'), K.holders('k'), K.ready('S', 'm'),
          K.members('p'), K.project('p', 'm'), K.learned('p', 'm'), K.rpm('p', 'm'),
          K.tpm('p', 'm'), K.rpd('p', 'm', 1700000000), K.model('m'), K.line('S', 'm'),
          K.line_due('S', 'm')}
    """
    )
    names = [n.decode() for n in client.eval(lua, 0, keys.tag)]
    assert names == [
        keys.key_registry(), keys.pool_config(), keys.limits(), keys.models(), keys.leases(),
        keys.lease("L"), keys.keyset("S"), keys.key("k"), keys.key_state("k", "m"),
        keys.holders("k"), keys.ready("S", "m"), keys.members("p"), keys.project_state("p", "m"),
        keys.learned("p", "m"), keys.rpm_window("p", "m"), keys.tpm_window("p", "m"),
        keys.rpd_count("p", "m", 1700000000), keys.model_state("m"), keys.line("S", "m"),
        keys.line_due("S", "m"),
    ]  # fmt: skip


def test_the_scheduler_scripts_name_every_key_as_the_keyspace_does(make_pool, client):
    keys = make_pool([A]).keyspace
    lua = (
        text("gemini_tasks.scheduler", "prelude")
        + """
        return {K.jobs(), K.active(), K.job('j'), K.args('j'), K.todo('j'), K.inflight('j'),
          K.rpm('j'), K.carry('j'), K.submitter('j'), K.sched('q', 'high'), K.workers(),
          K.held('w'), K.transit('w'), K.evicted('w'), K.counts('j'), K.events('j'),
          K.failed('j', 'quota'), K.metrics('j'), K.answer('d'), K.claim('d'), K.answers('j'),
          K.tickets(), K.batch('b'), K.batches(), K.job_batches('j'),
          K.holding('w')}
    """
    )
    names = [n.decode() for n in client.eval(lua, 0, keys.tag)]
    assert names == [
        keys.jobs(), keys.active(), keys.job("j"), keys.job_args("j"), keys.job_todo("j"),
        keys.job_inflight("j"), keys.job_rpm("j"), keys.job_carry("j"), keys.submitter("j"),
        keys.sched("q", "high"), keys.workers(), keys.held("w"), keys.transit("w"),
        keys.evicted("w"), keys.job_counts("j"), keys.job_events("j"),
        keys.job_failed("j", "quota"), keys.job_metrics("j"), keys.answer("d"), keys.claim("d"),
        keys.job_answers("j"), keys.tickets(), keys.batch("b"), keys.batches(),
        keys.job_batches("j"), keys.holding("w"),
    ]  # fmt: skip


def test_sustained_server_errors_open_the_models_circuit_and_a_probe_closes_it(make_pool):
    pool = make_pool([A, B], circuit_window=3, circuit_base=0.3)
    prove(pool, A, B)
    outcomes = [pool.release(pool.acquire(MODEL), TransientError("503")) for _ in range(3)]
    assert [o.outage for o in outcomes] == [False, False, True]
    wait = pool.acquire(MODEL)
    assert isinstance(wait, NoKeyYet) and wait.reason == "outage" and wait.seconds <= 0.3
    assert pool.status(MODEL).model.outage_seconds_left > 0
    time.sleep(0.35)
    probe = pool.acquire(MODEL)
    assert isinstance(probe, Lease)
    held = pool.acquire(MODEL)  # one probe at a time while the circuit is half open
    assert isinstance(held, NoKeyYet) and held.reason == "outage"
    assert not pool.release(probe, None, 1).outage
    assert isinstance(pool.acquire(MODEL), Lease)


def test_a_failed_probe_keeps_the_circuit_open_longer(make_pool):
    pool = make_pool([A], circuit_window=1, circuit_base=0.2, circuit_max=10)
    prove(pool, A)
    pool.release(pool.acquire(MODEL), TransientError("503"))
    time.sleep(0.25)
    probe = pool.acquire(MODEL)
    assert isinstance(probe, Lease)
    assert pool.release(probe, TransientError("503")).outage
    wait = pool.acquire(MODEL)
    assert isinstance(wait, NoKeyYet) and 0.2 < wait.seconds <= 0.4  # doubled


def test_a_capacity_429_holds_the_model_briefly_and_exhausts_no_project(make_pool):
    pool = make_pool([A, B], capacity_base=0.2, capacity_max=5)
    prove(pool, A, B)
    for _ in range(3):
        pool.release(pool.acquire(MODEL), CapacityExhausted("429 exhausted"))
        time.sleep(0.05 + pool.status(MODEL).model.capacity_seconds_left)
    status = pool.status(MODEL)
    assert all(k.status.value == "AVAILABLE" and k.exhausted_count == 0 for k in status.keys)
    pool.release(pool.acquire(MODEL), CapacityExhausted("429 exhausted"))
    wait = pool.acquire(MODEL)
    assert isinstance(wait, NoKeyYet) and wait.reason == "capacity"
    assert 0.2 < wait.seconds <= 5


def test_limits_are_learned_from_429s_and_configured_ones_win(make_pool, client):
    pool = make_pool([A, B, C])
    prove(pool, A, B, C)
    leases = {lease.key.label: lease for lease in (pool.acquire(MODEL) for _ in range(3))}
    told = QuotaExceeded("429", retry_delay=0, violations=(minute(2), day(1000)))
    pool.release(leases["GEMINI_API_KEY_2"], told)  # B's project ("shared") has rpm 2
    limits = {s.key_id: s.limits for s in pool.status(MODEL).keys}
    assert (limits[B.id].rpm, limits[B.id].rpd) == (2, 1000) and limits[C.id].rpm == 2
    assert limits[A.id].rpm == 0  # another project
    configured = make_pool([A, B, C], Limits(rpm=7))
    assert {s.key_id: s.limits.rpm for s in configured.status(MODEL).keys}[B.id] == 7


def test_a_limit_of_zero_marks_the_project_unusable_for_the_model_with_why(make_pool):
    pool = make_pool([A, B])
    prove(pool, A, B)
    lease = next(lease for lease in (pool.acquire(MODEL) for _ in range(2)) if lease.key == A)
    zero = QuotaExceeded(
        "429 limit: 0", violations=(QuotaViolation("GenerateRequestsPerDay", None),)
    )
    pool.release(lease, zero)
    status = {s.key_id: s for s in pool.status(MODEL).keys}
    assert status[A.id].status.value == "FULLY_EXHAUSTED"
    assert status[A.id].seconds_left > 300 * 86400  # not "until tomorrow"
    assert "limit: 0" in status[A.id].reason
    assert labels(pool, 3) == ["2", "2", "2"]


def test_a_full_file_storage_is_no_generate_quota(make_pool):
    pool = make_pool([A])
    prove(pool, A)
    pool.release(pool.acquire(MODEL), StorageExhausted("429 FileStorageBytesPerProject"))
    [state] = pool.status(MODEL).keys
    assert state.status.value == "AVAILABLE" and state.exhausted_count == 0


def test_a_thousand_keys_lease_least_recently_used_first(make_pool):
    many = [ApiKey(f"GEMINI_API_KEY_{i}", f"fake-pool-many-{i}") for i in range(1000)]
    pool = make_pool(many)
    prove(pool, *many[:5])
    first = [pool.acquire(MODEL) for _ in range(1000)]
    assert len({lease.key.id for lease in first if isinstance(lease, Lease)}) >= 995


def test_the_odd_server_error_never_opens_the_circuit(make_pool):
    pool = make_pool([A], circuit_window=10)
    prove(pool, A)
    for i in range(40):  # two calls in three fail: errors, not an outage
        outcome = pool.release(pool.acquire(MODEL), TransientError("503") if i % 3 else None)
        assert not outcome.outage


def line_of(pool: KeyPool, client: redis.Redis) -> list[int]:
    return [int(t) for t in client.zrange(pool.keyspace.line(pool.keyset, MODEL), 0, -1)]


def cooled_down(pool: KeyPool) -> NoKeyYet:
    """Prove A, use it once more with ticket 1, and return how long it now cools down."""
    prove(pool, A)
    time.sleep(pool.config.cooldown)
    pool.release(pool.acquire(MODEL, ticket=1), None, 1)
    wait = pool.acquire(MODEL, ticket=2)
    assert isinstance(wait, NoKeyYet)
    return wait


def test_a_key_that_comes_free_goes_to_the_first_in_line_not_the_first_to_ask(make_pool, client):
    # The scheduler numbers prompts in the order it chose them (priority, fair share);
    # threads waiting for a key ask again in whatever order they wake.
    pool = make_pool([A], cooldown=0.3, line_grace=30.0)
    wait = cooled_down(pool)
    assert isinstance(pool.acquire(MODEL, ticket=3), NoKeyYet)
    assert line_of(pool, client) == [2, 3]
    time.sleep(wait.seconds + 0.01)
    assert isinstance(pool.acquire(MODEL, ticket=3), NoKeyYet)  # first to ask; 2 is due
    assert isinstance(pool.acquire(MODEL), NoKeyYet)  # no ticket: behind every waiter
    assert isinstance(pool.acquire(MODEL, ticket=2), Lease)
    assert line_of(pool, client) == [3]


def test_a_waiter_that_does_not_ask_again_when_due_loses_its_place(make_pool, client):
    pool = make_pool([A], cooldown=0.3, line_grace=0.0)
    wait = cooled_down(pool)
    time.sleep(wait.seconds + 0.01)
    assert isinstance(pool.acquire(MODEL, ticket=3), Lease)
    assert line_of(pool, client) == []


def test_a_wait_too_long_for_a_thread_takes_no_place_in_line(make_pool, client):
    # Its prompt parks in Redis; the scheduler gives it a new ticket when it runs again.
    pool = make_pool([A], cooldown=0.3, line_hold=0.1, line_grace=30.0)
    wait = cooled_down(pool)
    assert wait.seconds > 0.1 and line_of(pool, client) == []
