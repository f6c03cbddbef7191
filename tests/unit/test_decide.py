"""The worker's rules after each call, for every error kind and prompt state: no Redis,
no workers, no Gemini."""

import pytest

from gemini_tasks.errors import (
    ErrorKind,
    GeminiCallError,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    TransientError,
)
from gemini_tasks.worker.decide import Action, PromptState, RetryPolicy, decide

POLICY = RetryPolicy(max_retries=3, backoff=1.0, backoff_max=5.0)
FRESH = PromptState()


def run(error: GeminiCallError | None, state: PromptState = FRESH, **kw):
    return decide(
        error, state, POLICY, project=kw.get("project", "p"), used_uploads=kw.get("up", False)
    )


def test_an_answer_ends_the_prompt():
    decision = run(None)
    assert decision.action is Action.SUCCEED and decision.state == FRESH


@pytest.mark.parametrize(
    "error", [QuotaExceeded("429 RESOURCE_EXHAUSTED"), KeyInvalid("400 API key not valid")]
)
def test_the_keys_fault_goes_to_another_key_at_once(error):
    decision = run(error, PromptState(server_failures=2))
    assert decision.action is Action.NEXT_KEY
    assert decision.kind is error.kind
    assert decision.state.server_failures == 2  # not the prompt's failure


@pytest.mark.parametrize("code", [400, 403, 404, 413])
def test_a_refused_request_is_not_sent_again(code):
    decision = run(InvalidRequest(f"{code} refused", code=code))
    assert decision.action is Action.FAIL and decision.kind is ErrorKind.INVALID_REQUEST
    assert decision.message == f"{code} refused"


@pytest.mark.parametrize("code", [403, 404])
def test_a_forgotten_upload_is_uploaded_again_once_per_project(code):
    error = InvalidRequest(f"{code} file", code=code)
    first = run(error, up=True, project="a")
    assert first.action is Action.REUPLOAD and first.state.reuploaded == {"a"}
    assert run(error, first.state, up=True, project="a").action is Action.FAIL
    assert run(error, first.state, up=True, project="b").action is Action.REUPLOAD
    assert run(error, up=False).action is Action.FAIL  # no uploads: the request's own fault


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
    state = PromptState(server_failures=9)
    policy = RetryPolicy(max_retries=20, backoff=1.0, backoff_max=5.0)
    decision = decide(TransientError("500"), state, policy, project="p", used_uploads=False)
    assert decision.backoff_ceiling == 5.0


def test_no_retries_at_all():
    policy = RetryPolicy(max_retries=0, backoff=1.0, backoff_max=5.0)
    decision = decide(TransientError("500"), FRESH, policy, project="p", used_uploads=False)
    assert decision.action is Action.FAIL and "after 1 attempts" in decision.message


def test_every_call_error_kind_has_a_rule():
    kinds = {type(e).kind for e in (QuotaExceeded("q"), KeyInvalid("k"), InvalidRequest("r"),
                                   TransientError("t"))}  # fmt: skip
    assert kinds == {ErrorKind.QUOTA, ErrorKind.KEY_INVALID, ErrorKind.INVALID_REQUEST,
                     ErrorKind.SERVER}  # fmt: skip
