"""Error classification, fed with the emulator's production bodies through the SDK's own
error type."""

import httpx2
import pytest
from google.genai import errors as genai_errors

from gemini_tasks.emulator import payloads
from gemini_tasks.errors import (
    CapacityExhausted,
    ErrorKind,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    StorageExhausted,
    TransientError,
)
from gemini_tasks.worker.classify import classify


def api_error(body: dict, code: int | None = None) -> genai_errors.APIError:
    code = code or body["error"]["code"]
    cls = genai_errors.ServerError if code >= 500 else genai_errors.ClientError
    return cls(code, body)


def violation(quota_id: str, limit: int = 10, wait: float = 36.2) -> payloads.Violation:
    return payloads.Violation(quota_id, "metric", "gemini-x", limit, wait)


def test_per_minute_quota_with_a_fractional_delay():
    body = payloads.quota_exceeded(
        [violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", wait=45.218844857)]
    )
    err = classify(api_error(body))
    assert isinstance(err, QuotaExceeded) and err.kind is ErrorKind.QUOTA
    assert err.retry_delay == 45  # RetryInfo's whole seconds
    assert not err.is_daily and not err.is_zero
    assert err.learned == {"rpm": 10}


def test_several_violations_at_once_teach_every_limit():
    body = payloads.quota_exceeded(
        [
            violation("GenerateRequestsPerMinutePerProjectPerModel", 1000),
            violation("GenerateRequestsPerDayPerProjectPerModel", 10000),
            violation("GenerateContentPaidTierInputTokensPerModelPerMinute", 1000000),
        ]
    )
    err = classify(api_error(body))
    assert isinstance(err, QuotaExceeded) and err.is_daily
    assert err.learned == {"rpm": 1000, "rpd": 10000, "tpm": 1000000}


def test_a_limit_of_zero_names_no_value():
    body = payloads.quota_exceeded(
        [violation("GenerateRequestsPerDayPerProjectPerModel-FreeTier", limit=0, wait=45)]
    )
    assert "quotaValue" not in str(body)
    err = classify(api_error(body))
    assert isinstance(err, QuotaExceeded) and err.is_zero


@pytest.mark.parametrize("body", [payloads.capacity_exhausted(), payloads.capacity_help_only()])
def test_a_429_naming_no_quota_is_capacity_not_quota(body):
    err = classify(api_error(body))
    assert isinstance(err, CapacityExhausted) and err.kind is ErrorKind.CAPACITY


def test_full_file_storage_is_storage_not_a_generate_quota():
    err = classify(api_error(payloads.file_storage_exhausted(20 * 1024**3)))
    assert isinstance(err, StorageExhausted)


def test_invalid_key():
    err = classify(api_error(payloads.api_key_invalid()))
    assert isinstance(err, KeyInvalid)
    assert "API key not valid" in str(err)


@pytest.mark.parametrize("reason", payloads.REVOCATIONS)
def test_keys_google_revoked_are_out_of_rotation(reason):
    err = classify(api_error(payloads.key_revoked(reason, "fake-secret", "12345")))
    assert isinstance(err, KeyInvalid), reason


def test_a_file_of_another_project_is_the_requests_fault_about_a_file():
    err = classify(api_error(payloads.file_not_found("abc123")))
    assert isinstance(err, InvalidRequest) and err.about_file


def test_an_unknown_model_is_a_refused_request_not_about_a_file():
    err = classify(api_error(payloads.model_not_found("gemini-nope", "v1beta", "generateContent")))
    assert isinstance(err, InvalidRequest) and not err.about_file
    assert "ListModels" in str(err)


def test_unknown_fields_are_a_refused_request():
    err = classify(api_error(payloads.unknown_fields(["bogus"])))
    assert isinstance(err, InvalidRequest) and "Unknown name" in str(err)


@pytest.mark.parametrize(
    "body",
    [payloads.internal(), payloads.overloaded(), payloads.deadline_exceeded(),
     payloads.cancelled()],
)  # fmt: skip
def test_server_errors_are_transient(body):
    err = classify(api_error(body))
    assert isinstance(err, TransientError) and err.kind is ErrorKind.SERVER


def test_a_502_page_that_is_not_json_is_transient():
    response = httpx2.Response(502, text=payloads.BAD_GATEWAY_PAGE)
    sdk_error = genai_errors.ServerError(502, {"message": payloads.BAD_GATEWAY_PAGE}, response)
    assert isinstance(classify(sdk_error), TransientError)


def test_bad_request_is_not_retryable():
    err = classify(api_error(payloads.invalid_argument("* contents is not specified")))
    assert isinstance(err, InvalidRequest)
    assert err.code == 400
    assert str(err).startswith("400 INVALID_ARGUMENT: * contents is not specified")


def test_network_errors_are_transient():
    err = classify(httpx2.ReadTimeout("timed out"))
    assert isinstance(err, TransientError)
    assert "network error (ReadTimeout)" in str(err)


def test_a_batch_requests_error_is_classified_from_its_rpc_code():
    from gemini_tasks.worker.classify import classify_status

    assert isinstance(classify_status(3, "bad contents"), InvalidRequest)  # INVALID_ARGUMENT
    assert isinstance(classify_status(14, "overloaded"), TransientError)  # UNAVAILABLE
    assert isinstance(classify_status(13, "internal"), TransientError)
    assert classify_status(3, "bad contents").code == 400
