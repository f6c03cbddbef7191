"""Error classification, fed with the emulator's payloads through the SDK's own error type."""

import httpx2
import pytest
from google.genai import errors as genai_errors

from gemini_tasks.emulator import payloads
from gemini_tasks.errors import ErrorKind, InvalidRequest, KeyInvalid, QuotaExceeded, TransientError
from gemini_tasks.worker.classify import classify


def api_error(body: dict) -> genai_errors.APIError:
    code = body["error"]["code"]
    cls = genai_errors.ServerError if code >= 500 else genai_errors.ClientError
    return cls(code, body)


def violation(quota_id: str, limit: int = 10, wait: float = 36.2) -> payloads.Violation:
    return payloads.Violation(quota_id, "metric", "gemini-x", limit, wait)


def test_per_minute_quota():
    body = payloads.quota_exceeded(
        [violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier")]
    )
    err = classify(api_error(body))
    assert isinstance(err, QuotaExceeded)
    assert err.retry_delay == 36
    assert err.quota_id == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert not err.is_daily
    assert err.kind is ErrorKind.QUOTA


def test_per_day_quota_outranks_per_minute_in_one_failure():
    body = payloads.quota_exceeded(
        [
            violation("GenerateRequestsPerMinutePerProjectPerModel"),
            violation("GenerateRequestsPerDayPerProjectPerModel"),
        ]
    )
    err = classify(api_error(body))
    assert isinstance(err, QuotaExceeded) and err.is_daily


def test_bare_429_without_details():
    err = classify(api_error(payloads.error(429, "RESOURCE_EXHAUSTED", "Resource exhausted")))
    assert isinstance(err, QuotaExceeded)
    assert err.retry_delay is None and err.quota_id is None


def test_invalid_key():
    err = classify(api_error(payloads.api_key_invalid()))
    assert isinstance(err, KeyInvalid)
    assert "API key not valid" in str(err)


@pytest.mark.parametrize("body", [payloads.internal(), payloads.overloaded()])
def test_server_errors_are_transient(body):
    err = classify(api_error(body))
    assert isinstance(err, TransientError)
    assert err.kind is ErrorKind.SERVER


def test_bad_request_is_not_retryable():
    err = classify(api_error(payloads.invalid_argument("* contents is not specified")))
    assert isinstance(err, InvalidRequest)
    assert err.code == 400
    assert str(err).startswith("400 INVALID_ARGUMENT: * contents is not specified")


def test_network_errors_are_transient():
    err = classify(httpx2.ReadTimeout("timed out"))
    assert isinstance(err, TransientError)
    assert "network error (ReadTimeout)" in str(err)
