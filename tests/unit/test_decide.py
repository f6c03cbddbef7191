"""The worker's rules after each call, for every outcome and prompt state: no Redis, no
workers, no Gemini."""

import pytest

from gemini_tasks.errors import (
    CapacityExhausted,
    ErrorKind,
    GeminiCallError,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    StorageExhausted,
    TransientError,
)
from gemini_tasks.worker.decide import Action, Call, PromptState, RetryPolicy, decide
from gemini_tasks.worker.response import Answer, AnswerKind

POLICY = RetryPolicy(max_retries=3, backoff=1.0, backoff_max=5.0, empty_retries=2)
FRESH = PromptState()
CALL = Call(project="p", used_uploads=False)


def run(outcome: GeminiCallError | Answer, state: PromptState = FRESH, call: Call = CALL):
    return decide(outcome, state, POLICY, call)


def test_an_answer_ends_the_prompt():
    for reason in ("STOP", "MAX_TOKENS"):
        decision = run(Answer(AnswerKind.TEXT, reason))
        assert decision.action is Action.SUCCEED and decision.state == FRESH


@pytest.mark.parametrize("reason", ["PROHIBITED_CONTENT", "SAFETY", "RECITATION"])
def test_a_refused_prompt_fails_as_blocked_and_is_not_asked_again(reason):
    decision = run(Answer(AnswerKind.BLOCKED, reason))
    assert decision.action is Action.FAIL and decision.kind is ErrorKind.BLOCKED
    assert decision.message == f"blocked: {reason}"


def test_an_empty_answer_is_asked_again_a_bounded_number_of_times():
    state = FRESH
    for _ in range(POLICY.empty_retries):
        decision = run(Answer(AnswerKind.EMPTY, "STOP"), state)
        assert decision.action is Action.AGAIN
        state = decision.state
    last = run(Answer(AnswerKind.EMPTY, "STOP"), state)
    assert last.action is Action.FAIL and last.kind is ErrorKind.NO_CONTENT
    assert "3 times" in last.message


def test_thinking_that_used_the_whole_budget_is_not_asked_again():
    decision = run(Answer(AnswerKind.THOUGHT_ONLY, "MAX_TOKENS"))
    assert decision.action is Action.FAIL and decision.kind is ErrorKind.NO_CONTENT
    assert "max_output_tokens" in decision.message


@pytest.mark.parametrize(
    "error",
    [QuotaExceeded("429 RESOURCE_EXHAUSTED"), KeyInvalid("403 reported as leaked"),
     CapacityExhausted("429 Resource has been exhausted")],
)  # fmt: skip
def test_the_keys_fault_and_capacity_lease_again_without_counting_a_failure(error):
    decision = run(error, PromptState(server_failures=2))
    assert decision.action is Action.AGAIN and decision.kind is error.kind
    assert decision.state.server_failures == 2


def test_an_outage_is_waited_out_not_counted():
    decision = run(TransientError("503 overloaded"), FRESH, Call("p", False, outage=True))
    assert decision.action is Action.AGAIN and decision.state.server_failures == 0


@pytest.mark.parametrize("code", [400, 403, 404, 413])
def test_a_refused_request_is_not_sent_again(code):
    decision = run(InvalidRequest(f"{code} refused", code=code))
    assert decision.action is Action.FAIL and decision.kind is ErrorKind.INVALID_REQUEST
    assert decision.message == f"{code} refused"


def test_an_unknown_model_never_re_uploads_media():
    error = InvalidRequest("404 NOT_FOUND: models/x is not found", code=404)
    assert run(error, call=Call("p", used_uploads=True)).action is Action.FAIL


def test_a_forgotten_upload_is_uploaded_again_once_per_project():
    error = InvalidRequest("403 ... the File abc", code=403, about_file=True)
    first = run(error, call=Call("a", used_uploads=True))
    assert first.action is Action.REUPLOAD and first.state.reuploaded == {"a"}
    assert run(error, first.state, Call("a", used_uploads=True)).action is Action.FAIL
    assert run(error, first.state, Call("b", used_uploads=True)).action is Action.REUPLOAD
    assert run(error, call=Call("a", used_uploads=False)).action is Action.FAIL


def test_full_storage_frees_uploads_once_then_backs_off():
    error = StorageExhausted("429 FileStorageBytesPerProject")
    first = run(error)
    assert first.action is Action.FREE_STORAGE and first.state.storage_freed == {"p"}
    second = run(error, first.state)
    assert second.action is Action.BACKOFF and second.state.server_failures == 1


def test_server_errors_back_off_exponentially_up_to_the_cap():
    state, ceilings = FRESH, []
    for _ in range(POLICY.max_retries):
        decision = run(TransientError("503 UNAVAILABLE"), state)
        assert decision.action is Action.BACKOFF and decision.kind is ErrorKind.SERVER
        ceilings.append(decision.backoff_ceiling)
        state = decision.state
    assert ceilings == [1.0, 2.0, 4.0]
    last = run(TransientError("503 UNAVAILABLE"), state)
    assert last.action is Action.FAIL
    assert last.message == "persistent error after 4 attempts: 503 UNAVAILABLE"
    assert last.state.server_failures == 4


def test_the_backoff_ceiling_stops_at_its_maximum():
    policy = RetryPolicy(max_retries=20, backoff=1.0, backoff_max=5.0)
    decision = decide(TransientError("500"), PromptState(server_failures=9), policy, CALL)
    assert decision.backoff_ceiling == 5.0


def test_no_retries_at_all():
    policy = RetryPolicy(max_retries=0, backoff=1.0, backoff_max=5.0)
    decision = decide(TransientError("500"), FRESH, policy, CALL)
    assert decision.action is Action.FAIL and "after 1 attempts" in decision.message


def test_every_outcome_has_a_rule():
    errors = [QuotaExceeded("q"), KeyInvalid("k"), CapacityExhausted("c"), StorageExhausted("s"),
              InvalidRequest("r"), TransientError("t")]  # fmt: skip
    answers = [Answer(kind, "STOP") for kind in AnswerKind]
    for outcome in [*errors, *answers]:
        assert isinstance(run(outcome).action, Action)
    expected = {ErrorKind.QUOTA, ErrorKind.KEY_INVALID, ErrorKind.CAPACITY, ErrorKind.STORAGE,
                ErrorKind.INVALID_REQUEST, ErrorKind.SERVER}  # fmt: skip
    assert {type(e).kind for e in errors} == expected


@pytest.mark.parametrize("shed", [CapacityExhausted("429"), TransientError("503 overloaded")])
def test_a_flex_call_shed_is_waited_through_however_often_never_failed(shed):
    flex = Call(project="p", used_uploads=False, flex=True)
    state = FRESH
    for n in range(1, 20):  # far past max_retries
        decision = run(shed, state, flex)
        assert decision.action is Action.SHED and decision.kind is ErrorKind.CAPACITY
        assert decision.backoff_ceiling == min(5.0, 2 ** (n - 1))
        state = decision.state
    assert state.server_failures == 0


def test_a_flex_call_refused_for_quota_or_its_request_is_handled_as_any_call():
    flex = Call(project="p", used_uploads=False, flex=True)
    assert run(QuotaExceeded("429 quota"), call=flex).action is Action.AGAIN
    assert run(InvalidRequest("400"), call=flex).action is Action.FAIL
