import pytest

from gemini_tasks.errors import ConfigError
from gemini_tasks.settings import DEFAULT_MODEL, DEFAULT_REDIS_URL, load


def test_defaults():
    settings = load({})
    assert settings.redis_url == DEFAULT_REDIS_URL
    assert settings.broker_url == settings.result_backend == DEFAULT_REDIS_URL
    assert settings.model == DEFAULT_MODEL
    assert settings.result_expires == 7 * 24 * 3600
    assert settings.visibility_timeout > settings.task_time_limit
    assert not settings.redis_url_configured


def test_redis_url_serves_broker_and_backend_unless_overridden():
    settings = load({"REDIS_URL": "redis://r:6379/1", "GEMINI_TASKS_BROKER_URL": "redis://b/2"})
    assert settings.redis_url_configured
    assert settings.broker_url == "redis://b/2"
    assert settings.result_backend == "redis://r:6379/1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GEMINI_TASKS_MAX_RETRIES", "abc"),
        ("GEMINI_TASKS_MAX_RETRIES", "-1"),
        ("GEMINI_TASKS_TASK_TIME_LIMIT", "0"),
        ("GEMINI_TASKS_RESULT_EXPIRES", "1.5"),
        ("GEMINI_TASKS_LOG_LEVEL", "LOUD"),
        ("REDIS_URL", "localhost:6379"),
    ],
)
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(ConfigError, match=name):
        load({name: value})


def test_visibility_timeout_must_exceed_task_time_limit():
    with pytest.raises(ConfigError, match="GEMINI_TASKS_VISIBILITY_TIMEOUT"):
        load({"GEMINI_TASKS_TASK_TIME_LIMIT": "600", "GEMINI_TASKS_VISIBILITY_TIMEOUT": "300"})


def test_request_timeout_never_exceeds_task_time_limit():
    settings = load({"GEMINI_TASKS_TASK_TIME_LIMIT": "30", "GEMINI_TASKS_REQUEST_TIMEOUT": "90"})
    assert settings.request_timeout == 30
