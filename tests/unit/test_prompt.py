import pytest
from google.genai import types

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.records import StagedRecord, parse_record
from gemini_tasks.worker.request import build_request


def test_seed_record_parses():
    record = parse_record(
        {
            "prompt": "Write a creative story:",
            "generation_config": {"temperature": 0.9, "top_p": 0.8, "max_output_tokens": 1000},
            "metadata": {"task_id": "creative_task"},
        }
    )
    assert record.metadata == {"task_id": "creative_task"}
    assert record.generation_config["temperature"] == 0.9


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("just a string", "must be a JSON object"),
        ({}, "'prompt' is required"),
        ({"prompt": "  "}, "'prompt' is required"),
        ({"prompt": "x", "metadata": [1]}, "'metadata' must be an object"),
        ({"prompt": "x", "metadata": {"f": object()}}, "which is not JSON"),
        ({"prompt": "x", "colour": 1}, "unknown field(s) 'colour'"),
        ({"prompt": "x", "generation_config": {"temperature": "hot"}}, "temperature"),
        ({"prompt": "x", "generation_config": {"no_such_option": 1}}, "no_such_option"),
        ({"prompt": "x", "metadata": {"n": float("nan")}}, "metadata.n is nan"),
        ({"prompt": "x", "generation_config": {"http_options": {}}}, "http_options"),
        ({"prompt": "x", "model": 3}, "'model' must be a model name"),
        ({"prompt": "x", "model": "../../v1beta/files/x"}, "'model' must be a model name"),
        ({"prompt": "x", "model": "gemini flash"}, "'model' must be a model name"),
    ],
)
def test_bad_records_name_the_problem(record, message):
    with pytest.raises(InvalidPrompt) as info:
        parse_record(record)
    assert message in str(info.value)


def test_request_uses_record_overrides_and_attempt_timeout():
    record = StagedRecord(
        prompt="hi", system_instruction="be brief", generation_config={"temperature": 0.2}
    )
    request = build_request(record, "gemini-2.5-pro", timeout_seconds=2.5)
    assert request.model == "gemini-2.5-pro"
    assert request.content == types.Content(role="user", parts=[types.Part(text="hi")])
    assert request.config.temperature == 0.2
    assert request.config.system_instruction == "be brief"
    assert request.config.http_options.timeout == 2500


def test_a_plain_prompt_sends_no_config():
    assert build_request(StagedRecord(prompt="hi"), "gemini-default").config is None
